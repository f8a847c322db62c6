"""Opt-in server-side timing of page runs, for the load benchmark: set CNN_TIMING_LOG to a file path.

A browser on a loaded machine only sees when it got around to drawing the answer; this records
what the server itself spent, one JSON line per timed run. Without the variable it does nothing.
Each line has the run's wall time ("ms") and the CPU time its script thread used ("cpu_ms"): on a
machine shared with other work the wall time includes waiting for a core, the CPU time does not.
"""

from __future__ import annotations

import json
import os
import threading
import time

_LOG_PATH = os.environ.get("CNN_TIMING_LOG")
_lock = threading.Lock()
# Each script thread's CPU clock at its start() calls, by the value start() returned.
_cpu = threading.local()


def start() -> float:
    started = time.perf_counter()
    if _LOG_PATH:
        if not hasattr(_cpu, "at"):
            _cpu.at = {}
        if len(_cpu.at) >= 16:  # A run that stopped before record() leaves its entry behind.
            _cpu.at.pop(next(iter(_cpu.at)))
        _cpu.at[started] = time.thread_time()
    return started


def record(what: str, started: float) -> None:
    if not _LOG_PATH:
        return
    entry = {"what": what, "ms": (time.perf_counter() - started) * 1000, "at": time.time()}
    cpu_started = getattr(_cpu, "at", {}).pop(started, None)
    if cpu_started is not None:
        entry["cpu_ms"] = (time.thread_time() - cpu_started) * 1000
    line = json.dumps(entry)
    with _lock, open(_LOG_PATH, "a", encoding="utf-8") as log:
        log.write(line + "\n")
