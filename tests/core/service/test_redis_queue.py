"""The Redis + RQ runner against a real redis-server and real worker processes (see redis_harness)."""

from __future__ import annotations

import json
import os
import signal
import time
import zlib

import numpy as np
import pytest

from cnn_core.engine import specs, training
from cnn_core.engine.specs import Conv2D, Dense, Experiment, Flatten, MaxPool, ModelSpec, TrainingConfig
from cnn_core.service import redis_queue
from cnn_core.service.redis_queue import RedisJobQueue, ServiceUnavailable, connect, run_key
from cnn_core.service.settings import Settings
from tests.core.service.conftest import require_redis
from tests.core.service.redis_harness import redis_server, supervised_workers, wait_for_workers

WORKERS = 2


def _experiment(name="tiny", epochs=1, train_subset=200, batch_size=20) -> Experiment:
    model = ModelSpec((Conv2D(4, 3), MaxPool(2), Flatten(), Dense(10, "softmax")), name=name)
    return Experiment(model, TrainingConfig(epochs=epochs, batch_size=batch_size, validation_split=0.0,
                                            train_subset=train_subset))


def _long(name="long") -> Experiment:
    # 4,000 small batches: long enough to stop or kill mid-run even on an idle machine (never trained to the end).
    return _experiment(name, epochs=10, train_subset=2000, batch_size=5)


@pytest.fixture(scope="module")
def workers(redis_url):
    with supervised_workers(redis_url, WORKERS, max_jobs=20) as process:
        wait_for_workers(connect(redis_url), WORKERS)
        yield process


def _queue(url: str, **settings) -> RedisJobQueue:
    values = {"redis_url": url, "abandon_after_s": 60.0, "result_ttl_s": 120.0, "max_epochs": 10}
    values.update(settings)
    return RedisJobQueue(Settings(**values), reap_interval=0.2)


def _wait(job, timeout=90.0, heartbeat=True):
    deadline = time.monotonic() + timeout
    while job.is_active and time.monotonic() < deadline:
        if heartbeat:
            job.heartbeat()
        time.sleep(0.1)
        job.refresh()
    assert not job.is_active, f"{job} still active after {timeout} s"


def _wait_for_batches(job, count=3, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.heartbeat()
        snapshot = job.progress.snapshot()
        if len(snapshot.batch_loss) >= count:
            return snapshot
        time.sleep(0.05)
    raise AssertionError(f"{job} sent fewer than {count} batch events in {timeout} s (state {job.state})")


def test_a_run_trains_on_a_worker_and_only_its_owner_gets_the_model(redis_url, workers):
    queue = _queue(redis_url)
    job = queue.submit(_experiment(), owner="alice")
    assert job.state in ("queued", "running")
    assert queue.active_job("alice").id == job.id
    _wait(job)
    assert job.state == "finished", job.error
    snapshot = job.progress.snapshot()
    assert snapshot.status == "finished"
    assert snapshot.steps_per_epoch == 10 and snapshot.step == 10
    assert [row["epoch"] for row in snapshot.epoch_history] == [0]
    assert isinstance(snapshot.finished, training.TrainFinished)
    # Another owner's view holds nothing of alice's, and cannot take her model.
    assert queue.jobs_for("mallory") == []
    stranger = redis_queue.RedisTrainingJob(job.id, "mallory", queue)
    assert queue.take_result(stranger) is None
    result = job.take_result()
    # The model comes as its .keras bytes: the web tier builds no Keras model until a page needs one.
    assert result is not None and result.model is None and result.model_bytes.startswith(b"PK")
    assert result.keras_model().count_params() == specs.count_params(_experiment().model) == 6_810
    assert result.experiment == _experiment() and result.stopped_reason == "completed"
    assert 0.0 <= result.test_accuracy <= 1.0
    assert job.take_result() is None  # handed once
    assert queue.active_job("alice") is None


def test_caps_are_checked_at_the_door_and_again_on_the_worker(redis_url, workers):
    queue = _queue(redis_url, max_epochs=3)
    with pytest.raises(ValueError, match="at most 3 epochs"):
        queue.submit(_experiment(epochs=5), owner="carol")
    assert queue.active_job("carol") is None
    # A web tier with looser caps than the workers' (7.4 M parameters; a worker allows 5 M): refused there.
    loose = _queue(redis_url, max_params=50_000_000)
    huge = Experiment(ModelSpec((Flatten(), Dense(4096, "relu"), Dense(1024, "relu"), Dense(10, "softmax")),
                                name="huge"),
                      _experiment().training)
    job = loose.submit(huge, owner="carol")
    _wait(job)
    assert job.state == "failed"
    assert "parameters" in job.error


def test_one_run_per_owner_and_fifo_positions_across_owners(redis_url):
    # Database 1 has no workers, so the runs stay queued.
    queue = _queue(redis_url.replace("/0", "/1"))
    first = queue.submit(_experiment("a"), owner="ann")
    second = queue.submit(_experiment("b"), owner="bob")
    third = queue.submit(_experiment("c"), owner="cid")
    with pytest.raises(ValueError, match="already have a training run queued"):
        queue.submit(_experiment("again"), owner="bob")
    assert [first.queue_position, second.queue_position, third.queue_position] == [1, 2, 3]
    # Nothing pickled: the RQ job's payload is JSON holding the run id and the experiment's JSON.
    func, _, args, _ = json.loads(zlib.decompress(queue.redis.hget(f"rq:job:{first.id}", "data")))
    assert func == "cnn_core.service.rq_worker.run_job"
    assert args == [first.id, _experiment("a").to_json(), {}]
    second.stop()
    assert second.state == "stopped" and not second.is_active
    third.refresh()
    assert third.queue_position == 2
    # The owner can start again once the run has ended.
    again = queue.submit(_experiment("again"), owner="bob")
    assert again.queue_position == 3
    assert [job.id for job in queue.jobs_for("bob")] == [second.id, again.id]
    for job in (first, third, again):
        job.stop()
    assert queue.waiting_count() == 0


def test_a_queued_run_whose_owner_is_gone_is_dropped(redis_url):
    queue = _queue(redis_url.replace("/0", "/2"), abandon_after_s=1.0)
    job = queue.submit(_experiment(), owner="gone")
    kept = queue.submit(_experiment(), owner="here")
    deadline = time.monotonic() + 10
    while job.is_active and time.monotonic() < deadline:
        kept.heartbeat()
        time.sleep(0.1)
        job.refresh()
    assert job.state == "abandoned"
    assert "closed" in job.error
    kept.refresh()
    assert kept.state == "queued" and kept.queue_position == 1
    kept.stop()


def test_stop_ends_the_run_within_a_batch_and_keeps_its_weights(redis_url, workers):
    queue = _queue(redis_url)
    job = queue.submit(_long(), owner="dora")
    _wait_for_batches(job)
    job.stop()
    assert job.stop_requested
    _wait(job, timeout=60)
    assert job.state == "stopped", job.error
    fields = queue.redis.hgetall(run_key(job.id))
    latency = float(fields[b"stop_seen_at"]) - float(fields[b"stop_requested_at"])
    assert 0 <= latency < 2.0
    assert b"hard_stop_at" not in fields
    result = job.take_result()
    assert result.stopped_reason == "stopped" and result.keras_model() is not None
    assert "Stopped during epoch 1" in result.message


def test_a_reloaded_page_replays_the_curve_so_far_from_another_replica(redis_url, workers):
    replica_a, replica_b = _queue(redis_url), _queue(redis_url)
    job = replica_a.submit(_experiment(epochs=2), owner="erin")
    _wait(job)
    seen_by_a = job.progress.snapshot()
    (again,) = replica_b.jobs_for("erin")
    replayed = again.progress.snapshot()
    assert again.state == "finished"
    assert replayed.batch_loss == seen_by_a.batch_loss and len(replayed.batch_loss) >= 2
    assert replayed.epoch_history == seen_by_a.epoch_history and len(replayed.epoch_history) == 2
    assert again.take_result() is not None
    assert job.take_result() is None


def test_a_killed_worker_fails_its_run_within_15_s_and_other_runs_go_on(redis_url, workers):
    queue = _queue(redis_url)
    doomed = queue.submit(_long("doomed"), owner="fred")
    _wait_for_batches(doomed)
    worker = queue.redis.get(run_key(doomed.id, "alive")).decode()
    pid = int(worker.rsplit(":", 1)[1])
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    _wait(doomed, timeout=30)
    detected = time.monotonic() - killed_at
    assert doomed.state == "failed" and "worker was lost" in doomed.error
    assert detected <= 15.0
    # The owner can start again, and the restarted worker (or the other one) trains it.
    retry = queue.submit(_experiment("retry"), owner="fred")
    other = queue.submit(_experiment("other"), owner="gina")
    _wait(retry)
    _wait(other)
    assert (retry.state, other.state) == ("finished", "finished")


def test_a_worker_that_ignores_stop_is_ended_by_rqs_stop_job_command(redis_url, workers):
    queue = RedisJobQueue(Settings(redis_url=redis_url, max_epochs=10), reap_interval=0.2, stop_grace_s=1.0)
    job = queue.submit(_long("stubborn"), owner="hank")
    _wait_for_batches(job)
    # A stop request the worker never sees (no stop key): as if its training loop were stuck.
    redis_queue.transition(queue.redis, job.id, ("running",),
                           {"stop_requested_at": repr(redis_queue.redis_now(queue.redis))})
    _wait(job, timeout=30)
    assert job.state == "failed" and job.error == redis_queue.FORCED_STOP
    # The supervisor replaced the worker: runs still train.
    after = queue.submit(_experiment("after"), owner="hank")
    _wait(after)
    assert after.state == "finished"


def test_redis_down_says_unavailable_and_recovers_by_itself():
    require_redis()
    with redis_server() as server:
        queue = _queue(server.url.replace("/0", "/3"))
        job = queue.submit(_experiment(), owner="ivy")
        server.stop()
        with pytest.raises(ServiceUnavailable, match="unavailable"):
            queue.submit(_experiment(), owner="jack")
        job.refresh()
        assert job.state == "queued" and job.service_unavailable  # last known state, no exception
        assert job.progress.snapshot().status == "waiting"
        job.heartbeat()
        job.stop()
        assert queue.jobs_for("ivy") == [] and queue.active_job("ivy") is None
        server.start()  # same port, empty: the old run is gone
        job.refresh()
        assert job.state == "failed" and "restarted" in job.error
        assert not job.service_unavailable
        fresh = queue.submit(_experiment(), owner="ivy")
        assert fresh.queue_position == 1


def test_a_running_run_whose_owner_is_gone_is_stopped(redis_url, workers):
    queue = _queue(redis_url, abandon_after_s=2.0)
    job = queue.submit(_long("left"), owner="kim")
    _wait_for_batches(job)
    _wait(job, timeout=60, heartbeat=False)  # the tab is closed: no more heartbeats
    assert job.state == "abandoned" and "closed" in job.error
    assert job.take_result() is None
    assert queue.active_job("kim") is None


def test_a_worker_is_replaced_after_max_jobs_runs(redis_url):
    url = redis_url.replace("/0", "/4")
    with supervised_workers(url, 1, max_jobs=1):
        queue = _queue(url)
        pids = []
        for name in ("first", "second"):
            job = queue.submit(_experiment(name), owner="lee")
            _wait(job, timeout=120)
            assert job.state == "finished", job.error
            pids.append(queue.redis.hget(run_key(job.id), "worker").decode().rsplit(":", 1)[1])
        assert pids[0] != pids[1]


def test_the_redis_url_setting_accepts_redis_urls_only():
    from cnn_core.service.settings import load_settings

    assert load_settings({"CNN_REDIS_URL": "rediss://:secret@redis.lan:6380/0"}).redis_url.startswith("rediss://")
    assert load_settings({}).redis_url is None  # make run: no Redis
    with pytest.raises(ValueError, match="CNN_REDIS_URL must be a Redis URL"):
        load_settings({"CNN_REDIS_URL": "http://redis.lan"})


def test_events_survive_the_stream_encoding():
    events = [training.TrainStarted(2, 10, 200, 0, 6810), training.BatchEnded(0, 3, 10, 2.3, 0.1),
              training.EpochEnded(0, 2.0, 0.3, None, None, 1.5, True), training.Paused(0.25),
              training.Resumed(0.25, 3.5), training.LearningRateChanged(0.25, 0.01)]
    for event in events:
        encoded = redis_queue.encode_event(event)
        assert redis_queue.decode_event({k.encode(): v.encode() for k, v in encoded.items()}) == event
    assert redis_queue.decode_event({b"kind": b"Unknown", b"data": b"{}"}) is None


def test_a_replay_of_a_trimmed_stream_still_knows_the_runs_shape(redis_url):
    queue = _queue(redis_url.replace("/0", "/5"))
    conn = queue.redis
    started = redis_queue.encode_event(training.TrainStarted(3, 10, 200, 0, 6810))
    conn.hset(run_key("run-trimmed"), mapping={"owner": "max", "state": "running", "started_event": started["data"]})
    # The stream's cap dropped TrainStarted and the first batches: it starts mid-epoch.
    conn.xadd(run_key("run-trimmed", "events"), redis_queue.encode_event(training.BatchEnded(1, 4, 10, 0.5, 0.8)))
    snapshot = redis_queue.RedisTrainingJob("run-trimmed", "max", queue).progress.snapshot()
    assert (snapshot.status, snapshot.epochs, snapshot.steps_per_epoch, snapshot.epoch, snapshot.step) == (
        "running", 3, 10, 1, 4)
    assert snapshot.batch_loss == [0.5]


def test_a_long_runs_replay_on_another_replica_still_has_frame_0(redis_url, monkeypatch):
    from cnn_core.engine.filmstrip import FilmstripStarted, Frame
    from cnn_core.service.rq_worker import StreamPublisher

    # A short cap stands in for a very long run's 20,000 events (Redis trims whole 100-entry nodes).
    monkeypatch.setattr(redis_queue, "STREAM_MAXLEN", 100)
    worker_side = _queue(redis_url.replace("/0", "/7"))
    conn = worker_side.redis
    conn.hset(run_key("run-long"), mapping={"owner": "lena", "state": "running"})
    publish = StreamPublisher(conn, "run-long")
    publish(training.TrainStarted(10_000, 1, 32, 0, 6810))
    publish(FilmstripStarted(np.zeros((28, 28), np.float16), (0, 1, 1000), 1))
    for step in (0, 1, 1000):
        publish(Frame(step, float(step), np.full((3, 3, 1, 4), step % 7, np.float16), (), ()))
        for epoch in range(400 if step == 0 else 0):
            publish(training.BatchEnded(epoch, 1, 1, 0.5, 0.8))
    assert conn.xlen(run_key("run-long", "events")) < 400  # the stream was trimmed
    replica = _queue(redis_url.replace("/0", "/7"))
    replayed = redis_queue.RedisTrainingJob("run-long", "lena", replica).filmstrip
    assert [frame.step for frame in replayed.frames] == [0, 1, 1000]
    assert replayed.probe is not None and replayed.frames[0].filters.shape == (3, 3, 1, 4)


def test_a_stop_during_the_test_evaluation_is_not_taken_for_a_stuck_worker(redis_url):
    from cnn_core.service.rq_worker import StreamPublisher

    queue = RedisJobQueue(Settings(redis_url=redis_url.replace("/0", "/6")), stop_grace_s=0.0)
    conn = queue.redis
    conn.hset(run_key("run-testing"), mapping={"owner": "nia", "state": "running"})
    conn.sadd(redis_queue.ACTIVE_KEY, "run-testing")
    conn.set(redis_queue.owner_key("nia", "alive"), 1)
    conn.set(run_key("run-testing", "alive"), "here")
    publish = StreamPublisher(conn, "run-testing")
    publish(training.TrainStarted(2, 10, 200, 0, 6810))
    publish(training.EpochEnded(0, 1.0, 0.5, None, None, 1.0, True))
    assert conn.hget(run_key("run-testing"), "fit_done_at") is None  # one epoch still to go
    publish(training.EpochEnded(1, 0.9, 0.6, None, None, 1.0, True))
    # Stop pressed after the last batch: nothing can acknowledge it, and nothing must kill the run.
    redis_queue.transition(conn, "run-testing", ("running",), {"stop_requested_at": repr(redis_queue.redis_now(conn) - 60)})
    queue.reap()
    assert conn.hget(run_key("run-testing"), "hard_stop_at") is None
    conn.hdel(run_key("run-testing"), "fit_done_at")
    queue.reap()  # the same run still in its batches would be ended by force (no RQ job here: nothing sent)
    assert conn.hget(run_key("run-testing"), "hard_stop_at") is not None


def test_a_run_whose_rq_job_fails_before_it_starts_ends_failed_not_queued_forever(redis_url, tmp_path):
    # A worker that cannot import `run_job` (old code, a broken install) makes RQ fail the job before
    # our code runs; the run must not stay "queued" with its owner waiting for ever.
    import subprocess
    import sys

    url = redis_url.replace("/0", "/3")
    queue = _queue(url)
    job = queue.submit(_experiment(), owner="unlucky")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    subprocess.run(
        [sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", url,
         "--serializer", "rq.serializers.JSONSerializer", redis_queue.QUEUE_NAME],
        cwd=tmp_path, env=env, timeout=120, check=False, capture_output=True,
    )
    deadline = time.monotonic() + 10
    while job.is_active and time.monotonic() < deadline:
        job.heartbeat()
        time.sleep(0.1)
        job.refresh()
    assert job.state == "failed"
    assert job.error == redis_queue.NOT_STARTED
    queue.shutdown()


def test_a_queued_run_whose_rq_job_vanished_ends_failed(redis_url, monkeypatch):
    from rq.job import Job

    monkeypatch.setattr(redis_queue, "MISSING_JOB_GRACE_S", 0.0)
    url = redis_url.replace("/0", "/4")
    queue = _queue(url)
    job = queue.submit(_experiment(), owner="orphan")
    queue.rq_queue.remove(job.id)
    queue.redis.delete(Job.key_for(job.id))
    deadline = time.monotonic() + 10
    while job.is_active and time.monotonic() < deadline:
        job.heartbeat()
        time.sleep(0.1)
        job.refresh()
    assert job.state == "failed" and "could not start" in job.error
    queue.shutdown()


def test_rq_workers_train_at_the_configured_lower_priority_and_the_supervisor_keeps_its_own(redis_url, workers):
    import psutil

    # The module's workers run with CNN_WORKER_NICE unset: the default, 10 below the supervisor.
    supervisor = psutil.Process(workers.pid)
    children = supervisor.children()
    assert len(children) == WORKERS
    for child in children:
        # Capped at 19, the lowest priority there is (the suite itself may run niced).
        assert {psutil.Process(t.id).nice() for t in child.threads()} == {min(19, supervisor.nice() + 10)}
