import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from cnn_core.service import atomic
from tests.conftest import REPO_ROOT

PAYLOADS = [bytes([value]) * 200_000 for value in range(8)]


def test_write_replaces_whole_and_leaves_no_temporary_folder(tmp_path):
    target = tmp_path / "record.json"
    atomic.write_text(target, "old")
    atomic.write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_a_failing_writer_keeps_the_old_file(tmp_path):
    target = atomic.write_bytes(tmp_path / "m.keras", b"old")

    def half_then_fail(temp):
        temp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.write_atomically(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]


def test_threads_writing_one_file_never_show_a_mix(tmp_path):
    target = atomic.write_bytes(tmp_path / "shared.bin", PAYLOADS[0])
    stop = threading.Event()
    torn: list[int] = []

    def writer(index):
        while not stop.is_set():
            atomic.write_bytes(target, PAYLOADS[index])

    def reader():
        while not stop.is_set():
            data = target.read_bytes()
            if data not in PAYLOADS:
                torn.append(len(data))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(1, 4)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join()
    assert torn == []
    assert target.read_bytes() in PAYLOADS[1:4]
    assert [p.name for p in tmp_path.iterdir()] == ["shared.bin"]


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from cnn_core.service import atomic
    target, value, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    if mode == "loop":
        end = time.monotonic() + float(sys.argv[4])
        while time.monotonic() < end:
            atomic.write_bytes(target, bytes([value]) * 200_000)
    else:
        def hang(temp):
            temp.write_bytes(bytes([value]) * 1000)
            print("writing", flush=True)
            time.sleep(60)
        atomic.write_atomically(target, hang)
""")


def _python(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, *args], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


def test_two_processes_writing_one_file_never_show_a_mix(tmp_path):
    target = atomic.write_bytes(tmp_path / "shared.bin", PAYLOADS[0])
    writers = [_python(str(target), str(value), "loop", "2.0") for value in (5, 6)]
    reads, torn = 0, 0
    while any(w.poll() is None for w in writers):
        data = target.read_bytes()
        reads += 1
        torn += data not in PAYLOADS
    assert all(w.wait() == 0 for w in writers)
    assert reads > 50 and torn == 0
    assert target.read_bytes() in (PAYLOADS[5], PAYLOADS[6])


def test_kill_9_mid_write_keeps_the_old_file_and_the_leftover_is_cleaned(tmp_path):
    target = atomic.write_bytes(tmp_path / "m.keras", b"old model")
    writer = _python(str(target), "7", "hang")
    assert writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert target.read_bytes() == b"old model"
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(atomic.TEMP_PREFIX)]
    assert len(leftovers) == 1
    # A fresh leftover may be another process's save in progress: it stays until it is old.
    assert atomic.clean_stale(tmp_path) == 0
    assert atomic.clean_stale(tmp_path, max_age_s=0) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]
