"""Feature maps: what every convolution and pooling layer makes of one image, the learned filters,
and the same channels followed through the layers for several images of one class."""

import numpy as np
import streamlit as st

from cnn_core.engine import registry
from cnn_core.engine.activations import conv_filters
from ui import figures, images, layout, loaders
from ui import state as app_state
from ui.components import image_source, model_picker
from ui.entry import start_page
from ui.errors import shown_as_error
from ui.text import class_label, plain

start_page()

JOURNEY_IMAGES = 4
# The picture of the image looked at (168 px) and its caption.
SEEN_PX = 184

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
    st.warning(f"{plain(card.name)} has no convolution or pooling layers, so it has no feature maps to show.")
    st.stop()

def channel_chart(values: np.ndarray, title: str):
    """One channel as a heat map of square cells with a colour bar and each value on hover."""
    import altair as alt

    rows = [{"row": r, "column": c, "value": float(values[r, c])}
            for r in range(values.shape[0]) for c in range(values.shape[1])]
    side = max(8, 320 // max(values.shape))
    return alt.Chart(alt.Data(values=rows), title=title).mark_rect().encode(
        x=alt.X("column:O", axis=None), y=alt.Y("row:O", axis=None),
        color=alt.Color("value:Q", scale=alt.Scale(scheme="viridis"), legend=alt.Legend(title="value")),
        tooltip=["row:O", "column:O", alt.Tooltip("value:Q", format=".3f")],
    ).properties(width=side * values.shape[1], height=side * values.shape[0])


VIEWS = {
    "maps": "Feature maps of one image",
    "filters": "Learned filters",
    "journey": "Journey of a class",
}
# One view at a time: each draws many pictures, and only the chosen one needs computing.
view = st.segmented_control("View", list(VIEWS), format_func=VIEWS.get, default="maps", required=True,
                            key="maps-view")

if view == "maps":
    # Wrapping rows: at 800 px (sidebar open) side-by-side columns squeezed the inputs and the layer table.
    picture_col, options_col = layout.wrapping_row("maps-pick", ["wide", "narrow"])
    with picture_col:
        picked = image_source.show("maps-image", dataset_name=card.dataset, allow_drawing=card.dataset == "mnist")
    with options_col:
        channels = st.select_slider("Channels shown per layer", (8, 16, 32, 64), 32, key="maps-channels",
                                    help="Layers with more channels show the first ones.")
    if picked is not None:
        with st.spinner("Running the image through the network…"):
            layer_maps = extractor.maps(picked.image)
            probabilities = loaders.predictor(name).predict(picked.image)
        class_names = registry.get(card.dataset).class_names
        top = int(np.argmax(probabilities))
        seen_col, shapes_col = layout.wrapping_row("maps-seen", [SEEN_PX, None])
        seen_col.image(images.enlarge(picked.image, 168), caption=picked.caption, output_format="PNG")
        if np.all(np.isfinite(probabilities)):
            seen_col.markdown(f"Prediction: **{plain(class_names[top])}** ({probabilities[top]:.0%})")
        else:
            seen_col.warning("This model answers \"not a number\": its training diverged.")
        # A static table wraps its cells; a dataframe grid scrolled sideways once the column was narrow.
        shapes_col.table(
            [{"layer": m.name, "what it does": m.description,
              "output (height × width × channels)": " × ".join(map(str, m.shape))} for m in layer_maps],
            hide_index=True,
        )
        st.caption("Each tile is one channel: yellow where it answers strongly, dark blue where it stays quiet "
                   "(one colour scale per layer).")
        for layer in layer_maps:
            height, width, total = layer.shape
            shown = min(total, channels)
            st.markdown(f"**{plain(layer.name)}** · {plain(layer.description)} · output {height}×{width}×{total}"
                        + (f" (first {shown} channels)" if shown < total else ""))
            st.image(images.mosaic(layer.activations, max_channels=channels, columns=16), output_format="PNG")

        st.subheader("Look closer at one channel")
        layer_col, channel_col = st.columns(2)
        names_by_layer = {m.name: m for m in layer_maps}
        closer = names_by_layer[layer_col.selectbox("Layer", list(names_by_layer), key="maps-closer-layer")]
        closer_channel = int(channel_col.number_input(
            f"Channel (0–{closer.shape[2] - 1})", 0, closer.shape[2] - 1, 0, key=f"maps-closer-{closer.name}",
        ))
        st.altair_chart(channel_chart(closer.activations[:, :, closer_channel],
                                      f"{closer.name}, channel {closer_channel}"), width="content")
        st.caption("Each square is one value of this channel; the colour bar gives its scale, and hovering shows "
                   "the exact number.")

elif view == "filters":
    mode = st.radio("Show", ("first", "mean"), horizontal=True, key="maps-filter-mode",
                    format_func={"first": "weights on the first input channel",
                                 "mean": "mean over input channels"}.get)
    st.caption("Red weights add the pixel under them, blue ones subtract it. The first layer's kernels often "
               "look like edge and stroke detectors.")
    with st.spinner("Drawing the filters…"):
        # Every filter of every layer: a layer of 64 filters shows all 64.
        for layer in conv_filters(model):
            figures.show(figures.filter_grid(layer, mode=mode, max_filters=None, columns=16))

else:
    data = loaders.test_images(card.dataset, None)
    class_col, channel_col = st.columns(2)
    label = class_col.selectbox("Class", range(len(data.class_names)), key="maps-journey-class",
                                format_func=lambda i: class_label(data.class_names, i))
    picks = np.flatnonzero(data.y_test == label)[:JOURNEY_IMAGES]
    journey_images = [data.x_test[i] for i in picks]
    with st.spinner("Following the images through the layers…"):
        journey_maps = [extractor.maps(image) for image in journey_images]
    counts = {m.name: m.shape[2] for m in journey_maps[0]}
    most = max(counts.values())
    channel = int(channel_col.number_input(
        f"Channel (0–{most - 1})", 0, most - 1, 0, key="maps-journey-channel",
        help="The widest layer has this many channels; a layer with fewer shows the channel number modulo its "
        "own count (named above each column).",
    ))
    figures.show(figures.journey(journey_images, journey_maps, channel=channel,
                 title=f"Channel {channel} through the network: {len(picks)} test images of "
                       f"'{data.class_names[label]}'"))
    wrapped = [f"{layer} has {count} channels, so it shows channel {channel} mod {count} = {channel % count}"
               for layer, count in counts.items() if channel >= count]
    st.caption("Rows are images of the same class, columns the layers. A channel that lights up in the same "
               "place for every row has learned something the class shares."
               + (f" Channel {channel} does not exist in every layer: {'; '.join(wrapped)}." if wrapped else ""))
