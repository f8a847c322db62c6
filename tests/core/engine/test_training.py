import logging
import math
import threading

import numpy as np
import pytest

from cnn_core.engine import datasets, training
from cnn_core.engine.datasets import Dataset
from cnn_core.engine.errors import UserError
from cnn_core.engine.models import build_model
from cnn_core.engine.specs import Conv2D, Dense, Experiment, Flatten, MaxPool, ModelSpec, TrainingConfig
from cnn_core.engine.training import BatchEnded, EpochEnded, ProgressRecorder, TrainFinished, TrainStarted
from cnn_core.workshop import presets

TINY_SPEC = ModelSpec((Conv2D(4, 3), MaxPool(2), Flatten(), Dense(10, "softmax")), name="tiny")


@pytest.fixture(scope="module")
def small() -> Dataset:
    mnist = datasets.load("mnist")
    return Dataset("mnist", mnist.x_train[:1000], mnist.y_train[:1000], mnist.x_test[:300], mnist.y_test[:300],
                   mnist.class_names)


def experiment(**changes) -> Experiment:
    config = {"batch_size": 100, "epochs": 2, "validation_split": 0.1, "seed": 1, "learning_rate": 0.01} | changes
    return Experiment(TINY_SPEC, TrainingConfig(**config))


def without_seconds(history):
    return [{key: value for key, value in row.items() if key != "seconds"} for row in history]


def test_events_arrive_in_order_with_plain_values(small):
    events = []
    result = training.train(experiment(), dataset=small, listeners=[events.append])

    started, *middle, finished = events
    assert started == TrainStarted(epochs=2, steps_per_epoch=9, train_size=900, val_size=100, params=6810,
                                   test_size=300)
    expected_kinds = ([BatchEnded] * 9 + [EpochEnded]) * 2
    assert [type(event) for event in middle] == expected_kinds
    batches = [event for event in middle if isinstance(event, BatchEnded)]
    assert [(b.epoch, b.step, b.steps_per_epoch) for b in batches] == [(e, s, 9) for e in (0, 1) for s in range(1, 10)]
    assert all(type(b.loss) is float and type(b.accuracy) is float for b in batches)

    epochs = [event for event in middle if isinstance(event, EpochEnded)]
    assert [e.epoch for e in epochs] == [0, 1] and all(e.complete for e in epochs)
    # An epoch's figures are the running averages of its last batch.
    assert epochs[1].loss == pytest.approx(batches[-1].loss) and epochs[1].accuracy == pytest.approx(batches[-1].accuracy)
    assert all(0.0 <= e.val_accuracy <= 1.0 for e in epochs)

    assert isinstance(finished, TrainFinished)
    assert finished.reason == "completed" and finished.epochs_completed == 2
    assert finished.message.startswith("Finished all 2 epochs.")
    assert finished.test_accuracy == result.test_accuracy and finished.test_loss == result.test_loss

    assert result.stopped_reason == "completed"
    assert [row["epoch"] for row in result.history] == [0, 1]
    for row in result.history:
        assert all(value is None or type(value) in (int, float, bool) for value in row.values())
    # The reported test score is the returned model's score on the test images.
    loss, accuracy = result.model.evaluate(small.x_test, small.y_test, verbose=0)
    assert accuracy == pytest.approx(result.test_accuracy)
    # Training learned something: well above the 10% of guessing.
    assert result.test_accuracy > 0.5


def test_same_seed_same_run(small):
    first = training.train(experiment(), dataset=small)
    second = training.train(experiment(), dataset=small)
    assert without_seconds(first.history) == without_seconds(second.history)
    assert first.test_accuracy == second.test_accuracy
    for a, b in zip(first.model.get_weights(), second.model.get_weights(), strict=True):
        assert np.array_equal(a, b)
    other = training.train(experiment(seed=2), dataset=small)
    assert without_seconds(other.history) != without_seconds(first.history)


def test_subset_and_validation_split_take_first_and_last_images(small):
    data = training.split_data(experiment(train_subset=500, validation_split=0.2), small)
    assert np.array_equal(data.x_train, small.x_train[:400])
    assert np.array_equal(data.x_val, small.x_train[400:500])
    assert np.array_equal(data.y_val, small.y_train[400:500])
    no_validation = training.split_data(experiment(validation_split=0.0), small)
    assert no_validation.x_val is None and len(no_validation.x_train) == 1000


def test_wrong_dataset_shape_is_refused(small):
    spec = ModelSpec(TINY_SPEC.layers, input_shape=(32, 32, 1))
    with pytest.raises(UserError, match=r"input_shape"):
        training.train(Experiment(spec, TrainingConfig(batch_size=100, epochs=1)), dataset=small)


def test_stop_from_another_thread_stops_within_one_batch_and_keeps_weights(small):
    stop = threading.Event()
    at_step_three = threading.Event()
    go_on = threading.Event()
    events = []

    def listener(event):
        events.append(event)
        if isinstance(event, BatchEnded) and event.epoch == 1 and event.step == 3:
            # Hold training here until the other thread has pressed Stop.
            at_step_three.set()
            go_on.wait(timeout=60)

    def press_stop():
        at_step_three.wait(timeout=60)
        stop.set()
        go_on.set()

    outcome = {}
    presser = threading.Thread(target=press_stop)
    trainer = threading.Thread(
        target=lambda: outcome.update(result=training.train(
            experiment(epochs=5), dataset=small, listeners=[listener], stop_event=stop))
    )
    presser.start()
    trainer.start()
    trainer.join(timeout=300)
    presser.join(timeout=10)
    result = outcome["result"]

    batches = [e for e in events if isinstance(e, BatchEnded)]
    assert [(b.epoch, b.step) for b in batches][-1] == (1, 3)
    assert len(batches) == 9 + 3
    finished = events[-1]
    assert isinstance(finished, TrainFinished)
    assert finished.reason == result.stopped_reason == "stopped"
    assert finished.epochs_completed == 1
    assert "during epoch 2 of 5 (step 3 of 9)" in finished.message
    assert [row["complete"] for row in result.history] == [True, False]
    # The weights are the trained ones, not the freshly initialised ones.
    initial = build_model(TINY_SPEC, experiment().training).get_weights()
    assert not np.array_equal(initial[0], result.model.get_weights()[0])
    assert result.test_accuracy > 0.3


def test_stop_before_start_trains_one_batch(small):
    stop = threading.Event()
    stop.set()
    events = []
    result = training.train(experiment(), dataset=small, listeners=[events.append], stop_event=stop)
    assert sum(isinstance(e, BatchEnded) for e in events) == 1
    assert result.stopped_reason == "stopped"


def test_stop_during_the_very_last_batch_counts_as_completed(small):
    stop = threading.Event()

    def press_stop_at_the_end(event):
        if isinstance(event, BatchEnded) and (event.epoch, event.step) == (1, 9):
            stop.set()

    result = training.train(experiment(), dataset=small, listeners=[press_stop_at_the_end], stop_event=stop)
    assert result.stopped_reason == "completed"
    assert [row["complete"] for row in result.history] == [True, True]


def test_target_accuracy_stops_with_the_seed_message(small):
    events = []
    result = training.train(experiment(epochs=8, target_accuracy=0.85), dataset=small, listeners=[events.append])
    assert result.stopped_reason == "target_reached"
    assert result.message.startswith("Reached 85% accuracy so cancelling training!")
    accuracies = [row["accuracy"] for row in result.history]
    # It stops at the first epoch that reaches the target, before the 8 epochs are done.
    assert accuracies[-1] >= 0.85 and all(value < 0.85 for value in accuracies[:-1])
    assert len(accuracies) < 8
    assert events[-1].epochs_completed == len(accuracies)


def test_target_loss_stops_at_the_first_epoch_at_or_below_it(small):
    events = []
    result = training.train(experiment(epochs=8, target_loss=0.6), dataset=small, listeners=[events.append])
    losses = [row["loss"] for row in result.history]
    assert result.stopped_reason == "loss_reached"
    # The callback's rule: the first whole epoch whose training loss is at or below the target ends the run.
    assert losses[-1] <= 0.6 and all(value > 0.6 for value in losses[:-1])
    assert 1 < len(losses) < 8 and all(row["complete"] for row in result.history)
    assert result.message.startswith(f"Stopped: training loss {math.floor(losses[-1] * 100) / 100:.2f} ≤ 0.60 "
                                     f"at epoch {len(losses)}.")
    assert events[-1].reason == "loss_reached" and events[-1].epochs_completed == len(losses)


def test_an_unreachable_target_loss_runs_every_epoch(small):
    result = training.train(experiment(epochs=2, target_loss=0.001), dataset=small)
    assert result.stopped_reason == "completed"
    assert len(result.history) == 2 and min(row["loss"] for row in result.history) > 0.001
    assert result.message.startswith("Finished all 2 epochs.")


@pytest.mark.parametrize(
    ("loss", "target", "epoch", "expected"),
    [
        (0.3849, 0.4, 2, "Stopped: training loss 0.38 ≤ 0.40 at epoch 3."),
        # Rounded down, never shown above the target it met.
        (0.3999, 0.4, 0, "Stopped: training loss 0.39 ≤ 0.40 at epoch 1."),
        (0.29, 0.3, 0, "Stopped: training loss 0.29 ≤ 0.30 at epoch 1."),
        (0.4049, 0.405, 4, "Stopped: training loss 0.404 ≤ 0.405 at epoch 5."),
    ],
)
def test_the_loss_message_reads_as_the_rule_it_applied(loss, target, epoch, expected):
    assert training.loss_message(loss, target, epoch) == expected
    assert training.target_message(0.998) == "Reached 99.8% accuracy so cancelling training!"


def unstable_experiment(**changes) -> Experiment:
    # A learning rate this large makes validation accuracy jump around, so the best epoch is not the last.
    return experiment(optimizer="sgd", learning_rate=0.9, epochs=5, validation_split=0.3, seed=3, **changes)


def validation_accuracy(result, dataset):
    data = training.split_data(result.experiment, dataset)
    return result.model.evaluate(data.x_val, data.y_val, verbose=0)[1]


def test_restore_best_keeps_the_best_validation_weights(small):
    plain = training.train(unstable_experiment(), dataset=small)
    scores = [row["val_accuracy"] for row in plain.history]
    best = int(np.argmax(scores))
    assert best != len(scores) - 1, f"this run must end below its best epoch to test anything: {scores}"
    assert validation_accuracy(plain, small) == pytest.approx(scores[-1])

    restored = training.train(unstable_experiment(restore_best=True), dataset=small)
    assert without_seconds(restored.history) == without_seconds(plain.history)
    assert validation_accuracy(restored, small) == pytest.approx(max(scores))
    assert f"Restored the weights of epoch {best + 1}" in restored.message


def test_restore_best_also_applies_after_stop(small):
    stop = threading.Event()
    plain = training.train(unstable_experiment(), dataset=small)
    scores = [row["val_accuracy"] for row in plain.history]
    stop_epoch = int(np.argmax(scores)) + 1

    def press_stop(event):
        if isinstance(event, BatchEnded) and event.epoch == stop_epoch and event.step == 2:
            stop.set()

    result = training.train(unstable_experiment(restore_best=True), dataset=small, listeners=[press_stop],
                            stop_event=stop)
    assert result.stopped_reason == "stopped"
    assert result.history[-1]["complete"] is False
    best_seen = max(row["val_accuracy"] for row in result.history)
    assert validation_accuracy(result, small) == pytest.approx(best_seen)


def test_a_failing_listener_does_not_stop_training(small, caplog):
    calls = []

    def broken(event):
        calls.append(event)
        raise RuntimeError("chart exploded")

    with caplog.at_level(logging.ERROR, logger="cnn_core.engine.training"):
        result = training.train(experiment(epochs=1), dataset=small, listeners=[broken])
    assert result.stopped_reason == "completed"
    assert isinstance(calls[-1], TrainFinished)
    # Logged once, not once per batch.
    assert sum("chart exploded" in record.exc_text for record in caplog.records if record.exc_text) == 1


def test_progress_recorder_follows_a_real_run_in_a_thread(small):
    recorder = ProgressRecorder()
    assert recorder.snapshot().status == "waiting"
    seen = []

    def peek(event):
        if isinstance(event, EpochEnded):
            seen.append(recorder.snapshot())

    thread = threading.Thread(
        target=training.train, args=(experiment(),), kwargs={"dataset": small, "listeners": [recorder, peek]}
    )
    thread.start()
    thread.join(timeout=300)
    assert seen[0].status == "running" and seen[0].fraction == pytest.approx(0.5)
    assert seen[0].eta_seconds is not None and seen[0].eta_seconds >= 0
    final = recorder.snapshot()
    assert final.status == "finished" and final.fraction == 1.0 and final.eta_seconds is None
    assert len(final.batch_loss) == len(final.batch_accuracy) == len(final.batch_positions) == 18
    assert final.batch_positions[-1] == pytest.approx(2.0)
    assert [row["epoch"] for row in final.epoch_history] == [0, 1]
    assert final.finished is not None and final.finished.reason == "completed"


def test_progress_recorder_fraction_eta_and_bounded_points():
    now = [100.0]
    recorder = ProgressRecorder(max_points=100, clock=lambda: now[0])
    recorder(TrainStarted(epochs=4, steps_per_epoch=1000, train_size=64_000, val_size=0, params=10))
    for epoch in range(4):
        for step in range(1, 1001):
            recorder(BatchEnded(epoch, step, 1000, loss=1.0 / (epoch * 1000 + step), accuracy=0.5))
        if epoch == 0:
            now[0] = 110.0
            snapshot = recorder.snapshot()
            assert snapshot.fraction == pytest.approx(0.25)
            # 3000 steps left at the rate since the first batch (10 s for 999 steps).
            assert snapshot.eta_seconds == pytest.approx(3000 * 10 / 999)
            assert snapshot.epoch == 0 and snapshot.step == 1000
    snapshot = recorder.snapshot()
    assert 50 <= len(snapshot.batch_loss) <= 100
    assert snapshot.batch_positions == sorted(snapshot.batch_positions)
    # The first batch survives every halving, and the points stay evenly spaced.
    assert snapshot.batch_loss[0] == 1.0
    gaps = np.diff(snapshot.batch_positions)
    assert np.allclose(gaps, gaps[0])


def test_progress_recorder_is_consistent_under_concurrent_reads():
    recorder = ProgressRecorder(max_points=50)
    recorder(TrainStarted(epochs=1, steps_per_epoch=20_000, train_size=1, val_size=0, params=1))
    done = threading.Event()
    problems = []

    def read():
        while not done.is_set():
            snapshot = recorder.snapshot()
            if not len(snapshot.batch_loss) == len(snapshot.batch_accuracy) == len(snapshot.batch_positions):
                problems.append(snapshot)

    reader = threading.Thread(target=read)
    reader.start()
    for step in range(1, 20_001):
        recorder(BatchEnded(0, step, 20_000, loss=1.0, accuracy=0.5))
    done.set()
    reader.join()
    assert problems == []
    assert recorder.snapshot().fraction == 1.0


def test_progress_recorder_rejects_tiny_budgets():
    with pytest.raises(ValueError, match="max_points"):
        ProgressRecorder(max_points=1)


@pytest.mark.slow
def test_chollet_preset_on_full_mnist_reaches_its_reported_accuracy():
    preset = presets.get("mnist_functional")
    result = training.train(preset.experiment)
    assert result.stopped_reason == "completed"
    assert result.test_accuracy >= 0.986


@pytest.mark.slow
def test_quick_preset_on_full_mnist_reaches_99_percent():
    result = training.train(presets.get("quick_mnist").experiment)
    assert result.stopped_reason == "completed"
    assert result.test_accuracy >= 0.99


def test_a_scheduled_run_ends_with_the_rate_at_zero(small):
    result = training.train(experiment(lr_schedule="cosine"), dataset=small)
    # 2 epochs × 9 steps: the cosine schedule spans exactly the run train() does.
    assert int(result.model.optimizer.iterations) == 18
    assert float(result.model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)


def test_a_bfloat16_run_says_so_and_hands_over_a_float32_model(small):
    from cnn_core.engine import precision

    events = []
    result = training.train(experiment(epochs=1), dataset=small, listeners=[events.append], precision="bfloat16")
    assert events[0].precision == "bfloat16"
    assert result.precision == "bfloat16"
    assert precision.model_precision(result.model) == "float32"
    # The copy is compiled, so Keras' own evaluation gives the score the run reported.
    loss, accuracy = result.model.evaluate(small.x_test, small.y_test, verbose=0)
    assert accuracy == pytest.approx(result.test_accuracy, abs=1e-6)
    assert loss == pytest.approx(result.test_loss, rel=1e-4)
    assert result.test_accuracy > 0.5
    # The test pass's probabilities come along, for the Evaluate page.
    assert result.test_probabilities.shape == (len(small.y_test), 10)
    assert result.test_probabilities.dtype == np.float32
    accuracy_from_probabilities = np.mean(result.test_probabilities.argmax(axis=1) == small.y_test)
    assert accuracy_from_probabilities == pytest.approx(result.test_accuracy)
    recorder = ProgressRecorder()
    for event in events:
        recorder(event)
    assert recorder.snapshot().precision == "bfloat16"


def test_a_float32_run_is_float32_throughout(small):
    events = []
    result = training.train(experiment(epochs=1), dataset=small, listeners=[events.append])
    assert events[0].precision == result.precision == "float32"
    with pytest.raises(ValueError, match="precision"):
        training.train(experiment(epochs=1), dataset=small, precision="float16")
