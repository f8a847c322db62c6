"""Synthetic canvas drawings: MNIST digits re-drawn the way a person draws with a mouse.

A drawing on the app's canvas differs from an MNIST scan: it can be any size and anywhere,
and its strokes have the even width and round ends of a brush. To measure (and train for)
that, we take an MNIST digit, reduce it to the centre lines of its strokes, and re-draw
those lines on a 280×280 RGBA canvas with a round brush, at a random size, position,
slant and stroke width. The benchmark draws MNIST test digits; the default model's
augmentation draws training digits, so the two never share a digit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

CANVAS_SIZE = 280
# Pixels of an MNIST digit brighter than this are stroke; the rest is anti-aliasing.
STROKE_THRESHOLD = 0.5
# The seed of the standard drawn test set, so the benchmark and the model's metrics score the same drawings.
DRAWN_TEST_SEED = 7
# Branches of the centre line shorter than this (pixels of the 28-pixel digit) are thinning artefacts, not strokes.
MIN_SPUR_LENGTH = 3
# Digits are thinned at this many times their 28-pixel resolution (bilinear upsampling, then the
# threshold): at 28 pixels the hole of a small loop (the top of an 8, a 9's loop) is often one grey
# pixel that the threshold fills, and thinning erodes a short thick stroke (a 2's base) to nothing.
THINNING_SCALE = 3
# The widest brush, as a share of the smallest loop's inner diameter (centre line to centre line): a
# wider brush fills the loop (an 8 becomes a blob with one hole, a 9 a 1), which no person would draw.
LOOP_BRUSH_SHARE = 0.5
# Enclosed gaps in the centre lines smaller than this share of the drawing's height are thinning
# artefacts, not loops a brush must leave open.
MIN_LOOP_SHARE = 0.08
# Bumped whenever a change to this module changes the drawings a seed gives, so cached drawings
# (scripts.train_default_models --cache) are drawn again. 2: thinning at THINNING_SCALE, loop-capped brush.
RENDERER_VERSION = 2
# Digits thinned together: the upsampled masks of a large batch would not fit in memory at once.
THINNING_CHUNK = 1024

_NEIGHBOURS = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]


@dataclass(frozen=True)
class DrawStyle:
    """The ranges a drawing's random choices are taken from (sizes in pixels of a 280-pixel canvas)."""

    # The drawing's height as a fraction of the canvas, brush included.
    height_fraction: tuple[float, float] = (0.3, 0.85)
    # Brush width; kept between 5% and 25% of the drawing's height so the digit stays a digit.
    stroke_width: tuple[float, float] = (10.0, 30.0)
    rotation_degrees: float = 12.0
    # Horizontal stretch (width / height) and slant (horizontal shift per unit of height).
    aspect: tuple[float, float] = (0.8, 1.25)
    shear: float = 0.15
    # Standard deviation (pixels) of the smooth wobble of a hand on a mouse.
    tremor: float = 1.5
    # "transparent" like the app's canvas, or "black" for an opaque dark background.
    background: str = "transparent"

    def __post_init__(self) -> None:
        if self.background not in ("transparent", "black"):
            raise ValueError(f"background must be 'transparent' or 'black', got {self.background!r}.")
        for name in ("height_fraction", "stroke_width", "aspect"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be a range (low, high) with 0 < low ≤ high, got {(low, high)}.")
        if self.height_fraction[1] > 1:
            raise ValueError("height_fraction must stay within the canvas: use values up to 1.")


DEFAULT_STYLE = DrawStyle()


def _thinning_tables() -> tuple[np.ndarray, np.ndarray]:
    """Zhang–Suen's two removal rules as 256-entry tables over the 8-neighbour code (bit i = neighbour P(i+2))."""
    codes = np.arange(256)
    p = [(codes >> bit) & 1 for bit in range(8)]
    count = sum(p)
    ring = p + p[:1]
    transitions = sum(((ring[i] == 0) & (ring[i + 1] == 1)).astype(int) for i in range(8))
    p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
    removable = (count >= 2) & (count <= 6) & (transitions == 1)
    first = removable & (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
    second = removable & (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
    return first, second


_THINNING_TABLES = _thinning_tables()


def skeletonize(binary: np.ndarray) -> np.ndarray:
    """Thin strokes to one-pixel centre lines (Zhang–Suen), for one (H, W) mask or a (N, H, W) batch.

    Each pass removes the boundary pixels whose removal keeps the shape connected, until nothing
    changes; images that stopped changing leave the batch, so one thick digit does not slow the rest.
    """
    mask = np.asarray(binary, dtype=bool)
    if mask.ndim not in (2, 3):
        raise ValueError(f"Expected a (H, W) mask or an (N, H, W) batch of masks, got shape {mask.shape}.")
    single = mask.ndim == 2
    image = np.pad(mask[np.newaxis] if single else mask, ((0, 0), (1, 1), (1, 1))).astype(np.uint8)
    height, width = image.shape[1] - 2, image.shape[2] - 2
    active = np.arange(len(image))
    while len(active):
        sub = image[active]
        changed = np.zeros(len(active), dtype=bool)
        for table in _THINNING_TABLES:
            code = np.zeros((len(active), height, width), dtype=np.uint8)
            for bit, (dr, dc) in enumerate(_NEIGHBOURS):
                code |= sub[:, 1 + dr : 1 + dr + height, 1 + dc : 1 + dc + width] << bit
            centre = sub[:, 1:-1, 1:-1]
            remove = (centre == 1) & table[code]
            centre[remove] = 0
            changed |= remove.any(axis=(1, 2))
        image[active] = sub
        active = active[changed]
    result = image[:, 1:-1, 1:-1].astype(bool)
    return result[0] if single else result


def stroke_paths(skeleton: np.ndarray, min_spur: int = MIN_SPUR_LENGTH) -> list[np.ndarray]:
    """Split a one-pixel skeleton into polylines, each a (k, 2) float array of (row, column) points.

    Lines run between end points and junctions; closed loops (a '0') become a path that ends
    where it starts. Short spurs left by thinning are dropped.
    """
    skeleton = np.asarray(skeleton, dtype=bool)
    pixels = {(int(r), int(c)) for r, c in zip(*np.nonzero(skeleton), strict=True)}
    graph: dict[tuple[int, int], set[tuple[int, int]]] = {p: set() for p in pixels}
    for r, c in pixels:
        for dr, dc in _NEIGHBOURS:
            q = (r + dr, c + dc)
            if q not in pixels:
                continue
            # A diagonal step with a pixel in the corner is already joined through that pixel;
            # keeping both would make tiny triangles and false junctions.
            if dr and dc and ((r + dr, c) in pixels or (r, c + dc) in pixels):
                continue
            graph[(r, c)].add(q)

    visited: set[frozenset] = set()
    paths: list[list[tuple[int, int]]] = []

    def walk(start: tuple[int, int], step: tuple[int, int]) -> list[tuple[int, int]]:
        path = [start, step]
        visited.add(frozenset((start, step)))
        previous, current = start, step
        while len(graph[current]) == 2 and current != start:
            nxt = next(q for q in graph[current] if q != previous)
            edge = frozenset((current, nxt))
            if edge in visited:
                break
            visited.add(edge)
            path.append(nxt)
            previous, current = current, nxt
        return path

    # Sorted so the same skeleton always gives the same paths in the same order.
    nodes = sorted(graph)
    for node in nodes:
        if len(graph[node]) == 0:
            paths.append([node])
        elif len(graph[node]) != 2:
            for neighbour in sorted(graph[node]):
                if frozenset((node, neighbour)) not in visited:
                    paths.append(walk(node, neighbour))
    for node in nodes:
        for neighbour in sorted(graph[node]):
            if frozenset((node, neighbour)) not in visited:
                paths.append(walk(node, neighbour))

    def is_spur(path: list[tuple[int, int]]) -> bool:
        ends = (len(graph[path[0]]), len(graph[path[-1]]))
        return len(path) < min_spur and 1 in ends and any(d >= 3 for d in ends)

    kept = [p for p in paths if not is_spur(p)] or paths
    return [np.array(p, dtype=np.float64) for p in kept]


def _smooth(points: np.ndarray, closed: bool, passes: int = 2) -> np.ndarray:
    """Round off the pixel staircase of a traced line, as a hand draws a curve (ends stay put)."""
    if len(points) < 3:
        return points
    if closed:
        # The last point repeats the first: smooth the ring once round, then close it again.
        ring = points[:-1]
        for _ in range(passes):
            ring = (np.roll(ring, 1, axis=0) + 2 * ring + np.roll(ring, -1, axis=0)) / 4
        return np.concatenate([ring, ring[:1]])
    for _ in range(passes):
        inner = (points[:-2] + 2 * points[1:-1] + points[2:]) / 4
        points = np.concatenate([points[:1], inner, points[-1:]])
    return points


def stroke_masks(digits: np.ndarray, scale: int | None = None) -> np.ndarray:
    """The strokes of (N, 28, 28) grey digits as (N, 28·scale, 28·scale) masks, ready to thin."""
    scale = THINNING_SCALE if scale is None else scale
    digits = np.asarray(digits, dtype=np.float32)
    peaks = digits.max(axis=(1, 2), keepdims=True)
    if scale > 1:
        # Bilinear upsampling as two small matrix products (much faster than an image resize per digit).
        rows, cols = (_upsampling_matrix(n, scale) for n in digits.shape[1:])
        digits = rows @ digits @ cols.T
    return digits > STROKE_THRESHOLD * peaks


def _upsampling_matrix(size: int, scale: int) -> np.ndarray:
    """The (size·scale, size) matrix of bilinear weights between pixel centres, edges held."""
    source = np.clip((np.arange(size * scale) + 0.5) / scale - 0.5, 0, size - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, size - 1)
    weights = np.zeros((size * scale, size), dtype=np.float32)
    np.add.at(weights, (np.arange(len(source)), low), 1 - (source - low))
    np.add.at(weights, (np.arange(len(source)), high), source - low)
    return weights


def digit_paths(digit: np.ndarray) -> list[np.ndarray]:
    """The centre lines of an MNIST digit's strokes, smoothed, in its 28×28 pixel coordinates."""
    digit = np.asarray(digit, dtype=np.float32)
    if digit.ndim == 3 and digit.shape[-1] == 1:
        digit = digit[..., 0]
    if digit.ndim != 2:
        raise ValueError(f"Expected one (28, 28) digit image, got shape {digit.shape}.")
    if not (digit > 0).any():
        raise ValueError("The digit image is blank; there are no strokes to draw.")
    return _paths_from_skeleton(skeletonize(stroke_masks(digit[np.newaxis]))[0])


def _paths_from_skeleton(skeleton: np.ndarray, scale: int | None = None) -> list[np.ndarray]:
    """Polylines of a skeleton thinned at `scale` times the digit's size, back in the digit's pixel coordinates."""
    scale = THINNING_SCALE if scale is None else scale
    result = []
    for path in stroke_paths(skeleton, min_spur=MIN_SPUR_LENGTH * scale):
        closed = len(path) > 3 and np.array_equal(path[0], path[-1])
        if scale > 1:
            # About one point per digit pixel, as the smoothing expects (and fewer points to draw).
            path = np.concatenate([path[:-1:scale], path[-1:]]) if len(path) > 1 else path
            path = (path + 0.5) / scale - 0.5
        result.append(_smooth(path, closed))
    return result


def smallest_loop(paths: list[np.ndarray]) -> float | None:
    """The inner diameter of the smallest loop the paths enclose, as a share of their height; None without loops.

    Measured on the centre lines drawn one pixel wide on a grid of 64 pixels: the widest
    circle that fits in each enclosed gap.
    """
    from PIL import Image, ImageDraw
    from scipy import ndimage

    points = np.concatenate(paths)
    low = points.min(axis=0)
    extent = float(np.ptp(points, axis=0).max())
    if extent <= 0:
        return None
    grid = 64
    pixels = grid / extent
    layer = Image.new("1", (grid + 5, grid + 5), 0)
    pen = ImageDraw.Draw(layer)
    for path in paths:
        xy = [(float(c), float(r)) for r, c in (path - low) * pixels + 2]
        if len(xy) > 1:
            # Three pixels wide, so the sub-pixel seams where smoothed paths meet do not open a loop.
            pen.line(xy, fill=1, width=3)
    lines = np.asarray(layer, dtype=bool)
    gaps, count = ndimage.label(~lines)
    if count < 2:  # only the outside: no loops (most digits), and no need for the distances
        return None
    depth = ndimage.distance_transform_edt(~lines)
    height = max(float(np.ptp(points[:, 0])) * pixels, 1.0)
    outside = gaps[0, 0]
    loops = [2 * float(depth[gaps == label].max()) / height for label in range(1, count + 1) if label != outside]
    loops = [d for d in loops if d >= MIN_LOOP_SHARE]
    return min(loops) if loops else None


def render_paths(
    paths: list[np.ndarray], rng: np.random.Generator, size: int = CANVAS_SIZE, style: DrawStyle = DEFAULT_STYLE
) -> np.ndarray:
    """Draw polylines with a round brush at a random size, place, slant and width: a (size, size, 4) uint8 canvas."""
    from PIL import Image, ImageDraw

    if not paths:
        raise ValueError("There are no strokes to draw.")
    if not isinstance(rng, np.random.Generator):
        raise ValueError("Pass a numpy Generator (np.random.default_rng(seed)) so drawings are reproducible.")
    unit = size / CANVAS_SIZE
    points = np.concatenate(paths)
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    skeleton_height = max(float(np.ptp(points[:, 0])), 1.0)

    # The random choices, always drawn in this order so a seed gives one drawing.
    height = rng.uniform(*style.height_fraction) * size
    width = rng.uniform(*style.stroke_width) * unit
    angle = math.radians(rng.uniform(-style.rotation_degrees, style.rotation_degrees))
    aspect = math.exp(rng.uniform(math.log(style.aspect[0]), math.log(style.aspect[1])))
    shear = rng.uniform(-style.shear, style.shear)
    position = rng.uniform(0.0, 1.0, size=2)
    tremors = [rng.normal(0.0, style.tremor * unit, size=path.shape) for path in paths]

    width = float(np.clip(width, 0.05 * height, 0.25 * height))
    scale = max(height - width, 1.0) / skeleton_height
    # (row, col) → (x, y): stretch and slant the columns, then rotate.
    cos, sin = math.cos(angle), math.sin(angle)
    linear = np.array([[aspect, -shear], [0.0, 1.0]])  # x = aspect·col − shear·row, y = row
    rotation = np.array([[cos, -sin], [sin, cos]])
    transform = scale * rotation @ linear

    def to_canvas(path: np.ndarray) -> np.ndarray:
        centred = path - centre
        return centred[:, ::-1] @ transform.T

    drawn = [to_canvas(path) + _smooth(tremor, closed=False) for path, tremor in zip(paths, tremors, strict=True)]
    everything = np.concatenate(drawn)
    low, high = everything.min(axis=0), everything.max(axis=0)
    extent = high - low + width
    # Too wide for the canvas (a slanted, stretched digit): shrink it to fit.
    margin = 2.0  # pixels kept clear at the canvas edge, so no stroke is cut off
    fit = min(1.0, (size - 2 * margin) / float(extent.max()))
    drawn = [d * fit for d in drawn]
    low, high = low * fit, high * fit
    loop = smallest_loop(paths)
    if loop is not None:
        # A brush never fills a loop the digit has (but stays as wide as the style's thinnest).
        loop_pixels = loop * skeleton_height * scale * fit
        width = max(min(width, LOOP_BRUSH_SHARE * loop_pixels), 0.05 * height)
    room = size - 2 * margin - (high - low) - width
    offset = margin + width / 2 - low + position * np.maximum(room, 0.0)
    drawn = [d + offset for d in drawn]

    layer = Image.new("L", (size, size), 0)
    pen = ImageDraw.Draw(layer)
    radius = width / 2
    for stroke in drawn:
        xy = [(float(x), float(y)) for x, y in stroke]
        if len(xy) > 1:
            pen.line(xy, fill=255, width=max(1, round(width)), joint="curve")
        # Round brush ends (and a single dot for a one-pixel stroke).
        for x, y in (xy[0], xy[-1]):
            pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)

    alpha = np.asarray(layer)
    canvas = np.zeros((size, size, 4), dtype=np.uint8)
    if style.background == "transparent":
        # The canvas component returns white strokes whose opacity is the ink, on a clear background.
        canvas[..., :3] = 255
        canvas[..., 3] = alpha
    else:
        canvas[..., :3] = alpha[..., np.newaxis]
        canvas[..., 3] = 255
    return canvas


def render_digit(
    digit: np.ndarray, rng: np.random.Generator, size: int = CANVAS_SIZE, style: DrawStyle = DEFAULT_STYLE
) -> np.ndarray:
    """One MNIST digit re-drawn as a mouse drawing on a (size, size, 4) uint8 RGBA canvas."""
    return render_paths(digit_paths(digit), rng, size=size, style=style)


def render_digits(
    digits: np.ndarray, seed: int, size: int = CANVAS_SIZE, style: DrawStyle = DEFAULT_STYLE
) -> Iterator[np.ndarray]:
    """Canvas drawings of a batch of (N, 28, 28[, 1]) digits, one at a time (they are large), reproducibly."""
    digits = np.asarray(digits, dtype=np.float32)
    if digits.ndim == 4 and digits.shape[-1] == 1:
        digits = digits[..., 0]
    if digits.ndim != 3:
        raise ValueError(f"Expected a batch of digits shaped (N, 28, 28) or (N, 28, 28, 1), got {digits.shape}.")
    rng = np.random.default_rng(seed)
    for first in range(0, len(digits), THINNING_CHUNK):
        chunk = digits[first : first + THINNING_CHUNK]
        # Thinning many digits at once is much faster than one at a time.
        skeletons = skeletonize(stroke_masks(chunk))
        for index, skeleton in enumerate(skeletons, start=first):
            if not skeleton.any():
                raise ValueError(f"Digit {index} of the batch is blank; there are no strokes to draw.")
            yield render_paths(_paths_from_skeleton(skeleton), rng, size=size, style=style)


def drawn_mnist(digits: np.ndarray, seed: int, style: DrawStyle = DEFAULT_STYLE) -> np.ndarray:
    """Draw each digit on a canvas and prepare it exactly as the app prepares a drawing: (N, 28, 28) float32."""
    from cnn_core.engine.preprocess import canvas_to_mnist

    prepared = []
    for index, canvas in enumerate(render_digits(digits, seed, style=style)):
        image = canvas_to_mnist(canvas)
        if image is None:
            raise ValueError(f"Drawing {index} came out blank; check the style's stroke width and size.")
        prepared.append(image)
    return np.stack(prepared) if prepared else np.zeros((0, 28, 28), dtype=np.float32)


def drawn_test_digits(count: int) -> tuple[np.ndarray, np.ndarray]:
    """The standard drawn test set: the first `count` MNIST *test* digits as prepared canvas drawings.

    Returns (count, 28, 28) float32 images and their labels. The default model's augmentation
    draws training digits only, so these drawings measure recognition of unseen digits.
    """
    from cnn_core.engine import datasets

    mnist = datasets.load("mnist")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= len(mnist.x_test):
        raise ValueError(f"count must be a whole number from 1 to {len(mnist.x_test)}, got {count!r}.")
    return drawn_mnist(mnist.x_test[:count], seed=DRAWN_TEST_SEED), mnist.y_test[:count]


# Faithfulness of a re-drawing, measured without any model: does the drawing keep the digit's loops
# and all its strokes? (A drawing that loses an 8's loop or a 2's base is not a fair test of a reader.)
# Shapes are counted on the grey image upsampled this many times, where a loop one grey pixel wide is open.
TOPOLOGY_SCALE = 4
# Ink pieces and holes smaller than this (in 28-pixel digit pixels²) are specks, not parts of the digit.
MIN_PART_AREA = 4.0
# A drawing whose centre lines leave more than this share of the digit's ink uncovered lost a stroke.
LOST_INK_LIMIT = 0.1


def _topology_mask(image: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    big = ndimage.zoom(image, TOPOLOGY_SCALE, order=1)
    return big > STROKE_THRESHOLD * max(float(big.max()), 1e-6)


def ink_topology(image: np.ndarray) -> tuple[int, int]:
    """(ink pieces, holes) of a (28, 28) grey digit or prepared drawing: an 8 is (1, 2), a broken 7 (2, 0)."""
    from scipy import ndimage

    mask = _topology_mask(image)
    area = TOPOLOGY_SCALE**2
    pieces, count = ndimage.label(mask, structure=np.ones((3, 3)))
    pieces = int((np.bincount(pieces.ravel(), minlength=count + 1)[1:] >= MIN_PART_AREA * area).sum())
    gaps, count = ndimage.label(~np.pad(mask, 1))  # 4-connected, so a diagonal stroke closes a loop
    sizes = np.bincount(gaps.ravel(), minlength=count + 1)
    sizes[gaps[0, 0]] = 0  # the outside
    holes = int((sizes[1:] >= MIN_PART_AREA * area).sum())
    return pieces, holes


def lost_ink(digit: np.ndarray, paths: list[np.ndarray]) -> float:
    """The share of a digit's ink its centre lines do not account for (0: every stroke kept; 0.2: a stroke lost).

    Each point of the paths stands for a disc as wide as the digit's stroke there (plus one pixel);
    ink outside every disc is ink the re-drawing left out.
    """
    from PIL import Image, ImageDraw
    from scipy import ndimage

    mask = _topology_mask(digit)
    up = TOPOLOGY_SCALE
    layer = Image.new("1", mask.shape[::-1], 0)
    pen = ImageDraw.Draw(layer)
    for path in paths:
        xy = [(float(c), float(r)) for r, c in (np.asarray(path) + 0.5) * up - 0.5]
        if len(xy) > 1:
            pen.line(xy, fill=1, width=1)
        else:
            pen.point(xy, fill=1)
    lines = np.asarray(layer, dtype=bool)
    radius = np.round(ndimage.distance_transform_edt(mask)).astype(int)
    covered = np.zeros_like(mask)
    for r in np.unique(radius[lines]):
        covered |= ndimage.distance_transform_edt(~(lines & (radius == r))) <= r + up
    return float((mask & ~covered).sum() / max(int(mask.sum()), 1))


@dataclass(frozen=True)
class Faithfulness:
    """Per drawing: did it lose a loop the digit has, gain or lose ink pieces or holes, lose ink?"""

    loop_lost: np.ndarray
    topology_changed: np.ndarray
    ink_lost: np.ndarray

    @property
    def stroke_lost(self) -> np.ndarray:
        return self.ink_lost > LOST_INK_LIMIT

    @property
    def unfaithful(self) -> np.ndarray:
        """Drawings a reader could not be expected to read: a loop or a stroke of the digit is gone."""
        return self.loop_lost | self.stroke_lost


def faithfulness(digits: np.ndarray, prepared: np.ndarray) -> Faithfulness:
    """How faithfully prepared drawings (N, 28, 28) re-draw their (N, 28, 28) digits, judged by shape alone."""
    digits = np.asarray(digits, dtype=np.float32)
    if digits.ndim == 4:
        digits = digits[..., 0]
    source = np.array([ink_topology(d) for d in digits]).reshape(-1, 2)
    drawn = np.array([ink_topology(d) for d in prepared]).reshape(-1, 2)
    ink = np.array([lost_ink(d, digit_paths(d)) for d in digits])
    return Faithfulness(
        loop_lost=drawn[:, 1] < source[:, 1], topology_changed=(drawn != source).any(axis=1), ink_lost=ink
    )
