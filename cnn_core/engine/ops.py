"""The operations inside a CNN, written in plain NumPy so the playground can show every number.

These are teaching versions: small inputs, readable code, the same conventions as Keras
(cross-correlation, 'valid'/'same' padding, pooling windows that drop a ragged edge).
"""

from __future__ import annotations

import numpy as np

from cnn_core.engine.errors import UserError

PADDINGS = ("valid", "same")


def _as_2d(name: str, array: object) -> np.ndarray:
    values = np.asarray(array)
    if values.ndim != 2:
        raise UserError(f"The {name} must be a 2-D matrix (rows × columns), got shape {values.shape}.")
    if values.size == 0:
        raise UserError(f"The {name} is empty; give it at least one row and one column.")
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating):
        raise UserError(f"The {name} must hold real numbers, got dtype {values.dtype}.")
    return values.astype(np.float64, copy=False)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise UserError(f"The {name} must be a whole number of at least 1, got {value!r}.")
    return int(value)


def _same_padding(size: int, window: int, stride: int) -> tuple[int, int]:
    # TensorFlow's rule: output ceil(size / stride), any odd padding pixel goes after the image.
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def conv2d(image: np.ndarray, kernel: np.ndarray, padding: str = "valid", stride: int = 1) -> np.ndarray:
    """Slide the kernel over the image and sum the products at each position.

    This is cross-correlation (the kernel is not flipped), which is what a CNN layer computes.
    'valid' keeps only positions where the kernel fits; 'same' pads with zeros so that, with
    stride 1, the output has the image's size.
    """
    image = _as_2d("image", image)
    kernel = _as_2d("kernel", kernel)
    stride = _positive_int("stride", stride)
    if padding not in PADDINGS:
        raise UserError(f"Padding must be 'valid' or 'same', got {padding!r}.")
    kh, kw = kernel.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise UserError(f"The kernel is {kh}×{kw}; use an odd size such as 3×3 or 5×5 so it has a centre pixel.")
    if padding == "same":
        image = np.pad(image, (_same_padding(image.shape[0], kh, stride), _same_padding(image.shape[1], kw, stride)))
    elif kh > image.shape[0] or kw > image.shape[1]:
        raise UserError(
            f"The {kh}×{kw} kernel is larger than the {image.shape[0]}×{image.shape[1]} image; "
            "use a smaller kernel or padding 'same'."
        )
    # Every kernel-sized window at once: windows[i, j] is the patch under the kernel at (i, j).
    windows = np.lib.stride_tricks.sliding_window_view(image, (kh, kw))[::stride, ::stride]
    return np.einsum("ijkl,kl->ij", windows, kernel)


def relu(x: np.ndarray) -> np.ndarray:
    """Keep positive values, replace negative ones by zero."""
    return np.maximum(np.asarray(x, dtype=np.float64), 0.0)


def _pool(x: np.ndarray, size: int, stride: int | None, reduce, name: str) -> np.ndarray:
    x = _as_2d("input", x)
    size = _positive_int("pool size", size)
    stride = size if stride is None else _positive_int("stride", stride)
    if size > x.shape[0] or size > x.shape[1]:
        raise UserError(
            f"A {size}×{size} {name} window does not fit the {x.shape[0]}×{x.shape[1]} input; use a smaller size."
        )
    windows = np.lib.stride_tricks.sliding_window_view(x, (size, size))[::stride, ::stride]
    return reduce(windows, axis=(2, 3))


def max_pool(x: np.ndarray, size: int = 2, stride: int | None = None) -> np.ndarray:
    """The largest value in each size×size window (windows step by `stride`, default `size`)."""
    return _pool(x, size, stride, np.max, "max-pool")


def avg_pool(x: np.ndarray, size: int = 2, stride: int | None = None) -> np.ndarray:
    """The mean of each size×size window (windows step by `stride`, default `size`)."""
    return _pool(x, size, stride, np.mean, "average-pool")


def _gaussian(size: int = 5, sigma: float = 1.0) -> np.ndarray:
    offsets = np.arange(size) - size // 2
    row = np.exp(-(offsets**2) / (2 * sigma**2))
    kernel = np.outer(row, row)
    return kernel / kernel.sum()


# Classic hand-made filters: what a trained first layer often rediscovers.
KERNELS: dict[str, np.ndarray] = {
    "identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float64),
    "vertical edges": np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], dtype=np.float64),
    "horizontal edges": np.array([[-1, -1, -1], [0, 0, 0], [1, 1, 1]], dtype=np.float64),
    "sobel x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64),
    "sobel y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64),
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64),
    "box blur": np.full((3, 3), 1 / 9, dtype=np.float64),
    "gaussian blur": _gaussian(5, 1.0),
    "outline": np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float64),
}
for _kernel in KERNELS.values():
    # Shared module-level arrays: nobody may change a preset kernel by accident.
    _kernel.setflags(write=False)
