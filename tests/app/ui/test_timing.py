"""ui.timing: the opt-in page-run timing log the load benchmarks read."""

import json
import time

from ui import timing


def test_a_timed_run_logs_its_wall_time_and_its_cpu_time_apart(tmp_path, monkeypatch):
    log = tmp_path / "timing.jsonl"
    monkeypatch.setattr(timing, "_LOG_PATH", str(log))
    started = timing.start()
    busy_until = time.thread_time() + 0.03
    while time.thread_time() < busy_until:
        pass
    time.sleep(0.1)  # Waiting (as for a core on a busy machine) costs wall time, not CPU time.
    timing.record("page", started)
    entry = json.loads(log.read_text())
    assert entry["what"] == "page"
    assert entry["ms"] >= 130
    assert 30 <= entry["cpu_ms"] <= entry["ms"] - 90


def test_nothing_is_logged_or_kept_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.setattr(timing, "_LOG_PATH", None)
    timing.record("page", timing.start())
    assert not list(tmp_path.iterdir())
    assert not getattr(timing._cpu, "at", {})
