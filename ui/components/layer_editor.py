"""The layer editor: add, remove, reorder and tune layers, with a live table of shapes and parameters.

The layers live in the session state (`AppState.editor_rows`); widgets are keyed by each row's
`uid`, so a row keeps its values while it moves. Every run validates the stack with
`specs.infer_shapes`, so a learner reads what is wrong before any training starts.
"""

from __future__ import annotations

import dataclasses

import streamlit as st

from cnn_core.engine import registry, specs
from cnn_core.engine.specs import ACTIVATIONS, PADDINGS, ModelSpec
from ui import errors, layout
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


# Layers that work on an image (height × width × channels) and so belong before Flatten.
IMAGE_LAYERS = (*specs.SPATIAL_LAYERS, "batchnorm")
FLAT_STARTS = ("flatten", "global_avgpool", "dense")
FITS = "where it fits"


def fitting_position(kinds: list[str], kind: str) -> int:
    """Where a new layer of `kind` is valid and useful in a stack of layer kinds.

    Convolutions, pools and BatchNorm go at the end of the image part (just before Flatten),
    Flatten/GlobalAvgPool there too, Dense and Dropout just before the softmax head.
    """
    image_end = next((index for index, other in enumerate(kinds) if other in FLAT_STARTS), len(kinds))
    if kind in IMAGE_LAYERS or kind in ("flatten", "global_avgpool"):
        return image_end
    head = len(kinds) - 1 if kinds and kinds[-1] == "dense" else len(kinds)
    return max(head, image_end)


def _position_label(index: int, rows: list) -> str:
    if index < 0:
        return FITS
    if index == 0:
        return "at the top"
    return f"after {index} · {specs.describe(rows[index - 1].layer)}"


def _add(key: str) -> None:
    state = app_state.get()
    kind = st.session_state[f"{key}-add-kind"]
    rows = state.editor_rows
    picked = st.session_state.get(f"{key}-add-where", -1)
    position = picked if 0 <= picked <= len(rows) else fitting_position([row.layer.kind for row in rows], kind)
    state.add_layer(specs.LAYER_TYPES[kind](), position=position)
    st.session_state[f"{key}-add-where"] = -1




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
            left, right = st.columns(2)
            filters = left.number_input(
                "Filters", 1, specs.MAX_FILTERS, layer.filters, key=f"{prefix}-filters", disabled=disabled,
                help="How many different patterns this layer learns; each gives one output channel.",
            )
            kernel = right.number_input(
                "Kernel size", 1, specs.MAX_KERNEL, layer.kernel_size, key=f"{prefix}-kernel", disabled=disabled,
                help="The side of the square window each filter looks through (3 means 3×3).",
            )
            strides = left.number_input("Stride", 1, 4, layer.strides, key=f"{prefix}-strides", disabled=disabled,
                                        help="How far the window moves each step; 2 halves the output size.")
            padding = right.selectbox(
                "Padding", PADDINGS, PADDINGS.index(layer.padding), key=f"{prefix}-padding", disabled=disabled,
                help="'same' pads the border with zeros so the output keeps the input's size.",
            )
            activation = st.selectbox(
                "Activation", ACTIVATIONS, ACTIVATIONS.index(layer.activation), key=f"{prefix}-act",
                disabled=disabled,
            )
            return specs.Conv2D(int(filters), int(kernel), int(strides), padding, activation)
        case specs.MaxPool() | specs.AvgPool():
            size = st.number_input("Pool size", 1, 8, layer.pool_size, key=f"{prefix}-pool", disabled=disabled,
                                   help="The side of the square window that is reduced to one value.")
            return dataclasses.replace(layer, pool_size=int(size))
        case specs.Dropout():
            rate = st.number_input(
                "Rate", 0.0, 0.9, float(layer.rate), step=0.05, key=f"{prefix}-rate", disabled=disabled,
                help="The share of values set to zero at random during training.",
            )
            return specs.Dropout(round(float(rate), 4))
        case specs.Dense():
            units = st.number_input("Units", 1, specs.MAX_UNITS, layer.units, key=f"{prefix}-units",
                                    disabled=disabled)
            activation = st.selectbox(
                "Activation", ACTIVATIONS, ACTIVATIONS.index(layer.activation), key=f"{prefix}-act",
                disabled=disabled, help="The last layer needs 'softmax': it turns scores into probabilities.",
            )
            return specs.Dense(int(units), activation)
    st.caption("This layer has no settings.")
    return layer


def _rows(key: str, disabled: bool) -> None:
    state = app_state.get()
    rows = state.editor_rows
    kinds = list(specs.LAYER_TYPES)
    for index, row in enumerate(rows):
        # One line per layer at any width: the buttons keep their size, the label takes the rest.
        with st.container(border=True, horizontal=True, vertical_alignment="center", gap="small"):
            # Filled after the settings are read, so the label never lags one rerun behind.
            label = st.container().empty()
            up, down, remove = st, st, st
            with st.popover("Edit", help="Change this layer's type and settings", disabled=disabled,
                            width="content"):
                st.selectbox(
                    "Layer type", kinds, kinds.index(row.layer.kind), key=f"{key}-{row.uid}-kind",
                    format_func=lambda kind: ADDABLE[kind].split(" (")[0], on_change=_change_kind,
                    args=(key, row.uid), disabled=disabled,
                )
                row.layer = _layer_fields(key, row.uid, row.layer, disabled)
            label.markdown(f"**{index + 1}** · {specs.describe(row.layer)}")
            up.button(":material/arrow_upward:", key=f"{key}-{row.uid}-up", help="Move up", on_click=_move,
                      args=(row.uid, -1), disabled=disabled or index == 0, type="tertiary")
            down.button(":material/arrow_downward:", key=f"{key}-{row.uid}-down", help="Move down",
                        on_click=_move, args=(row.uid, 1), disabled=disabled or index == len(rows) - 1,
                        type="tertiary")
            remove.button(":material/close:", key=f"{key}-{row.uid}-remove", help="Remove this layer",
                          on_click=_remove, args=(row.uid,), disabled=disabled, type="tertiary")


def summary_table(infos: list[specs.LayerInfo]) -> list[dict]:
    return [
        {
            "#": info.index + 1,
            "layer": info.description,
            "output": " × ".join(str(v) for v in info.output_shape),
            "params": info.params,
        }
        for info in infos
    ]


def show(key: str, *, max_params: int, disabled: bool = False, name: str | None = None) -> ModelSpec | None:
    """Edit the session's layers; return the spec when it is valid, else show why and return None.

    The layers sit on the left and the live summary (output shape and parameters per layer) on the right.
    Without `name` the spec takes the session's model name (`AppState.run_name`).
    """
    state = app_state.get()
    rows_col, summary_col = layout.wrapping_row(key, ["wide", None])
    with rows_col:
        if disabled:
            st.info("The architecture is fixed for this run (set by a shared link or an exercise).")
        _rows(key, disabled)
        if not disabled:
            rows = state.editor_rows
            add_col, where_col = st.columns(2, vertical_alignment="bottom")
            add_col.selectbox("Add a layer", list(ADDABLE), format_func=ADDABLE.get, key=f"{key}-add-kind")
            where = [-1, *range(len(rows) + 1)]
            if st.session_state.get(f"{key}-add-where", -1) not in where:
                st.session_state[f"{key}-add-where"] = -1
            where_col.selectbox("Where", where, format_func=lambda index: _position_label(index, rows),
                                key=f"{key}-add-where",
                                help="'Where it fits' puts convolutions and pools before Flatten, dense "
                                "layers and dropout just before the output layer.")
            st.button("Add", key=f"{key}-add", on_click=_add, args=(key,), icon=":material/add:")


    # One output per class of the chosen dataset (a learner's own classes may have 2 to 10).
    dataset = state.editor_training.dataset
    classes = registry.get(dataset).num_classes if dataset in registry.names() else 10
    spec = ModelSpec(layers=state.layers, name=state.run_name() if name is None else name, num_classes=classes)
    with summary_col:
        st.markdown("**What each layer outputs** (for one 28 × 28 × 1 image)")
        try:
            infos = specs.infer_shapes(spec, max_params=max_params)
        except Exception as error:
            st.error(f"This model cannot be built yet: {errors.message(error)}")
            return None
        # A static table wraps its cells; the dataframe grid cut the params column off at 400 px.
        st.table(summary_table(infos), hide_index=True)
        total = sum(info.params for info in infos)
        st.caption(f"{len(infos)} layers, **{total:,}** parameters (the limit here is {max_params:,}).")
    return spec
