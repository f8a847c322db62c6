"""A small training indicator in the sidebar of every page while the session's run is queued or running.

It also keeps the run alive: the job queue stops runs whose owner stops sending heartbeats (a
closed tab), so every open page must send them, not only the Train page. When the run ends,
its model is collected into the session and the page reruns to show it.
"""

from __future__ import annotations

import streamlit as st

from ui import state as app_state
from ui import training_session
from ui.text import plain

REFRESH_S = 2


@st.fragment(run_every=REFRESH_S)
def _status() -> None:
    state = app_state.get()
    job = state.training_job
    if job is None:
        return
    if not job.is_active:
        # Rerun the whole page: its first step collects the model and announces it.
        st.rerun()
    job.heartbeat()
    snapshot = job.progress.snapshot()
    if job.state == "queued":
        st.caption(f"Training run waiting for a free slot (number {job.queue_position or 1} in line).")
    else:
        doing = "Paused" if snapshot.paused else "Training"
        st.progress(snapshot.fraction, text=f"{doing}: {snapshot.fraction:.0%} of {snapshot.epochs} epochs")
    st.page_link("pages/train.py", label="Watch it on the Train page", icon=":material/model_training:")


def show(*, sidebar: bool = True) -> None:
    """Draw the indicator while the session has a run in progress; collect the run once it has ended.

    Without `sidebar` (a page that shows the run live itself, which also sends the heartbeats and
    reruns the page at the end) only the collection is done.
    """
    state = app_state.get()
    job = state.training_job
    if job is None:
        return
    if job.is_active:
        if sidebar:
            with st.sidebar:
                _status()
        return
    # Runs at the top of the page, so everything below already sees the new active model.
    name = training_session.collect(state, job)
    if name is not None:
        st.toast(f"Training ended: {plain(name)} is now your active model.", icon=":material/check_circle:")
