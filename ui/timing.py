"""Opt-in server-side timing of page runs, for the load benchmark: set CNN_TIMING_LOG to a file path.

A browser on a loaded machine only sees when it got around to drawing the answer; this records
what the server itself spent, one JSON line per timed run. Without the variable it does nothing.
"""

from __future__ import annotations

import json
import os
import threading
import time

_LOG_PATH = os.environ.get("CNN_TIMING_LOG")
_lock = threading.Lock()


def start() -> float:
    return time.perf_counter()


def record(what: str, started: float) -> None:
    if not _LOG_PATH:
        return
    line = json.dumps({"what": what, "ms": (time.perf_counter() - started) * 1000, "at": time.time()})
    with _lock, open(_LOG_PATH, "a", encoding="utf-8") as log:
        log.write(line + "\n")
