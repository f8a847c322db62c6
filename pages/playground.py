"""Convolution playground: slide a 3×3 kernel over an image by hand, then ReLU, then pooling.

Everything here is NumPy (cnn_core.engine.ops); no model and no TensorFlow, so the page opens at once.
"""

import numpy as np
import streamlit as st

from cnn_core.engine import ops
from cnn_core.engine.datasets import TITLES
from cnn_core.engine.specs import DATASETS
from ui import figures, images
from ui.components import image_source, kernel_editor
from ui.entry import start_page

start_page()

# Seed 001's pooling example: 2×2 max pooling keeps the largest number of each window.
POOL_EXAMPLE = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], dtype=np.float64)
SMALL = 7  # the numeric walk-through uses the image shrunk to 7×7


def pool(values: np.ndarray, kind: str, size: int) -> np.ndarray:
    return ops.max_pool(values, size) if kind == "max" else ops.avg_pool(values, size)


st.title("Convolution playground")
st.caption(
    "A convolution layer slides small kernels over the image and adds up *kernel × pixels* at every "
    "position. Pick an image and a kernel, and follow it through the three steps of a CNN block."
)

source_col, kernel_col, options_col = st.columns([2, 1, 1], gap="large")
with source_col:
    dataset_name = st.selectbox("Dataset", DATASETS, format_func=TITLES.get, key="playground-dataset")
    picked = image_source.show("playground-image", dataset_name=dataset_name)
with kernel_col:
    st.markdown("**Kernel** (3×3 weights)")
    kernel = kernel_editor.show("playground-kernel")
with options_col:
    padding = st.radio("Padding", ops.PADDINGS, index=1, key="playground-padding", horizontal=True,
                       help="'same' pads the border with zeros so the output keeps the input's size.")
    pool_kind = st.radio("Pooling", ("max", "avg"), key="playground-pool", horizontal=True,
                         format_func={"max": "max", "avg": "average"}.get)
    pool_size = st.select_slider("Pool size", (2, 3, 4), 2, key="playground-pool-size")

if picked is None:
    st.stop()

image = picked.image.astype(np.float64)
filtered = ops.conv2d(image, kernel, padding=padding)
rectified = ops.relu(filtered)
pooled = pool(rectified, pool_kind, pool_size)

st.subheader("The image through one CNN block")
steps = [
    (image, False, f"Input {image.shape[0]}×{image.shape[1]}"),
    (filtered, True, f"Convolution {filtered.shape[0]}×{filtered.shape[1]} (grey 0, light +, dark −)"),
    (rectified, False, f"ReLU: negatives → 0, {rectified.shape[0]}×{rectified.shape[1]}"),
    (pooled, False, f"{pool_kind.capitalize()} pool {pool_size}×{pool_size}: {pooled.shape[0]}×{pooled.shape[1]}"),
]
for column, (values, signed, caption) in zip(st.columns(4), steps, strict=True):
    column.image(images.enlarge(values, 224, signed=signed), caption=caption, output_format="PNG")


@st.fragment
def cell_by_cell(image: np.ndarray, kernel: np.ndarray) -> None:
    """The convolution on a 7×7 version of the image, one output cell at a time (reruns on its own)."""
    st.subheader("Cell by cell")
    st.caption(f"The same image shrunk to {SMALL}×{SMALL} (average of each 4×4 block), so every number fits.")
    small = np.round(ops.avg_pool(image, 4), 2)
    small_out = ops.conv2d(small, kernel, padding="valid")
    position = st.slider("Kernel position", 1, small_out.size, 1, key="playground-position",
                         help="Move the kernel over the small image, one output cell at a time.")
    row, col = divmod(position - 1, small_out.shape[1])
    window = small[row : row + 3, col : col + 3]
    products = window * kernel
    # Column widths follow the matrix sizes (7, 3, 5 cells), so every cell is drawn the same size.
    input_col, products_col, output_col = st.columns([7, 4, 5])
    with input_col:
        figures.show("numeric_grid", small, title=f"input {SMALL}×{SMALL}", highlight=(row, col, 3, 3))
    with products_col:
        figures.show("numeric_grid", products, title="window × kernel", symmetric=True, decimals=2)
    with output_col:
        figures.show("numeric_grid", small_out, title="output (valid)", highlight=(row, col, 1, 1), symmetric=True,
                     decimals=2)
    terms = " + ".join(f"({w:.2f}×{k:g})" for w, k in zip(window.ravel(), kernel.ravel(), strict=True))
    st.markdown(f"output[{row}, {col}] = {terms} = **{products.sum():.2f}**")
    relu_col, pooled_col = st.columns([5, 3])
    small_relu = ops.relu(small_out)
    with relu_col:
        figures.show("numeric_grid", small_relu, title="after ReLU: negatives become 0", decimals=2)
    with pooled_col:
        figures.show("numeric_grid", ops.max_pool(small_relu, 2), decimals=2,
                     title="max pool 2×2 (the odd last row and column are dropped)")


@st.fragment
def pooling_by_hand() -> None:
    """Seed 001's 4×4 example, one 2×2 window at a time (reruns on its own)."""
    st.subheader("Pooling, by hand")
    st.caption("A 2×2 max pool keeps the largest number in each window; an average pool keeps their mean.")
    windows = [(r, c) for r in (0, 2) for c in (0, 2)]
    window_index = st.segmented_control(
        "Window", range(len(windows)), default=0, format_func=lambda i: f"window {i + 1}",
        key="playground-window", required=True,
    )
    row, col = windows[window_index]
    example_col, max_col, avg_col = st.columns(3)
    with example_col:
        figures.show("numeric_grid", POOL_EXAMPLE, title="input 4×4", highlight=(row, col, 2, 2))
    with max_col:
        figures.show("numeric_grid", ops.max_pool(POOL_EXAMPLE, 2), title="max pool 2×2",
                     highlight=(row // 2, col // 2, 1, 1))
    with avg_col:
        figures.show("numeric_grid", ops.avg_pool(POOL_EXAMPLE, 2), title="average pool 2×2",
                     highlight=(row // 2, col // 2, 1, 1), decimals=2)
    block = POOL_EXAMPLE[row : row + 2, col : col + 2]
    st.markdown(
        f"Window {window_index + 1} holds {', '.join(f'{v:g}' for v in block.ravel())}: "
        f"max **{block.max():g}**, average **{block.mean():g}**."
    )


cell_by_cell(image, kernel)
pooling_by_hand()
