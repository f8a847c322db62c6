"""An RQ worker that trains the runs of `redis_queue.RedisJobQueue`: `make worker` / `python -m cnn_core.service.rq_worker`.

Any machine with the repository and `CNN_REDIS_URL` can run one; nothing is shared with the web
server but Redis. The entry point is a small supervisor that keeps `--workers` worker processes
(default `CNN_WORKERS` or 1) alive: each imports TensorFlow once, trains up to `--max-jobs`
runs (`CNN_JOBS_PER_WORKER`, default 20) one after another with `CNN_WORKER_THREADS` TensorFlow
threads, and exits so that the per-`fit` Keras leak (see `queue`) goes back to the system; the
supervisor then starts a fresh one. A worker killed by anything is restarted the same way.

A job's arguments are the run id, the experiment as JSON and a JSON dict of options (RQ's JSON
serializer; nothing is unpickled here), and the experiment is checked against this worker's own
caps before anything is built: the web tier is not trusted. The options name what else the run
needs from Redis: an own-classes dataset (`dataset:<sha256>`, checked against its hash and
registered here for the run), the model to continue from (`run:<id>:weights`, size-capped and
loaded with the same safe `model_from_bytes` as a result) and the filmstrip's probe image.
Pause, resume and learning-rate commands arrive through `run:<id>:commands`, read together with
the stop key at most every `STEER_POLL_S`, and drive an `engine.training.TrainingControl`. Training runs in the worker process itself (RQ's
`SimpleWorker`, no fork per job: forking a process that has TensorFlow's threads can deadlock),
so RQ's stop-job command, which would kill a forked work horse, here ends the whole worker
process after marking the run; the supervisor replaces it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np

from cnn_core.engine import datasets, registry, specs, training
from cnn_core.engine.errors import UserError
from cnn_core.engine.filmstrip import FilmstripStarted, Frame
from cnn_core.engine.specs import Experiment
from cnn_core.service import redis_queue as rq_keys
from cnn_core.service.settings import Settings, load_settings
from cnn_core.service.workers import EVENT_INTERVAL_S, _error_message, apply_command, register_arrays

logger = logging.getLogger(__name__)

# Exit status of a worker that ended a run by force; the supervisor restarts it like any other.
FORCED_EXIT = 70

_SETTINGS: Settings | None = None


def _settings() -> Settings:
    global _SETTINGS
    if _SETTINGS is None:
        _SETTINGS = load_settings()
    return _SETTINGS


class RedisStopFlag:
    """The `stop_event` of a run on a worker: set once the run's stop key exists in Redis.

    `engine.training.train` calls `is_set()` after every batch (and every 50 ms while paused). At
    most every STEER_POLL_S that costs one pipelined round trip, which also takes the run's
    steering commands and applies them to `control`, so pause, resume and a new learning rate
    reach the training callback without a round trip per batch. The first True is written back
    as `stop_seen_at`, which is what tells the web tier the worker reacted (no hard stop needed)
    and what the stop-latency benchmark measures.
    """

    def __init__(self, conn, run_id: str, control: training.TrainingControl | None = None):
        self._conn = conn
        self._run_id = run_id
        self._control = control
        self._seen = False
        self._checked_at = 0.0

    def is_set(self) -> bool:
        if self._seen:
            return True
        now = time.monotonic()
        if now - self._checked_at < rq_keys.STEER_POLL_S:
            return False
        self._checked_at = now
        try:
            pipe = self._conn.pipeline(transaction=True)
            pipe.exists(rq_keys.run_key(self._run_id, "stop"))
            commands = rq_keys.run_key(self._run_id, "commands")
            pipe.lrange(commands, 0, -1)
            pipe.delete(commands)
            stop, queued, _ = pipe.execute()
            for raw in queued:
                self._apply(raw)
            if not stop:
                return False
            self._seen = True
            rq_keys.transition(self._conn, self._run_id, ("running",),
                               {"stop_seen_at": repr(rq_keys.redis_now(self._conn))})
        except Exception:
            # Redis away for a moment: keep training; the next batch asks again.
            logger.warning("Could not read the stop key of run %s.", self._run_id, exc_info=True)
            return False
        return True

    def _apply(self, raw: bytes) -> None:
        if self._control is None:
            return
        try:
            name, value = json.loads(raw)
            apply_command(self._control, (str(name), None if value is None else float(value)))
        except (ValueError, TypeError):
            logger.warning("Ignored a malformed steering command for run %s: %r", self._run_id, raw[:100])


class StreamPublisher:
    """A training listener that appends events to the run's Redis stream (batch events throttled)."""

    def __init__(self, conn, run_id: str):
        self._conn = conn
        self._key = rq_keys.run_key(run_id, "events")
        self._frames = rq_keys.run_key(run_id, "frames")
        self._run = rq_keys.run_key(run_id)
        self._last_sent = 0.0
        self._epochs = 0
        self._filmstrip_bytes = 0

    def __call__(self, event: training.Event) -> None:
        if isinstance(event, training.BatchEnded) and event.step != event.steps_per_epoch:
            now = time.monotonic()
            if now - self._last_sent < EVENT_INTERVAL_S:
                return
            self._last_sent = now
        if isinstance(event, FilmstripStarted | Frame):
            # Their own list, bounded by bytes, not the capped stream: a long run keeps its first frames.
            entry = rq_keys.encode_frame(event)
            size = len(entry)
            if isinstance(event, Frame) and (
                    size > rq_keys.MAX_FRAME_BYTES or self._filmstrip_bytes + size > rq_keys.MAX_FILMSTRIP_BYTES):
                logger.warning("Filmstrip frame at step %d (%d bytes) not sent: over the cap.", event.step, size)
                return
            self._filmstrip_bytes += size
            self._conn.rpush(self._frames, entry)
            return
        encoded = rq_keys.encode_event(event)
        if isinstance(event, training.TrainStarted):
            self._epochs = event.epochs
            # Kept beside the capped stream too, so a replay of a very long run still knows its shape.
            self._conn.hset(self._run, "started_event", encoded["data"])
        elif isinstance(event, training.EpochEnded) and event.complete and event.epoch + 1 >= self._epochs:
            # No batch is left to see a Stop; the test evaluation must not be mistaken for a stuck run.
            self._conn.hset(self._run, "fit_done_at", repr(rq_keys.redis_now(self._conn)))
        self._conn.xadd(self._key, encoded, maxlen=rq_keys.STREAM_MAXLEN, approximate=True)


class _Heartbeat:
    """Keeps `run:<id>:alive` fresh from a thread while the run trains; a kill -9 lets it expire."""

    def __init__(self, conn, run_id: str, worker: str):
        self._conn = conn
        self._key = rq_keys.run_key(run_id, "alive")
        self._worker = worker
        self._stop = threading.Event()
        self.beat()
        self._thread = threading.Thread(target=self._loop, name=f"alive-{run_id}", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        self._conn.set(self._key, self._worker, ex=rq_keys.ALIVE_TTL_S)

    def _loop(self) -> None:
        while not self._stop.wait(rq_keys.ALIVE_INTERVAL_S):
            try:
                self.beat()
            except Exception:
                logger.warning("Could not refresh the heartbeat %s.", self._key, exc_info=True)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        try:
            self._conn.delete(self._key)
        except Exception:
            pass


def _connection():
    from rq import get_current_job

    job = get_current_job()
    if job is not None:
        return job.connection
    return rq_keys.connect(_settings().redis_url)


def run_job(run_id: str, experiment_json: str, options: dict | None = None) -> None:
    """The RQ job: train one run and leave its outcome (and model bytes) in Redis for its owner."""
    conn = _connection()
    settings = _settings()
    fields = {rq_keys._text(k): rq_keys._text(v) for k, v in conn.hgetall(rq_keys.run_key(run_id)).items()}
    if not fields:
        logger.info("Run %s is no longer known; skipped.", run_id)
        return
    owner = fields["owner"]
    worker = f"{os.uname().nodename}:{os.getpid()}"
    # The heartbeat exists before the run counts as running, so a reaper never sees one without the other.
    heartbeat = _Heartbeat(conn, run_id, worker)
    try:
        if not rq_keys.transition(conn, run_id, ("queued",), {
            "state": "running", "started_at": repr(rq_keys.redis_now(conn)), "worker": worker,
        }):
            logger.info("Run %s was stopped or dropped before it started; skipped.", run_id)
            return
        _train(conn, run_id, owner, experiment_json, settings, options if isinstance(options, dict) else {})
    finally:
        heartbeat.close()


def _register_dataset(conn, experiment: Experiment, digest: object) -> str | None:
    """Register the run's own-classes dataset from Redis under the experiment's name; returns the name."""
    name = experiment.training.dataset
    if not isinstance(digest, str) or len(digest) != 64:
        raise UserError("The training service received a damaged dataset; start the run again.")
    if name in registry.names() and registry.get(name).bundled:
        # A dataset sent along must never replace a bundled one on this worker.
        raise UserError(f"The dataset {name!r} is built in; it cannot be sent to the training service.")
    data = conn.get(rq_keys.dataset_key(digest))
    if data is None:
        raise UserError("Your classes expired from the training service before the run started; start it again.")
    class_names, arrays = rq_keys.dataset_from_bytes(data, digest, experiment.model.input_shape)
    register_arrays(name, class_names, arrays)
    return name


def _initial_weights(conn, run_id: str, checked, settings: Settings) -> list:
    """The weights of the model to continue from, loaded the safe way a result is; `train` checks they fit."""
    from cnn_core.engine.models import model_from_bytes

    data = conn.getdel(rq_keys.run_key(run_id, "weights"))
    if not data:
        raise UserError("The model to continue from expired from the training service; start the run again.")
    if len(data) > settings.max_upload_bytes:
        raise UserError(f"The model to continue from is {len(data) / 2**20:.1f} MiB, more than the "
                        f"{settings.max_upload_mb:g} MiB this service takes.")
    model = model_from_bytes(data)
    if model.count_params() != checked.param_count:
        raise UserError("These weights belong to a different model; continue training the model they came from.")
    return model.get_weights()


def _train(conn, run_id: str, owner: str, experiment_json: str, settings: Settings, options: dict) -> None:
    from cnn_core.engine.models import model_to_bytes

    ttl = settings.result_ttl_s
    registered = None
    try:
        experiment = Experiment.from_json(experiment_json)
        if "dataset" in options:
            # Registered before the check, which needs the dataset's classes and sizes.
            registered = _register_dataset(conn, experiment, options["dataset"])
        checked = specs.check_experiment(experiment, settings.limits)
        config = checked.training
        dataset = datasets.load_for_one_run(config.dataset, config.train_subset)
        initial = _initial_weights(conn, run_id, checked, settings) if options.get("weights") else None
        probe = rq_keys.probe_values(options.get("probe"), checked.model.input_shape)
        control = training.TrainingControl()
        result = training.train(
            checked, stop_event=RedisStopFlag(conn, run_id, control), listeners=(StreamPublisher(conn, run_id),),
            dataset=dataset, precision=settings.training_precision, control=control, record_filmstrip=True,
            probe=None if probe is None else np.asarray(probe, dtype=np.float32), initial_weights=initial,
        )
        data = model_to_bytes(result.model)
        if len(data) > settings.max_upload_bytes:
            raise UserError(
                f"The trained model is {len(data) / 2**20:.1f} MiB, more than the {settings.max_upload_mb:g} MiB "
                "this service sends back; use a smaller model."
            )
    except Exception as exc:
        error = _error_message(exc, f"Run {run_id} failed on worker {os.getpid()}")
        rq_keys.finish_run(conn, run_id, owner, ("running",), ttl, {
            "state": "failed", "error": error, "finished_at": repr(rq_keys.redis_now(conn)),
        })
        return
    finally:
        if registered is not None:
            registry.unregister(registered)
    abandoned = bool(conn.hget(rq_keys.run_key(run_id), "abandoned"))
    now = repr(rq_keys.redis_now(conn))
    if abandoned:
        rq_keys.finish_run(conn, run_id, owner, ("running",), ttl,
                           {"state": "abandoned", "error": rq_keys.ABANDONED_RUNNING, "finished_at": now})
        return
    meta = {
        "history": result.history, "test_loss": result.test_loss, "test_accuracy": result.test_accuracy,
        "stopped_reason": result.stopped_reason, "message": result.message, "seconds": result.seconds,
        "precision": result.precision,
    }
    conn.set(rq_keys.run_key(run_id, "model"), data, ex=max(1, int(ttl)))
    state = "stopped" if result.stopped_reason == "stopped" else "finished"
    if not rq_keys.finish_run(conn, run_id, owner, ("running",), ttl,
                              {"state": state, "result": json.dumps(meta), "finished_at": now}):
        # Declared lost or stopped by force meanwhile: its owner was told so, the model goes.
        conn.delete(rq_keys.run_key(run_id, "model"))


def _worker_class():
    from rq import SimpleWorker

    class TrainingWorker(SimpleWorker):
        """Runs jobs in this process, where TensorFlow was imported once (see the module docstring)."""

        def kill_horse(self, sig=signal.SIGKILL):
            # Called from RQ's pubsub thread for a stop-job command; SimpleWorker's own does nothing.
            run_id = self.get_current_job_id()
            if not run_id:
                return
            self.log.warning("Ending run %s by force: it did not react to Stop.", run_id)
            try:
                conn = self.connection
                owner = rq_keys._text(conn.hget(rq_keys.run_key(run_id), "owner")) or ""
                rq_keys.finish_run(conn, run_id, owner, ("running",), _settings().result_ttl_s, {
                    "state": "failed", "error": rq_keys.FORCED_STOP,
                    "finished_at": repr(rq_keys.redis_now(conn)),
                })
                conn.delete(rq_keys.run_key(run_id, "alive"))
            finally:
                os._exit(FORCED_EXIT)

    return TrainingWorker


def _threads(workers: int) -> int:
    configured = _settings().worker_threads
    return configured or max(1, (os.cpu_count() or 1) // max(1, workers))


def work(max_jobs: int, threads: int, queue_name: str = rq_keys.QUEUE_NAME, burst: bool = False) -> None:
    """One worker process: import TensorFlow once, then train up to `max_jobs` runs and return."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    settings = _settings()
    if not settings.redis_url:
        raise SystemExit("Set CNN_REDIS_URL (e.g. redis://localhost:6379/0) to the Redis the web server uses.")
    from cnn_core.service import workers

    # Before TensorFlow starts its threads, so they all inherit it.
    workers.lower_priority(settings.worker_nice)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    # Must happen before TensorFlow creates its thread pools, i.e. before the first operation.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras  # noqa: F401  (loaded now, not in the first run)

    try:
        # TensorFlow's runtime, the run's precision kernels and the bundled images, before the first job.
        workers.warm_up(settings.training_precision)
    except Exception:
        logger.exception("Warming up the worker failed; its first run starts slower.")

    conn = rq_keys.connect(settings.redis_url)
    queue = Queue(queue_name, connection=conn, serializer=JSONSerializer)
    worker = _worker_class()([queue], connection=conn, serializer=JSONSerializer)
    logger.info("Worker %s ready (%d TensorFlow threads, %d runs before recycling).", worker.name, threads, max_jobs)
    worker.work(max_jobs=max_jobs, burst=burst, logging_level="WARNING")


def supervise(workers: int, max_jobs: int, threads: int, queue_name: str) -> int:
    """Keep `workers` worker processes running, restarting each one when it exits (recycled, crashed, killed)."""
    command = [sys.executable, "-m", "cnn_core.service.rq_worker", "--child", "--max-jobs", str(max_jobs),
               "--threads", str(threads), "--queue", queue_name]
    children: list[subprocess.Popen | None] = [None] * workers
    started_at = [0.0] * workers
    stopping = threading.Event()

    def on_signal(signum, frame):
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"Supervising {workers} training worker(s) on {queue_name}; Ctrl+C stops them.", flush=True)
    while not stopping.is_set():
        for index, child in enumerate(children):
            if child is not None and child.poll() is None:
                continue
            if child is not None:
                print(f"Worker {child.pid} exited ({child.returncode}); starting a new one.", flush=True)
                # One that dies at once (Redis unreachable, say) is retried gently, not in a tight loop.
                if time.monotonic() - started_at[index] < 5:
                    time.sleep(2)
            started_at[index] = time.monotonic()
            try:
                children[index] = subprocess.Popen(command)
            except OSError as error:  # the interpreter being reinstalled, say: try again shortly
                print(f"Could not start a worker ({error}); retrying.", flush=True)
                children[index] = None
        stopping.wait(0.5)
    for child in children:
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        if child is not None:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the app's runs from Redis (CNN_REDIS_URL).")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("CNN_WORKERS", "1")),
                        help="worker processes on this machine (CNN_WORKERS, default 1)")
    parser.add_argument("--max-jobs", type=int, default=None,
                        help="runs a worker trains before it is replaced (default CNN_JOBS_PER_WORKER)")
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow threads per worker (default CNN_WORKER_THREADS or cores ÷ workers)")
    parser.add_argument("--queue", default=rq_keys.QUEUE_NAME, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty (one process)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    max_jobs = args.max_jobs or _settings().jobs_per_worker
    threads = args.threads or _threads(args.workers)
    if args.child or args.burst:
        work(max_jobs, threads, args.queue, burst=args.burst)
        return 0
    return supervise(max(1, args.workers), max_jobs, threads, args.queue)


if __name__ == "__main__":
    sys.exit(main())
