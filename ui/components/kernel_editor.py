"""A 3×3 kernel editor: start from a classic filter, then change any of the nine weights."""

from __future__ import annotations

import numpy as np
import streamlit as st

from cnn_core.engine import ops

# Only the 3×3 presets: nine number boxes stay readable, and 3×3 is what the CNN layers here use.
PRESETS = {name: kernel for name, kernel in ops.KERNELS.items() if kernel.shape == (3, 3)}
ZERO = "all zeros (build your own)"
# Wide enough for "-0.125" beside the number box's − and + buttons.
CELL_PX = 96
EDITOR_PX = 3 * CELL_PX + 2 * 16  # three cells and the two 1rem gaps between them


def show(key: str, *, default: str = "vertical edges", allow_presets: bool = True) -> np.ndarray:
    """Render the editor; return the kernel as a (3, 3) float array."""
    preset = ZERO
    if allow_presets:
        options = [*PRESETS, ZERO]
        preset = st.selectbox(
            "Start from", options, index=options.index(default) if default in options else 0,
            key=f"{key}-preset", help="Picking a preset resets the nine weights to that filter.",
        )
    start = PRESETS.get(preset, np.zeros((3, 3)))
    kernel = np.zeros((3, 3), dtype=np.float64)
    # The preset is part of the widget keys, so choosing another preset starts from its weights.
    # Rows of fixed-width cells: proportional columns got too narrow to show a number at 800 px.
    for row in range(3):
        cells = st.container(horizontal=True, wrap=False, gap="small", key=f"{key}-row-{row}")
        for col in range(3):
            kernel[row, col] = cells.number_input(
                f"w[{row},{col}]", value=float(round(start[row, col], 4)), step=0.5, format="%.3g",
                key=f"{key}-{preset}-{row}{col}", label_visibility="collapsed", width=CELL_PX,
            )
    return kernel
