"""Server settings: whether this is a shared hosted demo, and the caps that keep it responsive.

Two profiles exist. ``local`` is for one learner on their own machine and is generous; ``host``
is for a public demo or a workshop where many browsers share a few CPU cores, so runs are
smaller and an abandoned tab gives its training slot back quickly.

Settings come from three places; a later one wins:

1. the profile's defaults (``host`` when host mode is on, ``local`` otherwise),
2. a secrets mapping (Streamlit's ``st.secrets``), keyed by the variable names below
   or by the lower-case field names (``max_epochs``),
3. environment variables.

Environment variables (all optional):

==========================  ==================================================  ============  ============
variable                    meaning                                             local         host
==========================  ==================================================  ============  ============
``CNN_HOST_MODE``           shared demo with tighter caps (true/false, 1/0,     false         true
                            yes/no, on/off)
``CNN_MAX_JOBS``            training runs at the same time (one per core)       CPU cores     CPU cores
``CNN_MAX_QUEUED_JOBS``     runs that may wait for a free slot                  8             16
``CNN_MAX_EPOCHS``          epochs per run (1 to 100)                           100           15
``CNN_MAX_TRAIN_SIZE``      training images per run (100 to 60000)              60000         60000
``CNN_MAX_PARAMS``          parameters per model                                5000000       1500000
``CNN_MAX_UPLOAD_MB``       size of an uploaded ``.keras`` model, MiB           50            10
``CNN_MAX_IMAGE_MB``        size of an uploaded image, MiB                      10            5
``CNN_MAX_UPLOAD_MFLOPS``   millions of operations per image an uploaded        500           100
                            model may need (computed from its config)
``CNN_MAX_UPLOAD_LAYERS``   layers an uploaded model may have                   64            64
``CNN_EVALUATE_BUDGET_S``   seconds Evaluate may spend on a session's own       60            20
                            model before showing the images done so far
``CNN_ABANDON_AFTER_S``     seconds without a heartbeat before a run is         900           60
                            stopped as abandoned
``CNN_RESULT_TTL_S``        seconds a finished run's model is kept for its      3600          600
                            owner to collect
``CNN_MODELS_DIR``          folder for models learners save (relative to the    saved_models  saved_models
                            repository unless absolute)
``CNN_JOB_RUNNER``          where a run trains: ``thread`` (in the server       process       process
                            process) or ``process`` (a worker process; see
                            cnn_core/service/queue.py for why)
``CNN_JOBS_PER_WORKER``     runs a worker process trains before it is           20            20
                            replaced, which returns its memory to the system
``CNN_WORKSPACES_DIR``      folder for learners' workspaces (models, runs,      workspaces    workspaces
                            drawings; see cnn_core/service/workspace.py)
``CNN_WORKSPACE_MAX_MB``    size cap of one workspace, MiB                      500           50
``CNN_WORKSPACE_TTL_DAYS``  days an untouched workspace is kept (0: forever)    0             7
``CNN_LINK_SECRET``         key that signs shared links (HMAC-SHA256); unset:   generated     generated
                            generated once into ``<workspaces dir>/.link-secret``
``CNN_BF16``                train in bfloat16: ``auto`` (where the CPU has      auto          auto
                            AMX or AVX-512 BF16), ``on`` or ``off``
``CNN_CLASSES_DIR``         folder for workshop classes (shared storage when    classes       classes
                            several replicas serve one class)
``CNN_CLASS_TTL_H``         hours a workshop class stays open                   12            12
``CNN_REDIS_URL``           run training on Redis + RQ workers (``make worker``) unset         unset
                            instead of in this server: ``redis://host:6379/0``,
                            ``redis://:password@host:6379/0`` or TLS
                            ``rediss://host:6380/0``
``CNN_WORKER_THREADS``      TensorFlow threads of one RQ worker                 cores ÷       cores ÷
                                                                                workers       workers
``CNN_WORKER_NICE``         how far training workers lower their CPU priority   10            10
``CNN_MODEL_CACHE_MODELS``  learners' models one web process keeps loaded,      12            12
                            shared by all its sessions (model_cache.py)
``CNN_MODEL_CACHE_MB``      weight budget of those models, MiB                  256           256
``CNN_PAGE_SLOTS``          page runs (other than Draw's) one web process       1             1
                            works on at once; the rest wait their turn
                            (ui/page_slots.py)
==========================  ==================================================  ============  ============

A value that cannot be read raises ValueError naming the variable and what it accepts, so a
misconfigured server fails at start-up instead of behaving oddly later: `make run` checks them
with ``python -m cnn_core.service.settings`` before starting Streamlit, and app.py refuses to
serve a page with them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cnn_core.engine import precision, specs

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODELS_DIR = REPO_ROOT / "saved_models"
DEFAULT_WORKSPACES_DIR = REPO_ROOT / "workspaces"
JOB_RUNNERS = ("thread", "process")
BF16_MODES = precision.MODES


def _cpu_count() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Settings:
    """Everything a deployment may tune. Construct directly in tests; use `load_settings` in the app."""

    host_mode: bool = False
    max_concurrent_jobs: int = 1
    max_queued_jobs: int = 8
    max_epochs: int = 100
    max_train_size: int = 60_000
    max_params: int = 5_000_000
    max_upload_mb: float = 50.0
    max_image_mb: float = 10.0
    max_upload_mflops: float = 500.0
    max_upload_layers: int = 64
    evaluate_budget_s: float = 60.0
    abandon_after_s: float = 900.0
    result_ttl_s: float = 3600.0
    models_dir: Path = DEFAULT_MODELS_DIR
    job_runner: str = "thread"
    jobs_per_worker: int = 20
    workspaces_dir: Path = DEFAULT_WORKSPACES_DIR
    workspace_max_mb: float = 500.0
    workspace_ttl_days: float = 0.0
    # Never printed with the settings.
    link_secret: str = field(default="", repr=False)
    bf16: str = "auto"
    # Workshop classes (cnn_core.service.classes): where they are kept and how long one stays open.
    classes_dir: Path = REPO_ROOT / "classes"
    class_ttl_h: float = 12.0
    # Set: runs go to RQ workers through this Redis (cnn_core/service/redis_queue.py); None: in-process.
    redis_url: str | None = None
    # TensorFlow threads per RQ worker; None: the machine's cores shared between its workers.
    worker_threads: int | None = None
    # Training workers (RQ and local) lower their own CPU priority by this much: on a machine that also
    # serves pages, a click or a stroke then never waits behind a training step; on a worker-only machine
    # nothing else wants the cores, so training loses nothing. 0 keeps the normal priority.
    worker_nice: int = 10
    # Learners' models kept live (as Keras models) by a web process, shared by all its sessions, and
    # their weights' budget (cnn_core/service/model_cache.py); the rest are reloaded from the workspace.
    model_cache_models: int = 12
    model_cache_mb: float = 256.0
    # Full page runs a web process works on at once, Draw's excepted (ui/page_slots.py): its sessions share
    # one interpreter, and a crowd opening Train at once must not make a stroke's answer wait behind them.
    page_slots: int = 1

    def __post_init__(self):
        if self.job_runner not in JOB_RUNNERS:
            raise ValueError(f"job_runner must be one of {', '.join(JOB_RUNNERS)}, got {self.job_runner!r}.")
        if self.bf16 not in BF16_MODES:
            raise ValueError(f"bf16 must be one of {', '.join(BF16_MODES)}, got {self.bf16!r}.")

    @property
    def training_precision(self) -> str:
        """"bfloat16" or "float32": what training runs compute in on this machine (see engine/precision.py)."""
        return precision.resolve(self.bf16)

    @property
    def limits(self) -> specs.Limits:
        """The caps every experiment on this server is checked against (`specs.check_experiment`)."""
        return specs.Limits(max_params=self.max_params, max_epochs=self.max_epochs, max_train_size=self.max_train_size)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_image_bytes(self) -> int:
        return int(self.max_image_mb * 1024 * 1024)


def local_profile() -> Settings:
    """One learner on their own machine: the seed notebooks' full runs fit."""
    # Runs train in a worker process here too: in the server process Keras keeps ~34 MiB per
    # finished run (bench/memory_jobs.py), so twenty runs would cost a learner most of a gigabyte.
    return Settings(host_mode=False, max_concurrent_jobs=_cpu_count(), job_runner="process")


def host_profile() -> Settings:
    """A shared demo or workshop: small runs, and abandoned tabs free their slot within a minute."""
    return Settings(
        host_mode=True,
        max_concurrent_jobs=_cpu_count(),
        max_queued_jobs=16,
        max_epochs=15,
        max_train_size=60_000,
        max_params=1_500_000,
        max_upload_mb=10.0,
        max_image_mb=5.0,
        max_upload_mflops=100.0,
        evaluate_budget_s=20.0,
        abandon_after_s=60.0,
        result_ttl_s=600.0,
        job_runner="process",
        workspace_max_mb=50.0,
        workspace_ttl_days=7.0,
    )


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false (also accepted: 1/0, yes/no, on/off), got {value!r}.")


def _int_parser(low: int, high: int) -> Callable[[str, Any], int]:
    def parse(name: str, value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}.")
        try:
            number = int(str(value).strip().replace("_", ""))
        except ValueError:
            raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}.") from None
        if not low <= number <= high:
            raise ValueError(f"{name} is {number}; use a whole number from {low} to {high}.")
        return number

    return parse


def _float_parser(low: float, high: float) -> Callable[[str, Any], float]:
    def parse(name: str, value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}.")
        try:
            number = float(str(value).strip())
        except ValueError:
            raise ValueError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}.") from None
        if not math.isfinite(number) or not low <= number <= high:
            raise ValueError(f"{name} is {value!r}; use a number from {low:g} to {high:g}.")
        return number

    return parse


def _parse_runner(name: str, value: Any) -> str:
    text = str(value).strip().lower()
    if text not in JOB_RUNNERS:
        raise ValueError(f"{name} must be one of {', '.join(JOB_RUNNERS)}, got {value!r}.")
    return text


def _parse_bf16(name: str, value: Any) -> str:
    if isinstance(value, bool):
        # A TOML secret may be written as true/false.
        return "on" if value else "off"
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        text = "on" if text in _TRUE else "off"
    if text not in BF16_MODES:
        raise ValueError(f"{name} must be one of {', '.join(BF16_MODES)}, got {value!r}.")
    return text


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _parse_redis_url(name: str, value: Any) -> str:
    text = str(value).strip()
    if not text.startswith(REDIS_SCHEMES):
        raise ValueError(
            f"{name} must be a Redis URL such as redis://localhost:6379/0 (rediss:// for TLS), got {value!r}."
        )
    return text


def _parse_path(name: str, value: Any) -> Path:
    text = str(value).strip()
    if not text:
        raise ValueError(f"{name} must be a folder path, got an empty value.")
    path = Path(text).expanduser()
    # A relative folder is taken from the repository, not from wherever the server was started.
    return path if path.is_absolute() else REPO_ROOT / path


def _parse_secret(name: str, value: Any) -> str:
    text = str(value).strip()
    if len(text) < 16:
        raise ValueError(f"{name} must be at least 16 characters long; use a long random string.")
    return text


# Field name → (environment variable, parser). Ranges keep a typo from taking the server down.
VARIABLES: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    "host_mode": ("CNN_HOST_MODE", _parse_bool),
    "max_concurrent_jobs": ("CNN_MAX_JOBS", _int_parser(1, 256)),
    "max_queued_jobs": ("CNN_MAX_QUEUED_JOBS", _int_parser(0, 10_000)),
    "max_epochs": ("CNN_MAX_EPOCHS", _int_parser(1, 100)),
    "max_train_size": ("CNN_MAX_TRAIN_SIZE", _int_parser(100, 60_000)),
    "max_params": ("CNN_MAX_PARAMS", _int_parser(1_000, 50_000_000)),
    "max_upload_mb": ("CNN_MAX_UPLOAD_MB", _float_parser(0.01, 2048)),
    "max_image_mb": ("CNN_MAX_IMAGE_MB", _float_parser(0.01, 256)),
    "max_upload_mflops": ("CNN_MAX_UPLOAD_MFLOPS", _float_parser(1, 100_000)),
    "max_upload_layers": ("CNN_MAX_UPLOAD_LAYERS", _int_parser(2, 1_000)),
    "evaluate_budget_s": ("CNN_EVALUATE_BUDGET_S", _float_parser(1, 3600)),
    "abandon_after_s": ("CNN_ABANDON_AFTER_S", _float_parser(1, 7 * 24 * 3600)),
    "result_ttl_s": ("CNN_RESULT_TTL_S", _float_parser(1, 7 * 24 * 3600)),
    "models_dir": ("CNN_MODELS_DIR", _parse_path),
    "job_runner": ("CNN_JOB_RUNNER", _parse_runner),
    "jobs_per_worker": ("CNN_JOBS_PER_WORKER", _int_parser(1, 10_000)),
    "workspaces_dir": ("CNN_WORKSPACES_DIR", _parse_path),
    "workspace_max_mb": ("CNN_WORKSPACE_MAX_MB", _float_parser(1, 1_000_000)),
    "workspace_ttl_days": ("CNN_WORKSPACE_TTL_DAYS", _float_parser(0, 36_500)),
    "link_secret": ("CNN_LINK_SECRET", _parse_secret),
    "bf16": ("CNN_BF16", _parse_bf16),
    "classes_dir": ("CNN_CLASSES_DIR", _parse_path),
    "class_ttl_h": ("CNN_CLASS_TTL_H", _float_parser(0.1, 24 * 30)),
    "redis_url": ("CNN_REDIS_URL", _parse_redis_url),
    "worker_threads": ("CNN_WORKER_THREADS", _int_parser(1, 256)),
    "worker_nice": ("CNN_WORKER_NICE", _int_parser(0, 19)),
    "model_cache_models": ("CNN_MODEL_CACHE_MODELS", _int_parser(1, 10_000)),
    "model_cache_mb": ("CNN_MODEL_CACHE_MB", _float_parser(1, 1_000_000)),
    "page_slots": ("CNN_PAGE_SLOTS", _int_parser(1, 256)),
}


def _lookup(name: str, env: Mapping[str, str], secrets: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The raw value for a field and the name it was found under (environment first)."""
    variable = VARIABLES[name][0]
    # An empty value counts as unset, as `VAR=` in a compose file or a shell usually means.
    if str(env.get(variable, "")).strip():
        return variable, env[variable]
    for key in (variable, name):
        if key in secrets and str(secrets[key]).strip():
            return f"{key} (secrets)", secrets[key]
    return None


def load_settings(env: Mapping[str, str] | None = None, secrets: Mapping[str, Any] | None = None) -> Settings:
    """Read the settings from the environment and an optional secrets mapping; see the module docstring."""
    env = os.environ if env is None else env
    secrets = {} if secrets is None else secrets
    found = _lookup("host_mode", env, secrets)
    host_mode = _parse_bool(*found) if found else False
    settings = host_profile() if host_mode else local_profile()
    overrides: dict[str, Any] = {}
    for name, (_, parse) in VARIABLES.items():
        if name == "host_mode":
            continue
        found = _lookup(name, env, secrets)
        if found is not None:
            overrides[name] = parse(*found)
    return replace(settings, **overrides)


def main() -> int:
    """`python -m cnn_core.service.settings`: check the settings as the server will read them; 2 if unusable."""
    import sys

    try:
        settings = load_settings(os.environ, _secrets_file())
    except ValueError as error:
        print(f"The server cannot start: {error}", file=sys.stderr)
        return 2
    profile = "host" if settings.host_mode else "local"
    print(f"Settings OK ({profile} profile, {settings.max_concurrent_jobs} runs at once, {settings.job_runner} runner).")
    return 0


def _secrets_file() -> dict[str, Any]:
    """The values in .streamlit/secrets.toml, read as Streamlit reads them (a missing file is normal)."""
    import tomllib

    path = REPO_ROOT / ".streamlit" / "secrets.toml"
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f".streamlit/secrets.toml cannot be read ({error}); fix or remove it.") from None


if __name__ == "__main__":
    raise SystemExit(main())
