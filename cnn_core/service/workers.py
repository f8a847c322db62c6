"""Worker processes that train one run at a time for the queue (`CNN_JOB_RUNNER=process`).

Why worker processes at all is measured and explained in `cnn_core.service.queue`. A worker is
started with "spawn", imports TensorFlow once, trains the runs it is sent one after another, and
is replaced after `settings.jobs_per_worker` runs so the per-`fit` leak goes back to the system.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import threading
import time

from cnn_core.engine import datasets, registry, training
from cnn_core.engine.errors import UserError, report
from cnn_core.engine.models import model_to_bytes

logger = logging.getLogger(__name__)


class WorkerCrashed(RuntimeError):
    """The worker process died mid-run (killed for memory, a crash in native code)."""

    def __init__(self, exit_code: int | None):
        super().__init__(f"exit code {exit_code}")
        self.exit_code = exit_code


class _WorkerError(Exception):
    """A run that failed inside a worker; the message was already written for the learner there."""


def _error_message(exc: BaseException, what: str) -> str:
    """What the learner reads about a failed run; anything but their own mistake is logged here."""
    if isinstance(exc, _WorkerError | UserError):
        # A _WorkerError's message was made by this same function inside the worker.
        return str(exc)
    if isinstance(exc, WorkerCrashed):
        logger.error("%s: the worker process died (%s).", what, exc)
        return (
            f"The training process stopped unexpectedly ({exc}); the server may have run out of memory. "
            "Try a smaller model, batch size or training subset."
        )
    if isinstance(exc, MemoryError) or type(exc).__name__ == "ResourceExhaustedError":
        logger.warning("%s: out of memory.", what, exc_info=exc)
        return "The server ran out of memory for this run; use a smaller model, batch size or training subset."
    return report(exc, logger, what)


# An idle worker holds a TensorFlow runtime and a dataset (~1 GB); give that back after a quiet spell.
WORKER_IDLE_S = 300.0
# Send a learner's batch progress at most this often; the chart cannot show more anyway.
EVENT_INTERVAL_S = 0.05


_SPAWN_LOCK = threading.Lock()


@contextlib.contextmanager
def _without_main_module():
    """Start spawned children without re-running this process's ``__main__``.

    "spawn" normally makes the child import the parent's main script first. Under Streamlit (and
    AppTest) ``__main__`` is the page script that ran last, so every new worker would run a page
    script before it could train. The worker's code lives in this module, so it needs none of it.
    """
    from multiprocessing import spawn

    original = spawn.get_preparation_data

    def preparation_data(name):
        data = original(name)
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
        return data

    with _SPAWN_LOCK:
        spawn.get_preparation_data = preparation_data
        try:
            yield
        finally:
            spawn.get_preparation_data = original


class _Worker:
    """A child process that trains one job at a time until it is told to exit."""

    def __init__(self, context, threads: int, precision: str = "float32", niceness: int = 0):
        self.conn, child_conn = context.Pipe()
        # Steering commands (pause, resume, learning rate) go one way, apart from the event stream.
        child_commands, self.commands = context.Pipe(duplex=False)
        self.stop = context.Event()
        # Set once the worker has imported TensorFlow and warmed it up: it would start a run at once.
        self.ready = context.Event()
        self.process = context.Process(
            target=_worker_main, args=(child_conn, self.stop, threads, child_commands, self.ready, precision, niceness),
            name="cnn-training-worker",
            daemon=True,
        )
        with _without_main_module():
            self.process.start()
        child_conn.close()
        child_commands.close()
        self.pid = self.process.pid
        self.jobs_done = 0
        self.idle_since = time.monotonic()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self.conn.close()
        self.commands.close()


class _WorkerPool:
    """Idle worker processes, reused by later jobs so only the first pays TensorFlow's start-up."""

    def __init__(self, threads: int, precision: str = "float32", niceness: int = 0):
        # "spawn", never "fork": a forked copy of a process running TensorFlow threads can deadlock.
        self._context = multiprocessing.get_context("spawn")
        self._threads = threads
        # Warm up in what the runs compute in: bfloat16 has kernels of its own to initialise.
        self._precision = precision
        self._niceness = niceness
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()

    def acquire(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.process.is_alive():
                    return worker
                worker.close()
        return _Worker(self._context, self._threads, self._precision, self._niceness)

    def release(self, worker: _Worker) -> None:
        worker.idle_since = time.monotonic()
        with self._lock:
            self._idle.append(worker)

    def prewarm(self) -> None:
        with self._lock:
            if self._idle:
                return
        self.release(_Worker(self._context, self._threads, self._precision, self._niceness))

    def close_idle(self, idle_for: float) -> None:
        now = time.monotonic()
        with self._lock:
            leaving = [w for w in self._idle if now - w.idle_since >= idle_for or not w.process.is_alive()]
            self._idle = [w for w in self._idle if w not in leaving]
        for worker in leaving:
            worker.close()

    @property
    def idle_pids(self) -> list[int]:
        with self._lock:
            return [worker.pid for worker in self._idle]


def apply_command(control: training.TrainingControl, command: tuple[str, float | None]) -> None:
    """Carry out one steering command that `TrainingJob` relayed from the server."""
    name, value = command
    if name == "pause":
        control.pause()
    elif name == "resume":
        control.resume()
    elif name == "learning_rate":
        control.set_learning_rate(value)


def _steering_thread(commands, control: training.TrainingControl, done: threading.Event,
                     run_id: str) -> threading.Thread:
    """A thread that applies the server's commands for run `run_id` to its control until `done` is set.

    A command for another run was sent after that run ended: it is read and dropped.
    """

    def listen() -> None:
        while not done.is_set():
            try:
                if commands.poll(0.05):
                    run, *command = commands.recv()
                    if run == run_id:
                        apply_command(control, tuple(command))
            except (EOFError, OSError):
                return
            except ValueError:
                logger.warning("Ignored a steering command the server should have refused.", exc_info=True)

    thread = threading.Thread(target=listen, name="steering", daemon=True)
    thread.start()
    return thread


def warm_up(warm_precision: str = "float32") -> None:
    """Train a tiny model on a few random images, so the first real run finds TensorFlow ready.

    The first `fit` in a process initialises TensorFlow's runtime, oneDNN and the function tracing
    machinery, a second or more on a busy CPU; done here, while the learner is still editing
    (`JobQueue.prewarm`), it no longer delays the first point of the first run's curve.
    """
    import numpy as np

    from cnn_core.engine.datasets import Dataset
    from cnn_core.engine.specs import Conv2D, Dense, Experiment, Flatten, MaxPool, ModelSpec, TrainingConfig

    rng = np.random.default_rng(0)
    images = rng.random((64, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, 64)
    data = Dataset("warm_up", images, labels, images[:32], labels[:32], tuple(str(digit) for digit in range(10)))
    spec = ModelSpec((Conv2D(4, 3), MaxPool(2), Flatten(), Dense(10, "softmax")), name="warm_up")
    training.train(Experiment(spec, TrainingConfig(epochs=1, batch_size=32, validation_split=0.0)), dataset=data,
                   precision=warm_precision)
    # The bundled images too: unpacking them was a quarter to half a second of the first point's wait.
    datasets.keep_bundled()


def register_arrays(name: str, class_names: tuple[str, ...], arrays: tuple) -> None:
    """Register a dataset the server sent (a learner's own classes), so this process knows its name too.

    Used by the process runner's workers and by the Redis runner's (`rq_worker`).
    """
    registry.register(registry.DatasetInfo(
        name=name, title=name, class_names=tuple(class_names),
        train_size=len(arrays[0]), test_size=len(arrays[2]), arrays=lambda: arrays,
    ))


def _register_shipped(dataset) -> None:
    register_arrays(dataset.name, dataset.class_names, (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test))


def lower_priority(niceness: int) -> None:
    """Make this (training) process yield the CPU to the web server's; best effort, never fatal."""
    if niceness <= 0 or not hasattr(os, "nice"):
        return
    try:
        # Linux keeps a priority per thread and a new thread copies its creator's; the threads that
        # already exist (numpy's OpenBLAS pool, started at import) are lowered one by one.
        tasks = [int(task) for task in os.listdir("/proc/self/task")] if os.path.isdir("/proc/self/task") else []
        target = os.getpriority(os.PRIO_PROCESS, 0) + niceness
        for task in tasks:
            with contextlib.suppress(ProcessLookupError):
                os.setpriority(os.PRIO_PROCESS, task, min(19, target))
        if not tasks:
            os.nice(niceness)
    except OSError:
        logger.warning("Could not lower the training worker's priority.", exc_info=True)


def _worker_main(conn, stop, threads: int, commands=None, ready=None, warm_precision: str = "float32",
                 niceness: int = 0) -> None:
    """The worker process: receive (checked experiment, dataset or None, precision, options, run id), train,
    send the outcome."""
    lower_priority(niceness)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    # Must happen before TensorFlow creates its thread pools, i.e. before the first operation.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    try:
        warm_up(warm_precision)
    except Exception:
        # Only a head start: a worker that cannot warm up still trains, just slower the first time.
        logger.exception("Warming up worker process %s failed.", os.getpid())
    else:
        if ready is not None:
            ready.set()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        checked, dataset, precision, options, run_id = message
        last_sent = 0.0
        control = training.TrainingControl()
        done = threading.Event()
        # Commands are tagged with their run, so a late one for the previous run is ignored. (They were
        # drained here instead, and with them a Pause pressed before this run reached the worker.)
        steering = None if commands is None else _steering_thread(commands, control, done, run_id)

        def relay(event) -> None:
            nonlocal last_sent
            if isinstance(event, training.BatchEnded) and event.step != event.steps_per_epoch:
                now = time.monotonic()
                if now - last_sent < EVENT_INTERVAL_S:
                    return
                last_sent = now
            conn.send(("event", event))

        try:
            if dataset is None:
                config = checked.training
                dataset = datasets.load_for_one_run(config.dataset, config.train_subset)
            elif dataset.name not in registry.names():
                _register_shipped(dataset)
            result = training.train(
                checked, stop_event=stop, listeners=(relay,), dataset=dataset, precision=precision,
                control=control, **options,
            )
            outcome = ("result", (model_to_bytes(result.model), dataclasses.replace(result, model=None)))
        except Exception as exc:
            outcome = ("error", _error_message(exc, f"Training failed in worker process {os.getpid()}"))
        finally:
            result = dataset = None
            done.set()
            if steering is not None:
                steering.join()
        try:
            conn.send(outcome)
        except (OSError, ValueError):
            return


