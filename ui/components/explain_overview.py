"""The network at a glance: every layer's output for the current image, left to right, into the probabilities.

Each thumbnail has a button that opens that layer in the "one neuron, by hand" view below.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st

from ui import images
from ui.text import plain

LAYER_KEY = "explain-layer"
PER_ROW = 6
SKIPPED = ("dropout",)  # they pass everything through at prediction time


def _open(index: int) -> None:
    st.session_state[LAYER_KEY] = index


def thumbnail(values: np.ndarray) -> np.ndarray:
    """A few channels of a feature map as a 2×2 mosaic, or a vector as a strip of cells."""
    if values.ndim == 3:
        return images.mosaic(values, max_channels=4, columns=2, tile=36, gap=2)
    shown = np.asarray(values[:64], dtype=np.float64)
    strip = shown.reshape(1, -1) if shown.size <= 16 else np.pad(
        shown, (0, (-shown.size) % 8)).reshape(-1, 8)
    return images.enlarge(strip, 72, signed=bool(np.any(strip < 0)), frame=True)


def show(infos, outputs: Sequence[np.ndarray | None], probabilities: np.ndarray, class_names: Sequence[str],
         image: np.ndarray) -> None:
    st.subheader("The network at a glance")
    st.caption("Left to right: what each layer makes of this image (a few channels each, with its output shape), "
               "ending in the class probabilities. The magnifier under a layer opens it below, to take one of its numbers apart.")
    shown = [info for info in infos if info.kind not in SKIPPED]
    cells = [("input", "28×28 image", images.enlarge(image, 72, frame=True), None), *[
        (info.name, "×".join(map(str, info.output_shape)), thumbnail(outputs[info.index]), info)
        for info in shown[:-1]]]
    top = int(np.argmax(probabilities))
    for start in range(0, len(cells) + 1, PER_ROW):
        row = cells[start : start + PER_ROW]
        last_row = start + PER_ROW > len(cells)
        columns = st.columns(PER_ROW)
        for column, (name, shape, picture, info) in zip(columns, row, strict=False):
            with column:
                st.image(images.png(picture), caption=f"{name} {shape} →", output_format="PNG")
                if info is not None and info.explainable:
                    st.button("", icon=":material/zoom_in:", key=f"explain-open-{info.index}", on_click=_open,
                              args=(info.index,), help=f"Open {name} below", width="stretch")
        if last_row:
            with columns[len(row)] if len(row) < PER_ROW else st.container():
                head = shown[-1] if shown else None
                lines = [f"{'**' if i == top else ''}{plain(class_names[i])}: {p:.0%}{'**' if i == top else ''}"
                         for i, p in sorted(enumerate(probabilities), key=lambda item: -item[1])[:3]]
                st.markdown("**probabilities**  \n" + "  \n".join(lines))
                if head is not None and head.explainable:
                    st.button("", icon=":material/zoom_in:", key=f"explain-open-{head.index}", on_click=_open,
                              args=(head.index,), help=f"Open {head.name} below", width="stretch")
