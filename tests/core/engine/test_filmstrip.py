"""The filmstrip: frames at the scheduled steps, equal to the model's weights at those steps, saved as npz bytes."""

import threading

import numpy as np
import pytest

from cnn_core.engine import datasets, filmstrip, training
from cnn_core.engine.datasets import Dataset
from cnn_core.engine.filmstrip import Filmstrip, FilmstripStarted, Frame
from cnn_core.engine.models import build_model
from cnn_core.engine.specs import Conv2D, Dense, Experiment, Flatten, MaxPool, ModelSpec, TrainingConfig

SPEC = ModelSpec((Conv2D(4, 3), MaxPool(2), Conv2D(6, 3), Flatten(), Dense(10, "softmax")), name="two convs")


@pytest.fixture(scope="module")
def small() -> Dataset:
    mnist = datasets.load("mnist")
    return Dataset("mnist", mnist.x_train[:1500], mnist.y_train[:1500], mnist.x_test[:200], mnist.y_test[:200],
                   mnist.class_names)


def experiment(**changes) -> Experiment:
    config = {"batch_size": 50, "epochs": 2, "validation_split": 0.0, "seed": 5, "learning_rate": 0.01} | changes
    return Experiment(SPEC, TrainingConfig(**config))


def test_schedule_is_dense_early_and_has_every_epoch_end():
    steps = filmstrip.schedule(steps_per_epoch=422, epochs=3)
    assert steps[0] == 0 and steps[-1] == 3 * 422
    assert {10, 30, 100, 300, 422, 844, 1266} <= set(steps)
    assert list(steps) == sorted(set(steps)) and 10 <= len(steps) <= filmstrip.MAX_FRAMES
    # A long run is thinned to at most MAX_FRAMES, still ending at the last step.
    long = filmstrip.schedule(steps_per_epoch=100, epochs=80)
    assert len(long) <= filmstrip.MAX_FRAMES and long[-1] == 8000 and long[0] == 0
    tiny = filmstrip.schedule(steps_per_epoch=3, epochs=1)
    assert tiny == (0, 1, 2, 3)


def test_frames_arrive_at_the_scheduled_steps_and_match_the_weights_there(small):
    strip = Filmstrip()
    events = []
    result = training.train(experiment(), dataset=small, listeners=[strip, events.append], record_filmstrip=True)
    assert isinstance(events[1], FilmstripStarted)
    steps_per_epoch = 30
    assert strip.steps == filmstrip.schedule(steps_per_epoch, 2)
    assert [frame.step for frame in strip.frames] == list(strip.steps)
    assert np.array_equal(strip.probe, small.x_test[0].astype(np.float16))
    first, last = strip.frames[0], strip.frames[-1]
    assert last.epochs == 2.0 and first.epochs == 0.0
    # Frame 0 holds the freshly initialised filters; the last frame holds the trained ones.
    initial = build_model(SPEC, experiment().training).layers[1].get_weights()[0]
    assert np.array_equal(first.filters, initial.astype(np.float16))
    trained = result.model.layers[1].get_weights()[0]
    assert np.array_equal(last.filters, trained.astype(np.float16))
    assert not np.array_equal(first.filters, last.filters)
    # One feature-map stack per convolution, computed with the weights of that moment.
    assert [picture.array.shape for picture in last.maps] == [(26, 26, 4), (11, 11, 6)]
    conv = result.model.layers[1]
    expected = conv(small.x_test[:1]).numpy()[0]
    np.testing.assert_allclose(last.maps[0].array.astype(np.float32), expected, rtol=1e-2, atol=1e-2)
    assert [name for name, _, _ in last.weight_histograms] == ["conv2d_1", "conv2d_3", "dense_5"]
    assert all(counts.sum() == weights.size for (_, counts, _), weights in
               zip(last.weight_histograms, [w for w in result.model.get_weights() if w.ndim > 1], strict=True))


def test_a_middle_frame_matches_a_run_stopped_at_that_step(small):
    strip = Filmstrip()
    training.train(experiment(), dataset=small, listeners=[strip], record_filmstrip=True)
    frame = next(frame for frame in strip.frames if frame.step == 10)
    stop = threading.Event()

    def stop_at_ten(event):
        if isinstance(event, training.BatchEnded) and event.step == 10:
            stop.set()

    stopped = training.train(experiment(), dataset=small, listeners=[stop_at_ten], stop_event=stop)
    assert np.array_equal(frame.filters, stopped.model.layers[1].get_weights()[0].astype(np.float16))


def test_a_filmstrip_round_trips_through_npz_bytes(small):
    strip = Filmstrip()
    probe = np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(28, 28)
    training.train(experiment(epochs=1, batch_size=300), dataset=small, listeners=[strip], record_filmstrip=True,
                   probe=probe)
    data = strip.to_bytes()
    assert data[:2] == b"PK" and len(data) < 200_000
    again = Filmstrip.from_bytes(data)
    assert again.steps == strip.steps and again.steps_per_epoch == strip.steps_per_epoch
    assert np.array_equal(again.probe, probe.astype(np.float16))
    assert len(again.frames) == len(strip.frames) == len(strip.steps)
    for a, b in zip(strip.frames, again.frames, strict=True):
        assert (a.step, a.epochs) == (b.step, b.epochs)
        assert np.array_equal(a.filters, b.filters)
        assert [(p.name, p.description) for p in a.maps] == [(p.name, p.description) for p in b.maps]
        assert all(np.array_equal(p.array, q.array) for p, q in zip(a.maps, b.maps, strict=True))
        assert all(np.array_equal(x[1], y[1]) and np.array_equal(x[2], y[2])
                   for x, y in zip(a.weight_histograms, b.weight_histograms, strict=True))


def test_a_model_without_convolutions_still_gets_weight_histograms(small):
    strip = Filmstrip()
    spec = ModelSpec((Flatten(), Dense(10, "softmax")))
    training.train(Experiment(spec, experiment(epochs=1).training), dataset=small, listeners=[strip],
                   record_filmstrip=True)
    assert strip.frames and all(isinstance(frame, Frame) for frame in strip.frames)
    assert strip.frames[-1].filters is None and strip.frames[-1].maps == ()
    assert [name for name, _, _ in strip.frames[-1].weight_histograms] == ["dense_2"]
    assert Filmstrip.from_bytes(strip.to_bytes()).frames[-1].filters is None
