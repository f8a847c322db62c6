"""A real redis-server on a free port and real RQ worker processes, for the Redis tests and benchmarks.

Without Debian's redis-server the tests that need it are skipped, unless REQUIRE_REDIS=1 (CI),
where a missing server is a failure. Each worker runs in its own empty working directory, so it
shares no disk with the test (the web tier): only Redis.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def redis_missing_message() -> str | None:
    if Path(REDIS_SERVER).exists():
        return None
    return "redis-server is missing; install Debian's redis-server to run the Redis tests."


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    def __init__(self, folder: Path):
        self.folder = folder
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}.")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="cnn-redis-") as folder:
        server = RedisServer(Path(folder))
        server.start()
        try:
            yield server
        finally:
            server.stop()


def worker_env(url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "CNN_REDIS_URL": url, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3",
           "CNN_WORKER_THREADS": "1"}
    env.update(extra)
    return env


@contextlib.contextmanager
def supervised_workers(url: str, count: int, *, max_jobs: int = 20, **env: str) -> Iterator[subprocess.Popen]:
    """`python -m cnn_core.service.rq_worker --workers count` in an empty folder; stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="cnn-worker-") as folder:
        log = open(Path(folder) / "worker.log", "wb")  # noqa: SIM115 (closed below)
        process = subprocess.Popen(
            [sys.executable, "-m", "cnn_core.service.rq_worker", "--workers", str(count), "--max-jobs", str(max_jobs)],
            cwd=folder, env=worker_env(url, **env), stdout=log, stderr=subprocess.STDOUT,
        )
        process.log_path = Path(folder) / "worker.log"
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


def wait_for_workers(conn, count: int, timeout: float = 120.0) -> None:
    """Block until `count` RQ workers have registered (each imports TensorFlow first)."""
    from rq import Worker

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(Worker.all(connection=conn)) >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{count} RQ workers did not start within {timeout:.0f} s.")
