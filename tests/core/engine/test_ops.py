import numpy as np
import pytest
from scipy.signal import correlate2d

from cnn_core.engine import ops


@pytest.fixture
def image():
    return np.random.default_rng(0).normal(size=(9, 11))


@pytest.mark.parametrize("size", [1, 3, 5, 7])
def test_conv2d_valid_matches_scipy_cross_correlation(image, size):
    kernel = np.random.default_rng(size).normal(size=(size, size))
    expected = correlate2d(image, kernel, mode="valid")
    np.testing.assert_allclose(ops.conv2d(image, kernel), expected, atol=1e-12)


@pytest.mark.parametrize("size", [3, 5])
def test_conv2d_same_matches_scipy_zero_padding(image, size):
    kernel = np.random.default_rng(size).normal(size=(size, size))
    result = ops.conv2d(image, kernel, padding="same")
    assert result.shape == image.shape
    np.testing.assert_allclose(result, correlate2d(image, kernel, mode="same", boundary="fill"), atol=1e-12)


def test_conv2d_is_not_convolution():
    # An asymmetric kernel tells cross-correlation from convolution: the kernel must not be flipped.
    image = np.zeros((3, 3))
    image[1, 1] = 1.0
    kernel = np.arange(9, dtype=float).reshape(3, 3)
    np.testing.assert_array_equal(ops.conv2d(image, kernel, padding="same"), kernel[::-1, ::-1])


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_conv2d_matches_tensorflow(padding, stride):
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(stride)
    image = rng.normal(size=(10, 9))
    kernel = rng.normal(size=(3, 3))
    expected = tf.nn.conv2d(
        image[None, :, :, None], kernel[:, :, None, None], strides=stride, padding=padding.upper()
    ).numpy()[0, :, :, 0]
    np.testing.assert_allclose(ops.conv2d(image, kernel, padding=padding, stride=stride), expected, atol=1e-10)


def test_max_pool_seed_example():
    x = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]])
    np.testing.assert_array_equal(ops.max_pool(x), [[6, 8], [3, 4]])


def test_avg_pool_and_ragged_edge():
    x = np.arange(25, dtype=float).reshape(5, 5)
    # Like Keras, a 2×2 pool over 5×5 drops the last row and column.
    np.testing.assert_allclose(ops.avg_pool(x), [[3.0, 5.0], [13.0, 15.0]])
    np.testing.assert_allclose(ops.max_pool(x, size=3, stride=1), x[2:, 2:])


def test_pooling_matches_tensorflow():
    tf = pytest.importorskip("tensorflow")
    x = np.random.default_rng(3).normal(size=(7, 8))
    batch = x[None, :, :, None]
    np.testing.assert_allclose(ops.max_pool(x, 3, 2), tf.nn.max_pool2d(batch, 3, 2, "VALID").numpy()[0, :, :, 0])
    np.testing.assert_allclose(ops.avg_pool(x, 2), tf.nn.avg_pool2d(batch, 2, 2, "VALID").numpy()[0, :, :, 0])


def test_relu():
    np.testing.assert_array_equal(ops.relu([[-2.0, 0.0, 3.5]]), [[0.0, 0.0, 3.5]])


def test_kernels_are_odd_square_and_read_only():
    assert {"identity", "vertical edges", "horizontal edges", "sharpen", "box blur", "gaussian blur", "outline"} <= set(
        ops.KERNELS
    )
    for name, kernel in ops.KERNELS.items():
        assert kernel.ndim == 2 and kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1, name
        assert not kernel.flags.writeable
    assert ops.KERNELS["gaussian blur"].sum() == pytest.approx(1.0)
    image = np.random.default_rng(1).normal(size=(6, 6))
    np.testing.assert_allclose(ops.conv2d(image, ops.KERNELS["identity"], padding="same"), image)


def test_vertical_edge_kernel_finds_a_vertical_edge():
    image = np.zeros((5, 6))
    image[:, 3:] = 1.0
    response = ops.conv2d(image, ops.KERNELS["vertical edges"])
    np.testing.assert_array_equal(response, [[0, 3, 3, 0]] * 3)
    assert not ops.conv2d(image, ops.KERNELS["horizontal edges"]).any()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ops.conv2d(np.ones((5, 5)), np.ones((2, 2))), "odd size"),
        (lambda: ops.conv2d(np.ones((3, 3)), np.ones((5, 5))), "larger than"),
        (lambda: ops.conv2d(np.ones((3, 3, 3)), np.ones((3, 3))), "2-D"),
        (lambda: ops.conv2d(np.ones((5, 5)), np.ones((3, 3)), padding="full"), "Padding must be"),
        (lambda: ops.conv2d(np.ones((5, 5)), np.ones((3, 3)), stride=0), "stride"),
        (lambda: ops.conv2d(np.array([["a"]]), np.ones((1, 1))), "real numbers"),
        (lambda: ops.max_pool(np.ones((2, 2)), size=3), "does not fit"),
        (lambda: ops.avg_pool(np.ones(4)), "2-D"),
        (lambda: ops.max_pool(np.ones((4, 4)), size=0), "pool size"),
    ],
)
def test_bad_inputs_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
