import dataclasses
import os
import re
import signal
import threading
import time

import numpy as np
import pytest

from cnn_core.engine import datasets, registry, specs
from cnn_core.engine.errors import UserError
from cnn_core.engine.specs import Conv2D, Dense, Experiment, Flatten, MaxPool, ModelSpec, TrainingConfig
from cnn_core.engine.training import TrainingResult, TrainStarted
from cnn_core.service import queue as jobs
from cnn_core.service import workers
from cnn_core.service.queue import JobQueue, get_queue
from cnn_core.service.settings import Settings

TRAIN_SIZE = 300


def _register_tiny(name: str, labels=None) -> datasets.Dataset:
    """A small random dataset in the registry, as a user's own dataset would be (sent to workers)."""
    rng = np.random.default_rng(0)
    x = rng.random((TRAIN_SIZE, 28, 28, 1), dtype=np.float32)
    y = (rng.integers(0, 10, TRAIN_SIZE) if labels is None else np.full(TRAIN_SIZE, labels)).astype(np.int64)
    registry.register(registry.DatasetInfo(
        name=name, title=f"Tiny {name}", class_names=registry.get("mnist").class_names,
        train_size=TRAIN_SIZE, test_size=100, arrays=lambda: (x, y, x[:100], y[:100]),
    ))
    return datasets.load(name)


TINY = _register_tiny("tiny")
# Labels the 10-way classifier cannot have: training fails inside Keras (a bug, not the learner's doing).
_register_tiny("tiny_bad_labels", labels=50)


def _experiment(name="tiny", epochs=1, dataset="tiny", **training) -> Experiment:
    model = ModelSpec((Conv2D(4, 3), MaxPool(2), Flatten(), Dense(10, "softmax")), name=name)
    return Experiment(model, TrainingConfig(dataset=dataset, epochs=epochs, batch_size=50, validation_split=0.0,
                                            **training))


class FakeTrainer:
    """Stands in for training.train: runs until its experiment's gate opens or it is told to stop."""

    def __init__(self):
        self.gates: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        self.running = 0
        self.most_running = 0
        self.started: list[str] = []

    def finish(self, name: str) -> None:
        self.gates.setdefault(name, threading.Event()).set()

    def __call__(self, checked, *, stop_event, listeners, dataset, precision="float32", **steering):
        experiment = checked.experiment
        name = experiment.model.name
        gate = self.gates.setdefault(name, threading.Event())
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.started.append(name)
        try:
            for listener in listeners:
                listener(TrainStarted(experiment.training.epochs, 6, len(dataset.x_train), 0, 1234))
            while not gate.is_set() and not stop_event.is_set():
                time.sleep(0.01)
            reason = "stopped" if stop_event.is_set() and not gate.is_set() else "completed"
            return TrainingResult(object(), experiment, [], 0.5, 0.9, reason, reason, 0.1)
        finally:
            with self.lock:
                self.running -= 1


def _eventually(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def make_queue():
    queues = []

    def make(trainer=None, **settings):
        options = {"max_concurrent_jobs": 1, "max_queued_jobs": 8, **settings}
        kwargs = {}
        if trainer is not None:
            kwargs["train"] = trainer
        queue = JobQueue(Settings(**options), **kwargs)
        queues.append(queue)
        return queue

    yield make
    for queue in queues:
        queue.shutdown(timeout=30)


# Real training on a tiny dataset


def test_a_real_job_trains_to_the_end_and_hands_over_its_result(make_queue):
    queue = make_queue()
    job = queue.submit(_experiment(), owner="alice")
    assert job.wait(timeout=120)
    assert job.state == "finished", job.error
    assert job.error is None
    assert job.started_at >= job.created_at and job.finished_at >= job.started_at
    snapshot = job.progress.snapshot()
    assert snapshot.status == "finished"
    assert snapshot.steps_per_epoch == TRAIN_SIZE // 50
    assert queue.jobs_for("alice") == [job]
    result = job.take_result()
    assert result.model.count_params() == 6_810
    assert result.stopped_reason == "completed"
    # Once taken, the queue keeps no reference to the model.
    assert job.result is None and job.take_result() is None
    assert queue.jobs_for("alice") == []
    assert not job.thread_alive


def test_stopping_a_real_running_job(make_queue):
    queue = make_queue()
    job = queue.submit(_experiment(epochs=100), owner="alice")
    assert _eventually(lambda: job.progress.snapshot().step > 0)
    assert job.state == "running" and job.queue_position is None
    job.stop()
    assert job.stop_requested
    assert job.wait(timeout=60)
    assert job.state == "stopped"
    assert job.result.stopped_reason == "stopped"
    assert len(job.result.history) < 100
    assert not job.thread_alive
    assert queue.active_count() == 0


def test_a_crashing_job_fails_with_an_apology_logs_its_reference_and_frees_its_slot(make_queue, caplog):
    queue = make_queue()
    broken = queue.submit(_experiment(dataset="tiny_bad_labels"), owner="alice")
    assert broken.wait(timeout=120)
    assert broken.state == "failed"
    assert broken.result is None
    # TensorFlow's own text never reaches the learner; the reference finds the traceback in the log.
    match = re.fullmatch(r"Something went wrong on our side \(reference ([0-9A-F]{8})\)\. Please try again\.",
                         broken.error)
    assert match, broken.error
    logged = [r for r in caplog.records if match.group(1) in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "label value of 50" in str(logged[0].exc_info[1])
    assert queue.running_count() == 0
    # The slot is free again: the same owner can train at once.
    again = queue.submit(_experiment(), owner="alice")
    assert again.wait(timeout=120)
    assert again.state == "finished"


def test_an_abandoned_real_job_is_stopped_and_its_thread_ends(make_queue):
    queue = make_queue(abandon_after_s=0.3)
    job = queue.submit(_experiment(epochs=100), owner="gone")
    assert job.wait(timeout=60)
    assert job.state == "abandoned"
    assert job.result is None
    assert "closed or stopped responding" in job.error
    assert _eventually(lambda: not job.thread_alive)
    assert queue.jobs_for("gone") == []


# Queue mechanics, with a stand-in trainer


def test_concurrency_limit_and_fifo_positions(make_queue):
    trainer = FakeTrainer()
    queue = make_queue(trainer, max_concurrent_jobs=2)
    submitted = [queue.submit(_experiment(name=f"run{i}"), owner=f"user{i}") for i in range(5)]
    assert _eventually(lambda: trainer.running == 2)
    assert [job.state for job in submitted] == ["running", "running", "queued", "queued", "queued"]
    assert [job.queue_position for job in submitted] == [None, None, 1, 2, 3]
    assert (queue.running_count(), queue.waiting_count(), queue.active_count()) == (2, 3, 5)
    trainer.finish("run1")
    assert submitted[1].wait(timeout=10)
    assert _eventually(lambda: submitted[2].state == "running")
    assert [job.queue_position for job in submitted[2:]] == [None, 1, 2]
    # "running" is set before the trainer's thread begins: wait until each one has, before freeing the
    # next slot, so `started` records the queue's order and not which thread the machine ran first.
    assert _eventually(lambda: len(trainer.started) == 3)
    for done, following in (("run0", "run3"), ("run2", "run4")):
        trainer.finish(done)
        assert _eventually(lambda following=following: following in trainer.started)
    for name in ("run3", "run4"):
        trainer.finish(name)
    assert all(job.wait(timeout=10) for job in submitted)
    assert [job.state for job in submitted] == ["finished"] * 5
    # run0 and run1 start together, so either may log first (CI once saw run1 first).
    assert sorted(trainer.started[:2]) == ["run0", "run1"]
    assert trainer.started[2:] == ["run2", "run3", "run4"]
    assert trainer.most_running == 2


def test_stopping_a_queued_job_removes_it_without_running_it(make_queue):
    trainer = FakeTrainer()
    queue = make_queue(trainer)
    first = queue.submit(_experiment(name="first"), owner="a")
    second = queue.submit(_experiment(name="second"), owner="b")
    third = queue.submit(_experiment(name="third"), owner="c")
    assert (second.queue_position, third.queue_position) == (1, 2)
    second.stop()
    assert second.state == "stopped" and second.wait(timeout=0)
    assert second.queue_position is None and third.queue_position == 1
    first.stop()
    assert first.wait(timeout=10) and first.state == "stopped"
    trainer.finish("third")
    assert third.wait(timeout=10) and third.state == "finished"
    assert "second" not in trainer.started


def test_silent_owner_loses_its_queued_job_while_others_keep_theirs(make_queue):
    trainer = FakeTrainer()
    queue = make_queue(trainer, abandon_after_s=0.5)
    running = queue.submit(_experiment(name="running"), owner="present")
    waiting = queue.submit(_experiment(name="waiting"), owner="absent")
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        running.heartbeat()
        time.sleep(0.05)
    assert waiting.state == "abandoned"
    assert "Removed from the queue" in waiting.error
    assert running.state == "running"
    assert queue.jobs_for("absent") == []
    running.stop()
    assert running.wait(timeout=10)
    assert "waiting" not in trainer.started


def test_one_active_job_per_owner_and_owners_are_isolated(make_queue):
    trainer = FakeTrainer()
    queue = make_queue(trainer, max_concurrent_jobs=2)
    alice = queue.submit(_experiment(name="alice"), owner="alice")
    with pytest.raises(ValueError, match="already have a training run running; stop it before starting another"):
        queue.submit(_experiment(name="alice2"), owner="alice")
    bob = queue.submit(_experiment(name="bob"), owner="bob")
    assert queue.jobs_for("alice") == [alice] and queue.jobs_for("bob") == [bob]
    assert queue.active_job("alice") is alice
    alice.stop()
    assert alice.wait(timeout=10)
    assert bob.state == "running" and not bob.stop_requested
    # Stopped, so alice may start again.
    again = queue.submit(_experiment(name="alice3"), owner="alice")
    assert again.state == "running"
    trainer.finish("bob")
    trainer.finish("alice3")
    assert bob.wait(timeout=10) and again.wait(timeout=10)


def test_finished_results_are_dropped_after_their_ttl(make_queue):
    trainer = FakeTrainer()
    queue = make_queue(trainer, result_ttl_s=0.2)
    trainer.finish("done")
    job = queue.submit(_experiment(name="done"), owner="alice")
    assert job.wait(timeout=10) and job.result is not None
    assert _eventually(lambda: job.result is None, timeout=5)
    assert queue.jobs_for("alice") == []


def test_an_owner_keeps_only_a_few_finished_jobs(make_queue):
    trainer = FakeTrainer()
    queue = make_queue(trainer)
    done = []
    for i in range(jobs.FINISHED_JOBS_PER_OWNER + 2):
        trainer.finish(f"r{i}")
        done.append(queue.submit(_experiment(name=f"r{i}"), owner="alice"))
        assert done[-1].wait(timeout=10)
    assert queue.jobs_for("alice") == done[-jobs.FINISHED_JOBS_PER_OWNER - 1:]
    assert done[0].result is None


def test_a_user_error_from_training_is_shown_as_it_is(make_queue):
    def refuse(experiment, **kwargs):
        raise UserError("The model expects images of shape (32, 32, 3); set input_shape to match.")

    queue = make_queue(refuse)
    job = queue.submit(_experiment(), owner="alice")
    assert job.wait(timeout=10)
    assert (job.state, job.error) == ("failed", "The model expects images of shape (32, 32, 3); set input_shape to match.")


def test_out_of_memory_gets_its_own_advice(make_queue):
    def exhaust(experiment, **kwargs):
        raise MemoryError()

    queue = make_queue(exhaust)
    job = queue.submit(_experiment(), owner="alice")
    assert job.wait(timeout=10)
    assert job.error.startswith("The server ran out of memory for this run")


# Caps, checked before anything runs


@pytest.mark.parametrize(
    ("settings", "experiment", "message"),
    [
        ({"max_epochs": 3}, _experiment(epochs=4), "at most 3 epochs per run; set epochs to 3 or fewer"),
        ({"max_train_size": 200}, _experiment(), "use all 300 training images; this app allows 200 per run, "
                                                 "so set train_subset to 200 or fewer"),
        ({"max_train_size": 200}, _experiment(train_subset=250), "train_subset is 250; use a value from 100 to 200"),
        ({}, _experiment(train_subset=400), "train_subset is 400"),
        ({"max_params": 5_000}, _experiment(), "6,810 parameters, above the limit of 5,000"),
        ({}, _experiment(learning_rate=5.0), "Learning rate 5.0 is out of range"),
        ({}, "not an experiment", "Only an Experiment"),
    ],
)
def test_caps_are_refused_with_what_to_change(make_queue, settings, experiment, message):
    trainer = FakeTrainer()
    queue = make_queue(trainer, **settings)
    with pytest.raises(ValueError) as caught:
        queue.submit(experiment, owner="alice")
    assert message in str(caught.value)
    assert queue.active_count() == 0 and trainer.started == []


def test_full_queue_and_missing_owner_are_refused(make_queue):
    trainer = FakeTrainer()
    queue = make_queue(trainer, max_queued_jobs=1)
    queue.submit(_experiment(name="a"), owner="a")
    queue.submit(_experiment(name="b"), owner="b")
    with pytest.raises(ValueError, match="The server is busy: all 1 training slots are in use and 1 runs are waiting"):
        queue.submit(_experiment(name="c"), owner="c")
    with pytest.raises(ValueError, match="needs its session id"):
        queue.submit(_experiment(name="d"), owner="")


def test_shutdown_stops_everything_and_refuses_new_jobs(make_queue):
    trainer = FakeTrainer()
    queue = make_queue(trainer)
    running = queue.submit(_experiment(name="a"), owner="a")
    waiting = queue.submit(_experiment(name="b"), owner="b")
    queue.shutdown(timeout=10)
    assert (running.state, waiting.state) == ("stopped", "stopped")
    assert queue.closed
    with pytest.raises(RuntimeError, match="shut down"):
        queue.submit(_experiment(), owner="c")


def test_get_queue_is_a_process_wide_singleton(monkeypatch):
    monkeypatch.setattr(jobs, "_QUEUE", None)
    first = get_queue(Settings(max_concurrent_jobs=3))
    assert get_queue() is first
    assert first.settings.max_concurrent_jobs == 3
    first.shutdown()
    replacement = get_queue(Settings(max_concurrent_jobs=1))
    assert replacement is not first and replacement.settings.max_concurrent_jobs == 1
    replacement.shutdown()


def test_only_a_users_mistake_is_shown_verbatim(caplog):
    assert workers._error_message(UserError("Use fewer epochs."), "run") == "Use fewer epochs."
    # A ValueError from NumPy or Keras is a bug here, not a sentence for the learner.
    shown = workers._error_message(ValueError("operands could not be broadcast"), "run")
    assert "broadcast" not in shown and shown.startswith("Something went wrong on our side (reference ")
    assert any(r.exc_info and "broadcast" in str(r.exc_info[1]) for r in caplog.records)


@pytest.mark.parametrize(("bf16", "expected"), [("on", "bfloat16"), ("off", "float32")])
def test_the_queue_trains_in_the_precision_its_settings_say(make_queue, bf16, expected):
    seen = []

    def trainer(checked, *, precision, **kwargs):
        seen.append(precision)
        return TrainingResult(object(), checked.experiment, [], 0.5, 0.9, "completed", "done", 0.1, precision)

    queue = make_queue(trainer, bf16=bf16)
    job = queue.submit(_experiment(), owner="alice")
    assert job.wait(timeout=20) and job.state == "finished"
    assert seen == [expected]
    assert job.take_result().precision == expected


# The process runner: real worker processes (each start imports TensorFlow, so they are shared)


@pytest.fixture(scope="module")
def process_queue():
    settings = Settings(job_runner="process", max_concurrent_jobs=1, jobs_per_worker=3, bf16="on")
    queue = JobQueue(settings)
    yield queue
    queue.shutdown(timeout=60)


def test_process_runner_returns_a_working_model_and_recycles_its_worker(process_queue):
    first = process_queue.submit(_experiment(epochs=2), owner="p1")
    assert first.wait(timeout=300)
    assert first.state == "finished", first.error
    worker = first.worker_pid
    assert worker is not None and worker != os.getpid()
    snapshot = first.progress.snapshot()
    assert snapshot.status == "finished" and snapshot.finished.reason == "completed"
    assert [row["epoch"] for row in snapshot.epoch_history] == [0, 1]
    result = first.take_result()
    assert result.model.count_params() == 6_810
    # The worker trained in the queue's precision and sent back a float32 model.
    assert process_queue.precision == result.precision == snapshot.precision == "bfloat16"
    assert {layer.compute_dtype for layer in result.model.layers} == {"float32"}
    assert [row["epoch"] for row in result.history] == [0, 1]
    probabilities = result.model.predict(TINY.x_test[:3], verbose=0)
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    # A run that fails inside the worker (Keras refuses the labels) leaves the worker healthy for the next run.
    refused = process_queue.submit(_experiment(dataset="tiny_bad_labels"), owner="p1")
    assert refused.wait(timeout=120)
    assert refused.state == "failed"
    assert refused.error.startswith("Something went wrong on our side (reference ")
    assert refused.worker_pid == worker

    third = process_queue.submit(_experiment(name="third"), owner="p1")
    assert third.wait(timeout=120) and third.state == "finished"
    assert third.worker_pid == worker
    # That was the worker's third run (jobs_per_worker=3), so it has been replaced.
    assert worker not in process_queue._pool.idle_pids
    assert _eventually(lambda: not _pid_alive(worker), timeout=10)


def test_process_runner_stops_a_running_job(process_queue):
    job = process_queue.submit(_experiment(epochs=100), owner="p2")
    assert _eventually(lambda: job.progress.snapshot().step > 0, timeout=300)
    job.stop()
    assert job.wait(timeout=60)
    assert job.state == "stopped"
    assert job.result.stopped_reason == "stopped"
    assert job.result.model.count_params() == 6_810


def test_a_killed_worker_fails_its_job_and_the_next_job_gets_a_new_one(process_queue):
    job = process_queue.submit(_experiment(epochs=100), owner="p3")
    assert _eventually(lambda: job.progress.snapshot().step > 0, timeout=300)
    killed = job.worker_pid
    os.kill(killed, signal.SIGKILL)
    assert job.wait(timeout=60)
    assert job.state == "failed"
    assert job.error.startswith("The training process stopped unexpectedly (exit code -9)")
    assert process_queue.running_count() == 0
    again = process_queue.submit(_experiment(), owner="p3")
    assert again.wait(timeout=300) and again.state == "finished", again.error
    assert again.worker_pid != killed


def _pid_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_prewarmed_worker_is_warm_before_the_first_run_and_gets_every_core_locally():
    from cnn_core.service.settings import local_profile

    settings = dataclasses.replace(local_profile(), max_concurrent_jobs=2)
    queue = JobQueue(settings)
    try:
        assert queue._pool is not None and queue._pool._threads == (os.cpu_count() or 1)
        queue.prewarm()
        (worker,) = queue._pool._idle
        # Imported TensorFlow and trained its warm-up model without being asked to train anything.
        assert worker.ready.wait(timeout=240)
        queue.prewarm()
        assert queue._pool.idle_pids == [worker.pid]
        job = queue.submit(_experiment(), owner="first-run")
        assert job.wait(timeout=120) and job.state == "finished", job.error
        assert job.worker_pid == worker.pid
    finally:
        queue.shutdown(timeout=60)
    # On a shared server a worker gets its share of the cores instead.
    host = JobQueue(Settings(host_mode=True, job_runner="process", max_concurrent_jobs=2))
    assert host._pool._threads == max(1, (os.cpu_count() or 1) // 2)
    host.shutdown()


def test_the_process_runner_leaves_the_bundled_dataset_to_its_worker(monkeypatch):
    # The server answers every visitor; the images a run trains on belong in the worker's memory only.
    def refuse(*args):
        raise AssertionError("The server process loaded a dataset.")

    monkeypatch.setattr(datasets, "_load_cached", refuse)
    queue = JobQueue(Settings(job_runner="process", max_concurrent_jobs=1))
    try:
        job = queue.submit(_experiment(dataset="mnist", train_subset=3000), owner="lean-server")
        assert job.wait(timeout=300)
        assert job.state == "finished", job.error
        result = job.take_result()
        assert len(result.history) == 1
        assert result.test_accuracy > 0.5
    finally:
        queue.shutdown(timeout=60)


def test_a_checked_experiment_is_not_checked_again(make_queue, monkeypatch):
    trainer = FakeTrainer()
    queue = make_queue(trainer)
    checked = queue.check(_experiment(name="once"))
    calls = []
    monkeypatch.setattr(specs, "check_experiment", lambda *args: calls.append(args))
    trainer.finish("once")
    job = queue.submit(checked, owner="alice")
    assert job.wait(timeout=10) and job.state == "finished"
    assert job.checked is checked and calls == []


def test_an_experiment_checked_against_looser_caps_is_checked_again(make_queue):
    queue = make_queue(FakeTrainer(), max_params=5_000)
    loose = specs.check_experiment(_experiment(), specs.Limits(max_params=10_000))
    with pytest.raises(UserError, match="above the limit of 5,000"):
        queue.submit(loose, owner="alice")


def test_a_training_worker_runs_at_a_lower_cpu_priority_than_the_server():
    import psutil

    pool = workers._WorkerPool(1, "float32", niceness=7)
    try:
        pool.prewarm()
        (worker,) = pool._idle
        assert worker.ready.wait(timeout=120)
        # Every thread of the worker, TensorFlow's included, inherits it: they start after the call.
        niceness = {psutil.Process(worker.pid).nice()} | {
            psutil.Process(thread.id).nice() for thread in psutil.Process(worker.pid).threads()}
        assert niceness == {min(19, psutil.Process().nice() + 7)}  # 19 is the lowest priority there is
    finally:
        pool.close_idle(0)
