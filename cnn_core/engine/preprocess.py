"""Turn a drawing or a photo into the 28×28 image an MNIST model expects.

MNIST digits were prepared in a particular way (LeCun et al.): the ink was cropped to its
bounding box, scaled with anti-aliasing so the longer side is 20 pixels, and pasted into a
28×28 field so that its centre of mass sits at the centre. A model trained on MNIST has only
ever seen digits prepared like that, so a canvas drawing must be prepared the same way:
a digit drawn small in a corner then looks like the same digit drawn large in the middle.

Every image that is not already a dataset array goes through here: canvas drawings,
uploaded photos, and the drawings used to train the default MNIST model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnn_core.engine.errors import UserError

MNIST_SIZE = 28
DIGIT_BOX = 20
# Pixels with at least this much ink (after normalising the strongest ink to 1) count as drawing.
INK_THRESHOLD = 0.2
# Less ink than this (in fully inked pixels) is an empty canvas, not a digit.
MIN_INK = 3.0
# Separate blobs smaller than this fraction of the largest one are specks (a stray click, dust on a scan).
SPECK_FRACTION = 0.05
# A light/dark image with less contrast than this between background and ink is blank.
MIN_CONTRAST = 0.1
# The crop is enlarged to at least this many pixels before centring, so it is placed to within 1/6 of an output pixel.
MIN_SOURCE_SIDE = 60
# Uploads larger than this are reduced first: the result is 28 pixels anyway, and it keeps the work small.
MAX_WORKING_SIDE = 560


@dataclass(frozen=True)
class PreprocessSteps:
    """Every intermediate image of the preparation, for a 'what the model sees' view.

    ink: (H, W) ink strength in [0, 1] at the input's resolution, specks removed.
    bbox: (top, left, bottom, right) of the ink in `ink`, bottom and right exclusive.
    cropped: `ink` inside the bounding box.
    scaled: the crop resized so its longer side is 20 pixels, strongest ink 1 (before centring).
    final: the 28×28 float32 image in [0, 1] with the ink's centre of mass at (14, 14).
    center_of_mass: (row, column) of `final`, in pixel indices.
    """

    ink: np.ndarray
    bbox: tuple[int, int, int, int]
    cropped: np.ndarray
    scaled: np.ndarray
    final: np.ndarray
    center_of_mass: tuple[float, float]


def _check_pixels(image: object, what: str) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise UserError(f"The {what} must be a NumPy array, got {type(image).__name__}.")
    if image.size == 0:
        raise UserError(f"The {what} is empty (shape {image.shape}); give it at least one pixel.")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.bool_:
        return image.astype(np.float32)
    if np.issubdtype(image.dtype, np.floating):
        values = image.astype(np.float32)
        if not np.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0:
            raise UserError(
                f"The {what} has float values outside [0, 1]; scale it to [0, 1] or pass uint8 pixels (0–255)."
            )
        return values
    raise UserError(f"The {what} must hold uint8 pixels (0–255) or floats in [0, 1], got dtype {image.dtype}.")


def _luminance(rgb: np.ndarray) -> np.ndarray:
    # ITU-R 601 weights, as PIL uses for RGB → L.
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _ink_from_gray(gray: np.ndarray) -> np.ndarray:
    """Ink strength from a grayscale image whose background is the most common level."""
    background = float(np.median(gray))
    if background > 0.5:
        # Dark ink on light paper: MNIST is light ink on black, so invert.
        gray = 1.0 - gray
        background = 1.0 - background
    peak = float(gray.max())
    if peak - background < MIN_CONTRAST:
        return np.zeros_like(gray)
    return np.clip((gray - background) / (peak - background), 0.0, 1.0)


def _ink_from_rgba(rgba: np.ndarray, canvas: bool = False) -> np.ndarray:
    """Ink strength from RGBA pixels. `canvas`: the app's canvas, always light ink on transparent or black.

    The canvas's polarity is known, so it is never guessed from the histogram: a canvas inked almost
    everywhere is still light ink (guessing would read it as dark ink on light paper and keep the gaps).
    """
    alpha = rgba[..., 3]
    if np.mean(alpha < 0.5) > 0.5:
        # A mostly transparent layer (the canvas's default): whatever was painted is ink, in any colour.
        return alpha
    gray = _luminance(rgba[..., :3]) * alpha
    if canvas:
        return gray if float(gray.max()) >= MIN_CONTRAST else np.zeros_like(gray)
    # An opaque image (a screenshot, an upload): read the ink from brightness, whichever way round.
    return _ink_from_gray(gray)


def _remove_specks(ink: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    mask = ink >= INK_THRESHOLD
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count <= 1:
        return ink
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.zeros(count + 1, dtype=bool)
    keep[1:] = sizes >= SPECK_FRACTION * sizes.max()
    # Faint pixels belong to no blob; keep those only next to kept ink (anti-aliased stroke edges).
    near_kept = ndimage.binary_dilation(keep[labels], structure=np.ones((3, 3)), iterations=2)
    return np.where(keep[labels] | (~mask & near_kept), ink, 0.0).astype(np.float32)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    # Area averaging: each output pixel is the mean ink under it, the anti-aliasing MNIST used; unlike
    # Lanczos it never rings, so no faint ink appears away from the strokes.
    resized = Image.fromarray(image.astype(np.float32)).resize((width, height), Image.Resampling.BOX)
    return np.clip(np.asarray(resized), 0.0, 1.0)


def _normalise_peak(image: np.ndarray) -> np.ndarray:
    # A thin stroke shrunk tenfold becomes faint; MNIST strokes reach full intensity, so renormalise.
    peak = image.max()
    return (image / peak if peak > 0 else image).astype(np.float32)


def _center_of_mass(image: np.ndarray) -> tuple[float, float]:
    total = float(image.sum())
    rows = np.arange(image.shape[0], dtype=np.float64)
    cols = np.arange(image.shape[1], dtype=np.float64)
    return float(image.sum(axis=1) @ rows / total), float(image.sum(axis=0) @ cols / total)


def _scale_to_box(cropped: np.ndarray) -> np.ndarray:
    """The crop alone with its longer side 20 pixels, as the 'scaled' step shows it."""
    height, width = cropped.shape
    longer = max(height, width)
    size = (max(1, round(width * DIGIT_BOX / longer)), max(1, round(height * DIGIT_BOX / longer)))
    return _normalise_peak(_resize(cropped, *size))


def _place_in_field(cropped: np.ndarray) -> np.ndarray:
    """Scale the crop to a 20-pixel box and centre its mass at (14, 14) in one resampling.

    Shifting by whole output pixels would move the centre of mass by up to half a pixel, so two
    nearly identical drawings could land a pixel apart. Instead the crop is placed in a larger
    source field, at a position accurate to a fraction of an output pixel, and the whole field is
    shrunk to 28×28 at once.
    """
    longer = max(cropped.shape)
    if longer < MIN_SOURCE_SIDE:
        # Too few source pixels to place the crop finely: repeat each pixel (no blurring).
        factor = -(-MIN_SOURCE_SIDE // longer)
        cropped = np.kron(cropped, np.ones((factor, factor), dtype=np.float32))
        longer *= factor
    height, width = cropped.shape
    side = round(longer * MNIST_SIZE / DIGIT_BOX)
    shrink = MNIST_SIZE / side
    com_row, com_col = _center_of_mass(cropped)
    # The source index that lands on the centre of output pixel 14.
    target = (MNIST_SIZE // 2 + 0.5) / shrink - 0.5
    # A very lopsided shape is kept whole rather than cut off at the border.
    top = int(np.clip(round(target - com_row), 0, side - height))
    left = int(np.clip(round(target - com_col), 0, side - width))
    field = np.zeros((side, side), dtype=np.float32)
    field[top : top + height, left : left + width] = cropped
    return _normalise_peak(_resize(field, MNIST_SIZE, MNIST_SIZE))


def _steps_from_ink(ink: np.ndarray) -> PreprocessSteps | None:
    ink = _remove_specks(ink.astype(np.float32, copy=False))
    mask = ink >= INK_THRESHOLD
    if ink[mask].sum() < MIN_INK:
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    bbox = (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
    cropped = ink[bbox[0] : bbox[2], bbox[1] : bbox[3]]
    final = _place_in_field(cropped)
    return PreprocessSteps(
        ink=ink,
        bbox=bbox,
        cropped=cropped,
        scaled=_scale_to_box(cropped),
        final=final,
        center_of_mass=_center_of_mass(final),
    )


def canvas_steps(rgba: np.ndarray) -> PreprocessSteps | None:
    """Prepare a drawing-canvas image and keep every intermediate step; None for a blank canvas.

    `rgba` is the canvas's (H, W, 4) uint8 image, any size: strokes on a transparent background
    (ink is the opacity) or light strokes on an opaque dark background (ink is the brightness).
    """
    if not isinstance(rgba, np.ndarray) or rgba.ndim != 3 or rgba.shape[2] != 4:
        shape = getattr(rgba, "shape", None)
        raise UserError(
            f"A canvas image must be an (height, width, 4) RGBA array, got shape {shape}; "
            "pass the canvas's image_data, or use image_to_mnist for other images."
        )
    if rgba.dtype != np.uint8:
        raise UserError(f"A canvas image must hold uint8 pixels (0–255), got dtype {rgba.dtype}.")
    return _steps_from_ink(_ink_from_rgba(_check_pixels(rgba, "canvas image"), canvas=True))


def canvas_to_mnist(rgba: np.ndarray) -> np.ndarray | None:
    """A canvas drawing as a (28, 28) float32 MNIST-style image in [0, 1]; None for a blank canvas."""
    steps = canvas_steps(rgba)
    return None if steps is None else steps.final


def _shrink(pixels: np.ndarray) -> np.ndarray:
    from PIL import Image

    height, width = pixels.shape[:2]
    factor = MAX_WORKING_SIDE / max(height, width)
    if factor >= 1:
        return pixels
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(pixels[..., c])).resize(size, Image.Resampling.BOX))
        for c in range(pixels.shape[2])
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0)


def image_steps(image: np.ndarray) -> PreprocessSteps | None:
    """Like `canvas_steps`, for any uploaded image; None when it holds no visible ink."""
    if isinstance(image, np.ndarray) and image.ndim == 2:
        image = image[..., np.newaxis]
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        shape = getattr(image, "shape", None)
        raise UserError(
            f"An image must be grayscale (H, W) or (H, W, 1), RGB (H, W, 3) or RGBA (H, W, 4), got shape {shape}."
        )
    pixels = _shrink(_check_pixels(image, "image"))
    if pixels.shape[2] == 4:
        ink = _ink_from_rgba(pixels)
    elif pixels.shape[2] == 3:
        ink = _ink_from_gray(_luminance(pixels))
    else:
        ink = _ink_from_gray(pixels[..., 0])
    return _steps_from_ink(ink)


def image_to_mnist(image: np.ndarray) -> np.ndarray | None:
    """An uploaded photo, scan or array as a (28, 28) float32 MNIST-style image; None if it is blank.

    Accepts grayscale, RGB or RGBA, uint8 or floats in [0, 1], any size. Dark ink on a light
    background is inverted to MNIST's light ink on black; an image that already looks like an
    MNIST digit comes back nearly unchanged.
    """
    steps = image_steps(image)
    return None if steps is None else steps.final
