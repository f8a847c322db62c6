"""Workshop classes in the app: the shared class store, the hand-out banner, and what the class view shows.

A participant's member id is their workspace id (`AppState.session_id`), so a reload or a new tab
finds their class again. The class view reads each participant's current run straight from the
training queue (the same one every session of this server, or every replica with Redis, shares),
so it is live without participants writing anything while they train.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import streamlit as st

from cnn_core.service.classes import Classroom, ClassStore, Participant, make_class_store
from ui import loaders

if TYPE_CHECKING:
    from ui.state import AppState

JOIN_PARAM = "join"
CLASS_PARAM = "class"
KEY_PARAM = "key"


@st.cache_resource(show_spinner=False)
def store() -> ClassStore:
    return make_class_store(loaders.settings())


def my_class(state: AppState) -> Classroom | None:
    return store().class_of(state.session_id)


def page_url(query: str) -> str:
    """An absolute link to the Class page with `query`, from the address the browser used."""
    url = st.context.url or ""
    base = url.split("?", 1)[0].rstrip("/")
    # The browser may be on any page; links always point at the Class page.
    base = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{base}/classroom?{query}"


def handout_banner(state: AppState, page: str) -> None:
    """What the instructor handed out, on the Exercises and Train pages; nothing outside a class."""
    room = my_class(state)
    if room is None or room.handout is None:
        return
    handout = room.handout
    with st.container(border=True):
        # The title is the instructor's text: shown as plain text, never as Markdown.
        st.text(f"From your instructor ({room.title}): {handout.title}")
        if handout.kind == "exercise" and page == "exercises":
            if st.session_state.get("exercise-pick") != handout.value:
                st.button("Open this exercise", key="class-handout-open", type="primary",
                          on_click=_pick_exercise, args=(handout.value,))
        elif handout.kind == "exercise":
            st.page_link("pages/exercises.py", label="Open it on the Exercises page", icon=":material/school:")
        else:
            params = dict(part.split("=", 1) for part in handout.value.split("&") if "=" in part)
            st.page_link("pages/train.py", label="Open the experiment", icon=":material/model_training:",
                         query_params={**params, **keep_workspace()})


def keep_workspace() -> dict[str, str]:
    ws = st.query_params.get("ws")
    return {"ws": ws} if ws else {}


def _pick_exercise(key: str) -> None:
    st.session_state["exercise-pick"] = key


def note_check(state: AppState, exercise_key: str, passed: bool, attempt: Any) -> None:
    """Record a passed check in the participant's class record (a no-op outside a class)."""
    store().record_check(state.session_id, exercise_key, passed, attempt.test_accuracy, attempt.params,
                         attempt.seconds)


def run_row(member_id: str) -> dict[str, Any]:
    """The participant's newest run as the queue knows it: state, epoch, test accuracy."""
    jobs = loaders.job_queue().jobs_for(member_id)
    if not jobs:
        return {}
    job = jobs[-1]
    snapshot = job.progress.snapshot()
    row: dict[str, Any] = {"name": job.experiment.model.name, "state": job.state, "epochs": snapshot.epochs,
                           "epoch": min(snapshot.epoch + (snapshot.status == "running"), snapshot.epochs)}
    if job.state == "queued":
        row["position"] = job.queue_position
    if snapshot.finished is not None:
        row["test_accuracy"] = snapshot.finished.test_accuracy
    return row


def history_of(member_id: str) -> list[dict[str, Any]]:
    jobs = loaders.job_queue().jobs_for(member_id)
    return list(jobs[-1].progress.snapshot().epoch_history) if jobs else []


def describe_run(row: dict[str, Any]) -> str:
    if not row:
        return "no run yet"
    state = row["state"]
    if state == "queued":
        return f"queued (#{row.get('position') or '?'})"
    if state == "running":
        return f"training, epoch {row['epoch']} of {row['epochs']}"
    accuracy = row.get("test_accuracy")
    return state if accuracy is None else f"{state}, {accuracy:.2%}"


def class_rows(participants: list[Participant], exercise_keys: list[str]) -> list[dict[str, Any]]:
    """One table row per participant for the live class view."""
    rows = []
    now = time.time()
    for p in participants:
        run = run_row(p.member_id)
        row: dict[str, Any] = {
            "nickname": p.nickname,
            "passed": len(p.passed),
            "exercises passed": ", ".join(f"{key} ({_minutes(after)})" for key, after in p.passed.items()),
            "current run": describe_run(run),
            "joined": f"{_minutes(now - p.joined)} ago",
        }
        for key in exercise_keys:
            best = p.best.get(key)
            row[key] = None if best is None or best.get("accuracy") is None else round(100 * best["accuracy"], 2)
        rows.append(row)
    return rows


def _minutes(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"
