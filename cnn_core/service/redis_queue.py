"""Training runs on RQ workers through Redis, for workshops that outgrow one server (`CNN_REDIS_URL`).

`RedisJobQueue` offers what the UI uses of `queue.JobQueue` (submit, jobs_for, active_job,
heartbeat, stop, take_result, positions, `job.progress.snapshot()`, `job.state`), so
`queue.get_queue` picks one or the other and nothing else changes. Every fact about a run lives
in Redis, so any web replica can show any run and a worker on another machine can train it:

=================================  =========================================================================
key (prefix ``cnn:``)              what
=================================  =========================================================================
``run:<id>``                       hash: owner, state, experiment JSON, times, error, result metadata
``run:<id>:events``                stream of the run's events (capped): TrainStarted, BatchEnded, EpochEnded,
                                   Paused, Resumed, LearningRateChanged, TrainFinished as JSON
``run:<id>:frames``                list of the filmstrip's FilmstripStarted and Frames (``kind:`` + the
                                   Filmstrip's own npz bytes), outside the capped stream so a long run's
                                   replay keeps frame 0; bounded by MAX_FILMSTRIP_BYTES instead
``run:<id>:model``                 the finished ``.keras`` bytes (size-capped, TTL ``result_ttl_s``)
``run:<id>:stop``                  set by Stop; the worker's training callback checks it every batch
``run:<id>:commands``              list of steering commands (pause, resume, learning rate) for the worker
``run:<id>:weights``               "continue training": the model's ``.keras`` bytes to start from (size-capped)
``dataset:<sha256>``               a learner's own classes as npz (uint8), shared by every run on them (TTL)
``run:<id>:alive``                 the worker's heartbeat while it trains (TTL ALIVE_TTL_S)
``owner:<owner>:active``           the owner's one queued or running run
``owner:<owner>:alive``            the owner's heartbeat (TTL ``abandon_after_s``)
``owner:<owner>:runs``             the owner's recent run ids, oldest first
``active``                         set of queued and running run ids, which every replica's reaper scans
=================================  =========================================================================

The RQ job (queue ``cnn-training``) carries only the run id, the experiment as JSON and a small
JSON dict of options (the filmstrip's probe image as plain numbers, whether weights wait under
``run:<id>:weights``, the hash of an own-classes dataset), with RQ's JSON serializer, so nothing
pickled crosses Redis and a worker validates the run against its own caps again. States move only through the Lua scripts below, which check the state they leave:
a run a reaper has declared lost cannot later be finished by a slow worker, and a run that was
dropped from the queue is never started, so no run is trained twice.

A reaper thread in every web process (all replicas may run one; each step is idempotent)
drops queued runs whose owner's heartbeat expired, stops running ones, fails runs whose worker
heartbeat expired ("the worker was lost", ALIVE_TTL_S + REAP_INTERVAL_S after a kill -9), and
sends RQ's stop-job command when a worker has not acknowledged Stop within STOP_GRACE_S.
Redis being down never raises into a page: reads keep the last known values and set
`service_unavailable`; submit raises `ServiceUnavailable`, a UserError.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import threading
import time
import uuid
import weakref
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np

from cnn_core.engine import own_data, registry, specs, training
from cnn_core.engine.errors import UserError
from cnn_core.engine.filmstrip import Filmstrip, FilmstripStarted, Frame
from cnn_core.engine.specs import CheckedExperiment, Experiment
from cnn_core.service.queue import ACTIVE_STATES, FINISHED_JOBS_PER_OWNER, TrainingJob
from cnn_core.service.settings import Settings

if TYPE_CHECKING:
    import redis

    from cnn_core.engine.training import TrainingResult

logger = logging.getLogger(__name__)

PREFIX = "cnn:"
QUEUE_NAME = "cnn-training"
# The worker refreshes its heartbeat every ALIVE_INTERVAL_S; a run whose heartbeat is older than
# ALIVE_TTL_S has lost its worker. Both plus the reaper's interval bound the 15 s detection goal.
ALIVE_TTL_S = 5
ALIVE_INTERVAL_S = 1.0
REAP_INTERVAL_S = 1.0
# A worker reads the stop key and the steering commands (one pipelined round trip) at most this often.
STEER_POLL_S = 0.05
# Seconds a worker gets to acknowledge Stop before RQ's stop-job command ends it by force.
STOP_GRACE_S = 5.0
# Events kept per run: about 1,000 s of batch events at the worker's 20 per second, plus epochs.
STREAM_MAXLEN = 20_000
# A replica's cached view of a run is re-read at most this often (every widget reads job.state).
STATE_CACHE_S = 0.25
UNAVAILABLE = "The training service is unavailable right now (it may be restarting); try again in a moment."
WORKER_LOST = "Failed: the worker was lost (its machine or process stopped mid-run). Start the run again."
FORCED_STOP = "The run did not stop within a few seconds and was ended by force; its model is lost."
REDIS_LOST_RUN = "The training service restarted and lost this run; start it again."
ABANDONED_QUEUED = "Removed from the queue because this page was closed or stopped responding."
NOT_STARTED = "Failed: the training service could not start this run (see the worker's log). Start it again."
# RQ job states in which a run that never began will never begin.
_DEAD_RQ_STATES = frozenset({"failed", "stopped", "canceled"})
# A queued run whose RQ job is missing this long after it was queued is lost (its enqueue never happened).
MISSING_JOB_GRACE_S = 30.0
ABANDONED_RUNNING = "Stopped because this page was closed or stopped responding."
# Steering commands, the weights to continue from and an own-classes dataset wait this long at most
# (a run may sit in the queue a while); a finished run deletes its own keys at once.
PAYLOAD_TTL_S = 24 * 3600
# A filmstrip frame (npz bytes) above this is not sent, and a run sends at most MAX_FILMSTRIP_BYTES of them:
# the frames of the models the caps allow are far smaller (tens of KB), so only a freak model loses any.
MAX_FRAME_BYTES = 2 * 2**20
MAX_FILMSTRIP_BYTES = 24 * 2**20
# An own-classes dataset as arrays: at most own_data.MAX_IMAGES pictures, each with COPIES augmented ones.
MAX_DATASET_IMAGES = own_data.MAX_IMAGES * (own_data.COPIES + 1)
MAX_DATASET_BYTES = 32 * 2**20

# Move a run from one of the allowed states (ARGV[1], comma-separated) and set fields (ARGV[2:]).
_TRANSITION = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
for allowed in string.gmatch(ARGV[1], '[^,]+') do
  if state == allowed then
    redis.call('HSET', KEYS[1], unpack(ARGV, 2))
    return 1
  end
end
return 0
"""
# Like _TRANSITION into a final state, and release what an active run holds.
# KEYS: run, active set, owner's active key, events, model, stop, commands, weights, frames; ARGV: allowed, run id, ttl,
# fields...
_FINISH = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
local ok = false
for allowed in string.gmatch(ARGV[1], '[^,]+') do
  if state == allowed then ok = true end
end
if not ok then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('GET', KEYS[3]) == ARGV[2] then redis.call('DEL', KEYS[3]) end
local ttl = tonumber(ARGV[3])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[4], ttl)
redis.call('EXPIRE', KEYS[5], ttl)
redis.call('EXPIRE', KEYS[9], ttl)
redis.call('DEL', KEYS[6], KEYS[7], KEYS[8])
return 1
"""
# Queue a steering command for a queued or running run and note the pause state the owner asked for.
# KEYS: run, commands; ARGV: command JSON, paused ('1', '0' or '' to leave it), ttl.
_STEER = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'paused', ARGV[2]) end
return 1
"""
# Claim the owner's one active slot unless it holds a run that is still queued or running.
# KEYS: owner's active key; ARGV: new run id, prefix. Returns the blocking run id or ''.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current then
  local state = redis.call('HGET', ARGV[2] .. 'run:' .. current, 'state')
  if state == 'queued' or state == 'running' then return current end
end
redis.call('SET', KEYS[1], ARGV[1])
return ''
"""


def run_key(run_id: str, part: str = "") -> str:
    return f"{PREFIX}run:{run_id}{':' + part if part else ''}"


def owner_key(owner: str, part: str) -> str:
    return f"{PREFIX}owner:{owner}:{part}"


ACTIVE_KEY = PREFIX + "active"


class ServiceUnavailable(UserError):
    """Redis cannot be reached; the message tells a learner to try again."""

    def __init__(self, message: str = UNAVAILABLE):
        super().__init__(message)


def connect(url: str) -> redis.Redis:
    """A client for `url` (redis://, rediss:// for TLS, unix://) that fails fast instead of hanging a page.

    The pool reconnects by itself once Redis is back, so nothing has to be rebuilt after a restart.
    """
    import redis

    return redis.Redis.from_url(
        url, socket_timeout=3, socket_connect_timeout=2, health_check_interval=15, retry_on_timeout=False
    )


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def finish_run(
    conn: redis.Redis, run_id: str, owner: str, allowed: tuple[str, ...], ttl: float, fields: dict[str, Any]
) -> bool:
    """Move a run into a final state if it is in one of `allowed`; True if this call did it."""
    script = conn.register_script(_FINISH)
    keys = [run_key(run_id), ACTIVE_KEY, owner_key(owner, "active"), run_key(run_id, "events"),
            run_key(run_id, "model"), run_key(run_id, "stop"), run_key(run_id, "commands"),
            run_key(run_id, "weights"), run_key(run_id, "frames")]
    args: list[Any] = [",".join(allowed), run_id, max(1, int(ttl))]
    for name, value in fields.items():
        args += [name, "" if value is None else value]
    return bool(script(keys=keys, args=args))


def transition(conn: redis.Redis, run_id: str, allowed: tuple[str, ...], fields: dict[str, Any]) -> bool:
    script = conn.register_script(_TRANSITION)
    args: list[Any] = [",".join(allowed)]
    for name, value in fields.items():
        args += [name, "" if value is None else value]
    return bool(script(keys=[run_key(run_id)], args=args))


def redis_now(conn: redis.Redis) -> float:
    """Redis' clock, the one every machine's timestamps are compared on."""
    seconds, micros = conn.time()
    return seconds + micros / 1e6


# Events as stream entries: {"kind": class name, "data": JSON of its fields}; the filmstrip's events,
# which hold float16 arrays, as the npz bytes of a Filmstrip holding just that event (never a pickle).
_EVENT_TYPES = {cls.__name__: cls for cls in (
    training.TrainStarted, training.BatchEnded, training.EpochEnded, training.TrainFinished,
    training.LearningRateChanged, training.Paused, training.Resumed)}
_FILMSTRIP_EVENTS = ("FilmstripStarted", "Frame")


def encode_event(event: training.Event) -> dict[str, str | bytes]:
    if isinstance(event, FilmstripStarted | Frame):
        strip = Filmstrip()
        strip(event)
        return {"kind": type(event).__name__, "data": strip.to_bytes()}
    return {"kind": type(event).__name__, "data": json.dumps(dataclasses.asdict(event))}


def encode_frame(event: FilmstripStarted | Frame) -> bytes:
    """A filmstrip event as one entry of ``run:<id>:frames``: its kind, a colon, the npz bytes."""
    encoded = encode_event(event)
    return encoded["kind"].encode() + b":" + encoded["data"]


def decode_frame(entry: bytes) -> training.Event | None:
    kind, _, data = entry.partition(b":")
    return decode_event({b"kind": kind, b"data": data})


def decode_event(fields: dict) -> training.Event | None:
    """The event of a stream entry, or None for one this version does not know (or cannot read)."""
    kind = fields.get(b"kind", fields.get("kind"))
    data = fields.get(b"data", fields.get("data"))
    kind = kind.decode() if isinstance(kind, bytes) else kind
    if kind in _FILMSTRIP_EVENTS and isinstance(data, bytes):
        try:
            strip = Filmstrip.from_bytes(data)
            if kind == "Frame":
                return strip.frames[0]
            return FilmstripStarted(strip.probe, strip.steps, strip.steps_per_epoch) if strip.probe is not None else None
        except (ValueError, KeyError, IndexError, TypeError, OSError, zipfile.BadZipFile):
            logger.warning("Ignored an unreadable %s event.", kind, exc_info=True)
            return None
    cls = _EVENT_TYPES.get(kind)
    if cls is None or data is None:
        return None
    try:
        return cls(**json.loads(data))
    except (TypeError, ValueError):
        return None


# What travels with a run besides its experiment: the probe image, the weights to continue from, own classes.


def probe_values(probe, input_shape: tuple[int, ...]) -> list | None:
    """The filmstrip's probe image as plain numbers (H rows of W floats), or None for none or an unusable one.

    An unusable probe (wrong size, not finite) is no reason to refuse a run: the filmstrip then
    follows the first test image, as it does without one. The worker calls this again on what it got.
    """
    if probe is None:
        return None
    try:
        array = np.asarray(probe, dtype=np.float32)
    except (TypeError, ValueError):
        array = None
    if array is not None and array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array is None or array.shape != tuple(input_shape[:2]) or not np.all(np.isfinite(array)):
        logger.warning("Ignored a filmstrip probe that is not a finite %s image.", tuple(input_shape[:2]))
        return None
    return array.tolist()


def dataset_digest(class_names: tuple[str, ...], arrays: tuple) -> str:
    """A dataset's content address: the same classes and pictures give the same key, whoever submits them."""
    digest = hashlib.sha256(json.dumps(list(class_names)).encode())
    for position, array in enumerate(arrays):
        # Labels are hashed as the int64 they travel as, so both ends compute the same key.
        array = np.ascontiguousarray(array, dtype=np.int64 if position % 2 else None)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.data)
    return digest.hexdigest()


def dataset_key(digest: str) -> str:
    return f"{PREFIX}dataset:{digest}"


def dataset_to_bytes(class_names: tuple[str, ...], arrays: tuple) -> bytes:
    """Own classes as npz bytes: uint8 pictures, int64 labels, the class names as JSON (no pickle)."""
    x_train, y_train, x_test, y_test = (np.asarray(a) for a in arrays)
    if x_train.dtype != np.uint8 or x_test.dtype != np.uint8:
        raise UserError("Only datasets of 8-bit pictures can be sent to the training service.")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x_train=x_train, y_train=y_train.astype(np.int64), x_test=x_test,
                        y_test=y_test.astype(np.int64),
                        class_names=np.frombuffer(json.dumps(list(class_names)).encode(), dtype=np.uint8))
    return buffer.getvalue()


def dataset_from_bytes(data: bytes, digest: str, input_shape=(28, 28, 1)) -> tuple[tuple[str, ...], tuple]:
    """`dataset_to_bytes`'s classes and arrays, checked (sizes before decompressing, then shapes, labels, hash)."""
    bad = UserError("The training service received a damaged dataset; start the run again.")
    if len(data) > MAX_DATASET_BYTES:
        raise bad
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(member.file_size for member in archive.infolist()) > MAX_DATASET_BYTES:
                raise bad
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            class_names = tuple(json.loads(npz["class_names"].tobytes().decode()))
            arrays = tuple(npz[name] for name in ("x_train", "y_train", "x_test", "y_test"))
    except (ValueError, KeyError, OSError, zipfile.BadZipFile, UnicodeDecodeError):
        raise bad from None
    height, width = input_shape[:2]
    if not (own_data.MIN_CLASSES <= len(class_names) <= own_data.MAX_CLASSES
            and all(isinstance(name, str) for name in class_names)):
        raise bad
    for images, labels, most in ((arrays[0], arrays[1], MAX_DATASET_IMAGES), (arrays[2], arrays[3], MAX_DATASET_IMAGES)):
        if (images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (height, width)
                or not 1 <= len(images) <= most or labels.dtype != np.int64 or labels.shape != (len(images),)
                or labels.min() < 0 or labels.max() >= len(class_names)):
            raise bad
    if dataset_digest(class_names, arrays) != digest:
        raise bad
    return class_names, arrays


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def _float(value: bytes | str | None) -> float | None:
    text = _text(value)
    return float(text) if text else None


class _StreamProgress:
    """`job.progress` of a Redis run: replays the run's event stream into a ProgressRecorder and a Filmstrip.

    Each `snapshot()` (or `sync()`) reads the events added since the last one, so a page that
    reattaches after a reload (a new job object) reads the stream from its start and gets the whole
    curve, its pause and learning-rate marks and the filmstrip so far. The recorder's clock is
    Redis' (offset measured once), so the ETA counts from the worker's start.
    """

    def __init__(self, job: RedisTrainingJob):
        self._job = job
        self._lock = threading.Lock()
        self._last_id = "0-0"
        self._frames_read = 0
        self._event_time: float | None = None
        self._recorder = training.ProgressRecorder(clock=self._clock)
        self.filmstrip = Filmstrip()

    def _clock(self) -> float:
        if self._event_time is not None:
            return self._event_time
        return time.time() + self._job._queue._clock_offset

    def __call__(self, event: training.Event) -> None:
        self._recorder(event)

    def snapshot(self) -> training.ProgressSnapshot:
        with self._lock:
            self._sync()
            return self._recorder.snapshot()

    def sync(self) -> None:
        """Read the events added since the last read (the filmstrip's frames among them)."""
        with self._lock:
            self._sync()

    def _sync(self) -> None:
        try:
            self._read()
        except _redis_errors():
            self._job._set_unavailable(True)

    def _read(self) -> None:
        self._read_stream()
        # The filmstrip's frames have their own list, never trimmed: a replay always starts at frame 0.
        conn = self._job._queue.redis
        for entry in conn.lrange(run_key(self._job.id, "frames"), self._frames_read, -1):
            self._frames_read += 1
            event = decode_frame(entry)
            if event is not None:
                self.filmstrip(event)

    def _read_stream(self) -> None:
        conn = self._job._queue.redis
        key = run_key(self._job.id, "events")
        for _ in range(100):  # at most 100,000 events per call; the stream is capped well below
            reply = conn.xread({key: self._last_id}, count=1000)
            if not reply:
                return
            entries = reply[0][1]
            if self._last_id == "0-0" and decode_event(entries[0][1]).__class__ is not training.TrainStarted:
                # The capped stream lost its beginning (a very long run): start from the kept TrainStarted.
                started = conn.hget(run_key(self._job.id), "started_event")
                if started:
                    self._recorder(decode_event({"kind": "TrainStarted", "data": started}))
            for entry_id, fields in entries:
                entry_id = _text(entry_id)
                self._last_id = entry_id
                event = decode_event(fields)
                if event is None:
                    continue
                self._event_time = int(entry_id.split("-")[0]) / 1000
                try:
                    self._recorder(event)
                    # Workers before the frames list sent the filmstrip through the stream.
                    self.filmstrip(event)
                finally:
                    self._event_time = None
            if len(entries) < 1000:
                return


class RedisTrainingJob(TrainingJob):
    """A run kept in Redis; the same attributes and methods as a local `TrainingJob`.

    Attributes are read from Redis (cached for STATE_CACHE_S), so two replicas' objects for one
    run agree. While Redis is unreachable they keep their last values and `service_unavailable`
    is True. Pause, resume and a new learning rate go to the worker as commands
    (``run:<id>:commands``); what it did comes back as events, so the curves mark it.
    """

    steerable = True
    probe = None
    initial_weights = None

    def __init__(self, job_id: str, owner: str, queue: RedisJobQueue, fields: dict | None = None):
        self.id = job_id
        self.owner = owner
        self._queue = queue
        self._fields: dict[str, str] = {}
        self._read_at = -1e9
        self._experiment: Experiment | None = None
        self.service_unavailable = False
        self.worker_pid = None
        self.result = None
        self.progress = _StreamProgress(self)
        if fields is not None:
            self._store(fields)

    def __repr__(self) -> str:
        return f"RedisTrainingJob(id={self.id!r}, owner={self.owner!r}, state={self.state!r})"

    def _set_unavailable(self, value: bool) -> None:
        self.service_unavailable = value

    def _store(self, fields: dict) -> None:
        self._fields = {_text(k): _text(v) for k, v in fields.items()}
        self._read_at = time.monotonic()

    def _refresh(self) -> dict[str, str]:
        if time.monotonic() - self._read_at < STATE_CACHE_S:
            return self._fields
        try:
            fields = self._queue.redis.hgetall(run_key(self.id))
        except _redis_errors():
            self.service_unavailable = True
            return self._fields
        self.service_unavailable = False
        if not fields:
            if self._fields.get("state") in ACTIVE_STATES or not self._fields:
                # Redis restarted without its data (or the run expired): the run is gone for good.
                self._fields = {**self._fields, "state": "failed", "error": REDIS_LOST_RUN}
            self._read_at = time.monotonic()
            return self._fields
        self._store(fields)
        return self._fields

    @property
    def state(self) -> str:
        return self._refresh().get("state") or "failed"

    @property
    def error(self) -> str | None:
        return self._refresh().get("error") or None

    @property
    def experiment(self) -> Experiment | None:
        if self._experiment is None:
            text = self._refresh().get("experiment")
            if text:
                self._experiment = Experiment.from_json(text)
        return self._experiment

    @property
    def created_at(self) -> float | None:
        return _float(self._refresh().get("created_at"))

    @property
    def started_at(self) -> float | None:
        return _float(self._refresh().get("started_at"))

    @property
    def finished_at(self) -> float | None:
        return _float(self._refresh().get("finished_at"))

    @property
    def stop_requested(self) -> bool:
        return bool(self._refresh().get("stop_requested_at"))

    @property
    def thread_alive(self) -> bool:
        return self.is_active

    @property
    def filmstrip(self) -> Filmstrip:
        """The frames the worker has sent so far (read from the event stream now)."""
        self.progress.sync()
        return self.progress.filmstrip

    # Steering: each is a command the worker reads within STEER_POLL_S and applies after the current batch.

    @property
    def paused(self) -> bool:
        """Whether the owner paused the run (and has not resumed it), as any replica sees it."""
        return self._refresh().get("paused") == "1"

    def pause(self) -> None:
        self._queue.steer(self, ("pause", None))

    def resume(self) -> None:
        self._queue.steer(self, ("resume", None))

    def set_learning_rate(self, learning_rate: float) -> None:
        """Use this learning rate from the next batch on (UserError for a value out of range)."""
        # Checked here with the worker's own rule, so a typo is refused before it travels.
        training.TrainingControl().set_learning_rate(learning_rate)
        self._queue.steer(self, ("learning_rate", float(learning_rate)), raise_unavailable=True)

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.is_active:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def refresh(self) -> None:
        """Forget the cached attributes, so the next read comes from Redis."""
        self._read_at = -1e9


class RedisJobQueue:
    """The Redis + RQ runner with `JobQueue`'s interface; workers are `python -m cnn_core.service.rq_worker`."""

    def __init__(self, settings: Settings, *, connection: redis.Redis | None = None, queue_name: str = QUEUE_NAME,
                 reap_interval: float = REAP_INTERVAL_S, stop_grace_s: float = STOP_GRACE_S):
        from rq import Queue
        from rq.serializers import JSONSerializer

        if connection is None:
            if not settings.redis_url:
                raise ValueError("The Redis runner needs CNN_REDIS_URL, e.g. redis://localhost:6379/0.")
            connection = connect(settings.redis_url)
        self.settings = settings
        self.redis = connection
        self.rq_queue = Queue(queue_name, connection=connection, serializer=JSONSerializer)
        self._reap_interval = reap_interval
        self._stop_grace_s = stop_grace_s
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._reaper: threading.Thread | None = None
        # One object per run in this process while anyone holds it, so a page that looks a run up on
        # every rerun keeps its progress (read incrementally) instead of replaying the stream each time.
        self._objects: weakref.WeakValueDictionary[tuple[str, str], RedisTrainingJob] = weakref.WeakValueDictionary()
        try:
            self._clock_offset = redis_now(connection) - time.time()
        except _redis_errors():
            self._clock_offset = 0.0
        self.available = True

    # Submitting

    def submit(self, experiment: Experiment, owner: str, *, probe=None, initial_weights=None) -> RedisTrainingJob:
        """Check the caps, claim the owner's one slot and enqueue the run; ValueError says what to change.

        `probe` (the filmstrip's image, (H, W)) travels in the job as plain numbers. `initial_weights`
        (a model's `get_weights()`, to continue training it) travels as that model's `.keras` bytes
        under ``run:<id>:weights``, and the arrays of a dataset registered only here (own classes)
        under ``dataset:<sha256>``, shared by every run on the same pictures.
        """
        if self._closed.is_set():
            raise RuntimeError("This job queue has been shut down.")
        if isinstance(experiment, CheckedExperiment):
            experiment = experiment.experiment
        if not isinstance(experiment, Experiment):
            raise UserError("Only an Experiment (a model spec with its training config) can be trained.")
        if not isinstance(owner, str) or not owner:
            raise ValueError("A training job needs its session id as owner.")
        # Checked here at the door; the RQ worker checks the JSON again with the same function (its own limits).
        checked = specs.check_experiment(experiment, self.settings.limits)
        options: dict[str, Any] = {}
        values = probe_values(probe, checked.model.input_shape)
        if values is not None:
            options["probe"] = values
        weights = None
        if initial_weights is not None:
            weights = self._weights_bytes(checked, initial_weights)
            options["weights"] = True
        info = registry.get(experiment.training.dataset)
        if not info.bundled:
            # A worker on another machine cannot reach arrays registered in this web process: they travel.
            options["dataset"] = dataset_digest(info.class_names, tuple(np.asarray(a) for a in info.arrays()))
        self._ensure_reaper()
        try:
            if not info.bundled:
                self._share_dataset(info, options["dataset"])
            return self._submit(experiment, owner, options, weights)
        except _redis_errors():
            self.available = False
            raise ServiceUnavailable() from None

    def _weights_bytes(self, checked: CheckedExperiment, weights) -> bytes:
        """The `.keras` bytes of the experiment's model holding `weights`; UserError if they do not fit it."""
        from cnn_core.engine.models import build_model, model_to_bytes

        model = build_model(checked)
        try:
            model.set_weights(weights)
        except ValueError as error:
            raise UserError("These weights belong to a different model; continue training the model they came from.") \
                from error
        data = model_to_bytes(model)
        if len(data) > self.settings.max_upload_bytes:
            raise UserError(f"The model is {len(data) / 2**20:.1f} MiB, more than the {self.settings.max_upload_mb:g} "
                            "MiB this service takes; continue a smaller model.")
        return data

    def _share_dataset(self, info: registry.DatasetInfo, digest: str) -> None:
        """Store a dataset's arrays under their hash unless they are there already (then only renew the TTL)."""
        key = dataset_key(digest)
        if self.redis.expire(key, PAYLOAD_TTL_S):
            return
        data = dataset_to_bytes(info.class_names, tuple(info.arrays()))
        if len(data) > MAX_DATASET_BYTES:
            raise UserError(f"Your classes take {len(data) / 2**20:.1f} MiB, more than the "
                            f"{MAX_DATASET_BYTES // 2**20} MiB the training service takes; use fewer pictures.")
        self.redis.set(key, data, ex=PAYLOAD_TTL_S)

    def _submit(self, experiment: Experiment, owner: str, options: dict, weights: bytes | None) -> RedisTrainingJob:
        conn = self.redis
        run_id = f"run-{uuid.uuid4().hex[:16]}"
        blocking = _text(conn.register_script(_CLAIM)(keys=[owner_key(owner, "active")], args=[run_id, PREFIX]))
        if blocking:
            state = _text(conn.hget(run_key(blocking), "state")) or "queued"
            raise UserError(f"You already have a training run {state}; stop it before starting another.")
        waiting = self.rq_queue.count
        if waiting >= self.settings.max_queued_jobs:
            conn.delete(owner_key(owner, "active"))
            raise UserError(
                f"The training service is busy: {waiting} runs are waiting for a worker. Try again in a minute."
            )
        now = redis_now(conn)
        fields = {"owner": owner, "state": "queued", "experiment": experiment.to_json(), "created_at": repr(now)}
        pipe = conn.pipeline()
        pipe.hset(run_key(run_id), mapping=fields)
        if weights is not None:
            pipe.set(run_key(run_id, "weights"), weights, ex=PAYLOAD_TTL_S)
        pipe.sadd(ACTIVE_KEY, run_id)
        pipe.set(owner_key(owner, "alive"), 1, ex=max(1, int(self.settings.abandon_after_s)))
        pipe.rpush(owner_key(owner, "runs"), run_id)
        pipe.ltrim(owner_key(owner, "runs"), -(FINISHED_JOBS_PER_OWNER + 1), -1)
        pipe.expire(owner_key(owner, "runs"), max(1, int(self.settings.result_ttl_s + self.settings.abandon_after_s)))
        pipe.execute()
        self.rq_queue.enqueue(
            "cnn_core.service.rq_worker.run_job", run_id, experiment.to_json(), options,
            job_id=run_id, job_timeout=24 * 3600, result_ttl=0, failure_ttl=3600,
        )
        self.available = True
        return self._job(run_id, owner, fields)

    # Controls

    def stop(self, job: RedisTrainingJob) -> None:
        """Stop a run: a queued one is dropped from the line, a running one stops after its current batch."""
        try:
            conn = self.redis
            now = repr(redis_now(conn))
            ttl = self.settings.result_ttl_s
            if finish_run(conn, job.id, job.owner, ("queued",), ttl,
                          {"state": "stopped", "finished_at": now, "stop_requested_at": now}):
                self.rq_queue.remove(job.id)
            else:
                conn.set(run_key(job.id, "stop"), 1, ex=24 * 3600)
                transition(conn, job.id, ("running",), {"stop_requested_at": now})
        except _redis_errors():
            job.service_unavailable = True
        job.refresh()

    def steer(self, job: RedisTrainingJob, command: tuple[str, float | None], *,
              raise_unavailable: bool = False) -> None:
        """Queue a steering command for a queued or running run; ignored once it has ended."""
        name, _ = command
        paused = {"pause": "1", "resume": "0"}.get(name, "")
        try:
            done = self.redis.register_script(_STEER)(
                keys=[run_key(job.id), run_key(job.id, "commands")],
                args=[json.dumps(list(command)), paused, PAYLOAD_TTL_S],
            )
        except _redis_errors():
            job.service_unavailable = True
            if raise_unavailable:
                raise ServiceUnavailable() from None
            return
        if done and paused:
            job._fields = {**job._fields, "paused": paused}

    def heartbeat(self, owner: str) -> None:
        """The owner is still there; without this for `abandon_after_s` its runs are dropped or stopped."""
        try:
            self.redis.set(owner_key(owner, "alive"), 1, ex=max(1, int(self.settings.abandon_after_s)))
            self.available = True
        except _redis_errors():
            self.available = False
        self._ensure_reaper()

    def take_result(self, job: RedisTrainingJob) -> TrainingResult | None:
        """The finished run, handed once and only to the owner the run belongs to.

        The model comes as its `.keras` bytes (`result.model_bytes`, `model` None): the web tier keeps
        them in the workspace and builds a Keras model only when a page needs one (issue #14).
        """
        from cnn_core.engine.training import TrainingResult

        try:
            fields = {_text(k): _text(v) for k, v in self.redis.hgetall(run_key(job.id)).items()}
            if fields.get("owner") != job.owner or fields.get("state") not in ("finished", "stopped"):
                return None
            data = self.redis.getdel(run_key(job.id, "model"))
        except _redis_errors():
            job.service_unavailable = True
            return None
        if not data or not fields.get("result"):
            return None
        if len(data) > self.settings.max_upload_bytes:
            logger.warning("Run %s sent a %d-byte model, over the cap; ignored.", job.id, len(data))
            return None
        meta = json.loads(fields["result"])
        return TrainingResult(
            model=None,
            model_bytes=data,
            experiment=Experiment.from_json(fields["experiment"]),
            history=meta["history"],
            test_loss=meta["test_loss"],
            test_accuracy=meta["test_accuracy"],
            stopped_reason=meta["stopped_reason"],
            message=meta["message"],
            seconds=meta["seconds"],
            precision=meta.get("precision", "float32"),
        )

    # Inspection

    def position(self, job: RedisTrainingJob) -> int | None:
        """1 for the next run a worker takes, 2 for the one after…; None unless the run is waiting."""
        try:
            index = self.rq_queue.get_job_position(job.id)
        except _redis_errors():
            return None
        return None if index is None else index + 1

    def _job(self, run_id: str, owner: str, fields: dict | None = None) -> RedisTrainingJob:
        with self._lock:
            job = self._objects.get((run_id, owner))
            if job is None:
                job = self._objects[(run_id, owner)] = RedisTrainingJob(run_id, owner, self, fields)
            elif fields:
                job._store(fields)
            return job

    def jobs_for(self, owner: str) -> list[RedisTrainingJob]:
        """The owner's runs Redis still knows, oldest first (any replica sees the same)."""
        try:
            ids = [_text(i) for i in self.redis.lrange(owner_key(owner, "runs"), 0, -1)]
            pipe = self.redis.pipeline()
            for run_id in ids:
                pipe.hgetall(run_key(run_id))
            rows = pipe.execute()
        except _redis_errors():
            self.available = False
            return []
        return [self._job(i, owner, row) for i, row in zip(ids, rows, strict=True)
                if row and _text(row.get(b"owner")) == owner]

    def active_job(self, owner: str) -> RedisTrainingJob | None:
        try:
            run_id = _text(self.redis.get(owner_key(owner, "active")))
            fields = self.redis.hgetall(run_key(run_id)) if run_id else None
        except _redis_errors():
            self.available = False
            return None
        if not fields or _text(fields.get(b"state")) not in ACTIVE_STATES:
            return None
        return self._job(run_id, owner, fields)

    def _states(self) -> list[str]:
        ids = [_text(i) for i in self.redis.smembers(ACTIVE_KEY)]
        pipe = self.redis.pipeline()
        for run_id in ids:
            pipe.hget(run_key(run_id), "state")
        return [_text(s) for s in pipe.execute()]

    def active_count(self) -> int:
        return sum(1 for s in self._states() if s in ACTIVE_STATES)

    def running_count(self) -> int:
        return sum(1 for s in self._states() if s == "running")

    def waiting_count(self) -> int:
        return self.rq_queue.count

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def prewarm(self) -> None:
        """Nothing to start ahead: RQ workers on their own machines keep TensorFlow loaded already.

        Kept so the page can ask any queue to prewarm (the local process runner starts a worker).
        """

    def shutdown(self, timeout: float | None = 30.0) -> None:
        """Stop this replica's reaper; runs belong to Redis and the workers, so they go on."""
        self._closed.set()
        if self._reaper is not None:
            self._reaper.join(timeout=timeout)

    # The reaper

    def _ensure_reaper(self) -> None:
        with self._lock:
            if not self._closed.is_set() and (self._reaper is None or not self._reaper.is_alive()):
                self._reaper = threading.Thread(target=self._reap_forever, name="redis-reaper", daemon=True)
                self._reaper.start()

    def _reap_forever(self) -> None:
        while not self._closed.wait(self._reap_interval):
            try:
                self.reap()
                self.available = True
            except _redis_errors():
                self.available = False
            except Exception:
                # The reaper must survive anything, or lost workers would hold runs forever.
                logger.exception("Redis reaper failed; it keeps running.")

    def reap(self) -> None:
        """One pass over the active runs: drop, stop or fail those whose owner or worker is gone."""
        from rq.job import Job

        conn = self.redis
        ids = [_text(i) for i in conn.smembers(ACTIVE_KEY)]
        if not ids:
            return
        pipe = conn.pipeline()
        for run_id in ids:
            pipe.hgetall(run_key(run_id))
            pipe.exists(run_key(run_id, "alive"))
            # RQ's own view of the job: a job that failed before `run_job` ran (a worker that cannot
            # import it, a bad payload) leaves the run "queued" forever unless someone looks.
            pipe.hget(Job.key_for(run_id), "status")
        replies = pipe.execute()
        now = redis_now(conn)
        ttl = self.settings.result_ttl_s
        for index, run_id in enumerate(ids):
            fields = {_text(k): _text(v) for k, v in replies[3 * index].items()}
            worker_alive = bool(replies[3 * index + 1])
            rq_status = _text(replies[3 * index + 2])
            if not fields:
                conn.srem(ACTIVE_KEY, run_id)
                continue
            owner, state = fields["owner"], fields.get("state")
            owner_alive = bool(conn.exists(owner_key(owner, "alive")))
            if state == "queued" and not owner_alive:
                if finish_run(conn, run_id, owner, ("queued",), ttl,
                              {"state": "abandoned", "error": ABANDONED_QUEUED, "finished_at": repr(now)}):
                    self.rq_queue.remove(run_id)
                    logger.info("Dropped queued run %s: its owner is gone.", run_id)
            elif state == "queued" and (
                rq_status in _DEAD_RQ_STATES
                or (rq_status is None and now - (_float(fields.get("created_at")) or now) > MISSING_JOB_GRACE_S)
            ):
                if finish_run(conn, run_id, owner, ("queued",), ttl,
                              {"state": "failed", "error": NOT_STARTED, "finished_at": repr(now)}):
                    logger.error("Run %s failed before it started: its RQ job is %s.", run_id, rq_status or "missing")
            elif state == "running":
                if not worker_alive:
                    if finish_run(conn, run_id, owner, ("running",), ttl,
                                  {"state": "failed", "error": WORKER_LOST, "finished_at": repr(now)}):
                        logger.warning("Run %s failed: its worker %s was lost.", run_id, fields.get("worker"))
                    continue
                if not owner_alive and not fields.get("abandoned"):
                    logger.info("Stopping run %s: its owner is gone.", run_id)
                    conn.set(run_key(run_id, "stop"), 1, ex=24 * 3600)
                    transition(conn, run_id, ("running",), {"abandoned": 1, "stop_requested_at": repr(now)})
                    continue
                requested = _float(fields.get("stop_requested_at"))
                sent = _float(fields.get("hard_stop_at"))
                # Sent again every other grace period: RQ's commands go by pub/sub, which drops a message
                # a worker misses while its subscription reconnects.
                if (requested is not None and not fields.get("stop_seen_at") and not fields.get("fit_done_at")
                        and now - requested > self._stop_grace_s
                        and (sent is None or now - sent > 2 * self._stop_grace_s)):
                    conn.hset(run_key(run_id), "hard_stop_at", repr(now))
                    self._hard_stop(run_id)
            elif state not in ACTIVE_STATES:
                conn.srem(ACTIVE_KEY, run_id)

    def _hard_stop(self, run_id: str) -> None:
        """RQ's stop-job command: the worker ends the run by force (Job.cancel() would not stop a started job)."""
        from rq.command import send_stop_job_command
        from rq.exceptions import InvalidJobOperation, NoSuchJobError
        from rq.serializers import JSONSerializer

        logger.warning("Run %s did not acknowledge Stop within %.0f s; sending RQ's stop-job command.",
                       run_id, self._stop_grace_s)
        try:
            send_stop_job_command(self.redis, run_id, serializer=JSONSerializer)
        except (InvalidJobOperation, NoSuchJobError):
            pass
