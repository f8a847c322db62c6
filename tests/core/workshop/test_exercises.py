from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from cnn_core.engine import ops, specs
from cnn_core.engine.specs import (
    AvgPool,
    Conv2D,
    Dense,
    Experiment,
    Flatten,
    MaxPool,
    ModelSpec,
    TrainingConfig,
)
from cnn_core.workshop import exercises, presets
from cnn_core.workshop.exercises import EXERCISES, Attempt, CheckResult, history_rows


def _history(accuracies):
    return [{"loss": 1 - a, "accuracy": a} for a in accuracies]


def _failures(result: CheckResult) -> list[str]:
    return [m for m in result.messages if m.startswith(exercises.FAIL_MARK)]


def test_registry_and_lookup():
    assert set(EXERCISES) >= {"single_conv_998", "beat_dense_baseline", "vertical_edge_kernel", "fashion_90_in_5"}
    assert exercises.get("vertical_edge_kernel").needs_kernel
    assert not exercises.get("single_conv_998").needs_kernel
    with pytest.raises(ValueError, match="Unknown exercise 'nope'; choose one of single_conv_998"):
        exercises.get("nope")


@pytest.mark.parametrize("exercise", list(EXERCISES.values()), ids=list(EXERCISES))
def test_starting_experiments_are_valid_and_locks_are_lockable(exercise):
    assert exercise.locked <= set(exercises_lockable())
    assert exercise.goal_text and exercise.hints and exercise.source
    if exercise.starting_experiment is not None:
        specs.infer_shapes(exercise.starting_experiment.model, max_params=1_500_000)
        specs.validate_training(exercise.starting_experiment.training, max_epochs=15)


def exercises_lockable():
    from cnn_core.workshop.sharing import LOCKABLE_FIELDS

    return LOCKABLE_FIELDS


def test_every_training_exercise_asks_for_a_run_first():
    for exercise in EXERCISES.values():
        if exercise.needs_kernel:
            continue
        result = exercise.check(Attempt(experiment=exercise.starting_experiment))
        assert not result.passed
        assert "Train the model first" in result.messages[0]


# (a) single conv, 99.8%

SINGLE = exercises.get("single_conv_998")
# A solution: one convolution and one pooling layer added to the dense start, stopping at 99.8%.
SINGLE_EXPERIMENT = Experiment(
    ModelSpec((Conv2D(32, 3), MaxPool(2), Flatten(), Dense(128), Dense(10, "softmax")), name="single_conv"),
    replace(SINGLE.starting_experiment.training, epochs=15, target_accuracy=0.998),
)


def _single_attempt(experiment=SINGLE_EXPERIMENT, history=(0.98, 0.993, 0.9985), reason="target_reached"):
    return Attempt(experiment=experiment, history=_history(history), test_accuracy=0.987, stopped_reason=reason)


def test_single_conv_does_not_pass_with_its_setup_unchanged():
    # Before: the setup already had the convolution, the pooling and the target, so running it passed.
    result = SINGLE.check(_single_attempt(SINGLE.starting_experiment, history=[0.9] * 15, reason="completed"))
    assert not result.passed
    failures = _failures(result)
    assert any("0 convolution layers" in m for m in failures)
    assert any("0 pooling layers" in m for m in failures)
    assert any("Set the target accuracy" in m for m in failures)


def test_single_conv_passes_when_it_stops_at_the_target():
    result = SINGLE.check(_single_attempt())
    assert result.passed, result.messages
    assert not _failures(result)
    assert f"{exercises.PASS_MARK} Done in 3 epochs (under 20)." in result.messages


def test_single_conv_fails_with_two_convolutions_and_no_target():
    model = ModelSpec((Conv2D(32, 3), Conv2D(32, 3), MaxPool(2), Flatten(), Dense(10, "softmax")))
    experiment = Experiment(model, replace(SINGLE_EXPERIMENT.training, target_accuracy=None))
    result = SINGLE.check(_single_attempt(experiment, reason="completed"))
    assert not result.passed
    failures = _failures(result)
    assert any("2 convolution layers" in m for m in failures)
    assert any("Set the target accuracy to 0.998" in m for m in failures)
    assert any("did not stop at the target" in m for m in failures)
    assert f"{exercises.PASS_MARK} Exactly one pooling layer." in result.messages


def test_single_conv_fails_when_accuracy_falls_short_or_takes_20_epochs():
    result = SINGLE.check(_single_attempt(history=[0.9] * 19 + [0.997], reason="completed"))
    failures = _failures(result)
    assert not result.passed
    assert any("ended at 99.70%, below 99.8%" in m for m in failures)
    assert any("took 20 epochs" in m for m in failures)


def test_single_conv_counts_every_kind_of_pooling_and_rejects_subsets():
    model = ModelSpec((Conv2D(32, 3), MaxPool(2), AvgPool(2), Flatten(), Dense(10, "softmax")))
    training = replace(SINGLE_EXPERIMENT.training, train_subset=1000)
    result = SINGLE.check(_single_attempt(Experiment(model, training)))
    failures = _failures(result)
    assert any("2 pooling layers" in m for m in failures)
    assert any("only 1000 images" in m for m in failures)


# (b) beat the dense baseline

BEAT = exercises.get("beat_dense_baseline")
SMALL_CONVNET = Experiment(
    ModelSpec((Conv2D(16, 3), MaxPool(2), Conv2D(32, 3), MaxPool(2), Flatten(), Dense(10, "softmax"))),
    TrainingConfig(dataset="fashion_mnist", epochs=5, validation_split=0.0),
)


def test_baseline_numbers_match_the_preset():
    assert exercises.DENSE_BASELINE_PARAMS == 101_770
    assert specs.count_params(presets.get("dense_baseline").model) == 101_770
    assert specs.count_params(SMALL_CONVNET.model) == 12_810


def test_small_convnet_that_beats_the_stored_baseline_passes():
    attempt = Attempt(experiment=SMALL_CONVNET, history=_history([0.85] * 5), test_accuracy=0.895)
    result = BEAT.check(attempt)
    assert result.passed, result.messages
    assert f"{exercises.PASS_MARK} 12,810 parameters, fewer than the baseline's 101,770." in result.messages


def test_a_measured_reference_replaces_the_stored_one():
    attempt = Attempt(experiment=SMALL_CONVNET, history=_history([0.85]), test_accuracy=0.895,
                      reference_accuracy=0.90)
    result = BEAT.check(attempt)
    assert not result.passed
    assert any("does not beat the baseline's 90.00%" in m for m in _failures(result))


def test_the_dense_baseline_itself_fails_both_ways():
    baseline = presets.get("dense_baseline").experiment
    result = BEAT.check(Attempt(experiment=baseline, history=_history([0.88] * 5), test_accuracy=0.95))
    failures = _failures(result)
    assert not result.passed
    assert any("no Conv2D layer" in m for m in failures)
    assert any("101,770 parameters, not fewer" in m for m in failures)


def test_a_big_accurate_convnet_fails_on_parameters():
    big = presets.get("two_conv64").experiment
    result = BEAT.check(Attempt(experiment=big, history=_history([0.9] * 5), test_accuracy=0.91, params=243_786))
    assert not result.passed
    assert _failures(result) == [
        f"{exercises.FAIL_MARK} The model has 243,786 parameters, not fewer than the baseline's 101,770; "
        "add a pooling layer before Flatten or use fewer filters or dense units."
    ]


# (c) vertical edge kernel

KERNEL = exercises.get("vertical_edge_kernel")


@pytest.mark.parametrize("name", ["sobel x", "vertical edges"])
def test_vertical_edge_kernels_pass(name):
    result = KERNEL.check(Attempt(kernel=ops.KERNELS[name]))
    assert result.passed, result.messages


def test_a_tiny_or_flipped_vertical_kernel_passes_too():
    assert KERNEL.check(Attempt(kernel=-0.01 * ops.KERNELS["sobel x"])).passed
    assert KERNEL.check(Attempt(kernel=[[0, 0, 0], [1, -1, 0], [0, 0, 0]])).passed


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("identity", "Horizontal edges give 1.00"),
        ("box blur", "A flat grey area gives 0.50"),
        ("horizontal edges", "no response to a vertical edge"),
        ("sobel y", "no response to a vertical edge"),
        ("sharpen", "A flat grey area gives 0.50"),
    ],
)
def test_other_kernels_fail_with_advice(name, complaint):
    result = KERNEL.check(Attempt(kernel=ops.KERNELS[name]))
    assert not result.passed
    assert any(complaint in m for m in _failures(result)), result.messages


def test_kernel_responses_are_measured_on_step_edges():
    responses = exercises.kernel_responses(ops.KERNELS["sobel x"])
    assert responses == {"vertical": 4.0, "horizontal": 0.0, "flat": 0.0}


@pytest.mark.parametrize(
    ("kernel", "complaint"),
    [
        (None, "must be 3×3"),
        (np.zeros((5, 5)), "must be 3×3, got shape (5, 5)"),
        ([[1, 2, 3], [4, 5, 6]], "must be 3×3"),
        ([[0, 0, float("nan")], [0, 0, 0], [0, 0, 0]], "finite number"),
        ([["a", 0, 0], [0, 0, 0], [0, 0, 0]], "finite number"),
        (np.zeros((3, 3)), "no response to a vertical edge"),
    ],
)
def test_broken_kernels_fail_without_raising(kernel, complaint):
    result = KERNEL.check(Attempt(kernel=kernel))
    assert not result.passed
    assert any(complaint in m for m in result.messages)


# (d) Fashion-MNIST 90% in 5 epochs

FASHION = exercises.get("fashion_90_in_5")


def test_fashion_passes_at_90_percent_in_5_epochs():
    attempt = Attempt(experiment=FASHION.starting_experiment, history=_history([0.9] * 5), test_accuracy=0.9012)
    result = FASHION.check(attempt)
    assert result.passed, result.messages
    assert FASHION.starting_experiment.training.epochs == 5
    assert {"dataset", "epochs"} <= FASHION.locked


def test_fashion_fails_on_mnist_too_many_epochs_and_low_accuracy():
    mnist = replace(FASHION.starting_experiment,
                    training=replace(FASHION.starting_experiment.training, dataset="mnist", epochs=6))
    result = FASHION.check(Attempt(experiment=mnist, history=_history([0.9] * 6), test_accuracy=0.8999))
    failures = _failures(result)
    assert len(failures) == 3
    assert "used mnist" in failures[0]
    assert "took 6 epochs" in failures[1]
    assert "89.99% is below 90%" in failures[2]


def test_missing_or_nan_test_accuracy_fails():
    for accuracy in (None, float("nan")):
        attempt = Attempt(experiment=FASHION.starting_experiment, history=_history([0.9]), test_accuracy=accuracy)
        result = FASHION.check(attempt)
        assert not result.passed
        assert any("no test accuracy" in m for m in result.messages)


# Building attempts from training results


def test_history_rows_accepts_keras_style_and_row_style_histories():
    keras_style = {"loss": [0.5, 0.3], "accuracy": [0.8, 0.9]}
    rows = [{"loss": 0.5, "accuracy": 0.8}, {"loss": 0.3, "accuracy": 0.9}]
    assert history_rows(keras_style) == rows
    assert history_rows(rows) == rows
    assert history_rows(None) == []


def test_attempt_from_result_counts_parameters():
    result = SimpleNamespace(
        experiment=SMALL_CONVNET, history=[{"accuracy": 0.8}], test_accuracy=0.9, stopped_reason="completed"
    )
    attempt = Attempt.from_result(result, reference_accuracy=0.5)
    assert attempt.params == 12_810
    assert attempt.reference_accuracy == 0.5
    assert BEAT.check(attempt).passed


def test_a_horizontal_edge_kernel_is_told_what_it_is_not_to_sum_to_zero():
    # Before: "make the nine numbers add up to zero" for a kernel whose numbers already add up to zero.
    result = KERNEL.check(Attempt(kernel=[[-1, -1, -1], [0, 0, 0], [1, 1, 1]]))
    assert not result.passed
    failures = _failures(result)
    assert not any("add up to zero" in m for m in failures)
    assert any("finds horizontal edges" in m and "3.00" in m for m in failures)
    assert f"{exercises.PASS_MARK} Flat areas give almost nothing (0.00)." in result.messages


def test_a_kernel_that_does_not_sum_to_zero_is_told_its_sum():
    result = KERNEL.check(Attempt(kernel=[[-1, 0, 2], [-1, 0, 2], [-1, 0, 2]]))
    assert any("add up to 3" in m for m in _failures(result))
