"""Two models, one drawing: the active model and a second one side by side, probabilities and saliency."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st

from ui import images, loaders
from ui import state as app_state
from ui.components import explain_cache, explain_maps, model_picker
from ui.text import plain

CHART = {
    "height": 220,
    "mark": {"type": "bar", "cornerRadiusEnd": 2},
    "encoding": {
        "y": {"field": "class", "type": "nominal", "sort": None, "title": None, "axis": {"labelOverlap": False}},
        "x": {"field": "probability", "type": "quantitative", "scale": {"domain": [0, 1]},
              "axis": {"format": "%"}, "title": None},
        "color": {"condition": {"test": "datum['most likely']", "value": "#e4572e"}, "value": "#9db4d6"},
        "tooltip": [{"field": "class"}, {"field": "probability", "format": ".1%"}],
    },
}


def _column(name: str, image: np.ndarray, class_names: Sequence[str], key: str) -> None:
    model = loaders.bundle(name).model
    probabilities = explain_cache.probabilities(name, model, image)
    top = int(np.argmax(probabilities))
    saliency = explain_cache.saliency(name, model, image, top)
    st.markdown(f"**{plain(app_state.model_title(name))}** says **{plain(class_names[top])}** ({probabilities[top]:.0%})")
    chart_col, map_col = st.columns([3, 2])
    chart_col.vega_lite_chart(
        {"class": list(class_names), "probability": [float(p) for p in probabilities],
         "most likely": [i == top for i in range(len(class_names))]},
        CHART, width="stretch", key=f"{key}-chart",
    )
    map_col.image(images.png(explain_maps.overlay(image, saliency, size=140)), output_format="PNG",
                  caption=f"saliency for {class_names[top]}: red pushed it up")


def show(active: str, image: np.ndarray | None, class_names: Sequence[str], key: str = "draw-compare") -> None:
    """A toggle; when on, the active model and a chosen second one answer the same image side by side."""
    if not st.toggle("Two models, one drawing: compare with a second model", key=f"{key}-on"):
        return
    state = app_state.get()
    dataset = model_picker.card(active).dataset
    others = [name for name in state.model_ids() if name != active and model_picker.card(name).dataset == dataset]
    if not others:
        st.info("There is no second model for this dataset yet: train one on **Train a CNN** or upload a .keras "
                "file with the Upload button above, then compare them here.")
        return
    other = st.selectbox("Second model", others, key=f"{key}-other",
                         format_func=lambda n: f"{n} ({model_picker.card(n).accuracy_text})")
    if image is None:
        st.caption("Draw a digit to see both answers.")
        return
    left, right = st.columns(2, gap="large")
    with left:
        _column(active, image, class_names, f"{key}-active")
    with right:
        _column(other, image, class_names, f"{key}-other")
