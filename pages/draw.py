"""Draw: a digit on the canvas (or a photo of one), the model's guess after every stroke, and what it sees."""

import numpy as np
import streamlit as st

from cnn_core.engine import preprocess, registry
from ui import images, layout, loaders, timing
from ui import state as app_state
from ui.components import canvas, compare_models, explain_links, handwriting_add, image_source, model_picker
from ui.entry import start_page
from ui.errors import shown_as_error
from ui.text import plain

PROBABILITY_CHART = {
    "height": 300,
    "mark": {"type": "bar", "cornerRadiusEnd": 2},
    "encoding": {
        "y": {"field": "class", "type": "nominal", "sort": None, "title": None},
        "x": {"field": "probability", "type": "quantitative", "scale": {"domain": [0, 1]},
              "axis": {"format": "%"}, "title": "probability"},
        "color": {"condition": {"test": "datum['most likely']", "value": "#e4572e"}, "value": "#9db4d6"},
        "tooltip": [{"field": "class"}, {"field": "probability", "format": ".1%"}],
    },
}
DRAW = "Draw"
PHOTO = "Upload a photo"

NOT_A_NUMBER = ("This model answers \"not a number\" for every class: its training diverged. Pick another model, "
                "or train it again with a lower learning rate.")

run_started = timing.start()
start_page()

state = app_state.get()

title = st.empty()
name = model_picker.show("draw-model")
card = model_picker.card(name)
class_names = registry.get(card.dataset).class_names
digits = card.dataset == "mnist"
title.title("Draw a digit" if digits else "Show the model a piece of clothing")


def _clear() -> None:
    state.canvas_clears += 1


# The canvas keeps its own fixed-width column: at any window width it is shown whole, and the guess
# sits right under it (on a phone too), with the chart beside it where there is room.
input_col, result_col = layout.canvas_columns("draw")
steps = None
image = None
with input_col:
    if digits:
        source = st.segmented_control(
            "Input", (DRAW, PHOTO), default=DRAW, required=True, key="draw-input", label_visibility="collapsed",
            help="Draw on the black square, or upload a photo or scan of one handwritten digit.",
        )
        if source == DRAW:
            rgba = canvas.show(key="draw-canvas", stroke_width=st.session_state.get("draw-brush", 18),
                               clears=state.canvas_clears)
            if rgba is not None:
                steps = preprocess.canvas_steps(rgba)
            if steps is not None:
                image = steps.final
                state.last_drawing = image
        else:
            picked = image_source.photo_upload("draw-photo", what="one handwritten digit")
            if picked is not None:
                image = picked.image
                st.image(images.png(images.enlarge(image, 196)), caption=picked.caption)
    else:
        st.info(
            f"**{plain(card.name)}** recognises clothes ({card.dataset_title}), not digits. Pick a test image or upload a "
            "photo of a piece of clothing; switch to an MNIST model above to draw digits."
        )
        picked = image_source.show("draw-picture", dataset_name=card.dataset, allow_drawing=False)
        if picked is not None:
            image = picked.image
            st.image(images.png(images.enlarge(image, 196)), caption=picked.caption)
    prediction_slot = st.container(key="draw-prediction")
    if digits and source == DRAW:
        brush_col, clear_col = st.columns([3, 2], vertical_alignment="bottom")
        brush_col.slider("Brush width", 6, 40, 18, key="draw-brush")
        clear_col.button("Clear", on_click=_clear, key="draw-clear", width="stretch",
                         help="Empties the canvas. This cannot be undone.")

probabilities = None
with prediction_slot:
    if image is None:
        if app_state.default_dataset_of(name) is not None:
            loaders.warm_up_default_predictor(card.dataset)
        if digits and source == DRAW:
            # Said here, not above the canvas: on a phone every line above it pushes the guess off the screen.
            st.info("Draw a digit on the black square, as large as you like, to see what the model thinks it "
                    "is; the guess updates after every stroke.", icon=":material/draw:")
    else:
        with shown_as_error():
            probabilities = loaders.predictor(name).predict(image)
        if not np.all(np.isfinite(probabilities)):
            # A model whose weights blew up answers NaN for everything; "nan% sure" would say nothing.
            st.warning(NOT_A_NUMBER, icon=":material/warning:")
            probabilities = None
        else:
            top = int(np.argmax(probabilities))
            st.metric("The model sees", class_names[top], help="The class with the highest probability.")
            st.markdown(f"**{probabilities[top]:.0%}** sure. Runner-up: "
                        f"{plain(class_names[int(np.argsort(probabilities)[-2])])} "
                        f"({float(np.sort(probabilities)[-2]):.0%}).")

with result_col:
    if probabilities is not None:
        # A client-side chart: the server sends ten numbers instead of rendering a picture per stroke.
        st.vega_lite_chart(
            {"class": list(class_names), "probability": [float(p) for p in probabilities],
             "most likely": [i == top for i in range(len(class_names))]},
            PROBABILITY_CHART, width="stretch",
        )
        explain_links.drawing(card.dataset)
    if digits and source == DRAW and probabilities is not None:
        handwriting_add.show(state, image, top)

compare_models.show(name, image, class_names)

if steps is not None:
    st.subheader("What the model sees")
    st.caption(
        "MNIST digits were cropped, scaled to fit a 20×20 box and centred by their centre of mass in 28×28 "
        "pixels. Your drawing goes through the same steps, so the model gets what it was trained on."
    )
    pictures, captions = images.preprocess_strip(steps)
    st.image([images.png(picture) for picture in pictures], caption=captions)

if image is not None:
    timing.record("draw prediction", run_started)
