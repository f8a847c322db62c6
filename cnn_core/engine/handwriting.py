"""Handwriting styles MNIST has few of, drawn as canvas strokes: a check set, and material for augmentation.

MNIST was written mostly by American writers. Real handwriting from elsewhere, drawn on the
canvas, trips the default model in a few recurring ways: 1s with a flag (and often a foot),
crossed 7s, 4s written in one stroke with an open top, 9s with an open or flat loop, 6s whose loop
does not close, and small thick 5s. Each style here is a stroke template in a unit box (rows and
columns from 0 to 1) with random proportions, drawn by `drawing.render_paths` (the brush, size,
slant and tremor of the drawn-MNIST set) and prepared by the app's one preprocessing path.

Nothing here comes from another dataset: the templates are generated, so a check on real
handwriting stays independent. `style_check_set` uses seeds of its own (never the training
seeds), so a model trained on `style_training_set` is measured on drawings it never saw.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from cnn_core.engine.drawing import DEFAULT_STYLE, DrawStyle, render_paths

# The check set's seeds start here; training material uses seeds below it.
CHECK_SEED = 1_000_003


def _line(start, end, points: int = 12) -> np.ndarray:
    t = np.linspace(0.0, 1.0, points)[:, None]
    return (1 - t) * np.asarray(start, float) + t * np.asarray(end, float)


def _arc(centre, radii, start_deg: float, end_deg: float, points: int = 40) -> np.ndarray:
    """Points on an ellipse (row radius, col radius); 0° is to the right, angles grow clockwise on screen."""
    angles = np.radians(np.linspace(start_deg, end_deg, points))
    rows = centre[0] + radii[0] * np.sin(angles)
    cols = centre[1] + radii[1] * np.cos(angles)
    return np.stack([rows, cols], axis=1)


def flagged_one(rng: np.random.Generator) -> list[np.ndarray]:
    """A 1 with a flag at the top (the European 1), with a foot half of the time."""
    top, bottom, col = 0.0, 1.0, 0.55
    flag = rng.uniform(0.18, 0.42)
    flag_angle = math.radians(rng.uniform(25, 55))
    flag_end = (top + flag * math.sin(flag_angle), col - flag * math.cos(flag_angle))
    # One stroke: up the flag, then down the stem, as most people write it.
    paths = [np.concatenate([_line(flag_end, (top, col), 8), _line((top, col), (bottom, col), 20)[1:]])]
    if rng.random() < 0.5:
        half = rng.uniform(0.18, 0.32)
        paths.append(_line((bottom, col - half), (bottom, col + half), 10))
    return paths


def crossed_seven(rng: np.random.Generator) -> list[np.ndarray]:
    """A 7 with a bar across its stem."""
    left, right = 0.1, rng.uniform(0.8, 0.95)
    foot = rng.uniform(0.3, 0.5)
    stroke = np.concatenate([_line((0.0, left), (0.0, right), 12), _line((0.0, right), (1.0, foot), 20)[1:]])
    row = rng.uniform(0.45, 0.6)
    stem_col = right + (foot - right) * row
    half = rng.uniform(0.18, 0.3)
    return [stroke, _line((row, stem_col - half), (row, stem_col + half), 10)]


def open_four(rng: np.random.Generator) -> list[np.ndarray]:
    """A 4 in one stroke (down, across) with the upright starting below the top: the top stays open."""
    bar = rng.uniform(0.55, 0.7)
    upright = rng.uniform(0.6, 0.75)
    stroke = np.concatenate([
        _line((0.0, rng.uniform(0.25, 0.45)), (bar, 0.05), 14),
        _line((bar, 0.05), (bar, 0.95), 14)[1:],
    ])
    return [stroke, _line((rng.uniform(0.15, 0.35), upright), (1.0, upright), 16)]


def open_nine(rng: np.random.Generator) -> list[np.ndarray]:
    """A 9 whose loop is left open on the left, or squashed flat."""
    flat = rng.random() < 0.5
    radii = (rng.uniform(0.12, 0.17), 0.3) if flat else (0.25, 0.28)
    centre = (radii[0], 0.5)
    gap = rng.uniform(25, 60)
    # From the stem side (right) anticlockwise over the top and round, stopping short of closing.
    loop = _arc(centre, radii, 0, -360 + gap, 48)
    stem_top = (centre[0], centre[1] + radii[1])
    stem = _line(stem_top, (1.0, centre[1] + radii[1] * rng.uniform(0.3, 1.0)), 18)
    return [np.concatenate([loop[::-1], stem[1:]])]


def open_six(rng: np.random.Generator) -> list[np.ndarray]:
    """A 6 whose bottom loop does not close."""
    radii = (0.24, 0.3)
    centre = (1.0 - radii[0], 0.45)
    start = (0.0, rng.uniform(0.6, 0.8))
    # Down the left side into the loop, round the bottom and up, ending short of the stem.
    entry = _arc((centre[0], centre[1] + 0.05), (centre[0], radii[1] + 0.05), -90, -180, 16)
    entry = entry + (np.asarray(start) - entry[0]) * np.linspace(1, 0, len(entry))[:, None]
    loop = _arc(centre, radii, 180, 180 - 360 + rng.uniform(50, 90), 40)
    return [np.concatenate([entry, loop[1:]])]


def small_thick_five(rng: np.random.Generator) -> list[np.ndarray]:
    """A 5 (top bar, down, a belly); drawn small and with a thick brush by its style."""
    bar_end = rng.uniform(0.75, 0.95)
    down = (rng.uniform(0.4, 0.5), 0.2)
    belly = _arc((0.7, 0.45), (0.3, 0.35), -120, 150, 30)
    belly = belly + (np.asarray(down) - belly[0])
    return [_line((0.0, bar_end), (0.0, 0.25), 10), np.concatenate([_line((0.0, 0.25), down, 10), belly[1:]])]


SMALL_THICK = DrawStyle(height_fraction=(0.12, 0.22), stroke_width=(14.0, 30.0))

# name → (label, stroke template, brush and size)
STYLES: dict[str, tuple[int, Callable[[np.random.Generator], list[np.ndarray]], DrawStyle]] = {
    "flagged 1": (1, flagged_one, DEFAULT_STYLE),
    "crossed 7": (7, crossed_seven, DEFAULT_STYLE),
    "open-top 4": (4, open_four, DEFAULT_STYLE),
    "open or flat 9": (9, open_nine, DEFAULT_STYLE),
    "open 6": (6, open_six, DEFAULT_STYLE),
    "small thick 5": (5, small_thick_five, SMALL_THICK),
}


def draw_style(name: str, rng: np.random.Generator) -> np.ndarray:
    """One drawing of a style on a 280×280 RGBA canvas, as the canvas component sends it."""
    if name not in STYLES:
        raise ValueError(f"Unknown handwriting style {name!r}; choose one of {', '.join(STYLES)}.")
    _, template, style = STYLES[name]
    # Templates are in unit boxes; the renderer scales by the extent, so give it pixel-like numbers.
    paths = [path * 20.0 for path in template(rng)]
    return render_paths(paths, rng, style=style)


def style_set(per_style: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`per_style` prepared drawings of every style: (N, 28, 28) float32 images, labels, style names."""
    from cnn_core.engine.preprocess import canvas_to_mnist

    if isinstance(per_style, bool) or not isinstance(per_style, int) or per_style < 1:
        raise ValueError(f"per_style must be a whole number of at least 1, got {per_style!r}.")
    images, labels, names = [], [], []
    for offset, (name, (label, _, _)) in enumerate(STYLES.items()):
        rng = np.random.default_rng([seed, offset])
        for _ in range(per_style):
            image = canvas_to_mnist(draw_style(name, rng))
            if image is None:  # pragma: no cover - every template draws ink
                raise RuntimeError(f"A {name} drawing came out blank.")
            images.append(image)
            labels.append(label)
            names.append(name)
    return np.stack(images).astype(np.float32), np.asarray(labels, dtype=np.int64), names


def style_check_set(per_style: int = 100) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The held-out check set (its own seed): never train on it."""
    return style_set(per_style, CHECK_SEED)


def style_training_set(per_style: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Material for augmentation; refuses the check set's seed so the two never overlap."""
    if seed >= CHECK_SEED:
        raise ValueError(f"Training seeds must be below {CHECK_SEED}; that range belongs to the check set.")
    return style_set(per_style, seed)
