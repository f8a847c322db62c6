"""The "Your own classes" page: define classes, draw examples, refuse bad input without losing any, train."""

from __future__ import annotations

import numpy as np

from cnn_core.engine import registry
from cnn_core.engine.specs import Dense
from cnn_core.service import own_classes
from tests.app.conftest import drawing, texts


def app_state(at):
    return at.session_state["app_state"]


def add_class(at, name: str):
    at.text_input(key="own-new-name").input(name).run()
    at.button(key="own-add-class").click().run()
    return at


def draw_and_add(at, fake_canvas, digit: str, label: str, times: int = 1):
    for _ in range(times):
        fake_canvas.image = drawing(digit)
        at.run()
        at.selectbox(key="own-label").set_value(label).run()
        at.button(key="own-add").click().run()
    return at


def test_drawings_are_kept_per_class_and_bad_input_loses_nothing(open_page, fake_canvas):
    at = open_page("own_classes")
    assert not at.exception
    add_class(at, "stick")
    add_class(at, "ring")
    draw_and_add(at, fake_canvas, "1", "stick", 2)
    draw_and_add(at, fake_canvas, "0", "ring", 1)
    collection = own_classes.load(app_state(at).workspace)
    assert own_classes.counts(collection) == {"stick": 2, "ring": 1}
    # Each drawing went through the one canvas path: a 28×28 image of the stroke, not the raw canvas.
    assert collection["stick"].shape == (2, 28, 28) and collection["stick"].max() > 200
    assert not np.array_equal(collection["stick"][0], collection["ring"][0])
    assert "stick: 2 pictures" in [t.value for t in at.text]

    # A duplicate name, a name with a slash, and too few pictures each get one sentence; nothing is lost.
    add_class(at, "ring")
    assert "already a class called ring" in texts(at)
    add_class(at, "a/b")
    assert "A class name is 1 to 24 letters" in texts(at)
    assert "add more to: stick, ring" in texts(at)
    assert own_classes.counts(own_classes.load(app_state(at).workspace)) == {"stick": 2, "ring": 1}
    assert not at.button(key="own-add-class").disabled and not [b for b in at.button if b.key == "own-train"]


def test_train_on_these_classes_loads_a_small_cnn_with_the_dataset(open_page, fake_canvas):
    at = open_page("own_classes")
    add_class(at, "stick")
    add_class(at, "ring")
    draw_and_add(at, fake_canvas, "1", "stick", 5)
    draw_and_add(at, fake_canvas, "0", "ring", 5)
    state = app_state(at)
    name = own_classes.dataset_name(state.workspace)
    try:
        assert registry.get(name).class_names == ("stick", "ring")
        at.button(key="own-train").click().run()
        assert not at.exception
        state = app_state(at)
        assert state.editor_training.dataset == name
        assert state.editor_training.validation_split == 0.2
        assert state.layers[-1] == Dense(2, "softmax")
        # The Train page opened with this dataset chosen.
        chosen = [box for box in at.selectbox if box.label == "Dataset"]
        assert chosen and chosen[0].value == name
    finally:
        registry.unregister(name)


def test_another_learners_classes_are_not_offered(open_page, fake_canvas):
    from cnn_core.service.workspace import MemoryWorkspaceStore, Workspace, new_id

    other = Workspace(MemoryWorkspaceStore(), new_id())
    images = np.zeros((6, 28, 28), np.uint8)
    images[:, 10:18, 10:18] = 255
    info = own_classes.save(other, {"theirs": images, "secret": images[:, ::-1]})
    try:
        at = open_page("train")
        assert not at.exception
        box = [b for b in at.selectbox if b.label == "Dataset"][0]
        assert registry.title("mnist") in box.options
        assert registry.title(info.name) not in box.options
    finally:
        registry.unregister(info.name)


def test_a_model_trained_on_own_classes_works_on_every_page(open_page, fake_canvas):
    from bench.own_classes import drawn_collection
    from tests.app.conftest import run_until

    at = open_page("own_classes")
    state = app_state(at)
    name = own_classes.dataset_name(state.workspace)
    own_classes.save(state.workspace, drawn_collection(8, seed=3))
    try:
        at.run()
        at.button(key="own-train").click().run()
        # AppTest reruns the page it was switched to last; the app itself has moved to Train.
        at.switch_page("pages/train.py").run()
        state = app_state(at)
        epochs_key = f"train-settings-{state.training_generation}-epochs"
        at.number_input(key=epochs_key).set_value(1).run()
        at.button(key="train-run-start").click().run()
        job = app_state(at).training_job
        assert job is not None and job.experiment.training.dataset == name
        run_until(at, lambda a: not app_state(a).training_job.is_active)
        at.run()
        assert not at.exception
        assert job.state == "finished", job.error
        model = app_state(at).active_model
        assert model in app_state(at).models
        for page in ("draw", "feature_maps", "explain", "evaluate", "runs"):
            # Each page opens with the new model active; none may fail on three classes with names.
            fake_canvas.image = drawing("0")
            at.switch_page(f"pages/{page}.py").run()
            assert not at.exception, (page, at.exception)
            assert not at.error, (page, [e.value for e in at.error])
    finally:
        registry.unregister(name)


def test_an_added_class_empties_the_name_box_and_no_pictures_draw_no_chart(open_page):
    at = open_page("own_classes")
    add_class(at, "stick")
    assert not at.exception
    # Before: "stick" stayed in the box, one click from "There is already a class called stick".
    assert at.text_input(key="own-new-name").value == ""
    assert "Added the class stick." in texts(at)
    # Before: a bar chart of zeros with an axis reading 0.000000.
    assert at.get("vega_lite_chart") == []
    assert "No pictures yet" in texts(at)
    add_class(at, "stick")
    assert "already a class called stick" in texts(at)


def test_the_zip_limit_named_is_the_one_the_server_enforces(open_page):
    import streamlit as st

    server_mb = st.get_option("server.maxUploadSize")
    from ui.own_classes import MAX_ZIP_MB

    assert server_mb < MAX_ZIP_MB  # the case this is about: the server's cap is the lower one
    at = open_page("own_classes")
    # Before: "64 MB" on the page, while the server refused anything over its own 20 MB.
    assert f"and {server_mb} MB." in texts(at)
    assert f"and {MAX_ZIP_MB} MB." not in texts(at)


def _path_of(node, element_type: str, path=()):
    """Where in the page's tree the first element of this type sits (its delta path)."""
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        for index, child in children.items():
            found = _path_of(child, element_type, path + (index,))
            if found is not None:
                return found
        return None
    return path if node.type == element_type else None


def test_a_message_shown_once_does_not_move_the_zip_uploader(open_page):
    # The browser rebuilds a widget whose place changes; an uploader rebuilt mid-upload dropped the file
    # (a replaced zip vanished and "Add these pictures" never came, 1 run in 4 in the browser test).
    at = open_page("own_classes")
    add_class(at, "ring")
    assert "Added the class ring." in texts(at)
    with_message = _path_of(at._tree, "file_uploader")
    at.run()
    assert "Added the class ring." not in texts(at)
    assert _path_of(at._tree, "file_uploader") == with_message is not None

    add_class(at, "ring")
    assert "already a class called ring" in texts(at)
    with_error = _path_of(at._tree, "file_uploader")
    at.run()
    assert "already a class called ring" not in texts(at)
    assert _path_of(at._tree, "file_uploader") == with_error == with_message
