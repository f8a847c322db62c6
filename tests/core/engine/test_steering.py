"""Pause, resume and learning-rate changes of a running `training.train`, and continuing a finished model."""

import threading

import numpy as np
import pytest

from cnn_core.engine import datasets, training
from cnn_core.engine.datasets import Dataset
from cnn_core.engine.errors import UserError
from cnn_core.engine.specs import Conv2D, Dense, Experiment, Flatten, MaxPool, ModelSpec, TrainingConfig
from cnn_core.engine.training import BatchEnded, LearningRateChanged, Paused, Resumed, TrainingControl

SPEC = ModelSpec((Conv2D(4, 3), MaxPool(2), Flatten(), Dense(10, "softmax")), name="tiny")


@pytest.fixture(scope="module")
def small() -> Dataset:
    mnist = datasets.load("mnist")
    return Dataset("mnist", mnist.x_train[:600], mnist.y_train[:600], mnist.x_test[:200], mnist.y_test[:200],
                   mnist.class_names)


def experiment(**changes) -> Experiment:
    config = {"batch_size": 100, "epochs": 2, "validation_split": 0.0, "seed": 3, "learning_rate": 0.01} | changes
    return Experiment(SPEC, TrainingConfig(**config))


def test_pause_and_resume_take_the_same_steps_and_weights_as_an_uninterrupted_run(small):
    plain = training.train(experiment(), dataset=small)
    control = TrainingControl()
    events = []
    resumed_by_other_thread = threading.Event()

    def listener(event):
        events.append(event)
        if isinstance(event, BatchEnded) and (event.epoch, event.step) == (0, 3):
            control.pause()
            # Resumed from elsewhere while the training thread waits in the callback.
            threading.Timer(0.3, lambda: (resumed_by_other_thread.set(), control.resume())).start()

    paused = training.train(experiment(), dataset=small, control=control, listeners=[listener])
    batches = [event for event in events if isinstance(event, BatchEnded)]
    assert len(batches) == 2 * 6
    pauses = [event for event in events if isinstance(event, Paused)]
    resumes = [event for event in events if isinstance(event, Resumed)]
    assert resumed_by_other_thread.is_set()
    assert [p.epochs for p in pauses] == [pytest.approx(0.5)] and resumes[0].paused_seconds >= 0.25
    # The pause came between batch 3 and batch 4.
    assert events.index(pauses[0]) == events.index(batches[2]) + 1
    assert events.index(resumes[0]) + 1 == events.index(batches[3])
    for a, b in zip(plain.model.get_weights(), paused.model.get_weights(), strict=True):
        assert np.array_equal(a, b)


def test_stop_while_paused_ends_the_run(small):
    control, stop = TrainingControl(), threading.Event()

    def listener(event):
        if isinstance(event, BatchEnded) and event.step == 2:
            control.pause()
            threading.Timer(0.2, stop.set).start()

    result = training.train(experiment(), dataset=small, control=control, stop_event=stop, listeners=[listener])
    assert result.stopped_reason == "stopped"
    assert result.history[-1]["complete"] is False


@pytest.mark.parametrize("schedule", ["constant", "one_cycle"])
def test_a_learning_rate_change_takes_effect_at_the_next_batch(small, schedule):
    control = TrainingControl()
    seen = []

    def read_back(model):
        # The optimizer's current rate, as the next step will use it.
        return float(np.asarray(model.optimizer.learning_rate))

    def listener(event):
        if isinstance(event, BatchEnded) and (event.epoch, event.step) == (0, 2):
            control.set_learning_rate(0.0005)
        if isinstance(event, LearningRateChanged):
            seen.append(event)

    import keras

    rates = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            rates.append(read_back(self.model))

    original_fit = keras.Model.fit

    def fit_with_spy(self, *args, callbacks=(), **kwargs):
        return original_fit(self, *args, callbacks=[*callbacks, Spy()], **kwargs)

    keras.Model.fit = fit_with_spy
    try:
        training.train(experiment(lr_schedule=schedule), dataset=small, control=control, listeners=[listener])
    finally:
        keras.Model.fit = original_fit
    assert [event.epochs for event in seen] == [pytest.approx(2 / 6)]
    assert seen[0].learning_rate == 0.0005
    # Batches 1 and 2 ran at the configured rate (or schedule), batch 3 on at the new one.
    assert rates[0] != pytest.approx(0.0005) and rates[1] != pytest.approx(0.0005)
    assert rates[2:] == [pytest.approx(0.0005)] * (len(rates) - 2)


def test_bad_learning_rates_are_refused_with_a_sentence():
    control = TrainingControl()
    for value in (0, -1, float("nan"), 100):
        with pytest.raises(UserError, match="above 0"):
            control.set_learning_rate(value)
    assert not control.pending


def test_continue_training_starts_from_the_given_weights(small):
    first = training.train(experiment(epochs=1), dataset=small)
    events = []
    more = training.train(
        experiment(epochs=1), dataset=small, initial_weights=first.model.get_weights(), listeners=[events.append]
    )
    # The first batch of the continued run already has the first run's (much lower) loss.
    first_batch = next(event for event in events if isinstance(event, BatchEnded))
    assert first_batch.loss < first.history[0]["loss"]
    assert more.test_accuracy >= first.test_accuracy - 0.05
    other = ModelSpec((Flatten(), Dense(10, "softmax")))
    with pytest.raises(UserError, match="different model"):
        training.train(Experiment(other, experiment().training), dataset=small,
                       initial_weights=first.model.get_weights())


def test_time_spent_paused_neither_runs_the_countdown_nor_slows_the_estimate():
    now = [0.0]
    recorder = training.ProgressRecorder(clock=lambda: now[0])
    recorder(training.TrainStarted(epochs=1, steps_per_epoch=100, train_size=1000, val_size=0, params=1))
    for step in range(1, 11):
        now[0] += 1.0
        recorder(BatchEnded(0, step, 100, 0.5, 0.5))
    before = recorder.snapshot().eta_seconds
    assert before == pytest.approx(90.0)
    recorder(Paused(0.1))
    now[0] += 600.0
    paused = recorder.snapshot()
    assert paused.paused and paused.eta_seconds == before
    recorder(Resumed(0.1, 600.0))
    now[0] += 1.0
    recorder(BatchEnded(0, 11, 100, 0.5, 0.5))
    after = recorder.snapshot()
    assert not after.paused and after.eta_seconds == pytest.approx(89.0)
    assert after.markers == [{"epochs": 0.1, "label": "paused"}]
