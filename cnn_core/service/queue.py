"""Training runs as background jobs shared fairly between the sessions of one server.

A `JobQueue` runs at most `settings.max_concurrent_jobs` trainings at once (one per core by
default), each watched by its own daemon thread, which calls `training.train` with a stop Event
itself or relays between the job and a worker process; further runs wait first-in first-out
and know their place in line. Every submission is checked against
the server's caps before it costs anything, and each session (an ``owner``) may have only one
run queued or running. The UI calls `TrainingJob.heartbeat()` on every rerun; a run whose owner
has been silent for `settings.abandon_after_s` (a closed tab) is stopped, and finished runs
give up their model after `settings.result_ttl_s` or once the owner has taken it.

Two runners, chosen by `settings.job_runner`; the choice was made by measurement
(bench/memory_jobs.py, 2-core Linux VM, TensorFlow 2.21 / Keras 3.15, small convnets, one epoch
on 500-2,000 MNIST images, RSS of the server process after each job):

* Training in the server process leaks about 5-8 MiB per run, whatever we do: 36 runs in job
  threads grew RSS by 290 MiB, 36 runs in the main thread (no threads at all) by 360 MiB,
  and neither ``gc.collect()``, ``keras.backend.clear_session()``, ``malloc_trim(0)``,
  ``jit_compile=False`` nor ``MALLOC_ARENA_MAX=2`` changed the slope. A bare ``model.fit`` on
  NumPy arrays leaks 4.6 MiB per new model, ``train_on_batch`` too; ``run_eagerly=True`` does
  not leak but fits 2-2.3× slower. The memory goes with each model's traced ``tf.function``
  (the upstream issue keras-team/keras#17458). Threads themselves add nothing.
* ``process`` (the default, local and host): each run trains in a worker process started with "spawn",
  reused for `settings.jobs_per_worker` runs and then replaced, so the leak is returned to the
  system. 16 runs grew the server by 13 MiB in all (loading each trained model back), while a
  worker's RSS went from ~1,030 to ~1,140 MiB before it was replaced. The price: a worker's
  first run waits for it to import TensorFlow and load the data (4-13 s on this shared box;
  `prewarm()`, called when a learner opens the Train page, hides it and warms TensorFlow up), each worker holds its own runtime and dataset (~1.1 GiB; idle workers exit after
  WORKER_IDLE_S), and the model travels back as .keras bytes. A worker killed for memory
  fails its run with a message instead of taking the whole server down.
* ``thread`` (``CNN_JOB_RUNNER=thread``): no worker process and no start-up wait, but the leak
  stays in the server: ~34 MiB per finished run in local mode (bench/memory_jobs.py), so it is
  no longer the default anywhere.

Keras 3 keeps its global state (layer name counters, the functional-API scope) in a
``threading.local``, so every job thread starts with a fresh state that is freed when the
thread ends. `keras.backend.clear_session()` is never called: it replaces that thread-local for
every thread and clears TensorFlow's shared kernel cache, which would disturb the other
sessions' runs in the middle of a step, and the measurement shows it frees nothing anyway.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from cnn_core.engine import datasets, registry, specs, training
from cnn_core.engine.errors import UserError
from cnn_core.engine.filmstrip import Filmstrip
from cnn_core.engine.models import model_from_bytes
from cnn_core.engine.specs import CheckedExperiment, Experiment
from cnn_core.service.settings import Settings, load_settings
from cnn_core.service.workers import WORKER_IDLE_S, WorkerCrashed, _error_message, _WorkerError, _WorkerPool

if TYPE_CHECKING:
    import numpy as np

    from cnn_core.engine.training import TrainingResult

logger = logging.getLogger(__name__)

JobState = Literal["queued", "running", "finished", "stopped", "failed", "abandoned"]
ACTIVE_STATES = ("queued", "running")
# Terminal jobs an owner keeps listed (with their results) besides the newest; older ones are dropped.
FINISHED_JOBS_PER_OWNER = 3


class TrainingJob:
    """One training run owned by a session. Read its attributes freely; change it only through methods."""

    # True while the service behind the job cannot be reached (the Redis runner only; see redis_queue).
    service_unavailable = False
    # Whether pause/resume/set_learning_rate reach the run (not yet for the Redis runner).
    steerable = True

    def __init__(
        self, job_id: str, checked: CheckedExperiment, owner: str, queue: JobQueue, *,
        probe: np.ndarray | None = None, initial_weights: list[np.ndarray] | None = None,
    ):
        self.id = job_id
        self.owner = owner
        self.checked = checked
        self.experiment = checked.experiment
        self.progress = training.ProgressRecorder()
        # Frames of the first layer's filters and of `probe`'s feature maps, filled as the run goes.
        self.filmstrip = Filmstrip()
        self.probe = probe
        # A finished model's weights to continue from (None: start from random weights).
        self.initial_weights = initial_weights
        self.control = training.TrainingControl()
        # Steering commands a worker process has yet to receive: ("pause" | "resume" | "learning_rate", value).
        self._commands: collections.deque[tuple[str, float | None]] = collections.deque()
        self.state: JobState = "queued"
        self.result: TrainingResult | None = None
        self.error: str | None = None
        # Wall-clock times (time.time()) for display; None until the job gets there.
        self.created_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        # Monotonic, because the watchdog compares it with "now" and the wall clock may jump.
        self.last_heartbeat = time.monotonic()
        self._queue = queue
        self._stop_event = threading.Event()
        self._done = threading.Event()
        self._abandoned = False
        self._thread: threading.Thread | None = None
        # The worker process that trains this job (process runner only).
        self.worker_pid: int | None = None

    def __repr__(self) -> str:
        return f"TrainingJob(id={self.id!r}, owner={self.owner!r}, state={self.state!r})"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def stop_requested(self) -> bool:
        """True once stop() was called: a running job finishes its batch and its test evaluation first."""
        return self._stop_event.is_set()

    @property
    def queue_position(self) -> int | None:
        """1 for the next job to start, 2 for the one after…; None unless the job is waiting."""
        return self._queue.position(self)

    @property
    def thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def heartbeat(self) -> None:
        """Tell the queue the owner is still there; call it on every rerun of the page that shows the job."""
        self._queue.heartbeat(self.owner)

    def stop(self) -> None:
        """Stop the run: a queued job never starts, a running one stops after the current batch."""
        self._queue.stop(self)

    # Steering. Each takes effect after the current batch; a worker process gets it through its command pipe.

    @property
    def paused(self) -> bool:
        return self.control.paused

    def pause(self) -> None:
        """Hold training after the current batch; `resume()` goes on with exactly the steps that were left."""
        self.control.pause()
        self._commands.append(("pause", None))

    def resume(self) -> None:
        self.control.resume()
        self._commands.append(("resume", None))

    def set_learning_rate(self, learning_rate: float) -> None:
        """Use this learning rate from the next batch on (UserError for a value out of range)."""
        self.control.set_learning_rate(learning_rate)
        self._commands.append(("learning_rate", float(learning_rate)))

    @property
    def listeners(self) -> tuple[training.Listener, ...]:
        return (self.progress, self.filmstrip)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has ended (any way); False if `timeout` seconds passed first."""
        return self._done.wait(timeout)

    def take_result(self) -> TrainingResult | None:
        """Hand the result to the owner and forget it here, so the queue no longer keeps the model alive."""
        return self._queue.take_result(self)


def job_options(job: TrainingJob) -> dict:
    """The keyword arguments of `training.train` that come from the job rather than from the queue."""
    return {"record_filmstrip": True, "probe": job.probe, "initial_weights": job.initial_weights}


class JobQueue:
    """Runs training jobs: at most `max_concurrent_jobs` at once, the rest first-in first-out.

    `train` is what the thread runner calls (`training.train` unless a test passes a stand-in); a
    worker process always runs `training.train`. Datasets come from the registry: a worker loads a
    bundled one itself, and one registered in this process only is sent over. `watchdog_interval` defaults to a quarter of the shorter of
    `abandon_after_s` and `result_ttl_s`, between 0.05 s and 5 s.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        train: Callable[..., TrainingResult] = training.train,
        watchdog_interval: float | None = None,
    ):
        self.settings = settings
        self._train = train
        self._lock = threading.RLock()
        self._jobs: dict[str, TrainingJob] = {}
        self._waiting: collections.deque[TrainingJob] = collections.deque()
        self._running: set[TrainingJob] = set()
        self._ids = itertools.count(1)
        self._closed = threading.Event()
        if watchdog_interval is None:
            shortest = min(settings.abandon_after_s, settings.result_ttl_s)
            watchdog_interval = min(max(shortest / 4, 0.05), 5.0)
        self._watchdog_interval = watchdog_interval
        self._watchdog: threading.Thread | None = None
        # On a shared server each worker gets an equal share of the cores, so a full set of runs cannot
        # starve the server's own threads, which answer every visitor's clicks and drawings. A learner
        # on their own machine trains one run at a time, and it gets every core, as a thread run would.
        cores = os.cpu_count() or 1
        threads = max(1, cores // settings.max_concurrent_jobs) if settings.host_mode else cores
        # Read once: the CPU does not change, and every run of this server should compute alike.
        self.precision = settings.training_precision
        self._pool = (_WorkerPool(threads, self.precision, settings.worker_nice)
                      if settings.job_runner == "process" else None)

    # Submitting

    def submit(
        self, experiment: CheckedExperiment | Experiment, owner: str, *,
        probe: np.ndarray | None = None, initial_weights: list[np.ndarray] | None = None,
    ) -> TrainingJob:
        """Queue a checked experiment; UserError says what to change.

        A CheckedExperiment checked against caps no looser than this server's is taken as it is; a
        plain Experiment (or one checked against looser caps) is checked here, once, with `check`.
        `probe` is the image the run's filmstrip follows (default: the first test image);
        `initial_weights` continues training a finished model of the same spec.
        """
        if self._closed.is_set():
            raise RuntimeError("This job queue has been shut down.")
        if not isinstance(owner, str) or not owner:
            raise ValueError("A training job needs its session id as owner.")
        if isinstance(experiment, CheckedExperiment) and self._within_caps(experiment):
            checked = experiment
        else:
            checked = self.check(experiment.experiment if isinstance(experiment, CheckedExperiment) else experiment)
        self.reap()
        with self._lock:
            current = next((job for job in self._jobs.values() if job.owner == owner and job.is_active), None)
            if current is not None:
                raise UserError(
                    f"You already have a training run {current.state}; stop it before starting another."
                )
            if len(self._running) >= self.settings.max_concurrent_jobs and (
                len(self._waiting) >= self.settings.max_queued_jobs
            ):
                raise UserError(
                    f"The server is busy: all {len(self._running)} training slots are in use and "
                    f"{len(self._waiting)} runs are waiting. Try again in a minute."
                )
            job = TrainingJob(
                f"job-{next(self._ids)}", checked, owner, self, probe=probe, initial_weights=initial_weights
            )
            self._forget_old_jobs(owner)
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._start_waiting_jobs()
        self._ensure_watchdog()
        return job

    def check(self, experiment: Experiment) -> CheckedExperiment:
        """`experiment` checked against this server's caps (`Settings.limits`); UserError says what to change."""
        return specs.check_experiment(experiment, self.settings.limits)

    def _within_caps(self, checked: CheckedExperiment) -> bool:
        mine, theirs = self.settings.limits, checked.limits
        return (
            theirs.max_params <= mine.max_params
            and theirs.max_epochs <= mine.max_epochs
            and theirs.max_train_size is not None
            and theirs.max_train_size <= mine.max_train_size
        )

    def _forget_old_jobs(self, owner: str) -> None:
        finished = [job for job in self._jobs.values() if job.owner == owner and not job.is_active]
        for job in finished[:-FINISHED_JOBS_PER_OWNER]:
            self._forget(job)

    def _forget(self, job: TrainingJob) -> None:
        self._jobs.pop(job.id, None)
        # The owner may still hold the job object; the model is what must not outlive its welcome.
        job.result = None

    # Running

    def _start_waiting_jobs(self) -> None:
        while self._waiting and len(self._running) < self.settings.max_concurrent_jobs:
            job = self._waiting.popleft()
            job.state = "running"
            job.started_at = time.time()
            self._running.add(job)
            job._thread = threading.Thread(target=self._run, args=(job,), name=f"train-{job.id}", daemon=True)
            job._thread.start()

    def _run(self, job: TrainingJob) -> None:
        result: TrainingResult | None = None
        error: str | None = None
        try:
            if self._pool is not None:
                result = self._run_in_worker(job)
            else:
                result = self._train(
                    job.checked,
                    stop_event=job._stop_event,
                    listeners=job.listeners,
                    dataset=datasets.load(job.experiment.training.dataset),
                    precision=self.precision,
                    **job_options(job),
                    control=job.control,
                )
        except Exception as exc:
            error = _error_message(exc, f"Training job {job.id} of {job.owner} failed")
        finally:
            self._finish(job, result, error)

    def _run_in_worker(self, job: TrainingJob) -> TrainingResult:
        """Train in a worker process, relaying its events to the job and the job's stop request to it."""
        worker = self._pool.acquire()
        job.worker_pid = worker.pid
        healthy = False
        try:
            # The bundled datasets are loaded (and cached) by the worker itself, never by the server;
            # anything else (a learner's own classes, registered only here) is sent over.
            name = job.experiment.training.dataset
            shipped = None if registry.get(name).bundled else datasets.load(name)
            worker.stop.clear()
            worker.conn.send((job.checked, shipped, self.precision, job_options(job), job.id))
            while True:
                if job._stop_event.is_set():
                    worker.stop.set()
                while job._commands:
                    # Tagged with the run: the worker ignores what was meant for an earlier one.
                    worker.commands.send((job.id, *job._commands.popleft()))
                if not worker.conn.poll(0.05):
                    if not worker.process.is_alive() and not worker.conn.poll():
                        raise WorkerCrashed(worker.process.exitcode)
                    continue
                try:
                    kind, payload = worker.conn.recv()
                except (EOFError, OSError):
                    worker.process.join(timeout=5)
                    raise WorkerCrashed(worker.process.exitcode) from None
                if kind == "event":
                    for listener in job.listeners:
                        listener(payload)
                elif kind == "error":
                    healthy = True
                    raise _WorkerError(payload)
                else:
                    healthy = True
                    model_bytes, partial = payload
                    return dataclasses.replace(partial, model=model_from_bytes(model_bytes))
        finally:
            worker.jobs_done += 1
            if healthy and worker.jobs_done < self.settings.jobs_per_worker and not self._closed.is_set():
                self._pool.release(worker)
            else:
                worker.close()

    def prewarm(self) -> None:
        """Start an idle worker process ahead of the first run (process runner only), hiding its start-up."""
        if self._pool is not None and not self._closed.is_set():
            self._pool.prewarm()

    def _finish(self, job: TrainingJob, result: TrainingResult | None, error: str | None) -> None:
        with self._lock:
            self._running.discard(job)
            job.finished_at = time.time()
            if job._abandoned:
                job.state = "abandoned"
                job.error = "Stopped because this page was closed or stopped responding."
                self._forget(job)
            elif error is not None:
                job.state, job.error = "failed", error
            else:
                job.state = "stopped" if result.stopped_reason == "stopped" else "finished"
                job.result = result
            job._done.set()
            if self._closed.is_set():
                return
            self._start_waiting_jobs()

    # Controls

    def stop(self, job: TrainingJob) -> None:
        with self._lock:
            job._stop_event.set()
            if job.state == "queued":
                self._remove_waiting(job, "stopped")

    def _remove_waiting(self, job: TrainingJob, state: JobState) -> None:
        self._waiting.remove(job)
        job.state = state
        job.finished_at = time.time()
        if state == "abandoned":
            job.error = "Removed from the queue because this page was closed or stopped responding."
        job._done.set()

    def heartbeat(self, owner: str) -> None:
        now = time.monotonic()
        with self._lock:
            for job in self._jobs.values():
                if job.owner == owner:
                    job.last_heartbeat = now
        self.reap()

    def take_result(self, job: TrainingJob) -> TrainingResult | None:
        with self._lock:
            result, job.result = job.result, None
            if not job.is_active:
                self._jobs.pop(job.id, None)
            return result

    def reap(self) -> None:
        """Stop jobs whose owner went silent and drop old results; the watchdog calls this periodically."""
        now = time.monotonic()
        wall_now = time.time()
        with self._lock:
            for job in list(self._jobs.values()):
                silent_for = now - job.last_heartbeat
                if job.state == "queued" and silent_for > self.settings.abandon_after_s:
                    logger.info("Dropping queued job %s: no heartbeat for %.0f s.", job.id, silent_for)
                    self._remove_waiting(job, "abandoned")
                    self._forget(job)
                elif job.state == "running" and silent_for > self.settings.abandon_after_s:
                    if not job._abandoned:
                        logger.info("Stopping job %s: no heartbeat for %.0f s.", job.id, silent_for)
                    job._abandoned = True
                    job._stop_event.set()
                elif not job.is_active and (
                    silent_for > self.settings.abandon_after_s
                    or wall_now - (job.finished_at or wall_now) > self.settings.result_ttl_s
                ):
                    self._forget(job)

    def _ensure_watchdog(self) -> None:
        with self._lock:
            if self._watchdog is None or not self._watchdog.is_alive():
                self._watchdog = threading.Thread(target=self._watch, name="training-watchdog", daemon=True)
                self._watchdog.start()

    def _watch(self) -> None:
        while not self._closed.wait(self._watchdog_interval):
            try:
                self.reap()
                if self._pool is not None:
                    self._pool.close_idle(WORKER_IDLE_S)
            except Exception:
                # The watchdog must survive anything, or abandoned runs would hold their slots forever.
                logger.exception("Training watchdog failed; it keeps running.")

    # Inspection

    def position(self, job: TrainingJob) -> int | None:
        with self._lock:
            try:
                return self._waiting.index(job) + 1
            except ValueError:
                return None

    def jobs_for(self, owner: str) -> list[TrainingJob]:
        """The owner's jobs still known to the queue, oldest first."""
        with self._lock:
            return [job for job in self._jobs.values() if job.owner == owner]

    def active_job(self, owner: str) -> TrainingJob | None:
        """The owner's queued or running job, if any."""
        with self._lock:
            return next((job for job in self._jobs.values() if job.owner == owner and job.is_active), None)

    def active_count(self) -> int:
        """Jobs queued or running."""
        with self._lock:
            return len(self._running) + len(self._waiting)

    def running_count(self) -> int:
        with self._lock:
            return len(self._running)

    def waiting_count(self) -> int:
        with self._lock:
            return len(self._waiting)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def shutdown(self, timeout: float | None = 30.0) -> None:
        """Stop every job and the watchdog, and wait up to `timeout` seconds for running threads to end."""
        with self._lock:
            self._closed.set()
            for job in list(self._waiting):
                job._stop_event.set()
                self._remove_waiting(job, "stopped")
            running = list(self._running)
            for job in running:
                job._stop_event.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        for job in running:
            job.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self._watchdog is not None:
            self._watchdog.join(timeout=1.0)
        if self._pool is not None:
            self._pool.close_idle(0.0)


# Worker processes

_QUEUE: JobQueue | None = None
_QUEUE_LOCK = threading.Lock()


def get_queue(settings: Settings | None = None) -> JobQueue:
    """The process-wide queue every session shares, created on first use: the one place the runner is chosen.

    `settings` only matter on that first call (None reads them with `load_settings()`); later
    calls return the same queue, because all sessions must share one set of slots. With
    `settings.redis_url` (CNN_REDIS_URL) runs go to RQ workers through Redis (`redis_queue.RedisJobQueue`,
    same interface); without it they train in this process or its worker processes.
    """
    global _QUEUE
    with _QUEUE_LOCK:
        if _QUEUE is None or _QUEUE.closed:
            settings = settings if settings is not None else load_settings()
            if settings.redis_url:
                from cnn_core.service.redis_queue import RedisJobQueue

                _QUEUE = RedisJobQueue(settings)
            else:
                _QUEUE = JobQueue(settings)
        return _QUEUE
