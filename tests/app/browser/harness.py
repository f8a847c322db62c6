"""Start the real app and drive it from headless Chromium: shared by the browser tests and the benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying to reach Google on a closed network.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
SERVER_START_S = 90
# The key the test servers sign shared links with, so a test can make a link the app accepts.
LINK_SECRET = "browser-tests-" + os.urandom(8).hex()
CANVAS_SIZE = 280


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen
    log_path: Path
    started_at: float

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@contextlib.contextmanager
def serve_app(extra_env: dict[str, str] | None = None) -> Iterator[RunningApp]:
    """`streamlit run app.py` on a free port, with saved models and workspaces in throw-away folders."""
    port = free_port()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CNN_MODELS_DIR=tempfile.mkdtemp(prefix="cnn-browser-"),
               CNN_WORKSPACES_DIR=tempfile.mkdtemp(prefix="cnn-browser-workspaces-"),
               CNN_CLASSES_DIR=tempfile.mkdtemp(prefix="cnn-classes-"), CNN_LINK_SECRET=LINK_SECRET)
    env.update(extra_env or {})
    log = tempfile.NamedTemporaryFile(prefix="streamlit-", suffix=".log", delete=False)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    app = RunningApp(f"http://127.0.0.1:{port}", process, Path(log.name), started)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not healthy(app.url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"The app did not start; its log ends with:\n{app.log_tail()}")
            time.sleep(0.2)
        yield app
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_until_idle(page, timeout_ms: int = 90_000, quiet_s: float = 1.0) -> None:
    """Wait until the script has finished running and stayed finished for `quiet_s` (reruns settle)."""
    app = page.locator('[data-testid="stApp"]')
    app.wait_for(timeout=timeout_ms)
    deadline = time.monotonic() + timeout_ms / 1000
    quiet_since = None
    while time.monotonic() < deadline:
        if app.get_attribute("data-test-script-state") == "notRunning":
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= quiet_s:
                return
        else:
            quiet_since = None
        time.sleep(0.1)
    raise AssertionError("The page was still running after the time limit.")


def draw_stroke(page, canvas, points, steps_between: int = 12) -> None:
    """Press the mouse at the first point, move through the others in small steps, release."""
    box = canvas.bounding_box()
    scale = box["width"] / CANVAS_SIZE

    def at(point):
        return box["x"] + point[0] * scale, box["y"] + point[1] * scale

    page.mouse.move(*at(points[0]))
    page.mouse.down()
    for start, end in zip(points, points[1:], strict=False):
        for step in range(1, steps_between + 1):
            t = step / steps_between
            page.mouse.move(*at((start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)))
    page.mouse.up()
