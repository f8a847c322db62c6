"""Links into the Explain page: from a drawing, or from one test image (Evaluate's mistakes)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st

PAGE = "pages/explain.py"
ICON = ":material/psychology:"


def drawing(dataset: str) -> None:
    """'Explain this prediction', keeping the page's own query parameters."""
    params = {**st.query_params.to_dict(), **({"image": "drawing"} if dataset == "mnist" else {})}
    st.page_link(PAGE, label="Explain this prediction", icon=ICON, query_params=params)


def test_images(indices: np.ndarray, labels: np.ndarray, predictions: np.ndarray, names: Sequence[str],
                key: str) -> None:
    """Pick one of the test images shown and open it in the Explain page."""
    if len(indices) == 0:
        return
    pick_col, link_col = st.columns([3, 1], vertical_alignment="bottom")
    index = pick_col.selectbox(
        "Explain one of them", [int(i) for i in indices], key=key,
        format_func=lambda i: f"#{i}: {names[labels[i]]} → {names[predictions[i]]}",
    )
    with link_col:
        st.page_link(PAGE, label="Why?", icon=ICON, query_params={"test": str(index)})
