"""The workshop page: the kernel exercise checks the nine numbers; training exercises load locked setups."""

from __future__ import annotations

from cnn_core.workshop import exercises
from tests.app.conftest import texts

KERNEL_KEY = "exercise-vertical_edge_kernel"
ZERO = "all zeros (build your own)"


def set_kernel(at, values):
    for row in range(3):
        for col in range(3):
            at.number_input(key=f"{KERNEL_KEY}-{ZERO}-{row}{col}").set_value(float(values[row][col]))
    return at.run()


def test_a_vertical_edge_kernel_passes(open_page):
    at = open_page("exercises")
    at.selectbox(key="exercise-pick").set_value("vertical_edge_kernel").run()
    set_kernel(at, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    at.button(key=f"{KERNEL_KEY}-check").click().run()
    assert not at.exception
    assert at.success and at.success[0].value.startswith("Passed!")


def test_a_horizontal_edge_kernel_fails_with_advice(open_page):
    at = open_page("exercises")
    at.selectbox(key="exercise-pick").set_value("vertical_edge_kernel").run()
    set_kernel(at, [[-1, -1, -1], [0, 0, 0], [1, 1, 1]])
    at.button(key=f"{KERNEL_KEY}-check").click().run()
    assert not at.exception
    assert at.error and at.error[0].value == "Not yet."
    assert "✗" in texts(at)


def test_a_training_exercise_starts_from_its_setup_with_locked_fields(open_page):
    at = open_page("exercises")
    at.selectbox(key="exercise-pick").set_value("single_conv_998").run()
    at.button(key="exercise-single_conv_998-load").click().run()
    assert not at.exception
    state = at.session_state["app_state"]
    exercise = exercises.get("single_conv_998")
    assert state.layers == exercise.starting_experiment.model.layers
    assert state.locked == exercise.locked
    prefix = f"exercise-single_conv_998-settings-{state.training_generation}"
    assert at.selectbox(key=f"{prefix}-dataset").disabled
    assert not at.selectbox(key=f"{prefix}-optimizer").disabled
    # No run yet, so there is nothing to check.
    assert at.button(key="exercise-single_conv_998-check").disabled


def test_a_comparing_exercise_checks_the_latest_run_against_the_earlier_ones(open_page):
    from dataclasses import replace

    from cnn_core.engine.specs import Conv2D
    from ui.state import RunRecord

    at = open_page("exercises")
    at.selectbox(key="exercise-pick").set_value("filters_16_32_64").run()
    at.button(key="exercise-filters_16_32_64-load").click().run()
    base = exercises.get("filters_16_32_64").starting_experiment
    small = replace(base, model=replace(base.model, layers=tuple(
        replace(layer, filters=16) if isinstance(layer, Conv2D) else layer for layer in base.model.layers)))

    def record(experiment, accuracy, seconds):
        return RunRecord(name=experiment.model.name, experiment=experiment, dataset="fashion_mnist",
                         architecture="", params=1000, settings={}, history=[{"accuracy": 0.9, "loss": 0.3}],
                         test_accuracy=accuracy, test_loss=0.3, seconds=seconds, stopped_reason="completed")

    at.session_state["app_state"].runs[:] = [record(base, 0.89, 61.0), record(small, 0.875, 22.0)]
    at.run()
    at.button(key="exercise-filters_16_32_64-check").click().run()
    assert not at.exception
    assert at.success and at.success[0].value.startswith("Passed!")
    assert "16 filters: 87.50% in 22 s" in texts(at)
    assert "64 filters: 89.00% in 61 s" in texts(at)


def test_the_loss_threshold_exercise_is_set_up_with_the_controls_and_checks_the_run(open_page):
    from cnn_core.engine.specs import Experiment
    from ui.state import RunRecord

    at = open_page("exercises")
    at.selectbox(key="exercise-pick").set_value("stop_at_loss").run()
    at.button(key="exercise-stop_at_loss-load").click().run()
    state = at.session_state["app_state"]
    prefix = f"exercise-stop_at_loss-settings-{state.training_generation}"
    loss = at.number_input(key=f"{prefix}-target-loss")
    # The accuracy target is the exercise's to keep off; the loss target and the epochs are the learner's.
    assert at.checkbox(key=f"{prefix}-use-target").disabled and not loss.disabled and loss.value is None
    start = state.editor_training

    def record(training, losses, reason):
        experiment = exercises.get("stop_at_loss").starting_experiment
        return RunRecord(name=reason, experiment=Experiment(experiment.model, training),
                         dataset="fashion_mnist", architecture="", params=101_770, settings={},
                         history=[{"epoch": i, "loss": value, "accuracy": 0.85} for i, value in enumerate(losses)],
                         test_accuracy=0.86, test_loss=0.38, seconds=20.0, stopped_reason=reason)

    # The unchanged setup's run (one epoch, no target) does not pass, and says what to set.
    state.runs[:] = [record(start, [0.497], "completed")]
    at.run()
    at.button(key="exercise-stop_at_loss-check").click().run()
    assert not at.exception and at.error and "Set 'Stop at loss ≤' to 0.4" in texts(at)

    loss.set_value(0.4).run()
    at.number_input(key=f"{prefix}-epochs").set_value(10).run()
    assert (state.editor_training.target_loss, state.editor_training.epochs) == (0.4, 10)
    state.runs[:] = [record(state.editor_training, [0.497, 0.376], "loss_reached")]
    at.run()
    at.button(key="exercise-stop_at_loss-check").click().run()
    assert not at.exception
    assert at.success and at.success[0].value.startswith("Passed!")
    assert "It stopped after 2 of the 10 epochs asked for." in texts(at)
