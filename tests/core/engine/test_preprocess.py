import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from cnn_core.engine import datasets
from cnn_core.engine.preprocess import (
    DIGIT_BOX,
    canvas_steps,
    canvas_to_mnist,
    image_steps,
    image_to_mnist,
)

# A "4" as three strokes in a unit box (x, y in [0, 1]).
FOUR = [[(0.6, 0.0), (0.0, 0.65), (0.95, 0.65)], [(0.7, 0.3), (0.7, 1.0)]]


def draw(strokes, left, top, size, width_fraction=0.1, canvas=280, background="transparent"):
    """Strokes scaled into a size×size box at (left, top), brush width proportional to the size."""
    layer = Image.new("L", (canvas, canvas), 0)
    pen = ImageDraw.Draw(layer)
    width = max(1, round(size * width_fraction))
    for stroke in strokes:
        points = [(left + x * size, top + y * size) for x, y in stroke]
        pen.line(points, fill=255, width=width, joint="curve")
    alpha = np.asarray(layer)
    rgba = np.zeros((canvas, canvas, 4), dtype=np.uint8)
    if background == "transparent":
        rgba[..., :3] = 255
        rgba[..., 3] = alpha
    else:
        rgba[..., :3] = alpha[..., None]
        rgba[..., 3] = 255
    return rgba


def correlation(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def center_of_mass(image):
    rows, cols = np.indices(image.shape)
    return (image * rows).sum() / image.sum(), (image * cols).sum() / image.sum()


def test_small_in_corner_equals_large_in_centre():
    small = canvas_to_mnist(draw(FOUR, left=10, top=12, size=60))
    large = canvas_to_mnist(draw(FOUR, left=30, top=25, size=220))
    assert small.shape == (28, 28) and small.dtype == np.float32
    assert correlation(small, large) > 0.95
    assert np.abs(small - large).mean() < 0.03


def test_result_is_mnist_shaped():
    steps = canvas_steps(draw(FOUR, left=150, top=140, size=120))
    final = steps.final
    assert 0.0 <= final.min() and final.max() == pytest.approx(1.0)
    row, col = center_of_mass(final)
    assert abs(row - 14) <= 0.25 and abs(col - 14) <= 0.25
    assert steps.center_of_mass == pytest.approx((row, col), abs=1e-4)
    # The 20-pixel box lands between pixel boundaries, so its edges may touch a 21st pixel partly.
    for threshold, limit in ((0.0, DIGIT_BOX + 1), (0.5, DIGIT_BOX)):
        ink_rows = np.flatnonzero((final > threshold).any(axis=1))
        ink_cols = np.flatnonzero((final > threshold).any(axis=0))
        assert max(ink_rows[-1] - ink_rows[0], ink_cols[-1] - ink_cols[0]) + 1 <= limit
    assert max(steps.scaled.shape) == DIGIT_BOX


def test_steps_are_consistent():
    rgba = draw(FOUR, left=40, top=70, size=100)
    steps = canvas_steps(rgba)
    top, left, bottom, right = steps.bbox
    assert steps.ink.shape == (280, 280)
    assert steps.cropped.shape == (bottom - top, right - left)
    # The box is the stroke's extent: 100 px of digit plus the brush on each side, roughly.
    assert 95 <= bottom - top <= 115 and 80 <= right - left <= 110
    assert max(steps.scaled.shape) == DIGIT_BOX and steps.scaled.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(canvas_to_mnist(rgba), steps.final)


def test_opaque_black_background_reads_like_transparent():
    transparent = canvas_to_mnist(draw(FOUR, 50, 50, 150))
    black = canvas_to_mnist(draw(FOUR, 50, 50, 150, background="black"))
    np.testing.assert_allclose(transparent, black, atol=1e-6)


def test_any_canvas_size():
    big = canvas_to_mnist(draw(FOUR, 100, 100, 300, canvas=560))
    normal = canvas_to_mnist(draw(FOUR, 50, 50, 150))
    assert correlation(big, normal) > 0.95


def test_blank_and_nearly_blank_give_none():
    assert canvas_to_mnist(np.zeros((280, 280, 4), dtype=np.uint8)) is None
    speck = np.zeros((280, 280, 4), dtype=np.uint8)
    speck[100, 100] = 255
    assert canvas_to_mnist(speck) is None
    assert image_to_mnist(np.full((50, 50), 200, dtype=np.uint8)) is None


def test_thin_line_still_gives_an_image():
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    rgba[40:240, 140] = 255
    image = canvas_to_mnist(rgba)
    assert image is not None
    assert image.max() == pytest.approx(1.0)
    assert (image > 0.5).sum(axis=0).max() >= DIGIT_BOX - 1


def test_a_stray_speck_is_ignored():
    clean = canvas_to_mnist(draw(FOUR, 60, 60, 150))
    rgba = draw(FOUR, 60, 60, 150)
    rgba[260:263, 5:8] = 255
    np.testing.assert_array_equal(canvas_to_mnist(rgba), clean)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.zeros((280, 280, 3), dtype=np.uint8), "RGBA"),
        (np.zeros((280, 280), dtype=np.uint8), "RGBA"),
        (np.zeros((280, 280, 4), dtype=np.float64), "uint8"),
        (np.zeros((0, 0, 4), dtype=np.uint8), "empty"),
        ([[0, 0, 0, 0]], "RGBA"),
    ],
)
def test_bad_canvas_raises_value_error(value, message):
    with pytest.raises(ValueError, match=message):
        canvas_to_mnist(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.zeros((20, 20, 5), dtype=np.uint8), "grayscale"),
        (np.zeros((2, 20, 20, 1), dtype=np.uint8), "grayscale"),
        (np.full((20, 20), 3.0), r"\[0, 1\]"),
        (np.zeros((20, 20), dtype=np.int64), "dtype"),
        ("picture.png", "grayscale"),
    ],
)
def test_bad_image_raises_value_error(value, message):
    with pytest.raises(ValueError, match=message):
        image_to_mnist(value)


def test_light_background_photo_is_inverted():
    # Dark pen on grey-white paper with a lighting gradient and sensor noise, in colour.
    rng = np.random.default_rng(0)
    ink = draw(FOUR, 300, 200, 400, canvas=900)[..., 3].astype(np.float32) / 255
    paper = 0.85 + 0.08 * np.linspace(-1, 1, 900)[None, :] + rng.normal(0, 0.02, (900, 900))
    gray = np.clip(paper * (1 - 0.8 * ink), 0, 1)
    photo = (np.stack([gray, gray * 0.97, gray * 0.9], axis=-1) * 255).astype(np.uint8)
    result = image_to_mnist(photo)
    reference = canvas_to_mnist(draw(FOUR, 50, 50, 150))
    assert result[0, 0] == 0.0 and result.max() == pytest.approx(1.0)
    assert correlation(result, reference) > 0.9


def test_mnist_digits_pass_through_nearly_unchanged():
    digits = datasets.load("mnist").x_test[:100, :, :, 0]
    # MNIST centred its digits to the nearest whole pixel; we centre exactly, so undo that half-pixel first.
    aligned = [ndimage.shift(digit, 14 - np.array(center_of_mass(digit)), order=1) for digit in digits]
    correlations = [correlation(digit, image_to_mnist(digit)) for digit in aligned]
    assert np.mean(correlations) > 0.98
    assert np.median(correlations) > 0.99
    # The same digit as uint8, and with a channel axis, gives the same answer.
    as_uint8 = (digits[0] * 255).round().astype(np.uint8)
    np.testing.assert_allclose(image_to_mnist(as_uint8), image_to_mnist(digits[0]), atol=1e-2)
    np.testing.assert_array_equal(image_to_mnist(digits[0][..., None]), image_to_mnist(digits[0]))


def test_rgba_upload_with_transparency_uses_alpha():
    rgba = draw(FOUR, 50, 50, 150)
    rgba[..., :3] = 0  # black strokes on a transparent background
    np.testing.assert_allclose(image_to_mnist(rgba), canvas_to_mnist(draw(FOUR, 50, 50, 150)), atol=1e-6)
    assert image_steps(rgba).final.shape == (28, 28)


def test_a_fully_inked_canvas_is_read_as_light_ink_not_as_its_gaps():
    from PIL import Image, ImageDraw

    from cnn_core.engine import preprocess

    # Ink (white) almost everywhere on the black canvas, with a thin black gap shaped like a 1.
    picture = Image.new("RGBA", (280, 280), (255, 255, 255, 255))
    ImageDraw.Draw(picture).line([(140, 30), (140, 250)], fill=(0, 0, 0, 255), width=14)
    steps = preprocess.canvas_steps(np.asarray(picture))
    assert steps is not None
    # What was drawn is the ink: a big bright block (the 20-px box of the 28×28 field), not the thin gap.
    assert float((steps.final > 0.5).mean()) > 0.4
    # An upload keeps its inversion: the same picture as a photo is dark ink (the line) on light paper.
    uploaded = preprocess.image_to_mnist(np.asarray(picture.convert("RGB")))
    assert float((uploaded > 0.5).mean()) < 0.1
