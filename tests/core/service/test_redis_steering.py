"""Steering, the filmstrip, continue training and own classes on the Redis runner (real redis-server, real worker)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from cnn_core.engine import own_data, registry
from cnn_core.engine.errors import UserError
from cnn_core.engine.filmstrip import schedule
from cnn_core.engine.specs import Conv2D, Dense, Experiment, Flatten, MaxPool, ModelSpec, TrainingConfig
from cnn_core.service import redis_queue
from cnn_core.service.redis_queue import RedisJobQueue, connect, run_key
from cnn_core.service.settings import Settings
from tests.core.service.redis_harness import supervised_workers, wait_for_workers


def _experiment(epochs=1, train_subset=300, batch_size=20, dataset="mnist", classes=10, **training) -> Experiment:
    model = ModelSpec((Conv2D(4, 3), MaxPool(2), Flatten(), Dense(classes, "softmax")), name="steered",
                      num_classes=classes)
    return Experiment(model, TrainingConfig(dataset=dataset, epochs=epochs, batch_size=batch_size,
                                            validation_split=0.0, train_subset=train_subset, **training))


@pytest.fixture(scope="module")
def workers(redis_url):
    # One worker for the whole module: each one imports TensorFlow first, which is slow.
    with supervised_workers(redis_url, 1, max_jobs=20) as process:
        wait_for_workers(connect(redis_url), 1)
        yield process


def _queue(url: str, **settings) -> RedisJobQueue:
    values = {"redis_url": url, "abandon_after_s": 60.0, "result_ttl_s": 120.0, "max_epochs": 10}
    values.update(settings)
    return RedisJobQueue(Settings(**values), reap_interval=0.2)


def _wait(job, timeout=120.0):
    deadline = time.monotonic() + timeout
    while job.is_active and time.monotonic() < deadline:
        job.heartbeat()
        time.sleep(0.1)
        job.refresh()
    assert not job.is_active, f"{job} still active after {timeout} s"


def _eventually(job, condition, timeout=120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.heartbeat()
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{job} did not get there in {timeout} s (state {job.state})")


def _steps(job) -> int:
    snapshot = job.progress.snapshot()
    return snapshot.epoch * snapshot.steps_per_epoch + snapshot.step


def test_pause_holds_the_run_past_the_lost_worker_timeout_and_resume_finishes_every_step(redis_url, workers):
    # Owners that stop heartbeating are dropped after 2 s, workers after ALIVE_TTL_S: a pause outlasts both.
    queue = _queue(redis_url, abandon_after_s=2.0)
    plain = queue.submit(_experiment(), owner="straight")
    _wait(plain)
    assert plain.state == "finished", plain.error
    uninterrupted = _steps(plain)
    assert uninterrupted == 15

    job = queue.submit(_experiment(), owner="pauser")
    job.pause()  # still queued: the worker reads the command after the run's first batch
    assert job.paused
    _eventually(job, lambda: job.progress.snapshot().paused)
    held = _steps(job)
    assert 1 <= held < uninterrupted
    pause_for = redis_queue.ALIVE_TTL_S + 2 * redis_queue.REAP_INTERVAL_S + 1
    deadline = time.monotonic() + pause_for
    while time.monotonic() < deadline:
        job.heartbeat()  # the owner is still there; the run is only paused
        time.sleep(0.2)
    job.refresh()
    assert job.state == "running" and _steps(job) == held
    # Another replica (a reloaded page) sees the pause too, and offers Resume.
    (again,) = [j for j in _queue(redis_url).jobs_for("pauser") if j.id == job.id]
    assert again.paused and again.progress.snapshot().paused
    # Nearly zero from here on: if the next batches use it, the filters hardly move after the pause.
    job.set_learning_rate(1e-6)
    again.resume()
    assert not again.paused
    _wait(job)
    assert job.state == "finished", job.error
    snapshot = job.progress.snapshot()
    assert _steps(job) == uninterrupted
    assert [marker["label"] for marker in snapshot.markers] == ["paused", "learning rate → 1e-06"]
    assert snapshot.markers[1]["epochs"] == pytest.approx(snapshot.markers[0]["epochs"])
    assert snapshot.markers[0]["epochs"] == pytest.approx(held / uninterrupted)

    def moved_after(run) -> float:
        frames = [frame for frame in run.filmstrip.frames if frame.step >= held]
        return float(np.abs(frames[-1].filters.astype(np.float32) - frames[0].filters.astype(np.float32)).max())

    assert len([frame for frame in job.filmstrip.frames if frame.step >= held]) >= 3
    assert moved_after(job) < 1e-3 < 1e-2 < moved_after(plain)
    assert job.take_result() is not None and plain.take_result() is not None


def test_stop_reaches_a_paused_run_and_so_does_its_owner_leaving(redis_url, workers):
    queue = _queue(redis_url, abandon_after_s=2.0)
    job = queue.submit(_experiment(), owner="halter")
    job.pause()
    _eventually(job, lambda: job.progress.snapshot().paused)
    job.stop()
    _wait(job, timeout=30)
    assert job.state == "stopped", job.error
    fields = queue.redis.hgetall(run_key(job.id))
    assert float(fields[b"stop_seen_at"]) - float(fields[b"stop_requested_at"]) < 2.0
    assert b"hard_stop_at" not in fields
    assert job.take_result().stopped_reason == "stopped"

    left = queue.submit(_experiment(), owner="leaver")
    left.pause()
    _eventually(left, lambda: left.progress.snapshot().paused)
    deadline = time.monotonic() + 30
    while left.is_active and time.monotonic() < deadline:  # the tab is closed: no more heartbeats
        time.sleep(0.1)
        left.refresh()
    assert left.state == "abandoned" and "closed" in left.error


def test_an_impossible_learning_rate_is_refused_before_it_travels(redis_url):
    queue = _queue(redis_url.replace("/0", "/7"))  # no worker on this database: the run stays queued
    job = queue.submit(_experiment(), owner="typo")
    with pytest.raises(UserError, match="learning rate"):
        job.set_learning_rate(-3)
    assert queue.redis.llen(run_key(job.id, "commands")) == 0
    job.stop()
    job.pause()  # after the end: ignored, nothing left behind
    assert queue.redis.llen(run_key(job.id, "commands")) == 0 and not job.paused


def test_filmstrip_frames_arrive_and_continue_training_starts_from_the_given_weights(redis_url, workers):
    queue = _queue(redis_url)
    probe = np.zeros((28, 28), np.float32)
    probe[6:22, 12:16] = 1.0
    first = queue.submit(_experiment(epochs=2, train_subset=1000), owner="watcher", probe=probe)
    _wait(first)
    assert first.state == "finished", first.error
    frames = first.filmstrip.frames
    assert [frame.step for frame in frames] == list(schedule(50, 2))
    assert np.array_equal(first.filmstrip.probe, probe.astype(np.float16))
    assert frames[0].maps[0].array.shape == (26, 26, 4) and frames[0].maps[0].array.dtype == np.float16
    # A reloaded page replays the same frames from the stream.
    (replayed,) = _queue(redis_url).jobs_for("watcher")
    assert [frame.step for frame in replayed.filmstrip.frames] == [frame.step for frame in frames]
    model = first.take_result().keras_model()
    trained = model.layers[1].get_weights()[0]
    # The last frame shows the finished model's filters.
    assert np.array_equal(frames[-1].filters, trained.astype(np.float16))
    fresh_loss = first.progress.snapshot().batch_loss[0]

    more = queue.submit(_experiment(epochs=1, train_subset=1000), owner="watcher", initial_weights=model.get_weights())
    assert queue.redis.exists(run_key(more.id, "weights"))
    _wait(more)
    assert more.state == "finished", more.error
    assert not queue.redis.exists(run_key(more.id, "weights"))
    assert np.array_equal(more.filmstrip.frames[0].filters, trained.astype(np.float16))
    continued_loss = more.progress.snapshot().batch_loss[0]
    assert continued_loss < 0.7 * fresh_loss, (continued_loss, fresh_loss)


def test_weights_of_another_model_are_refused_at_the_door(redis_url):
    queue = _queue(redis_url.replace("/0", "/7"))
    other = [np.zeros((3, 3, 1, 8), np.float32)]
    with pytest.raises(UserError, match="different model"):
        queue.submit(_experiment(), owner="mixer", initial_weights=other)
    assert queue.active_job("mixer") is None


def _own_dataset(name: str) -> registry.DatasetInfo:
    rng = np.random.default_rng(0)
    collection = {}
    for label, (rows, cols) in enumerate(((slice(12, 16), slice(4, 24)), (slice(4, 24), slice(12, 16)),
                                          (slice(4, 10), slice(4, 10)))):
        images = rng.integers(0, 40, (12, 28, 28), dtype=np.uint8)
        images[:, rows, cols] = 255
        collection[f"shape {label}"] = images
    class_names, arrays = own_data.build_arrays(collection)
    return registry.register(registry.DatasetInfo(
        name=name, title="test classes", class_names=class_names, train_size=len(arrays[0]),
        test_size=len(arrays[2]), arrays=lambda: arrays,
    ))


def test_own_classes_travel_once_and_train_on_a_worker(redis_url, workers):
    info = _own_dataset("own-redistest00")
    try:
        queue = _queue(redis_url)
        experiment = _experiment(dataset=info.name, classes=3, train_subset=None, batch_size=16, epochs=2)
        first = queue.submit(experiment, owner="maker")
        second = queue.submit(experiment, owner="maker2")
        # Content-addressed: two runs (30 in a workshop) on the same pictures share one copy, which expires.
        (key,) = queue.redis.keys(redis_queue.dataset_key("*"))
        assert 0 < queue.redis.ttl(key) <= redis_queue.PAYLOAD_TTL_S
        _wait(first)
        _wait(second)
        assert (first.state, second.state) == ("finished", "finished"), (first.error, second.error)
        result = first.take_result()
        assert result.keras_model().output_shape == (None, 3)
        assert result.test_accuracy > 0.6
    finally:
        registry.unregister(info.name)


def test_a_dataset_that_does_not_match_its_hash_is_refused():
    arrays = (np.zeros((8, 28, 28), np.uint8), np.array([0, 1] * 4), np.zeros((2, 28, 28), np.uint8), np.array([0, 1]))
    digest = redis_queue.dataset_digest(("a", "b"), arrays)
    data = redis_queue.dataset_to_bytes(("a", "b"), arrays)
    names, back = redis_queue.dataset_from_bytes(data, digest)
    assert names == ("a", "b") and np.array_equal(back[0], arrays[0]) and back[1].dtype == np.int64
    with pytest.raises(UserError, match="damaged"):
        redis_queue.dataset_from_bytes(data, "0" * 64)
    with pytest.raises(UserError, match="damaged"):
        redis_queue.dataset_from_bytes(data[:-20], digest)
    wrong = (arrays[0], np.array([0, 1, 2, 0, 1, 2, 0, 1]), arrays[2], arrays[3])  # label 2 of two classes
    with pytest.raises(UserError, match="damaged"):
        redis_queue.dataset_from_bytes(redis_queue.dataset_to_bytes(("a", "b"), wrong),
                                       redis_queue.dataset_digest(("a", "b"), wrong))
