"""Small arrays as crisp pictures for st.image: scaled to 0–255 and enlarged with hard pixel edges.

Browsers smooth a 28×28 image stretched to 200 pixels into a blur; enlarging it here by
repeating pixels keeps every pixel a visible square, which is the point when teaching.
"""

from __future__ import annotations

import io

import numpy as np


def to_uint8(array: np.ndarray, *, signed: bool = False) -> np.ndarray:
    """Map values to 0–255: [0, 1] as is, or (signed) the array's own range, with 0 mid-grey."""
    values = np.asarray(array, dtype=np.float64)
    if values.ndim == 3 and values.shape[-1] == 1:
        values = values[..., 0]
    if signed:
        limit = float(np.abs(values).max())
        values = 0.5 + values / (2 * limit) if limit > 0 else np.full_like(values, 0.5)
    else:
        low, high = float(values.min()), float(values.max())
        if low < 0 or high > 1:
            values = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return np.clip(np.round(values * 255), 0, 255).astype(np.uint8)


def enlarge(array: np.ndarray, size: int = 196, *, signed: bool = False, frame: bool = False) -> np.ndarray:
    """An (H, W) array as a uint8 picture about `size` pixels wide, each value a square block.

    `frame` draws a thin grey border, so a picture with white edges stays visible on a white page.
    """
    pixels = to_uint8(array, signed=signed)
    factor = max(1, size // max(pixels.shape[:2]))
    picture = np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)
    if frame:
        picture = np.pad(picture, 2, constant_values=160)
    return picture


def tile_channels(stack: np.ndarray, columns: int, gap: int, fill: float | int) -> np.ndarray:
    """The channels of a (H, W, C) or (H, W, C, 3) stack laid out row by row, `gap` pixels of `fill` between.

    The one channel layout of the app: the coloured feature-map mosaic below and the filter figures
    (ui.plotting, on a float stack with NaN gaps) both use it.
    """
    height, width, count = stack.shape[:3]
    rows = -(-count // columns)
    canvas = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, *stack.shape[3:]), fill,
                     dtype=stack.dtype)
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = row * (height + gap), column * (width + gap)
        canvas[top : top + height, left : left + width] = stack[:, :, index]
    return canvas


def mosaic(activations: np.ndarray, *, max_channels: int, columns: int = 8, tile: int = 72,
           gap: int = 4) -> np.ndarray:
    """One layer's channels (H, W, C) as a grid of coloured tiles on one shared scale (viridis).

    Drawing dozens of Matplotlib axes takes seconds; this takes milliseconds, which matters on a
    page that redraws every layer whenever the image changes.
    """
    from matplotlib import colormaps

    values = np.asarray(activations, dtype=np.float64)
    if values.ndim != 3:
        raise ValueError(f"Feature maps must be (height, width, channels), got shape {values.shape}.")
    count = min(values.shape[2], max_channels)
    low, high = float(values[..., :count].min()), float(values[..., :count].max())
    scaled = (values[..., :count] - low) / (high - low) if high > low else np.zeros_like(values[..., :count])
    factor = max(1, round(tile / max(values.shape[:2])))
    colours = (colormaps["viridis"](scaled)[..., :3] * 255).astype(np.uint8)
    enlarged = np.repeat(np.repeat(colours, factor, axis=0), factor, axis=1)
    return tile_channels(enlarged, min(columns, count), gap, 255)


ACCENT_RGB = (228, 87, 46)


def _rgb(array: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    grey = enlarge(array, size)
    factor = grey.shape[0] // np.asarray(array).shape[0]
    return np.repeat(grey[..., np.newaxis], 3, axis=2), factor


def _tile(picture: np.ndarray, size: int, margin: int = 6) -> np.ndarray:
    """Fit a picture into a size×size light-grey square, so a row of different shapes lines up."""
    from PIL import Image

    image = Image.fromarray(picture)
    scale = size / max(image.size)
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), resample)
    square = Image.new("RGB", (size + 2 * margin, size + 2 * margin), (238, 238, 238))
    square.paste(image.convert("RGB"), ((square.width - image.width) // 2, (square.height - image.height) // 2))
    return np.asarray(square)


def png(picture: np.ndarray) -> bytes:
    """A uint8 picture as PNG bytes, encoded for speed: st.image sends bytes as they are.

    Given an array, st.image encodes it at zlib's default level, and at a `width` below the
    picture's own it decodes, resamples (blurring the pixel squares) and encodes it again.
    """
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def preprocess_strip(steps, size: int = 168) -> tuple[list[np.ndarray], list[str]]:
    """The preparation of a drawing as pictures and captions: ink with its box, crop, 20-px scale, final.

    Drawn with NumPy rather than Matplotlib because the Draw page redraws this after every
    stroke, and a Matplotlib figure costs a few hundred milliseconds on a busy server.
    """
    ink, factor = _rgb(steps.ink, size)
    top, left, bottom, right = (value * factor for value in steps.bbox)
    bottom, right = min(bottom, ink.shape[0]) - 1, min(right, ink.shape[1]) - 1
    for thickness in range(2):
        ink[[top + thickness, bottom - thickness], left:right + 1] = ACCENT_RGB
        ink[top:bottom + 1, [left + thickness, right - thickness]] = ACCENT_RGB
    final, factor = _rgb(steps.final, size)
    row, column = (round((value + 0.5) * factor) for value in steps.center_of_mass)
    arm = max(3, factor)
    final[max(0, row - 1):row + 1, max(0, column - arm):column + arm] = ACCENT_RGB
    final[max(0, row - arm):row + arm, max(0, column - 1):column + 1] = ACCENT_RGB
    pictures = [_tile(picture, size) for picture in (ink, enlarge(steps.cropped, size), enlarge(steps.scaled, size), final)]
    captions = [
        f"1. drawing {steps.ink.shape[0]}×{steps.ink.shape[1]}, ink boxed",
        f"2. cropped {steps.cropped.shape[0]}×{steps.cropped.shape[1]}",
        f"3. scaled {steps.scaled.shape[0]}×{steps.scaled.shape[1]}",
        "4. centred 28×28, + centre of mass",
    ]
    return pictures, captions


def app_icon() -> bytes:
    """The browser tab's icon, drawn here: a material icon or an emoji would be fetched from a CDN."""
    # A 3×3 kernel over a white stroke on black: a convolution looking at a digit.
    cells = np.array([[40, 40, 40], [40, 255, 40], [40, 40, 40]], dtype=np.uint8)
    picture = np.repeat(np.repeat(cells, 10, axis=0), 10, axis=1)
    picture = np.pad(picture, 1, constant_values=0)
    rgb = np.stack([picture, picture, picture], axis=-1)
    rgb[picture == 255] = ACCENT_RGB
    return png(rgb)
