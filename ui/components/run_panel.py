"""Start a training run through the shared queue, watch it live, and show what it produced.

Used by the Train and Exercises pages. A session has at most one run at a time; the job lives
in the queue's background thread, so this panel can disappear and come back without harm.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

import streamlit as st

from cnn_core.engine.errors import UserError
from cnn_core.engine.names import safe_name
from cnn_core.engine.specs import Experiment
from ui import errors, loaders, training_session, workspace
from ui import state as app_state
from ui.components import inside_model, live_training
from ui.text import message as error_text
from ui.text import plain

if TYPE_CHECKING:
    from cnn_core.engine.filmstrip import Filmstrip
    from cnn_core.engine.training import ProgressSnapshot

logger = logging.getLogger(__name__)


def _start(experiment: Experiment, initial_weights=None) -> None:
    state = app_state.get()
    try:
        # The filmstrip follows the learner's own drawing when there is one, else the first test image.
        job = loaders.job_queue().submit(
            experiment, owner=state.session_id, probe=state.last_drawing, initial_weights=initial_weights
        )
    except Exception as error:
        st.session_state["run-panel-error"] = errors.message(error)
        return
    state.training_job = job
    state.last_result_message = None


def _save(name: str, key: str) -> None:
    from cnn_core.service import persistence

    state = app_state.get()
    wanted = st.session_state.get(f"{key}-save-name", "").strip()
    try:
        if not wanted:
            raise UserError("Type a name to save the model under.")
        if loaders.settings().host_mode:
            # A shared server keeps the model in the learner's own workspace, never in a shared folder.
            saved = state.keep_model(name, wanted)
        else:
            path = persistence.save_bundle(state.models[name].as_bundle(name=wanted), loaders.settings().models_dir)
            state.models.refresh(force=True)
            saved = f"{path.stem}{workspace.SAVED_SUFFIX}"
    except Exception as error:
        st.session_state[f"{key}-save-message"] = ("error", errors.message(error))
        return
    st.session_state[f"{key}-save-message"] = (
        "success", f"Saved as “{plain(saved)}”: pick it in the model picker of any page, today or later.")


def show_result(key: str) -> None:
    """The last run's outcome: message, curves, download and save.

    From the session's job while it has one; after a reload (a new session, the job already
    collected) from the run the workspace kept.
    """
    state = app_state.get()
    job = state.training_job
    if job is None:
        _show_kept_run(state, key)
        return
    if job.state == "failed":
        st.error(error_text(job.error) if job.error else "Training failed.")
        return
    if job.state == "abandoned":
        st.warning(error_text(job.error) if job.error else "The run was stopped because nobody was watching it.")
        return
    name = state.runs[-1].name if state.runs and state.runs[-1].name in state.models else None
    _show_outcome(state, name, state.last_result_message, job.progress.snapshot(), job.filmstrip, key)


def _show_kept_run(state: app_state.AppState, key: str) -> None:
    """The workspace's newest run, shown as it was when it ended, while its model is still there."""
    run = state.runs[-1] if state.runs else None
    if run is None or run.name not in state.models:
        return
    _show_outcome(state, run.name, run.message, training_session.snapshot_of(run), _kept_filmstrip(state, run), key)


def _kept_filmstrip(state: app_state.AppState, run) -> Filmstrip | None:
    """The run's stored filmstrip, decoded once per session and run."""
    from cnn_core.engine.filmstrip import Filmstrip

    kept = st.session_state.get("run-panel-filmstrip")
    if kept is not None and kept[0] == (state.session_id, run.key):
        return kept[1]
    data = state.workspace.filmstrip(run.key) if run.key else None
    strip = None
    if data is not None:
        try:
            strip = Filmstrip.from_bytes(data)
        except Exception:
            # Only the pictures are lost: the curves, the model and the buttons still come.
            logger.exception("The filmstrip of run %s in workspace %s does not open.", run.key, state.session_id)
    st.session_state["run-panel-filmstrip"] = ((state.session_id, run.key), strip)
    return strip


def _show_outcome(state: app_state.AppState, name: str | None, result_message: str | None,
                  snapshot: ProgressSnapshot, strip: Filmstrip | None, key: str) -> None:
    if result_message:
        st.success(plain(result_message))
    if snapshot.precision == "bfloat16":
        st.caption(
            "Trained in **bfloat16** (mixed precision: this CPU multiplies bfloat16 natively), with a float32 "
            "softmax; the model you get predicts in float32."
        )
    if snapshot.epoch_history or snapshot.batch_loss:
        live_training.show_filmstrip_and_curves(strip, snapshot, key)
    message = st.session_state.pop(f"{key}-save-message", None)
    if name is None:
        if message is not None:
            (st.error if message[0] == "error" else st.success)(message[1])
        return
    st.markdown(f"The model is now your **active model**: {plain(name)}. Try it on the Draw or Evaluate page.")
    _next_steps(state.models[name], key)
    download_col, save_col = st.columns(2)
    with download_col:
        from cnn_core.service import persistence

        st.download_button(
            "Download the model (.keras)", data=lambda: persistence.model_to_bytes(state.models[name].model),
            file_name=f"{safe_name(name)}.keras", mime="application/octet-stream", key=f"{key}-download",
            on_click="ignore",
        )
    with save_col:
        label = "Save in your workspace as" if loaders.settings().host_mode else "Save on this server as"
        st.text_input(label, value=safe_name(name), key=f"{key}-save-name")
        st.button("Save", key=f"{key}-save", on_click=_save, args=(name, key))
        if message is not None:
            (st.error if message[0] == "error" else st.success)(message[1])


def _continue(bundle, key: str) -> None:
    extra = int(st.session_state[f"{key}-more-epochs"])
    experiment = dataclasses.replace(
        bundle.experiment, training=dataclasses.replace(bundle.experiment.training, epochs=extra)
    )
    _start(experiment, initial_weights=bundle.model.get_weights())


def _next_steps(bundle, key: str) -> None:
    """Continue training, download the run as plain Keras, and look inside the model."""
    if bundle.experiment is None:
        return
    from cnn_core.workshop import export

    # One row that wraps, as the live view's steering row: four equal columns cut the labels at 800 px.
    row = st.container(horizontal=True, vertical_alignment="bottom")
    row.number_input("More epochs", min_value=1, max_value=loaders.settings().max_epochs, value=2, step=1,
                     key=f"{key}-more-epochs", width=170)
    row.button("Continue training", key=f"{key}-continue", on_click=_continue, args=(bundle, key),
               help="Trains this model further from its current weights, with the same "
               "settings (the optimizer and any schedule start afresh).")
    stem = safe_name(bundle.name)
    row.download_button(
        "Download as script", data=lambda: export.script(bundle.experiment, bundle.name), file_name=f"{stem}.py",
        mime="text/x-python", key=f"{key}-script", on_click="ignore",
        help="The same run in plain Keras, as in the classic tutorials: data, layers, optimizer, seed, model.fit.",
    )
    row.download_button(
        "Download as notebook", data=lambda: export.notebook(bundle.experiment, bundle.name),
        file_name=f"{stem}.ipynb", mime="application/x-ipynb+json", key=f"{key}-notebook", on_click="ignore",
    )
    st.markdown("**Inside the trained model**")
    inside_model.show(bundle, bundle.experiment.training.dataset, app_state.get().last_drawing, key)


def show(key: str, experiment: Experiment | None) -> None:
    """The Start button (disabled while `experiment` is invalid), the live view, then the result."""
    state = app_state.get()
    job = state.training_job
    if job is not None and not job.is_active:
        training_session.collect(state, job)
    if job is not None and job.is_active:
        live_training.show(job, key=key)
        return
    # A worker process starts (and warms TensorFlow up) while the learner is still editing, so Start
    # does not wait for it; a no-op when an idle worker exists or runs train in threads.
    loaders.job_queue().prewarm()
    st.button(
        "Start training", key=f"{key}-start", type="primary", disabled=experiment is None,
        on_click=_start, args=(experiment,), help=None if experiment else "Fix the problems above first.",
    )
    error = st.session_state.pop("run-panel-error", None)
    if error:
        st.error(error_text(error))
    show_result(key)
