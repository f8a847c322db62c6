"""Train: build a CNN from a preset or layer by layer, set the hyper-parameters, train it live, share it."""

import dataclasses
from urllib.parse import urlencode

import streamlit as st

from cnn_core.engine.specs import Experiment
from cnn_core.workshop import presets, sharing
from ui import classroom, errors, loaders
from ui import state as app_state
from ui.components import layer_editor, run_panel, training_controls
from ui.entry import start_page
from ui.text import plain

start_page()

state = app_state.get()
settings = loaders.settings()

st.title("Train a CNN")
st.caption(
    "Pick a starting point, change any layer or setting, and press Start. Training runs on the server in "
    "the background: you can leave this page and come back, the curves keep going."
)
classroom.handout_banner(state, "train")

# A shared link carries an experiment in the query parameters; read it once per session.
if not state.query_loaded:
    state.query_loaded = True
    if sharing.has_shared_experiment(st.query_params):
        try:
            experiment, locked = sharing.from_query_params(st.query_params.to_dict())
        except Exception as error:
            st.error(f"The shared link could not be loaded: {errors.message(error)}")
        else:
            state.load_experiment(experiment, locked)
            state.exercise_key = None


def _load_preset() -> None:
    # Choosing a preset loads it: the layers, settings and description shown always belong together.
    preset = presets.get(st.session_state["train-preset"])
    state.load_experiment(preset.experiment, state.locked)


def _unlock() -> None:
    state.locked = frozenset()
    st.query_params.clear()


if state.locked:
    info_col, button_col = st.columns([4, 1], vertical_alignment="center")
    info_col.info(f"This experiment came from a shared link or an exercise. Fixed: {plain(', '.join(sorted(state.locked)))}.")
    button_col.button("Unlock everything", on_click=_unlock, key="train-unlock")

st.subheader("1 · Architecture")
preset_col, load_col, name_col = st.columns([3, 1, 2], vertical_alignment="bottom")
preset_col.selectbox(
    "Start from a preset", list(presets.PRESETS), format_func=lambda key: presets.PRESETS[key].title,
    key="train-preset", disabled="layers" in state.locked, on_change=_load_preset,
    help="Choosing a preset replaces the layers and training settings below.",
)
load_col.button("Reset", on_click=_load_preset, key="train-load", width="stretch",
                disabled="layers" in state.locked, help="Undo your changes: load the chosen preset again.")
# Filled after the layer editor, which renames a changed preset ("custom, from …").
name_slot = name_col.empty()
description = st.empty()
spec = layer_editor.show("train-layers", max_params=settings.max_params, disabled="layers" in state.locked)
shown = next((preset for preset in presets.PRESETS.values() if preset.model.layers == state.layers), None)
if shown is not None:
    description.caption(f"{shown.description} *Source: {shown.source}*")
else:
    description.caption("Your own layers: no preset has exactly these, so no preset's description applies.")
typed = name_slot.text_input("Model name", value=state.run_name(), max_chars=60,
                             key=f"train-name-{state.training_generation}-{state.run_name()}")
if typed.strip() and typed != state.editor_name:
    state.editor_name, state.loaded_from = typed.strip(), None  # named by the learner: never renamed
if spec is not None:
    spec = dataclasses.replace(spec, name=state.editor_name)

st.subheader("2 · Training settings")
config = training_controls.show("train-settings", settings=settings, locked=state.locked)
experiment = Experiment(spec, config) if spec is not None and config is not None else None

st.subheader("3 · Run")
run_panel.show("train-run", experiment)

if experiment is not None:
    with st.expander("Share this experiment as a link"):
        locked = st.multiselect(
            "Fix these fields for whoever opens the link", sharing.LOCKABLE_FIELDS, key="train-share-lock",
            help="Useful in a workshop: everyone starts from the same model and can only change the rest.",
        )
        base = st.context.url.split("?")[0] if st.context.url else ""
        st.code(f"{base}?{urlencode(sharing.to_query_params(experiment, locked))}", language=None, wrap_lines=True)
