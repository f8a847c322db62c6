"""Workshop class: join one with a code, or run one — the live class view, hand-outs, leaderboard, results."""

import time

import altair as alt
import streamlit as st

from cnn_core.engine.errors import UserError
from cnn_core.service.classes import Handout, leaderboard, results_csv
from cnn_core.service.persistence import sanitize_name as sanitise
from cnn_core.service.workspace import Workspace
from cnn_core.workshop.exercises import EXERCISES
from ui import classroom, loaders, timing
from ui import state as app_state
from ui.entry import start_page
from ui.text import plain

start_page()

state = app_state.get()
store = classroom.store()
params = st.query_params


def title_of(key: str) -> str:
    return EXERCISES[key].title if key in EXERCISES else key


def instructor_view(room, key: str) -> None:
    st.title(f"Class: {plain(room.title)}")
    st.caption("Your instructor view. Keep its link to yourself: anyone with it can run this class.")
    projector = st.toggle("Projector view (join code and leaderboard only)", key="class-projector")
    join_url = classroom.page_url(f"{classroom.JOIN_PARAM}={room.code}")
    code_col, link_col = st.columns([1, 2])
    code_col.metric("Join code", room.code)
    link_col.caption("Participants open the Class page and type the code, or follow this link:")
    # Wrapped: on a projector or at 800 px the link must be readable whole, not scrolled.
    link_col.code(join_url, language=None, wrap_lines=True)
    if not projector:
        with st.expander("Your instructor link (keep it secret)"):
            st.code(classroom.page_url(f"{classroom.CLASS_PARAM}={room.class_id}&{classroom.KEY_PARAM}={key}"),
                    language=None, wrap_lines=True)
        hand_out(room, key)
    live_view(room.class_id, projector)


def hand_out(room, key: str) -> None:
    with st.container(border=True):
        st.markdown("**Hand out to everyone**")
        current = room.handout
        if current is not None:
            st.text(f"Handed out now: {current.title}")
        kind = st.radio("What", ["An exercise", "A shared experiment link"], horizontal=True, key="class-ho-kind")
        if kind == "An exercise":
            pick = st.selectbox("Exercise", list(EXERCISES), format_func=title_of, key="class-ho-exercise")
            handout = Handout("exercise", pick, title_of(pick), time.time())
        else:
            link = st.text_input("Paste a link made with 'Share this experiment' (lock what you like there)",
                                 key="class-ho-link")
            query = link.split("?", 1)[-1].strip() if link else ""
            handout = Handout("experiment", query, "a shared experiment", time.time()) if query else None
        left, right = st.columns(2)
        if left.button("Hand out", type="primary", disabled=handout is None, key="class-ho-push"):
            store.push(room.class_id, key, handout)
            st.toast("Handed out: participants see it at their next refresh.")
            st.rerun()
        if current is not None and right.button("Take it back", key="class-ho-clear"):
            store.push(room.class_id, key, None)
            st.rerun()


@st.fragment(run_every=3)
def live_view(class_id: str, projector: bool) -> None:
    started = timing.start()
    participants = store.participants(class_id)
    passed_any = sorted({k for p in participants for k in p.best if k in EXERCISES}, key=list(EXERCISES).index)
    if not projector:
        st.subheader(f"Participants ({len(participants)})")
        if not participants:
            st.info("Nobody has joined yet. Show the join code.")
        else:
            rows = classroom.class_rows(participants, passed_any)
            st.dataframe(rows, hide_index=True, width="stretch",
                         column_config={key: st.column_config.NumberColumn(title_of(key), format="%.2f %%")
                                        for key in passed_any})
            st.download_button("Download the class's results (CSV)", results_csv(participants, list(EXERCISES)),
                               file_name="class_results.csv", mime="text/csv", key="class-csv")
    st.subheader("Leaderboard")
    room = store.get(class_id)
    # The exercise handed out is the one the room is working on.
    default = room.handout.value if room and room.handout and room.handout.value in EXERCISES else None
    keys = list(EXERCISES)
    board_key = st.selectbox("Exercise", keys, index=keys.index(default) if default else 0, format_func=title_of,
                             key="class-board")
    board = leaderboard(participants, board_key)
    if not board:
        st.caption("Nobody has passed this exercise yet.")
    else:
        st.dataframe(
            [{"place": r["place"], "nickname": r["nickname"],
              "test accuracy": None if r["accuracy"] is None else round(100 * r["accuracy"], 2),
              "parameters": r["params"], "seconds": None if r["seconds"] is None else round(r["seconds"], 1)}
             for r in board],
            hide_index=True, width="stretch",
        )
    if not projector and participants:
        participant_detail(participants)
    timing.record("class view", started)


def participant_detail(participants) -> None:
    st.subheader("One participant (read-only)")
    names = {p.member_id: p.nickname for p in participants}
    chosen = st.selectbox("Participant", list(names), format_func=names.get, key="class-one")
    person = next(p for p in participants if p.member_id == chosen)
    run = classroom.run_row(chosen)
    st.text(f"{person.nickname}: {classroom.describe_run(run)}")
    history = classroom.history_of(chosen) or person.history
    if history:
        data = [{"epoch": row["epoch"] + 1, "metric": name, "value": row[name]}
                for row in history for name in ("accuracy", "val_accuracy") if row.get(name) is not None]
        chart = alt.Chart(alt.Data(values=data)).mark_line(point=True).encode(
            x="epoch:Q", y=alt.Y("value:Q", title="accuracy"), color="metric:N")
        st.altair_chart(chart, width="stretch")
    else:
        st.caption("No finished epoch yet.")
    for key, after in person.passed.items():
        st.text(f"passed {title_of(key)} after {after / 60:.1f} min")
    participant_models(chosen, person.nickname)


def participant_models(member_id: str, nickname: str) -> None:
    """The participant's own models, to download one (read-only: nothing here changes their workspace)."""
    workspace = Workspace(loaders.workspace_store(), member_id)
    models = workspace.models()
    if not models:
        st.caption("No models in this participant's workspace yet.")
        return
    labels = {m["key"]: str(m.get("name") or m["key"]) for m in models}
    key = st.selectbox("Their models", list(labels), format_func=labels.get, key="class-one-model")
    data = workspace.model_bytes(key)
    if data is not None:
        st.download_button("Download this model (.keras)", data, key="class-one-download",
                           file_name=f"{file_part(nickname)}-{file_part(labels[key])}.keras")


def file_part(text: str) -> str:
    try:
        return sanitise(text)
    except UserError:
        return "model"


def participant_view(room) -> None:
    me = store.participant(room.class_id, state.session_id)
    st.title(f"Class: {plain(room.title)}")
    st.text(f"You are in this class as {me.nickname}.")
    st.caption("Your instructor sees your nickname, the exercises you pass and your runs — nothing else.")
    current_handout(room.class_id)
    if st.button("Leave the class", key="class-leave"):
        store.leave(state.session_id)
        st.rerun()


@st.fragment(run_every=5)
def current_handout(class_id: str) -> None:
    # Polled, so a hand-out appears while the participant waits on this page.
    room = store.get(class_id)
    if room is not None and room.handout is not None:
        classroom.handout_banner(state, "classroom")
        if room.handout.kind == "exercise":
            st.page_link("pages/exercises.py", label="Go to the exercise", icon=":material/school:",
                         query_params=classroom.keep_workspace())
    else:
        st.info("Your instructor has not handed anything out yet. Try the Exercises page meanwhile.")


def lobby() -> None:
    st.title("Workshop class")
    st.caption("Join your instructor's class with the code on the board, or run a class of your own.")
    join_col, run_col = st.columns(2, gap="large")
    with join_col, st.container(border=True):
        st.subheader("Join a class")
        with st.form("class-join"):
            code = st.text_input("Join code", value=params.get(classroom.JOIN_PARAM, ""), max_chars=12)
            nickname = st.text_input("Your nickname (shown to the class)", max_chars=24)
            joined = st.form_submit_button("Join", type="primary")
        if joined:
            try:
                store.join(code, state.session_id, nickname)
            except UserError as exc:
                st.error(str(exc))
            else:
                params.pop(classroom.JOIN_PARAM, None)
                st.rerun()
    with run_col, st.container(border=True):
        st.subheader("Run a class")
        st.caption("For instructors: you get a join code for the room and a secret link for yourself.")
        with st.form("class-create"):
            title = st.text_input("Class name", value="Workshop", max_chars=60)
            created = st.form_submit_button("Create the class")
        if created:
            try:
                room, key = store.create(title)
            except UserError as exc:
                st.error(str(exc))
            else:
                params[classroom.CLASS_PARAM] = room.class_id
                params[classroom.KEY_PARAM] = key
                st.rerun()


class_id = params.get(classroom.CLASS_PARAM)
key = params.get(classroom.KEY_PARAM)
if class_id is not None:
    room = store.get(class_id) if store.is_instructor(class_id, key) else None
    if room is None:
        # Same words for a wrong key, a wrong class and an expired one: nothing to probe.
        st.error("This instructor link does not open a class: it is wrong or the class has expired.")
        st.stop()
    instructor_view(room, key)
else:
    mine = classroom.my_class(state)
    if mine is not None:
        participant_view(mine)
    else:
        lobby()
