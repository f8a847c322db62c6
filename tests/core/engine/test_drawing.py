import numpy as np
import pytest

from cnn_core.engine import datasets, drawing
from cnn_core.engine.drawing import DrawStyle
from cnn_core.engine.preprocess import canvas_to_mnist


@pytest.fixture(scope="module")
def digits():
    mnist = datasets.load("mnist")
    return mnist.x_test[:12, :, :, 0], mnist.y_test[:12]


def test_skeletonize_thins_a_bar_to_its_centre_line():
    bar = np.zeros((11, 26), dtype=bool)
    bar[3:8, 3:23] = True
    skeleton = drawing.skeletonize(bar)
    rows, cols = np.nonzero(skeleton)
    assert set(rows) == {5}
    assert cols.min() <= 6 and cols.max() >= 19 and len(cols) == cols.max() - cols.min() + 1
    # A batch thins each image exactly as one at a time.
    other = np.zeros_like(bar)
    other[2:9, 10:13] = True
    batch = drawing.skeletonize(np.stack([bar, other]))
    np.testing.assert_array_equal(batch[0], skeleton)
    np.testing.assert_array_equal(batch[1], drawing.skeletonize(other))
    assert set(np.nonzero(batch[1])[1]) == {11}
    with pytest.raises(ValueError, match="mask"):
        drawing.skeletonize(np.zeros(5))


def test_stroke_paths_of_shapes():
    ring = np.zeros((9, 9), dtype=bool)
    ring[2, 2:7] = ring[6, 2:7] = ring[2:7, 2] = ring[2:7, 6] = True
    (loop,) = drawing.stroke_paths(ring)
    assert len(loop) == 17 and np.array_equal(loop[0], loop[-1])

    tee = np.zeros((9, 9), dtype=bool)
    tee[1, 1:8] = True
    tee[1:8, 4] = True
    paths = drawing.stroke_paths(tee)
    assert len(paths) == 3
    covered = {tuple(map(int, point)) for path in paths for point in path}
    assert covered == {(int(r), int(c)) for r, c in zip(*np.nonzero(tee), strict=True)}

    # A one-pixel spur sticking out of a line is a thinning artefact and is dropped.
    spur = np.zeros((9, 12), dtype=bool)
    spur[4, 1:11] = True
    spur[3, 5] = True
    paths = drawing.stroke_paths(spur)
    assert all(len(path) >= drawing.MIN_SPUR_LENGTH for path in paths)
    assert sum(len(path) for path in paths) >= 10


def test_render_is_a_canvas_image(digits):
    canvas = drawing.render_digit(digits[0][0], np.random.default_rng(0))
    assert canvas.shape == (280, 280, 4) and canvas.dtype == np.uint8
    assert (canvas[..., :3] == 255).all()
    inked = canvas[..., 3] > 0
    assert 0.02 < inked.mean() < 0.5
    opaque = drawing.render_digit(digits[0][0], np.random.default_rng(0), style=DrawStyle(background="black"))
    assert (opaque[..., 3] == 255).all()
    np.testing.assert_array_equal(opaque[..., 0], canvas[..., 3])


def test_render_is_deterministic_per_seed(digits):
    first = drawing.render_digit(digits[0][1], np.random.default_rng(42))
    again = drawing.render_digit(digits[0][1], np.random.default_rng(42))
    other = drawing.render_digit(digits[0][1], np.random.default_rng(43))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    batch = list(drawing.render_digits(digits[0][:3], seed=9))
    np.testing.assert_array_equal(batch[2], list(drawing.render_digits(digits[0][:3], seed=9))[2])


def test_renders_vary_in_size_and_place(digits):
    heights, centres = [], []
    for canvas in drawing.render_digits(np.repeat(digits[0][:1], 30, axis=0), seed=1):
        rows, cols = np.nonzero(canvas[..., 3])
        heights.append(rows.max() - rows.min() + 1)
        centres.append((rows.mean(), cols.mean()))
        # Nothing is cut off at the canvas border.
        assert rows.min() > 0 and cols.min() > 0 and rows.max() < 279 and cols.max() < 279
    assert min(heights) < 0.45 * 280 and max(heights) > 0.7 * 280
    assert np.ptp(np.array(centres), axis=0).min() > 50


def test_drawings_still_look_like_their_digits(digits):
    images, _ = digits
    prepared = drawing.drawn_mnist(images, seed=4)
    assert prepared.shape == (12, 28, 28) and prepared.dtype == np.float32
    matching = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(images, prepared, strict=True)]
    shuffled = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(images, prepared[::-1], strict=True)]
    assert np.mean(matching) > 0.5
    assert np.mean(matching) > np.mean(shuffled) + 0.2
    np.testing.assert_array_equal(prepared[0], canvas_to_mnist(next(drawing.render_digits(images, seed=4))))


def test_drawn_test_digits_are_mnist_test_digits():
    images, labels = drawing.drawn_test_digits(5)
    assert images.shape == (5, 28, 28)
    np.testing.assert_array_equal(labels, datasets.load("mnist").y_test[:5])
    with pytest.raises(ValueError, match="count"):
        drawing.drawn_test_digits(0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: drawing.render_digit(np.zeros((28, 28)), np.random.default_rng(0)), "blank"),
        (lambda: drawing.render_digit(np.ones((28, 28, 3)), np.random.default_rng(0)), "one"),
        (lambda: drawing.render_paths([], np.random.default_rng(0)), "no strokes"),
        (lambda: drawing.render_paths([np.zeros((2, 2))], 3), "Generator"),
        (lambda: DrawStyle(background="white"), "background"),
        (lambda: DrawStyle(stroke_width=(30, 10)), "stroke_width"),
        (lambda: list(drawing.render_digits(np.zeros((2, 28)), seed=0)), "batch"),
    ],
)
def test_bad_inputs_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
