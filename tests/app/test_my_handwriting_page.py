"""My handwriting: drawings are kept in the workspace, added from Draw in one click, and teach a model."""

from __future__ import annotations

import numpy as np

from tests.app.conftest import drawing, run_until
from ui import handwriting


def test_drawings_are_added_counted_and_survive_a_new_session(open_page, fake_canvas):
    at = open_page("my_handwriting")
    assert not at.exception
    assert at.subheader[0].value == "Draw a 0"
    fake_canvas.image = drawing("7")
    at.run()
    at.selectbox(key="hw-label").set_value(7).run()
    at.button(key="hw-add").click().run()
    assert not at.exception
    state = at.session_state["app_state"]
    images, labels = handwriting.load(state.workspace)
    assert labels.tolist() == [7] and images.shape == (1, 28, 28) and images.max() > 0.9
    assert "7: 1" in [t.value for t in at.text][0] and "6: 0" in [t.value for t in at.text][0]
    # The canvas was cleared for the next drawing.
    assert fake_canvas.image is None
    # Another session on the same workspace (a reload) finds it.
    again = open_page("my_handwriting")
    again.query_params["ws"] = state.session_id
    again.run()
    assert handwriting.load(again.session_state["app_state"].workspace)[1].tolist() == [7]


def test_a_wrong_guess_on_draw_is_added_with_its_true_digit(open_page, fake_canvas):
    at = open_page("draw")
    fake_canvas.image = drawing("1")
    at.run()
    assert not at.exception
    at.selectbox(key="draw-hw-label").set_value(4).run()
    at.button(key="draw-hw-add").click().run()
    assert not at.exception
    assert handwriting.load(at.session_state["app_state"].workspace)[1].tolist() == [4]


def test_teaching_needs_two_of_each_digit_then_gives_a_model(open_page, fake_canvas):
    at = open_page("my_handwriting")
    assert at.button(key="hw-teach").disabled
    state = at.session_state["app_state"]
    rng = np.random.default_rng(0)
    from cnn_core.engine import datasets

    mnist = datasets.load_for_one_run("mnist", 2000)
    for digit in range(10):
        for index in np.nonzero(mnist.y_train == digit)[0][:3]:
            handwriting.add(state.workspace, mnist.x_train[index, ..., 0] * rng.uniform(0.9, 1.0), digit)
    at.run()
    at.button(key="hw-teach").click().run()
    assert not at.exception
    run_until(at, lambda a: handwriting.lesson_for(state.session_id).kept_as != "", limit_s=240)
    lesson = handwriting.lesson_for(state.session_id)
    assert lesson.state == "finished", lesson.error
    assert lesson.figures["held out"] == 10 and lesson.figures["taught with"] == 20
    assert lesson.figures["MNIST test after"] > 0.98
    # The taught model is kept in the workspace and active: a reload (a new session on it) finds it.
    again = open_page("my_handwriting")
    again.query_params["ws"] = state.session_id
    again.run()
    assert not again.exception
    reopened = again.session_state["app_state"]
    assert lesson.kept_as in reopened.model_ids() and reopened.active_model == lesson.kept_as
    assert any("Your model is ready" in s.value for s in again.success)
