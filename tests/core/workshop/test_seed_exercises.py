"""The seed notebooks' 'Exploring convolutions' questions as exercises that check themselves."""

from dataclasses import replace

import pytest

from cnn_core.engine.specs import AvgPool, Conv2D, Experiment, MaxPool
from cnn_core.workshop.exercises import EXERCISES, Attempt
from cnn_core.workshop.seed_exercises import SEED_EXERCISES, START_FLATTENED, flattened_size

HISTORY = [{"accuracy": 0.95, "loss": 0.2}, {"accuracy": 0.97, "loss": 0.1}]


def attempt(experiment: Experiment, accuracy: float = 0.91, seconds: float = 30.0, earlier=()) -> Attempt:
    return Attempt(experiment=experiment, history=HISTORY, test_accuracy=accuracy, stopped_reason="completed",
                   params=1000, seconds=seconds, earlier=tuple(earlier))


def with_layers(experiment: Experiment, layers) -> Experiment:
    return replace(experiment, model=replace(experiment.model, layers=tuple(layers)))


def start(key: str) -> Experiment:
    return EXERCISES[key].starting_experiment


def test_all_seed_exercises_are_registered():
    keys = [e.key for e in SEED_EXERCISES]
    assert keys == ["filters_16_32_64", "remove_last_conv", "add_convs", "first_conv_only", "max_vs_avg_pool",
                    "flatten_sweet_spot", "stop_at_loss"]
    assert all(key in EXERCISES for key in keys)


@pytest.mark.parametrize("exercise", SEED_EXERCISES, ids=lambda e: e.key)
def test_the_starting_setup_alone_never_passes(exercise):
    # Even a perfect score with the unchanged setup, compared with itself, must not pass.
    same = attempt(exercise.starting_experiment, accuracy=0.999)
    result = exercise.check(attempt(exercise.starting_experiment, accuracy=0.999, earlier=[same]))
    assert not result.passed
    assert any(message.startswith("✗") for message in result.messages)


def test_filters_compare_passes_with_two_filter_counts_and_reports_both():
    base = start("filters_16_32_64")
    small = with_layers(base, [replace(layer, filters=16) if isinstance(layer, Conv2D) else layer
                               for layer in base.model.layers])
    result = EXERCISES["filters_16_32_64"].check(
        attempt(small, 0.88, 20.0, earlier=[attempt(base, 0.89, 60.0)])
    )
    assert result.passed, result.messages
    assert any("16 filters: 88.00% in 20 s" in m for m in result.messages)
    assert any("64 filters: 89.00% in 60 s" in m for m in result.messages)


def test_filters_compare_ignores_runs_on_other_data():
    base = start("filters_16_32_64")
    small = with_layers(base, [replace(layer, filters=16) if isinstance(layer, Conv2D) else layer
                               for layer in base.model.layers])
    other_data = replace(base, training=replace(base.training, train_subset=500))
    result = EXERCISES["filters_16_32_64"].check(attempt(small, earlier=[attempt(other_data)]))
    assert not result.passed


def test_remove_last_conv():
    base = start("remove_last_conv")
    layers = list(base.model.layers)
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, Conv2D)]
    one = with_layers(base, layers[: convs[1]] + layers[convs[1] + 2:])
    assert EXERCISES["remove_last_conv"].check(attempt(one, 0.87)).passed
    assert not EXERCISES["remove_last_conv"].check(attempt(one, 0.5)).passed


def test_add_convs_needs_three():
    base = start("add_convs")
    layers = list(base.model.layers)
    three = with_layers(base, [Conv2D(32, 3, padding="same")] + layers)
    assert EXERCISES["add_convs"].check(attempt(three, 0.9)).passed


def test_first_conv_only_keeps_the_original_first():
    base = start("first_conv_only")
    layers = [layer for layer in base.model.layers if not isinstance(layer, Conv2D)]
    first = next(layer for layer in base.model.layers if isinstance(layer, Conv2D))
    kept = with_layers(base, [first] + layers)
    assert EXERCISES["first_conv_only"].check(attempt(kept, 0.88)).passed
    changed = with_layers(base, [replace(first, filters=8)] + layers)
    result = EXERCISES["first_conv_only"].check(attempt(changed, 0.88))
    assert not result.passed


def test_max_vs_avg_needs_both_runs():
    base = start("max_vs_avg_pool")
    avg = with_layers(base, [AvgPool(layer.pool_size) if isinstance(layer, MaxPool) else layer
                             for layer in base.model.layers])
    alone = EXERCISES["max_vs_avg_pool"].check(attempt(avg, 0.9))
    assert not alone.passed
    result = EXERCISES["max_vs_avg_pool"].check(attempt(avg, 0.90, earlier=[attempt(base, 0.91)]))
    assert result.passed, result.messages
    assert any("1.00% worse" in m for m in result.messages)


def test_flatten_sweet_spot():
    base = start("flatten_sweet_spot")
    assert START_FLATTENED == 26 * 26 * 16 == flattened_size(base.model)
    layers = list(base.model.layers)
    pooled = with_layers(base, layers[:1] + [MaxPool(2)] + layers[1:])
    assert flattened_size(pooled.model) == 13 * 13 * 16
    wide_run = attempt(base, 0.975)
    assert EXERCISES["flatten_sweet_spot"].check(attempt(pooled, 0.972, earlier=[wide_run])).passed
    assert not EXERCISES["flatten_sweet_spot"].check(attempt(pooled, 0.96, earlier=[wide_run])).passed
    assert not EXERCISES["flatten_sweet_spot"].check(attempt(pooled, 0.99)).passed


def loss_run(target=0.4, epochs=10, losses=(0.497, 0.376), reason="loss_reached", **training) -> Attempt:
    base = start("stop_at_loss")
    experiment = replace(base, training=replace(base.training, target_loss=target, epochs=epochs, **training))
    history = [{"epoch": i, "loss": loss, "accuracy": 0.85, "complete": True} for i, loss in enumerate(losses)]
    return Attempt(experiment=experiment, history=history, test_accuracy=0.86, stopped_reason=reason, params=101_770)


def test_stop_at_loss_passes_when_the_callback_ended_the_run_early():
    result = EXERCISES["stop_at_loss"].check(loss_run())
    assert result.passed, result.messages
    assert "✓ It stopped after 2 of the 10 epochs asked for." in result.messages
    assert "✓ The last epoch's training loss is 0.376, at or below 0.4." in result.messages


def test_the_stop_at_loss_start_needs_a_target_and_more_epochs():
    exercise = EXERCISES["stop_at_loss"]
    assert exercise.starting_experiment.training.target_loss is None
    assert {"dataset", "target_accuracy"} <= exercise.locked and "epochs" not in exercise.locked
    # The start as it is: one epoch, no target (what a real run of it gave).
    base = start("stop_at_loss")
    unchanged = Attempt(experiment=base, history=[{"loss": 0.497, "accuracy": 0.82, "complete": True}],
                        test_accuracy=0.85, stopped_reason="completed")
    failures = [m for m in exercise.check(unchanged).messages if m.startswith("✗")]
    assert failures == [
        "✗ Set 'Stop at loss ≤' to 0.4 so the callback ends the run by itself.",
        "✗ Without a target loss the run could only end at its last epoch.",
        "✗ The run had a single epoch; ask for more than it needs (try 10), so that the callback, not the epoch "
        "count, is what ends it.",
        "✗ The last epoch's training loss is 0.497, but no target was set for the callback to compare it with.",
    ]


@pytest.mark.parametrize(
    ("attempt", "advice"),
    [
        # A target set, but too few epochs to reach it: the run ran out of epochs.
        (loss_run(epochs=1, losses=(0.497,), reason="completed"), "ask for more epochs (10 is plenty)"),
        # The callback fired on the very last epoch: nothing was saved, the epoch count ended it as much.
        (loss_run(epochs=2), "The run used all 2 epochs it was given"),
        (loss_run(target=0.8, losses=(0.497,)), "A target loss of 0.8 stops too easily; set it to 0.4 or lower"),
        (loss_run(losses=(0.497, 0.45), reason="stopped"), "You stopped the run by hand"),
        (loss_run(losses=(0.497, 0.45), reason="target_reached", target_accuracy=0.85),
         "The target accuracy stopped the run first"),
        (loss_run(losses=(0.497, 0.45)), "above 0.4; give the run more epochs"),
        (loss_run(dataset="mnist"), "This exercise is about fashion_mnist"),
    ],
)
def test_stop_at_loss_fails_and_says_what_to_try(attempt, advice):
    result = EXERCISES["stop_at_loss"].check(attempt)
    assert not result.passed
    assert any(m.startswith("✗") and advice in m for m in result.messages), result.messages
