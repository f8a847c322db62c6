"""The layer editor: add, remove, reorder and tune layers, with a live table of shapes and parameters.

The layers live in the session state (`AppState.editor_rows`); widgets are keyed by each row's
`uid`, so a row keeps its values while it moves. Every run validates the stack with
`specs.infer_shapes`, so a learner reads what is wrong before any training starts.
"""

from __future__ import annotations

import dataclasses

import streamlit as st

from cnn_core import specs
from cnn_core.specs import ACTIVATIONS, PADDINGS, ModelSpec
from ui import state as app_state

# What the "add" menu offers, in the order a convnet is usually built.
ADDABLE = {
    "conv2d": "Conv2D (convolution)",
    "maxpool": "MaxPool (keep the strongest)",
    "avgpool": "AvgPool (average)",
    "batchnorm": "BatchNorm",
    "dropout": "Dropout",
    "flatten": "Flatten",
    "global_avgpool": "GlobalAvgPool",
    "dense": "Dense (fully connected)",
}


def _index_of(uid: int) -> int | None:
    # Callbacks look rows up by uid: by the time they run, a preset may have replaced the list.
    for index, row in enumerate(app_state.get().editor_rows):
        if row.uid == uid:
            return index
    return None


def _move(uid: int, offset: int) -> None:
    rows = app_state.get().editor_rows
    index = _index_of(uid)
    if index is not None and 0 <= index + offset < len(rows):
        rows[index], rows[index + offset] = rows[index + offset], rows[index]


def _remove(uid: int) -> None:
    index = _index_of(uid)
    if index is not None:
        del app_state.get().editor_rows[index]


def _add(key: str) -> None:
    state = app_state.get()
    kind = st.session_state[f"{key}-add-kind"]
    layer = specs.LAYER_TYPES[kind]()
    rows = state.editor_rows
    # New layers go before the classifier head, where they can do something useful.
    has_head = rows and isinstance(rows[-1].layer, specs.Dense) and rows[-1].layer.activation == "softmax"
    state.add_layer(layer, position=len(rows) - 1 if has_head else None)


def _change_kind(key: str, uid: int) -> None:
    index = _index_of(uid)
    if index is not None:
        kind = st.session_state[f"{key}-{uid}-kind"]
        app_state.get().editor_rows[index].layer = specs.LAYER_TYPES[kind]()


def _layer_fields(key: str, uid: int, layer: specs.Layer, disabled: bool) -> specs.Layer:
    """Widgets for one layer's settings; returns the layer as the widgets now describe it."""
    prefix = f"{key}-{uid}-{layer.kind}"
    match layer:
        case specs.Conv2D():
            cols = st.columns(5)
            filters = cols[0].number_input(
                "filters", 1, specs.MAX_FILTERS, layer.filters, key=f"{prefix}-filters", disabled=disabled
            )
            kernel = cols[1].number_input(
                "kernel", 1, specs.MAX_KERNEL, layer.kernel_size, key=f"{prefix}-kernel", disabled=disabled
            )
            strides = cols[2].number_input("stride", 1, 4, layer.strides, key=f"{prefix}-strides", disabled=disabled)
            padding = cols[3].selectbox(
                "padding", PADDINGS, PADDINGS.index(layer.padding), key=f"{prefix}-padding", disabled=disabled
            )
            activation = cols[4].selectbox(
                "activation", ACTIVATIONS, ACTIVATIONS.index(layer.activation), key=f"{prefix}-act",
                disabled=disabled,
            )
            return specs.Conv2D(int(filters), int(kernel), int(strides), padding, activation)
        case specs.MaxPool() | specs.AvgPool():
            size = st.number_input("pool size", 1, 8, layer.pool_size, key=f"{prefix}-pool", disabled=disabled)
            return dataclasses.replace(layer, pool_size=int(size))
        case specs.Dropout():
            rate = st.number_input(
                "rate", 0.0, 0.9, float(layer.rate), step=0.05, key=f"{prefix}-rate", disabled=disabled
            )
            return specs.Dropout(round(float(rate), 4))
        case specs.Dense():
            cols = st.columns(2)
            units = cols[0].number_input("units", 1, specs.MAX_UNITS, layer.units, key=f"{prefix}-units",
                                         disabled=disabled)
            activation = cols[1].selectbox(
                "activation", ACTIVATIONS, ACTIVATIONS.index(layer.activation), key=f"{prefix}-act",
                disabled=disabled,
            )
            return specs.Dense(int(units), activation)
    st.caption("No settings.")
    return layer


def _rows(key: str, disabled: bool) -> None:
    state = app_state.get()
    rows = state.editor_rows
    kinds = list(specs.LAYER_TYPES)
    for index, row in enumerate(rows):
        with st.container(border=True):
            kind_col, fields_col, buttons_col = st.columns([2, 7, 2], vertical_alignment="bottom")
            kind_col.selectbox(
                f"Layer {index + 1}", kinds, kinds.index(row.layer.kind), key=f"{key}-{row.uid}-kind",
                on_change=_change_kind, args=(key, row.uid), disabled=disabled,
            )
            with fields_col:
                row.layer = _layer_fields(key, row.uid, row.layer, disabled)
            up, down, remove = buttons_col.columns(3)
            up.button("↑", key=f"{key}-{row.uid}-up", help="Move up", on_click=_move, args=(row.uid, -1),
                      disabled=disabled or index == 0)
            down.button("↓", key=f"{key}-{row.uid}-down", help="Move down", on_click=_move,
                        args=(row.uid, 1), disabled=disabled or index == len(rows) - 1)
            remove.button("✕", key=f"{key}-{row.uid}-remove", help="Remove this layer", on_click=_remove,
                          args=(row.uid,), disabled=disabled)


def summary_table(infos: list[specs.LayerInfo]) -> list[dict]:
    return [
        {
            "#": info.index + 1,
            "layer": info.description,
            "output shape": " × ".join(str(v) for v in info.output_shape),
            "parameters": info.params,
        }
        for info in infos
    ]


def show(key: str, *, max_params: int, disabled: bool = False, name: str = "custom") -> ModelSpec | None:
    """Edit the session's layers; return the spec when it is valid, else show why and return None."""
    state = app_state.get()
    if disabled:
        st.info("The architecture is fixed for this run (set by a shared link or an exercise).")
    _rows(key, disabled)
    if not disabled:
        add_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
        add_col.selectbox("Add a layer", list(ADDABLE), format_func=ADDABLE.get, key=f"{key}-add-kind")
        button_col.button("Add layer", key=f"{key}-add", on_click=_add, args=(key,), width="stretch")

    spec = ModelSpec(layers=state.layers, name=name)
    try:
        infos = specs.infer_shapes(spec, max_params=max_params)
    except ValueError as error:
        st.error(f"This model cannot be built yet: {error}")
        return None
    st.dataframe(summary_table(infos), hide_index=True, width="stretch")
    total = sum(info.params for info in infos)
    st.caption(f"Input 28 × 28 × 1 → {len(infos)} layers → {total:,} trainable parameters.")
    return spec
