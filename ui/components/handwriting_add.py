"""On Draw: add the current drawing, with its true digit, to "my handwriting" in one click."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ui import handwriting
from ui.errors import shown_as_error


def show(state, image: np.ndarray | None, predicted: int | None) -> None:
    """A one-line row under the guess: the true digit (the guess preselected) and an Add button."""
    if image is None:
        return
    digit_col, add_col, link_col = st.columns([2, 2, 2], vertical_alignment="bottom")
    label = digit_col.selectbox("Wrong? It is a", list(range(10)), index=predicted or 0, key="draw-hw-label")
    if add_col.button("Add to my handwriting", key="draw-hw-add", width="stretch"):
        with shown_as_error(stop=False):
            count = handwriting.add(state.workspace, image, int(label))
            st.toast(f"Added as a {label}: {count} drawings in your handwriting.")
    link_col.page_link("pages/my_handwriting.py", label="My handwriting", icon=":material/edit_note:",
                       query_params={"ws": state.session_id})
