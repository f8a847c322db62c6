"""Train: build a CNN from a preset or layer by layer, set the hyper-parameters, train it live, share it."""

import dataclasses
from urllib.parse import urlencode

import streamlit as st

from cnn_core.engine import registry
from cnn_core.engine.specs import Experiment
from cnn_core.workshop import presets, sharing
from ui import classroom, errors, loaders, own_classes, timing
from ui import state as app_state
from ui.components import layer_editor, link_offer, run_panel, training_controls
from ui.entry import start_page
from ui.text import plain

# The run panel below shows a running job live: no sidebar indicator for the same run.
start_page(live_view=True)
run_started = timing.start()

state = app_state.get()
settings = loaders.settings()

st.title("Train a CNN")
st.caption(
    "Pick a starting point, change any layer or setting, and press Start. Training runs on the server in "
    "the background: you can leave this page and come back, the curves keep going."
)
classroom.handout_banner(state, "train")


def _open_link(params: dict) -> None:
    """Load a shared link; ValueError when its signature does not hold (edited by hand) or it is broken.

    A link made on someone else's own classes is kept aside (`link_offer.keep`) until the learner
    picks a dataset for its architecture.
    """
    try:
        experiment, locked = sharing.from_query_params(
            params, secret=loaders.link_secret(), own_datasets=own_classes.choices())
    except sharing.DataNotShared as offer:
        link_offer.keep(offer, sharing.link_params(params))
        return
    state.load_experiment(experiment, locked)
    state.exercise_key = None
    # A lock must hold on a reload of any page, so the workspace keeps the signed link.
    state.remember_link(sharing.link_params(params))


# A shared link carries an experiment in the query parameters; read it once per session. A reload
# of the same link keeps what the learner changed since (the workspace kept the editor, locks
# included); without an editor to restore, the workspace's last link is reapplied.
if not state.query_loaded:
    state.query_loaded = True
    remembered = state.remembered_link()
    reloaded = state.editor_restored and sharing.link_params(st.query_params.to_dict()) == remembered
    if sharing.has_shared_experiment(st.query_params) and not reloaded:
        try:
            _open_link(st.query_params.to_dict())
        except Exception as error:
            st.error(f"The shared link could not be loaded: {errors.message(error)}")
            if remembered and not state.editor_restored:
                _open_link(remembered)
    elif remembered and not state.editor_restored:
        with errors.shown_as_error(stop=False):
            _open_link(remembered)
link_offer.show(state)


def _load_preset() -> None:
    # Choosing a preset loads it: the layers, settings and description shown always belong together.
    preset = presets.get(st.session_state["train-preset"])
    state.load_experiment(preset.experiment, state.locked)


def _leave_exercise() -> None:
    state.exercise_key = None
    state.load_experiment(presets.get(app_state.STARTING_PRESET).experiment)


if state.locked:
    # A lock belongs to whoever made the link or the exercise: nothing here unlocks it.
    fixed = ", ".join(sharing.lock_labels(state.locked))
    if state.exercise_key is not None:
        info_col, button_col = st.columns([4, 1], vertical_alignment="center")
        info_col.info(f"This setup comes from an exercise, which fixes: {fixed}.")
        button_col.button("Leave the exercise", on_click=_leave_exercise, key="train-leave-exercise",
                          help="Start again from the first preset, with nothing fixed.")
    else:
        st.info(f"This experiment comes from a workshop link; whoever shared it fixed: {plain(fixed)}.")

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
        # The address's own parameters (the workspace id above all) never go into a shared link.
        base = st.context.url.split("?")[0] if st.context.url else ""
        secret = loaders.link_secret()
        if state.locked:
            # A participant passes on what they were given, locks included; only its author changes them.
            locked = state.locked
            st.caption(f"Fixed by whoever shared it: {', '.join(sharing.lock_labels(locked))}.")
        else:
            locked = st.multiselect(
                "Fix these fields for whoever opens the link", sharing.LOCKABLE_FIELDS, key="train-share-lock",
                format_func=sharing.LOCK_LABELS.get,
                help="Useful in a workshop: everyone starts from the same model and can only change the rest.",
            )
        st.markdown("**Link for participants**" if locked else "**Link**")
        st.code(f"{base}?{urlencode(sharing.to_query_params(experiment, locked, secret=secret))}",
                language=None, wrap_lines=True)
        if locked and not state.locked:
            st.markdown("**Your own link** (the same experiment, nothing fixed; keep it to change the setup)")
            st.code(f"{base}?{urlencode(sharing.to_query_params(experiment, secret=secret))}",
                    language=None, wrap_lines=True)
        st.caption("Links are signed by this server: a link edited by hand does not open.")
        if not registry.get(experiment.training.dataset).bundled:
            st.caption("The link carries the layers and settings, never your pictures: whoever opens it picks a "
                       "built-in dataset or classes of their own to train the same architecture on.")

# A reload must find the layers and settings as they are now.
state.save_editor()
timing.record("train page", run_started)
