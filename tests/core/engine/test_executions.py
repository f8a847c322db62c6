"""Several batches per call into TensorFlow (engine.executions): same run, every batch reported, steering still exact."""

import threading

import numpy as np
import pytest

from cnn_core.engine import datasets, executions, training
from cnn_core.engine.datasets import Dataset
from cnn_core.engine.specs import Conv2D, Dense, Experiment, Flatten, MaxPool, ModelSpec, TrainingConfig
from cnn_core.engine.training import BatchEnded, LearningRateChanged, TrainingControl

SPEC = ModelSpec((Conv2D(4, 3), MaxPool(2), Flatten(), Dense(10, "softmax")), name="tiny")
# 1,200 images in batches of 20: 60 steps an epoch, so an execution may hold 3 of them (1/20 of an epoch).
STEPS_PER_EPOCH = 60


@pytest.fixture(scope="module")
def small() -> Dataset:
    mnist = datasets.load("mnist")
    return Dataset("mnist", mnist.x_train[:1200], mnist.y_train[:1200], mnist.x_test[:200], mnist.y_test[:200],
                   mnist.class_names)


def experiment(**changes) -> Experiment:
    config = {"batch_size": 20, "epochs": 2, "validation_split": 0.0, "seed": 5, "learning_rate": 0.01} | changes
    return Experiment(SPEC, TrainingConfig(**config))


@pytest.fixture
def runners(monkeypatch):
    """Every StepRunner a run makes; with `long` executions as long as the cap allows."""
    made = []
    original = executions.StepRunner.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(executions.StepRunner, "__init__", init)
    return made


def long_executions(monkeypatch):
    # However fast a step is measured, an execution then runs as many steps as the cap allows.
    monkeypatch.setattr(executions, "EXECUTION_SECONDS", 1e6)


def one_step_executions(monkeypatch):
    monkeypatch.setattr(executions, "MAX_STEPS", 1)
    monkeypatch.setattr(executions, "EXECUTION_SECONDS", 1e6)


def batches_of(events):
    return [event for event in events if isinstance(event, BatchEnded)]


def test_long_executions_report_every_batch_and_train_exactly_the_same(small, runners, monkeypatch):
    one_step_executions(monkeypatch)
    single_events = []
    single = training.train(experiment(), dataset=small, listeners=[single_events.append])
    assert runners[-1].steps == 1
    monkeypatch.setattr(executions, "MAX_STEPS", 64)
    runners.clear()
    many_events = []
    many = training.train(experiment(), dataset=small, listeners=[many_events.append])
    # The runs really differ in execution length: after two one-step calls, 3 steps a call (epoch 1: 1, 1,
    # 19 × 3 and the last step alone, since no execution crosses an epoch's end; epoch 2: 20 × 3).
    assert runners[-1].steps == 3 and runners[-1].executions == 2 + 19 + 1 + 20
    # One trace for the whole run: the optimizer's slots existed before it (a trace creating them runs twice).
    assert runners[-1]._run.experimental_get_tracing_count() == 1
    one, several = batches_of(single_events), batches_of(many_events)
    assert [(b.epoch, b.step) for b in several] == [(e, s) for e in (0, 1) for s in range(1, STEPS_PER_EPOCH + 1)]
    assert [b.loss for b in several] == pytest.approx([b.loss for b in one], rel=1e-5)
    assert [b.accuracy for b in several] == pytest.approx([b.accuracy for b in one], rel=1e-5)
    for a, b in zip(single.model.get_weights(), many.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_stop_inside_an_execution_acts_at_its_end_and_reports_the_batch_the_weights_are_from(
        small, runners, monkeypatch):
    long_executions(monkeypatch)
    stop = threading.Event()
    events = []

    def listener(event):
        events.append(event)
        # Executions are steps 1, 2, then 3-5, 6-8…: step 6 is inside the one that ends at step 8.
        if isinstance(event, BatchEnded) and (event.epoch, event.step) == (0, 6):
            stop.set()

    import keras

    iterations = []

    class Spy(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            iterations.append(int(self.model.optimizer.iterations.numpy()))

    original_fit = keras.Model.fit

    def fit_with_spy(self, *args, callbacks=(), **kwargs):
        return original_fit(self, *args, callbacks=[*callbacks, Spy()], **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit_with_spy)
    result = training.train(experiment(), dataset=small, stop_event=stop, listeners=[listener])
    assert [(b.epoch, b.step) for b in batches_of(events)][-1] == (0, 8)
    # The optimizer took exactly the steps reported: the kept weights are those of step 8.
    assert iterations == [8]
    assert result.stopped_reason == "stopped" and "step 8 of 60" in result.message


def test_a_learning_rate_set_inside_an_execution_is_in_the_optimizer_before_the_next_batch(
        small, runners, monkeypatch):
    long_executions(monkeypatch)
    control = TrainingControl()
    events = []

    def listener(event):
        events.append(event)
        # Step 6 is inside the execution of steps 6-8: the change must not wait for its end.
        if isinstance(event, BatchEnded) and (event.epoch, event.step) == (0, 6):
            control.set_learning_rate(0.0005)

    import keras

    rates = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            rates.append(float(np.asarray(self.model.optimizer.learning_rate)))

    original_fit = keras.Model.fit

    def fit_with_spy(self, *args, callbacks=(), **kwargs):
        return original_fit(self, *args, callbacks=[*callbacks, Spy()], **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit_with_spy)
    training.train(experiment(lr_schedule="one_cycle"), dataset=small, control=control, listeners=[listener])
    assert runners[-1].steps == 3
    assert all(rate != pytest.approx(0.0005) for rate in rates[:6])
    assert rates[6:] == [pytest.approx(0.0005)] * (len(rates) - 6)
    changes = [event for event in events if isinstance(event, LearningRateChanged)]
    # The event comes at the end of the execution the change arrived in.
    assert [event.epochs for event in changes] == [pytest.approx(8 / STEPS_PER_EPOCH)]


def test_execution_length_follows_the_measured_step_time():
    runner = executions.StepRunner.__new__(executions.StepRunner)
    runner.steps_per_epoch, runner.seconds, runner.cap, runner.steps = 2000, 0.1, 64, 1
    runner.executions, runner.done, runner._step_seconds = 0, 0, None
    runner._must_end_at = [10, 30]
    runner._adapt(5.0)  # the first call traces: ignored
    assert runner.steps == 1
    runner._adapt(0.004)  # 4 ms a step: 25 steps make 0.1 s
    assert runner.steps == 25
    for _ in range(30):
        runner._adapt(0.0001)  # very fast steps: the cap holds
    assert runner.steps == 64
    # An execution stops at the next frame step and at the epoch's end.
    assert runner._next_count() == 10
    runner.done = 10
    assert runner._next_count() == 20
    runner.done = 1990
    assert runner._next_count() == 10
