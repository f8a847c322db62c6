"""One neuron, by hand: pick a layer and a cell (click the feature map or use the pickers), see its arithmetic."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st

from cnn_core.engine import explain
from ui import images
from ui.components import explain_conv
from ui.components.explain_overview import LAYER_KEY
from ui.text import plain

MAP_PX = 280  # the clickable feature map's size on screen
KIND_WORDS = {
    "conv2d": "convolution", "maxpool": "max pooling", "avgpool": "average pooling",
    "batchnorm": "batch normalisation", "dense": "dense", "flatten": "flatten", "dropout": "dropout",
    "global_avgpool": "global average pooling", "global_maxpool": "global max pooling",
}


def _label(info) -> str:
    return f"{info.name} · {KIND_WORDS.get(info.kind, info.kind)} · {'×'.join(map(str, info.output_shape))}"


def _take_click(event, row_key: str, col_key: str, seen_key: str) -> None:
    """Copy a click on the feature map into the row and column pickers (once per click)."""
    points = (event or {}).get("selection", {}).get("cell") or []
    if not points:
        return
    point = points[0]
    click = (int(point["r"]), int(point["c"]))
    if st.session_state.get(seen_key) != click:
        st.session_state[seen_key] = click
        st.session_state[row_key], st.session_state[col_key] = click


def pick(infos, outputs: Sequence[np.ndarray | None], class_names: Sequence[str]) -> tuple:
    """The layer, row, column and channel the learner chose."""
    choices = [info for info in infos if info.explainable]
    by_index = {info.index: info for info in choices}
    # Another model (another list of layers) starts again at its first convolution, or first dense layer.
    layout = tuple((info.name, info.output_shape) for info in choices)
    if st.session_state.get(f"{LAYER_KEY}-layout") != layout or st.session_state.get(LAYER_KEY) not in by_index:
        st.session_state[f"{LAYER_KEY}-layout"] = layout
        st.session_state[LAYER_KEY] = next(
            (info.index for kind in ("conv2d", "dense") for info in choices if info.kind == kind), choices[0].index)
    index = st.selectbox("Layer", list(by_index), key=LAYER_KEY, format_func=lambda i: _label(by_index[i]))
    info = by_index[index]
    shape = info.output_shape
    if len(shape) != 3:
        last = index == max(by_index) and shape[0] == len(class_names)
        unit = st.selectbox(
            "Unit", range(shape[0]), key=f"explain-unit-{index}",
            format_func=(lambda u: f"{u}: class {class_names[u]}") if last else (lambda u: f"unit {u}"),
        )
        return info, 0, 0, int(unit)
    height, width, channels = shape
    row_key, col_key = f"explain-row-{index}", f"explain-col-{index}"
    map_col, pick_col = st.columns([3, 2], gap="large")
    with pick_col:
        channel = st.number_input(f"Channel (0–{channels - 1})", 0, channels - 1, 0, key=f"explain-channel-{index}")
    values = outputs[index][..., int(channel)]
    chart_key = f"explain-map-{index}-{int(channel)}"
    _take_click(st.session_state.get(chart_key), row_key, col_key, f"{chart_key}-seen")
    selected = (int(st.session_state.get(row_key, height // 2)), int(st.session_state.get(col_key, width // 2)))
    with map_col, st.container(key="explain-map"):
        cell_px = max(6, MAP_PX // max(height, width))
        # The title is a caption outside the chart: inside, it would squeeze the cells out of square.
        st.caption(f"{plain(info.name)}, channel {int(channel)}: click a cell")
        spec = explain_conv.grid_spec(values, numbers=max(height, width) <= 9, cell_px=cell_px, selectable=True,
                                      selected=selected, decimals=2)
        st.vega_lite_chart(spec, width="content", key=chart_key, on_select="rerun", selection_mode="cell")
    with pick_col:
        row = st.number_input(f"Row (0–{height - 1})", 0, height - 1, height // 2, key=row_key)
        col = st.number_input(f"Column (0–{width - 1})", 0, width - 1, width // 2, key=col_key)
    return info, int(row), int(col), int(channel)


def _receptive_field(model, infos, trace, image: np.ndarray) -> None:
    box = trace.receptive_field
    picture = np.repeat(images.enlarge(image, 140)[..., np.newaxis], 3, axis=2)
    factor = picture.shape[0] // image.shape[0]
    top, left, bottom, right = (v * factor for v in (box.top, box.left, box.bottom, box.right))
    for thickness in range(2):
        picture[[top + thickness, bottom - 1 - thickness], left:right] = images.ACCENT_RGB
        picture[top:bottom, [left + thickness, right - 1 - thickness]] = images.ACCENT_RGB
    picture_col, words_col = st.columns([1, 3], vertical_alignment="center")
    picture_col.image(images.png(picture), output_format="PNG")
    words_col.markdown(f"This unit sees input rows {box.top}–{box.bottom - 1}, columns {box.left}–{box.right - 1}: "
                       f"**{box.height}×{box.width} pixels** of the image (its receptive field, outlined).")
    growth = []
    for info in infos:
        if info.kind in ("conv2d", "maxpool", "avgpool"):
            h, w = info.output_shape[:2]
            field = explain.receptive_field(model, info.index, h // 2, w // 2)
            growth.append(f"{info.name} {field.height}×{field.width}")
    if growth:
        words_col.caption("What one unit sees grows layer by layer: " + " → ".join(growth))


def _conv(model, infos, trace, outputs, image: np.ndarray) -> None:
    below = image if trace.input_layer_index == -1 else outputs[trace.input_layer_index]
    below = below if below.ndim == 3 else below[..., np.newaxis]
    parts = [
        explain_conv.ChannelPart(f"channel {c.channel}" if trace.patch.shape[-1] > 1 else "input",
                                 below[..., c.channel], c.patch, c.weights, c.products, c.total)
        for c in trace.contributions
    ]
    explanation = explain_conv.ConvExplanation(
        where=f"{trace.layer_name}[{trace.row}, {trace.col}], channel {trace.channel}", window=trace.window,
        parts=parts, channels=len(parts), bias=trace.bias, preactivation=trace.preactivation,
        activation=trace.activation, value=trace.value, model_value=trace.model_value, matches=trace.matches,
        decimals=2,
    )
    k = trace.weights.shape[0]
    over = "the image" if len(parts) == 1 else f"all {len(parts)} of its channels, the strongest contributors first"
    st.markdown(f"A {k}×{k} window at row {trace.window[0]}, column {trace.window[1]} of the layer below "
                f"({trace.padding} padding, stride {trace.stride}), over {over}.")
    if len(parts) > 1:
        bars = {"channel": [str(p.label) for p in parts], "adds": [float(p.total) for p in parts]}
        st.vega_lite_chart(bars, {
            "height": 120, "mark": "bar",
            "encoding": {"x": {"field": "channel", "type": "nominal", "sort": None, "title": None,
                               "axis": {"labels": len(parts) <= 16}},
                         "y": {"field": "adds", "type": "quantitative", "title": "adds to the sum"},
                         "color": {"condition": {"test": "datum.adds >= 0", "value": "#d62728"},
                                   "value": "#1f77b4"},
                         "tooltip": [{"field": "channel"}, {"field": "adds", "format": ".3f"}]},
        }, width="stretch")
    explain_conv.show(explanation, key="explain-conv")
    following = next((info for info in infos if info.index == trace.layer_index + 1), None)
    if following is not None and following.kind == "batchnorm":
        step = explain.neuron_trace(model, image, following.index, trace.row, trace.col, trace.channel)
        st.markdown(f"then {plain(following.name)}, its own step: {step.patch[0]:.4f} × {step.weights[0]:.4f} + "
                    f"{step.bias:.4f} = **{step.value:.4f}** (open it for where the two numbers come from)")


def _pool(trace, outputs, image: np.ndarray) -> None:
    below = image if trace.input_layer_index == -1 else outputs[trace.input_layer_index][..., trace.channel]
    left, right = st.columns(2)
    with left:
        explain_conv.grid(below, title=f"channel {trace.channel} of the layer below", highlight=trace.window,
                          numbers=max(below.shape) <= 9, cell_px=max(6, 168 // max(below.shape)))
    with right:
        highlight = (*trace.winner, 1, 1) if trace.winner is not None else None
        explain_conv.grid(trace.patch, title="the window", highlight=highlight)
    if trace.kind == "maxpool":
        st.markdown(f"max pooling keeps the largest of the {trace.details['count']} numbers in the window: "
                    f"the one at row {trace.window[0] + trace.winner[0]}, column {trace.window[1] + trace.winner[1]}"
                    f" = **{trace.value:.4f}**")
    else:
        st.markdown(f"average pooling: their sum {trace.preactivation:.4f} / {trace.details['count']} = "
                    f"**{trace.value:.4f}**")


def _batchnorm(trace) -> None:
    d = trace.details
    st.markdown(
        f"batch normalisation at prediction time: (x − mean) / √(variance + ε) × γ + β = "
        f"({trace.patch[0]:.4f} − {d['mean']:.4f}) / √({d['variance']:.4f} + {d['epsilon']:g}) × {d['gamma']:.4f} "
        f"+ {d['beta']:.4f}"
    )
    st.markdown(f"the same as one multiply and one add: {trace.patch[0]:.4f} × {trace.weights[0]:.4f} + "
                f"{trace.bias:.4f} = **{trace.value:.4f}**")


def _dense(trace, infos, class_names: Sequence[str]) -> None:
    by_index = {info.index: info for info in infos}
    source = by_index.get(trace.input_layer_index)
    flattened = None
    if source is not None and source.kind == "flatten":
        flattened = next((info for info in infos if info.index == source.index - 1), None)

    def where(i: int) -> str:
        if flattened is not None and len(flattened.output_shape) == 3:
            r, c, ch = np.unravel_index(i, flattened.output_shape)
            return f"{i} ({flattened.name} row {r}, col {c}, channel {ch})"
        return str(i)

    st.markdown(f"{len(trace.patch)} inputs, each times its weight; the largest products:")
    st.dataframe([{"input": where(i), "value": round(v, 4), "weight": round(w, 4), "product": round(p, 4)}
                  for i, v, w, p in trace.top_inputs], hide_index=True, width="stretch")
    st.markdown(f"the {len(trace.patch)} products add up to {trace.products.sum():.4f}; + bias {trace.bias:.4f} = "
                f"**{trace.preactivation:.4f}**")
    if trace.activation == "softmax":
        exps = np.exp(trace.logits - trace.logits.max())
        st.markdown(f"softmax: e^(score − largest score) / their total = {exps[trace.channel]:.4f} / "
                    f"{exps.sum():.4f} = **{trace.value:.4f}**")
        st.dataframe([{"class": class_names[i] if i < len(class_names) else str(i), "score (logit)": round(float(z), 3),
                       "e^(score − largest)": round(float(e), 4), "probability": f"{p:.2%}"}
                      for i, (z, e, p) in enumerate(zip(trace.logits, exps, trace.probabilities, strict=True))],
                     hide_index=True, width="stretch")
    else:
        line = explain_conv.ACTIVATION_LINES.get(trace.activation, trace.activation + "({pre}) = **{value}**")
        st.markdown(line.format(pre=f"{trace.preactivation:.4f}", value=f"{trace.value:.4f}"))


def show(model, infos, outputs, image: np.ndarray, class_names: Sequence[str]) -> None:
    st.subheader("One neuron, by hand")
    st.caption("Every number a network computes is a few multiplications and additions. Pick any number in any "
               "layer and see them all.")
    info, row, col, channel = pick(infos, outputs, class_names)
    trace = explain.neuron_trace(model, image, info.index, row, col, channel)
    # The receptive field above the arithmetic, not beside it: the grids need the page's full width.
    with st.container(key="explain-field"):
        _receptive_field(model, infos, trace, image)
    with st.container(key="explain-detail"):
        if trace.kind == "conv2d":
            _conv(model, infos, trace, outputs, image)
        elif trace.kind in ("maxpool", "avgpool"):
            _pool(trace, outputs, image)
        elif trace.kind == "batchnorm":
            _batchnorm(trace)
        elif trace.kind == "dense":
            _dense(trace, infos, class_names)
        else:
            st.markdown(f"{KIND_WORDS.get(trace.kind, trace.kind)} only moves numbers: this one is "
                        f"**{trace.value:.4f}**, taken from the layer below.")
        if trace.kind != "conv2d":
            mark = "✓" if trace.matches else "✗"
            st.markdown(f"equals the model's own output: {mark} (the model computed {trace.model_value:.6g})")
