"""Inside a trained model: the embedding map (before and after training) and the network's health.

Both pass a few thousand test images through the model (a second or two), so they are drawn on
request and kept in the session under the model's name, not recomputed on every rerun. The images
are the first `INSIDE_IMAGES` of the test set, read once per server process without the training
set (`loaders.test_images`), and their hover pictures are made once per process too.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import altair as alt
import numpy as np
import streamlit as st

from ui import images

if TYPE_CHECKING:
    from cnn_core.engine.embedding import EmbeddingMap
    from cnn_core.engine.health import HealthReport
    from cnn_core.service.persistence import ModelBundle

# The test images both views use (the embedding map's ~2,000 and the health check's).
INSIDE_IMAGES = 2000
HEALTH_IMAGES = INSIDE_IMAGES
# Images per forward pass: a convolution's outputs for 500 MNIST images are ~40 MB, held by the server's
# allocator afterwards; 100 at a time costs each visitor a fifth of that, at about the same speed.
BATCH = 100


def data_url(image: np.ndarray) -> str:
    picture = images.enlarge(np.asarray(image, np.float32), 56)
    return "data:image/png;base64," + base64.b64encode(images.png(picture)).decode()


def map_chart(embedding: EmbeddingMap, class_names, title: str, pictures=None):
    """Points coloured by class, hover for the class, test index and (when given) the image; the drawing as a star."""
    rows = []
    for number, ((x, y), label, index) in enumerate(
        zip(embedding.points.tolist(), embedding.labels.tolist(), embedding.indices.tolist(), strict=True)
    ):
        row = {"x": x, "y": y, "class": class_names[label], "test image": index}
        if pictures is not None:
            row["image"] = pictures[number]
        rows.append(row)
    tooltip = ["class:N", "test image:Q"] + (["image:N"] if pictures is not None else [])
    axis_x = f"first direction ({embedding.explained[0]:.0%} of the variance)"
    axis_y = f"second direction ({embedding.explained[1]:.0%})"
    chart = alt.Chart(alt.Data(values=rows), title=title).mark_circle(size=14, opacity=0.6).encode(
        x=alt.X("x:Q", title=axis_x, axis=alt.Axis(labels=False, ticks=False)),
        y=alt.Y("y:Q", title=axis_y, axis=alt.Axis(labels=False, ticks=False)),
        color=alt.Color("class:N", sort=list(class_names), legend=alt.Legend(orient="bottom", columns=5, title=None)),
        tooltip=tooltip,
    )
    if embedding.drawing is not None:
        star = [{"x": float(embedding.drawing[0]), "y": float(embedding.drawing[1]), "what": "your drawing"}]
        chart += alt.Chart(alt.Data(values=star)).mark_point(
            shape="diamond", size=260, filled=True, color="black", stroke="white", strokeWidth=1.5,
        ).encode(x="x:Q", y="y:Q", tooltip=["what:N"])
        chart += alt.Chart(alt.Data(values=star)).mark_text(text="★ your drawing", dx=10, align="left",
                                                            fontWeight="bold").encode(x="x:Q", y="y:Q")
    return chart


def _compute_maps(bundle: ModelBundle, dataset_name: str, drawing) -> dict:
    from cnn_core.engine import embedding
    from cnn_core.engine.models import build_model
    from ui import loaders

    data = loaders.test_images(dataset_name, INSIDE_IMAGES)
    x, y = data.x_test, data.y_test
    result = {"trained": embedding.embedding_map(bundle.model, x, y, drawing=drawing, count=INSIDE_IMAGES, batch_size=BATCH)}
    if bundle.experiment is not None:
        # The same seed builds the same initial weights the run started from (the filmstrip's first frame).
        untrained = build_model(bundle.experiment.model, bundle.experiment.training)
        result["untrained"] = embedding.embedding_map(untrained, x, y, drawing=drawing, count=INSIDE_IMAGES,
                                                      batch_size=BATCH)
    return result


def show_embedding(bundle: ModelBundle, dataset_name: str, drawing, key: str) -> None:
    from cnn_core.engine import registry
    from ui import loaders

    st.caption(
        "Each dot is a test image, placed by what the layer before the classifier makes of it, flattened to 2-D "
        "with PCA (the two directions in which the images differ most). Before training the classes overlap; a "
        "trained network pulls them apart. Hover over a dot to see its image."
    )
    store = st.session_state.setdefault("inside-model-maps", {})
    if bundle.name not in store:
        if not st.button("Draw the embedding map", key=f"{key}-embed"):
            return
        with st.spinner("Passing 2,000 test images through the model…"):
            store.clear()  # one model's maps at a time: they hold 2,000 pictures
            store[bundle.name] = _compute_maps(bundle, dataset_name, drawing)
    maps = store[bundle.name]
    names = registry.get(dataset_name).class_names
    pictures = loaders.test_pictures(dataset_name, len(maps["trained"].points))
    columns = st.columns(2) if "untrained" in maps else [st.container()]
    if "untrained" in maps:
        with columns[0]:
            st.altair_chart(map_chart(maps["untrained"], names, "before training"), height=380)
            st.caption(f"Class separation {maps['untrained'].separation:.2f} (between-class over within-class spread).")
    with columns[-1]:
        st.altair_chart(map_chart(maps["trained"], names, "after training", pictures), height=380)
        st.caption(f"Class separation {maps['trained'].separation:.2f}.")
    st.caption("PCA only: t-SNE and UMAP would need a library this app does not ship and several seconds per map.")


def histogram_chart(counts, edges, title: str, colour: str):
    rows = [{"from": float(low), "to": float(high), "count": int(count)}
            for low, high, count in zip(edges[:-1], edges[1:], counts, strict=True)]
    return alt.Chart(alt.Data(values=rows), title=title).mark_bar(color=colour).encode(
        x=alt.X("from:Q", bin="binned", title=None), x2="to:Q", y=alt.Y("count:Q", title=None),
        tooltip=[alt.Tooltip("from:Q", format=".3f"), alt.Tooltip("to:Q", format=".3f"), "count:Q"],
    )


def show_report(report: HealthReport) -> None:
    for sentence in report.diagnoses:
        (st.success if sentence.startswith("Every") else st.warning)(sentence)
    for layer in report.layers:
        st.markdown(
            f"**Layer {layer.number}** · {layer.name} · {layer.units} {layer.unit_word}, {layer.activation} · "
            f"{len(layer.dead)} never fire · {len(layer.saturated)} saturated"
        )
        weights_col, activations_col = st.columns(2)
        weights_col.altair_chart(histogram_chart(layer.weight_counts, layer.weight_edges, "weights", "#4c72b0"), height=140)
        activations_col.altair_chart(
            histogram_chart(layer.activation_counts, layer.activation_edges, "activations on test images", "#e4572e"),
            height=140,
        )


def show_health(bundle: ModelBundle, dataset_name: str, key: str) -> None:
    from cnn_core.engine import health
    from ui import loaders

    store = st.session_state.setdefault("inside-model-health", {})
    if bundle.name not in store:
        if not st.button("Check the network's health", key=f"{key}-health"):
            st.caption(f"Finds filters that never fire and stuck units on {HEALTH_IMAGES:,} test images.")
            return
        with st.spinner("Looking at every layer…"):
            store.clear()
            store[bundle.name] = health.check(bundle.model, loaders.test_images(dataset_name, INSIDE_IMAGES).x_test,
                                              batch_size=BATCH)
    show_report(store[bundle.name])


def show(bundle: ModelBundle, dataset_name: str, drawing, key: str) -> None:
    map_tab, health_tab = st.tabs(["Embedding map", "Health of the network"])
    with map_tab:
        show_embedding(bundle, dataset_name, drawing, key)
    with health_tab:
        show_health(bundle, dataset_name, key)
