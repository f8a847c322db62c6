"""Convolution playground: slide a 3×3 kernel over an image by hand, then ReLU, then pooling.

Everything here is NumPy (cnn_core.engine.ops); no model and no TensorFlow, so the page opens at once.
"""

import numpy as np
import streamlit as st

from cnn_core.engine import explain, ops, registry
from ui import figures, images, layout, own_classes
from ui.components import explain_conv, image_source, kernel_editor
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

# Fixed widths for the kernel and the options: proportional columns hid the kernel's numbers at 800 px.
source_col, kernel_col, options_col = layout.wrapping_row("playground", [None, kernel_editor.EDITOR_PX, 240], gap="medium")
with source_col:
    dataset_name = st.selectbox("Dataset", own_classes.choices(), format_func=registry.title, key="playground-dataset")
    picked = image_source.show("playground-image", dataset_name=dataset_name)
with kernel_col:
    st.markdown("**Kernel** (3×3 weights)")
    kernel = kernel_editor.show("playground-kernel")
with options_col:
    padding = st.radio("Padding", ops.PADDINGS, index=1, key="playground-padding", horizontal=True,
                       help="'same' pads the border with zeros so the output keeps the input's size.")
    stride = st.segmented_control("Stride", (1, 2), default=1, key="playground-stride", required=True,
                                  help="How far the kernel moves between two output cells.")
    use_relu = st.toggle("ReLU after the convolution", value=True, key="playground-relu")
    pool_kind = st.radio("Pooling", ("max", "avg"), key="playground-pool", horizontal=True,
                         format_func={"max": "max", "avg": "average"}.get)
    pool_size = st.select_slider("Pool size", (2, 3, 4), 2, key="playground-pool-size")

if picked is None:
    st.stop()

POOL_WORDS = {"max": "max", "avg": "average"}
image = picked.image.astype(np.float64)
filtered = ops.conv2d(image, kernel, padding=padding, stride=stride)
rectified = ops.relu(filtered) if use_relu else filtered
pooled = pool(rectified, pool_kind, pool_size)

st.subheader("The image through one CNN block")
steps = [
    (image, False, f"Input {image.shape[0]}×{image.shape[1]}"),
    (filtered, True, f"Convolution ({padding}, stride {stride}) {filtered.shape[0]}×{filtered.shape[1]} "
                     "(grey 0, light +, dark −)"),
    (rectified, not use_relu, f"ReLU: negatives → 0, {rectified.shape[0]}×{rectified.shape[1]}" if use_relu
     else "No ReLU: negatives stay"),
    (pooled, not use_relu, f"{POOL_WORDS[pool_kind].capitalize()} pool {pool_size}×{pool_size}: "
                           f"{pooled.shape[0]}×{pooled.shape[1]}"),
]
for column, (values, signed, caption) in zip(st.columns(4), steps, strict=True):
    column.image(images.enlarge(values, 224, signed=signed), caption=caption, output_format="PNG")


@st.fragment
def cell_by_cell(image: np.ndarray, kernel: np.ndarray, padding: str, stride: int, use_relu: bool, pool_kind: str,
                 pool_size: int) -> None:
    """The convolution on a 7×7 version of the image, one output cell at a time (reruns on its own).

    It follows the controls above: padding, stride, ReLU and pooling, and explains the cell with
    the same component the Explain page uses for a real network.
    """
    st.subheader("Cell by cell")
    st.caption(f"The same image shrunk to {SMALL}×{SMALL} (average of each 4×4 block), so every number fits.")
    small = np.round(ops.avg_pool(image, 4), 2)
    small_out = ops.conv2d(small, kernel, padding=padding, stride=stride)
    position = st.slider("Kernel position", 1, small_out.size, 1, key="playground-position",
                         help="Move the kernel over the small image, one output cell at a time.")
    row, col = divmod(min(position, small_out.size) - 1, small_out.shape[1])
    activation = "relu" if use_relu else "linear"
    cell = explain.conv_cell(small, kernel, row, col, stride=stride, padding=padding, activation=activation)
    # Show the zero padding as real cells, so the window never hangs over the edge.
    pad_top, pad_bottom = explain.padding_amounts(SMALL, kernel.shape[0], stride, padding)
    shown = np.pad(small, ((pad_top, pad_bottom), (pad_top, pad_bottom)))
    top, left, height, width = cell["window"]
    part = explain_conv.ChannelPart("", shown, cell["patch"][..., 0], cell["weights"][..., 0],
                                    cell["products"][..., 0], float(cell["sum"]))
    explanation = explain_conv.ConvExplanation(
        where=f"output[{row}, {col}]", window=(top + pad_top, left + pad_top, height, width), parts=[part],
        channels=1, bias=0.0, preactivation=cell["preactivation"], activation=activation, value=cell["value"],
    )
    explain_conv.show_part(part, explanation.window, 2, "playground-cell")
    for line in explain_conv.arithmetic(explanation):
        st.markdown(line)
    small_after = ops.relu(small_out) if use_relu else small_out
    with explain_conv.grid_row("playground-steps"):
        explain_conv.grid(small_out, title=f"output ({padding}, stride {stride})", highlight=(row, col, 1, 1),
                          signed=True)
        explain_conv.grid(small_after, signed=not use_relu,
                          title="after ReLU: negatives → 0" if use_relu else "no ReLU: negatives stay")
        # A grid with a caption under it: the pair keeps the grid's width (at least room for the caption).
        with st.container(width=max(small_after.shape[1] // pool_size * explain_conv.CELL_PX, 200)):
            if pool_size > min(small_after.shape):
                st.info(f"A {pool_size}×{pool_size} pool does not fit this {small_after.shape[0]}×"
                        f"{small_after.shape[1]} output; pick a smaller pool size.")
            else:
                dropped = small_after.shape[0] % pool_size
                # A short title: a title wider than its chart squeezes the cells away.
                explain_conv.grid(pool(small_after, pool_kind, pool_size), signed=not use_relu,
                                  title=f"{POOL_WORDS[pool_kind]} pool {pool_size}×{pool_size}")
                if dropped:
                    st.caption(f"The last {dropped} row(s) and column(s) do not fill a window and are dropped.")


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
        figures.show(figures.numeric_grid(POOL_EXAMPLE, title="input 4×4", highlight=(row, col, 2, 2)))
    with max_col:
        figures.show(figures.numeric_grid(ops.max_pool(POOL_EXAMPLE, 2), title="max pool 2×2",
                     highlight=(row // 2, col // 2, 1, 1)))
    with avg_col:
        figures.show(figures.numeric_grid(ops.avg_pool(POOL_EXAMPLE, 2), title="average pool 2×2",
                     highlight=(row // 2, col // 2, 1, 1), decimals=2))
    block = POOL_EXAMPLE[row : row + 2, col : col + 2]
    st.markdown(
        f"Window {window_index + 1} holds {', '.join(f'{v:g}' for v in block.ravel())}: "
        f"max **{block.max():g}**, average **{block.mean():g}**."
    )


cell_by_cell(image, kernel, padding, int(stride), use_relu, pool_kind, pool_size)
pooling_by_hand()
