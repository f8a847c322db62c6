"""A shared link made on someone's own classes: its layers and settings, offered on a dataset the visitor has.

A link never carries pictures, so opened by anyone but its author such a link cannot train as it
is. `sharing.from_query_params` says so with `DataNotShared`; the Train page keeps it here (a
reload asks again, since nothing was loaded yet) and offers the architecture on a built-in dataset
or on the visitor's own classes, with the output layer sized to the chosen dataset's classes.
"""

from __future__ import annotations

import streamlit as st

from cnn_core.engine import registry
from cnn_core.workshop import sharing
from ui import own_classes
from ui.state import AppState
from ui.text import plain

KEY = "train-link-offer"


def keep(offer: sharing.DataNotShared, params: dict[str, str]) -> None:
    st.session_state[KEY] = (offer, params)


def _load(state: AppState) -> None:
    offer, params = st.session_state.pop(KEY)
    dataset = st.session_state[f"{KEY}-dataset"]
    # A dataset lock cannot hold on pictures the link does not carry; the author's other locks do.
    state.load_experiment(sharing.for_dataset(offer.experiment, dataset), offer.locked - {"dataset"})
    state.exercise_key = None
    # Remembered like any opened link, so a reload keeps the choice instead of asking again.
    state.remember_link(params)


def show(state: AppState) -> None:
    """The sentence and the choice, while a link of this kind waits for one."""
    kept = st.session_state.get(KEY)
    if kept is None:
        return
    offer, _ = kept
    st.warning(plain(str(offer)))
    classes = offer.experiment.model.num_classes
    names = own_classes.choices()
    pick_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
    dataset = pick_col.selectbox(
        "Train the link's architecture on", names, key=f"{KEY}-dataset",
        format_func=lambda name: f"{registry.title(name)} · {registry.get(name).num_classes} classes",
    )
    button_col.button("Load it", key=f"{KEY}-load", type="primary", on_click=_load, args=(state,), width="stretch")
    wanted = registry.get(dataset).num_classes
    if wanted == classes:
        st.caption(f"Exactly the link's model: {classes} outputs, one per class.")
    else:
        st.caption(f"The link's model has {classes} outputs; on {plain(registry.title(dataset))} its last layer gets "
                   f"{wanted}, one per class. Every other layer and setting stays as the link has it.")
    if not any(not registry.get(name).bundled for name in names):
        st.caption("To use classes of your own, collect them on the Your own classes page, then open the link again.")
