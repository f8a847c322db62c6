"""The filmstrip of a run: a slider over its frames, the first layer's filters, the probe's feature maps and health.

Shown under the curves while a run trains (the live fragment redraws it) and after it ends. The
slider follows the newest frame until the learner moves it; the curves mark where it stands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import altair as alt
import numpy as np
import streamlit as st

from ui import charts, images

if TYPE_CHECKING:
    from cnn_core.engine.filmstrip import Filmstrip, Frame
    from cnn_core.engine.health import LayerOverTime

MAX_MAPS = 16


def frame_label(frame: Frame) -> str:
    return f"step {frame.step:,} · epoch {frame.epochs:.2f}"


def choose(strip: Filmstrip, key: str) -> Frame | None:
    """The slider; returns the chosen frame (the newest one until the learner picks another)."""
    frames = strip.frames
    if not frames:
        return None
    labels = [frame_label(frame) for frame in frames]
    slider_key, seen_key = f"{key}-frame", f"{key}-frames-seen"
    seen = st.session_state.get(seen_key, 0)
    current = st.session_state.get(slider_key)
    # Follow the newest frame while the slider sits on the newest one the learner has seen.
    if current not in labels or (seen and current == labels[min(seen, len(labels)) - 1]):
        st.session_state[slider_key] = labels[-1]
    st.session_state[seen_key] = len(labels)
    if len(labels) == 1:
        st.caption(f"Filmstrip: {labels[0]} (more frames come as training goes on).")
        return frames[0]
    chosen = st.select_slider(
        "Filmstrip: scrub through training", options=labels, key=slider_key,
        help="Frames taken before the first step, after steps 10, 30, 100, 300… and at every epoch's end. "
        "The curves above mark where you are.",
    )
    return frames[labels.index(chosen)]


def filter_mosaic(kernel: np.ndarray) -> np.ndarray:
    """The first layer's kernels (k, k, in, out) as tiles; with colour input, the mean over channels."""
    stack = np.asarray(kernel, dtype=np.float32).mean(axis=2)
    return images.mosaic(stack, max_channels=64, columns=8, tile=36, gap=3)


def show_frame(strip: Filmstrip, frame: Frame) -> None:
    """The filters and feature maps of one frame, with the probe image they come from."""
    probe_col, filters_col = st.columns([1, 3])
    with probe_col:
        if strip.probe is not None:
            st.image(images.png(images.enlarge(np.asarray(strip.probe, np.float32), 112, frame=True)),
                     caption="probe image")
    with filters_col:
        if frame.filters is None:
            st.caption("This model has no convolution, so there are no filters to watch.")
        else:
            k = frame.filters.shape[0]
            st.image(images.png(filter_mosaic(frame.filters)),
                     caption=f"first layer's {frame.filters.shape[-1]} filters ({k}×{k}), at {frame_label(frame)}")
    show_health(strip, frame)
    for picture in frame.maps:
        count = picture.array.shape[-1]
        shown = min(count, MAX_MAPS)
        st.image(images.png(images.mosaic(picture.array.astype(np.float32), max_channels=MAX_MAPS, columns=8, tile=48)),
                 caption=f"{picture.description}: {shown} of {count} feature maps of the probe image")


def heatmap_rows(layer: LayerOverTime, part: str) -> list[dict]:
    """One row per (filmstrip point, histogram bin) of the layer's weights or its outputs on the probe."""
    edges, shares = (layer.weight_edges, layer.weight_shares) if part == "weights" else (
        layer.activation_edges, layer.activation_shares)
    return [
        {"step": f"{step:,}", "from": float(low), "to": float(high), "share": float(share)}
        for step, row in zip(layer.steps, shares, strict=True)
        for low, high, share in zip(edges[:-1], edges[1:], row, strict=True)
    ]


def heatmap_chart(rows: list[dict], *, order: tuple[str, ...], part: str, current: str, span: tuple[float, float]):
    """One histogram per filmstrip point as a row (shares as colour), the point `current` outlined."""
    scheme, what = ("blues", "weight value") if part == "weights" else ("oranges", "outputs on the probe")
    y = alt.Y("step:N", sort=list(order), title="step", axis=alt.Axis(labelFontSize=10))
    chart = alt.Chart(alt.Data(values=rows)).mark_rect().encode(
        x=alt.X("from:Q", bin="binned", title=what), x2="to:Q", y=y,
        color=alt.Color("share:Q", scale=alt.Scale(type="sqrt", scheme=scheme), legend=None),
        tooltip=[alt.Tooltip("step:N"), alt.Tooltip("from:Q", format=".3f"), alt.Tooltip("to:Q", format=".3f"),
                 alt.Tooltip("share:Q", format=".1%", title="share of values")],
    )
    marked = [{"step": current, "from": span[0], "to": span[1]}]
    chart += alt.Chart(alt.Data(values=marked)).mark_rect(fill=None, stroke="#111111", strokeWidth=2).encode(
        x="from:Q", x2="to:Q", y=y)
    return chart


def heatmap(layer: LayerOverTime, part: str, current: int) -> dict:
    """The Vega-Lite spec of `heatmap_chart` for one layer (its shape cached, see ui.charts)."""
    edges = layer.weight_edges if part == "weights" else layer.activation_edges
    return charts.spec(heatmap_chart, heatmap_rows(layer, part), order=tuple(f"{step:,}" for step in layer.steps),
                       part=part, current=f"{current:,}", span=(float(edges[0]), float(edges[-1])))


def show_health(strip: Filmstrip, frame: Frame) -> None:
    """Per layer, how the weight and the probe's activation histograms change over the points; diagnoses here."""
    from cnn_core.engine import health

    layers = health.over_filmstrip(strip.frames)
    if not layers:
        return
    with st.expander("Health of the network across the filmstrip"):
        for sentence in health.at_frame(frame):
            (st.success if sentence.startswith("Most filters") else st.warning)(f"At step {frame.step:,}: {sentence}")
        st.caption(
            "Each row is one point of the filmstrip (the outlined one is where the slider is), each cell a range of "
            "values; the darker, the more of the layer's weights (left) or of its outputs on the probe image "
            "(right) fall there. Watch the weights spread out as the layer learns, and ReLU outputs pile up at 0 "
            "when filters die."
        )
        for layer in layers:
            word = "filters" if layer.kind == "conv2d" else "units"
            label = f"Layer {layer.number}" if layer.number >= 0 else "Layer"
            st.markdown(f"**{label}** · {layer.name} · {layer.units} {word}, {layer.activation or 'activation unknown'}")
            weights_col, activations_col = st.columns(2)
            height = 40 + 13 * len(layer.steps)
            weights_col.vega_lite_chart(heatmap(layer, "weights", frame.step), height=height)
            if layer.activation_shares.size:
                activations_col.vega_lite_chart(heatmap(layer, "activations", frame.step), height=height)


def show(strip: Filmstrip, key: str) -> Frame | None:
    """Slider plus pictures; returns the chosen frame so the caller can mark it on the curves."""
    frame = choose(strip, key)
    if frame is not None:
        show_frame(strip, frame)
    return frame
