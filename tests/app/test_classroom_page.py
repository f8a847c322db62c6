"""The Class page: create a class, join it with the code, hand out an exercise, the class view and its CSV."""

from __future__ import annotations

import pytest

from cnn_core.service.classes import FolderClassStore
from tests.app.conftest import texts


@pytest.fixture(autouse=True)
def classes_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_CLASSES_DIR", str(tmp_path / "classes"))
    from ui import classroom, loaders

    loaders.settings.clear()
    classroom.store.clear()
    yield FolderClassStore(tmp_path / "classes")
    loaders.settings.clear()
    classroom.store.clear()




def submit(at, label):
    for button in at.button:
        if button.label == label:
            return button.click().run()
    raise AssertionError(f"no button {label!r}: {[b.label for b in at.button]}")


def test_create_join_hand_out_and_watch(open_page, classes_dir):
    instructor = open_page("classroom")
    assert not instructor.exception
    [name] = [w for w in instructor.text_input if w.label == "Class name"]
    name.set_value("Tuesday **CNNs**")
    submit(instructor, "Create the class")
    assert not instructor.exception
    class_id, key = instructor.query_params["class"], instructor.query_params["key"]
    room = classes_dir.get(class_id)
    assert room is not None and classes_dir.is_instructor(class_id, key)
    assert "Join code" in [m.label for m in instructor.metric]
    assert instructor.metric[0].value == room.code
    # The class name is plain text: the title shows the asterisks, never bold.
    assert instructor.title[0].value == r"Class: Tuesday \*\*CNNs\*\*"

    participant = open_page("classroom")
    fields = {w.label: w for w in participant.text_input}
    fields["Join code"].set_value(room.code.lower())
    fields["Your nickname (shown to the class)"].set_value("[Ada](http://x.io)")
    submit(participant, "Join")
    assert not participant.exception
    member = participant.session_state["app_state"].session_id
    assert classes_dir.class_of(member).class_id == class_id
    assert "You are in this class as [Ada](http://x.io)." in [t.value for t in participant.text]

    # The instructor hands out an exercise; the participant's Exercises page shows it.
    instructor.selectbox(key="class-ho-exercise").set_value("add_convs")
    submit(instructor, "Hand out")
    assert classes_dir.get(class_id).handout.value == "add_convs"
    participant.switch_page("pages/exercises.py").run()
    assert any("From your instructor" in t.value and "Add more convolutions" in t.value for t in participant.text)
    submit(participant, "Open this exercise")
    assert participant.selectbox(key="exercise-pick").value == "add_convs"

    # A passed check shows up in the class view, the leaderboard and the CSV.
    classes_dir.record_check(member, "add_convs", True, 0.9123, 4321, 12.0)
    instructor.selectbox(key="class-board").set_value("add_convs")
    instructor.run()
    assert not instructor.exception
    table = instructor.dataframe[0].value
    assert list(table["nickname"]) == ["[Ada](http://x.io)"]
    assert int(table["passed"][0]) == 1
    board = instructor.dataframe[1].value
    assert list(board["nickname"]) == ["[Ada](http://x.io)"] and float(board["test accuracy"][0]) == 91.23
    csv_button = [b for b in instructor.get("download_button")]
    assert csv_button, "no CSV download"
    # The instructor can download a participant's model from their workspace.
    from cnn_core.service.workspace import Workspace
    from ui import loaders

    Workspace(loaders.workspace_store(), member).add_model(b"PK-fake-keras", {"name": "my net"})
    instructor.run()
    assert instructor.selectbox(key="class-one-model").options == ["my net"]
    assert len(instructor.get("download_button")) == 2


def test_a_participant_link_cannot_open_the_instructor_view(open_page, classes_dir):
    room, key = classes_dir.create("W")
    at = open_page("classroom")
    for wrong in (room.code, "x" * 32, key[:-1] + ("A" if key[-1] != "A" else "B")):
        at.query_params["class"] = room.class_id
        at.query_params["key"] = wrong
        at.run()
        assert not at.exception
        assert at.error and "does not open a class" in at.error[0].value
        assert "Join code" not in [m.label for m in at.metric]
    at.query_params["key"] = key
    at.run()
    assert not at.error and at.metric[0].value == room.code


def test_a_wrong_code_says_what_to_do(open_page, classes_dir):
    classes_dir.create("W")
    at = open_page("classroom")
    fields = {w.label: w for w in at.text_input}
    fields["Join code"].set_value("ZZZZZZ")
    fields["Your nickname (shown to the class)"].set_value("Bo")
    submit(at, "Join")
    assert at.error and "No open class has that code" in at.error[0].value
    assert "Workshop class" in texts(at) or at.title[0].value == "Workshop class"
