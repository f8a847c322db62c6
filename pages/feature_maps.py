"""Feature maps: what every convolution and pooling layer makes of one image, the learned filters,
and the same channels followed through the layers for several images of one class."""

import numpy as np
import streamlit as st

from cnn_core.engine.activations import conv_filters
from ui import figures, images, loaders
from ui import state as app_state
from ui.components import image_source, model_picker
from ui.entry import start_page
from ui.errors import shown_as_error
from ui.text import class_label

start_page()

JOURNEY_IMAGES = 4

state = app_state.get()

st.title("Feature maps")
st.caption(
    "Each convolution layer turns the image into many *channels*, one per learned filter: bright where the "
    "filter found its pattern. Pooling layers shrink them. Deeper layers answer more abstract questions."
)

name = model_picker.show("maps-model")
card = model_picker.card(name)
with shown_as_error():
    model = loaders.bundle(name).model
    extractor = loaders.feature_extractor(name)
if extractor.layer_count == 0:
    st.warning(f"{name} has no convolution or pooling layers, so it has no feature maps to show.")
    st.stop()

VIEWS = {
    "maps": "Feature maps of one image",
    "filters": "Learned filters",
    "journey": "Journey of a class",
}
# One view at a time: each draws many pictures, and only the chosen one needs computing.
view = st.segmented_control("View", list(VIEWS), format_func=VIEWS.get, default="maps", required=True,
                            key="maps-view")

if view == "maps":
    picture_col, options_col = st.columns([3, 2], gap="large")
    with picture_col:
        picked = image_source.show("maps-image", dataset_name=card.dataset, allow_drawing=card.dataset == "mnist")
    with options_col:
        channels = st.select_slider("Channels shown per layer", (8, 16, 32, 64), 32, key="maps-channels",
                                    help="Layers with more channels show the first ones.")
    if picked is not None:
        with st.spinner("Running the image through the network…"):
            layer_maps = extractor.maps(picked.image)
            probabilities = loaders.predictor(name).predict(picked.image)
        class_names = loaders.dataset(card.dataset).class_names
        top = int(np.argmax(probabilities))
        seen_col, shapes_col = st.columns([1, 3], gap="large")
        seen_col.image(images.enlarge(picked.image, 168), caption=picked.caption, output_format="PNG")
        seen_col.markdown(f"Prediction: **{class_names[top]}** ({probabilities[top]:.0%})")
        shapes_col.dataframe(
            [{"layer": m.name, "what it does": m.description,
              "output (height × width × channels)": " × ".join(map(str, m.shape))} for m in layer_maps],
            hide_index=True, width="stretch",
        )
        st.caption("Each tile is one channel: yellow where it answers strongly, dark blue where it stays quiet "
                   "(one colour scale per layer).")
        for layer in layer_maps:
            height, width, total = layer.shape
            shown = min(total, channels)
            st.markdown(f"**{layer.name}** · {layer.description} · output {height}×{width}×{total}"
                        + (f" (first {shown} channels)" if shown < total else ""))
            st.image(images.mosaic(layer.activations, max_channels=channels, columns=16), output_format="PNG")

elif view == "filters":
    mode = st.radio("Show", ("first", "mean"), horizontal=True, key="maps-filter-mode",
                    format_func={"first": "weights on the first input channel",
                                 "mean": "mean over input channels"}.get)
    st.caption("Red weights add the pixel under them, blue ones subtract it. The first layer's kernels often "
               "look like edge and stroke detectors.")
    with st.spinner("Drawing the filters…"):
        for layer in conv_filters(model):
            figures.show("filter_grid", layer, mode=mode, max_filters=32, columns=16)

else:
    data = loaders.dataset(card.dataset)
    class_col, channel_col = st.columns(2)
    label = class_col.selectbox("Class", range(len(data.class_names)), key="maps-journey-class",
                                format_func=lambda i: class_label(data.class_names, i))
    channel = channel_col.number_input("Channel", 0, 511, 0, key="maps-journey-channel",
                                       help="Layers with fewer channels show channel number modulo their size.")
    picks = np.flatnonzero(data.y_test == label)[:JOURNEY_IMAGES]
    journey_images = [data.x_test[i] for i in picks]
    with st.spinner("Following the images through the layers…"):
        journey_maps = [extractor.maps(image) for image in journey_images]
        figures.show("journey", journey_images, journey_maps, channel=int(channel),
                     title=f"Channel {int(channel)} through the network: {len(picks)} test images of "
                           f"'{data.class_names[label]}'")
    st.caption("Rows are images of the same class, columns the layers. A channel that lights up in the same "
               "place for every row has learned something the class shares.")
