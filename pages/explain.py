"""Explain a prediction: which pixels mattered, the whole network at a glance, and one neuron by hand."""

import numpy as np
import streamlit as st

from cnn_core.engine import explain
from ui import images, loaders, timing
from ui.components import (
    explain_cache,
    explain_maps,
    explain_neuron,
    explain_overview,
    image_source,
    model_picker,
)
from ui.entry import start_page
from ui.errors import shown_as_error
from ui.text import plain

run_started = timing.start()
start_page()

st.title("Why did it say that?")
st.caption("Explain one prediction of any of your models, down to the single multiplication.")

name = model_picker.show("explain-model")
card = model_picker.card(name)
with shown_as_error():
    model = loaders.bundle(name).model
data = loaders.test_images(card.dataset, None)
class_names = data.class_names

# Links from Draw (?image=drawing) and Evaluate (?test=<index>) choose the image.
params = st.query_params
if params.get("image") == "drawing":
    # Consumed once, so the learner can pick another image afterwards and the next link works again.
    del st.query_params["image"]
    if card.dataset == "mnist":
        st.session_state["explain-image-source"] = image_source.DRAWING

picked = None
test_index = params.get("test")
if test_index is not None:
    try:
        index = int(test_index)
        if not 0 <= index < len(data.x_test):
            raise ValueError
    except ValueError:
        st.warning(f"There is no test image number {plain(test_index)}; pick an image below.", icon=":material/help:")
    else:
        picked = image_source.PickedImage(data.x_test[index, ..., 0],
                                          f"Test image #{index}: {class_names[int(data.y_test[index])]}",
                                          int(data.y_test[index]))
        if st.button("Pick another image", key="explain-forget-test"):
            del st.query_params["test"]
            st.rerun()
if picked is None:
    picked = image_source.show("explain-image", dataset_name=card.dataset, allow_drawing=card.dataset == "mnist")
if picked is None:
    st.stop()

image = np.asarray(picked.image, dtype=np.float32)
with shown_as_error():
    probabilities = explain_cache.probabilities(name, model, image)
    infos = explain.layers(model)
    outputs = explain_cache.outputs(name, model, image)
order = np.argsort(probabilities)[::-1]
top, runner_up = int(order[0]), int(order[1])

seen_col, answer_col = st.columns([1, 3], gap="large")
seen_col.image(images.png(images.enlarge(image, 168, frame=True)), caption=picked.caption, output_format="PNG")
with answer_col:
    st.metric("The model says", class_names[top], f"{probabilities[top]:.1%} sure", delta_color="off",
              delta_arrow="off")
    st.markdown(f"Runner-up: **{plain(class_names[runner_up])}** ({probabilities[runner_up]:.1%}).")
    if picked.label is not None:
        st.markdown(f"The test label says **{plain(class_names[picked.label])}**"
                    + (": right." if picked.label == top else ": a mistake."))

with shown_as_error():
    explain_maps.show(name, model, image, probabilities, class_names)
    explain_overview.show(infos, outputs, probabilities, class_names, image)
    explain_neuron.show(model, infos, outputs, image, class_names)
timing.record("explain page", run_started)
