"""Workspace stores: ids that cannot escape, atomic replacement, a size cap, expiry, and the typed layer."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from cnn_core.engine.errors import UserError
from cnn_core.service import atomic
from cnn_core.service.settings import Settings
from cnn_core.service.workspace import (
    FolderWorkspaceStore,
    MemoryWorkspaceStore,
    Workspace,
    WorkspaceFull,
    check_id,
    is_valid_id,
    link_secret,
    new_id,
)


@pytest.fixture(params=["folder", "memory"])
def store(request, tmp_path):
    if request.param == "folder":
        return FolderWorkspaceStore(tmp_path / "workspaces", max_bytes=10_000)
    return MemoryWorkspaceStore(max_bytes=10_000)


def test_new_ids_are_long_random_and_valid():
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 24 and is_valid_id(i) for i in ids)


@pytest.mark.parametrize("crafted", [
    "../../etc", "..", ".", "", "a" * 21, "a" * 65, "abc/def" + "x" * 20, "x" * 22 + "\x00", "é" * 24,
    "/tmp/" + "x" * 22, "x" * 22 + "/..", None, 12345,
])
def test_crafted_ids_are_refused_before_any_file_is_touched(tmp_path, crafted):
    store = FolderWorkspaceStore(tmp_path / "workspaces", max_bytes=10_000)
    assert not is_valid_id(crafted)
    with pytest.raises(UserError):
        check_id(crafted)
    with pytest.raises(UserError):
        store.put(crafted, "runs", "r.json", b"{}")
    with pytest.raises(UserError):
        store.get(crafted, "runs", "r.json")
    assert not (tmp_path / "workspaces").exists()


@pytest.mark.parametrize("name", ["../x", ".hidden", "a/b", "", "x" * 200, "..json"])
def test_entry_names_cannot_escape_or_hide(store, name):
    with pytest.raises(ValueError):
        store.put(new_id(), "runs", name, b"1")


def test_put_get_names_delete_clear(store):
    ws, other = new_id(), new_id()
    store.put(ws, "runs", "b.json", b"2")
    store.put(ws, "runs", "a.json", b"1")
    store.put(other, "runs", "a.json", b"theirs")
    assert store.names(ws, "runs") == ["a.json", "b.json"]
    assert store.get(ws, "runs", "a.json") == b"1"
    assert store.get(other, "runs", "a.json") == b"theirs"
    assert store.get(ws, "models", "a.json") is None
    store.put(ws, "runs", "a.json", b"replaced")
    assert store.get(ws, "runs", "a.json") == b"replaced"
    store.delete(ws, "runs", "b.json")
    store.delete(ws, "runs", "never-there.json")
    assert store.names(ws, "runs") == ["a.json"]
    store.clear(ws)
    assert store.names(ws, "runs") == []
    assert store.get(other, "runs", "a.json") == b"theirs"


def test_the_size_cap_refuses_a_put_that_would_exceed_it_and_counts_replacements_once(store):
    ws = new_id()
    store.put(ws, "models", "a.keras", b"x" * 6_000)
    # Replacing an entry frees its old size first.
    store.put(ws, "models", "a.keras", b"y" * 9_000)
    with pytest.raises(WorkspaceFull, match="full"):
        store.put(ws, "models", "b.keras", b"z" * 2_000)
    assert store.names(ws, "models") == ["a.keras"]
    assert store.used_bytes(ws) == 9_000
    # Other workspaces have their own cap.
    store.put(new_id(), "models", "b.keras", b"z" * 9_000)


def test_folder_store_replaces_atomically_and_skips_leftovers(tmp_path, monkeypatch):
    store = FolderWorkspaceStore(tmp_path, max_bytes=10**9)
    ws = new_id()
    store.put(ws, "runs", "r.json", b"old")
    calls = []
    real_write = atomic.write_bytes

    def spy(final, data):
        calls.append(Path(final))
        return real_write(final, data)

    monkeypatch.setattr(atomic, "write_bytes", spy)
    store.put(ws, "runs", "r.json", b"new")
    assert calls == [tmp_path / ws / "runs" / "r.json"]

    # A writer killed mid-put leaves the old bytes and a hidden temporary folder, which listings skip.
    def killed(temp):
        temp.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.write_atomically(tmp_path / ws / "runs" / "r.json", killed)
    (tmp_path / ws / "runs" / ".saving-left").mkdir()
    assert store.get(ws, "runs", "r.json") == b"new"
    assert store.names(ws, "runs") == ["r.json"]
    # Once old, such leftovers are removed by the next put instead of staying forever.
    os.utime(tmp_path / ws / "runs" / ".saving-left", (1, 1))
    store.put(ws, "runs", "other.json", b"{}")
    assert sorted(p.name for p in (tmp_path / ws / "runs").iterdir()) == ["other.json", "r.json"]


def test_concurrent_puts_never_leave_a_torn_entry(tmp_path):
    store = FolderWorkspaceStore(tmp_path, max_bytes=10**9)
    ws = new_id()
    payloads = [bytes([i]) * 50_000 for i in range(8)]
    seen = []
    stop = threading.Event()

    def read():
        while not stop.is_set():
            data = store.get(ws, "models", "m.keras")
            if data is not None:
                seen.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=store.put, args=(ws, "models", "m.keras", p)) for p in payloads * 3]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    stop.set()
    reader.join()
    assert seen
    assert all(data in payloads for data in seen)


def test_expiry_removes_only_idle_workspaces(tmp_path):
    store = FolderWorkspaceStore(tmp_path, max_bytes=10**6)
    idle, busy = new_id(), new_id()
    store.put(idle, "runs", "r.json", b"{}")
    store.put(busy, "runs", "r.json", b"{}")
    old = time.time() - 3 * 86400
    os.utime(tmp_path / idle / ".touched", (old, old))
    (tmp_path / "not-a-workspace").mkdir()
    (tmp_path / ".link-secret").write_text("k" * 32)
    assert store.expire(2 * 86400) == [idle]
    assert store.names(idle, "runs") == []
    assert store.names(busy, "runs") == ["r.json"]
    assert (tmp_path / "not-a-workspace").exists() and (tmp_path / ".link-secret").exists()
    # Touching counts as use.
    os.utime(tmp_path / busy / ".touched", (old, old))
    store.touch(busy)
    assert store.expire(2 * 86400) == []


def test_memory_store_expires_too():
    store = MemoryWorkspaceStore()
    ws = new_id()
    store.put(ws, "runs", "r.json", b"{}")
    assert store.expire(3600) == []
    assert store.expire(-1) == [ws]
    assert store.names(ws, "runs") == []


def test_a_look_around_leaves_nothing_on_disk(tmp_path):
    store = FolderWorkspaceStore(tmp_path, max_bytes=10**6)
    ws = new_id()
    store.touch(ws)
    assert store.names(ws, "models") == [] and list(tmp_path.iterdir()) == []


def test_workspace_models_runs_drawings_and_meta(store):
    space = Workspace(store, new_id())
    first = space.add_model(b"k1", {"name": "one", "dataset": "mnist", "metrics": {"test_accuracy": 0.9}})
    second = space.add_model(b"k2", {"name": "two", "dataset": "fashion_mnist"})
    assert first < second
    assert [m["name"] for m in space.models()] == ["one", "two"]
    assert space.models()[0]["key"] == first and space.model_bytes(first) == b"k1"
    space.update_model(first, {"name": "renamed", "saved": True})
    assert space.models()[0]["name"] == "renamed"
    space.delete_model(first)
    assert space.model_keys() == [second] and space.model_bytes(first) is None

    run = space.add_run({"name": "run", "history": [{"epoch": 0, "accuracy": 0.5}]})
    assert space.runs() == [{"name": "run", "history": [{"epoch": 0, "accuracy": 0.5}], "key": run}]
    space.put_drawing("last.npy", b"\x93NUMPY")
    assert space.drawing("last.npy") == b"\x93NUMPY"
    space.put_meta("active_model", "two")
    assert space.meta("active_model") == "two" and space.meta("missing") is None
    space.clear()
    assert space.models() == [] and space.runs() == [] and space.drawing("last.npy") is None


def test_a_model_whose_description_cannot_be_written_is_not_left_half(store):
    space = Workspace(store, new_id())
    with pytest.raises(TypeError):
        space.add_model(b"k", {"name": "bad", "metrics": {"x": object()}})
    assert store.names(space.id, "models") == []


def test_link_secret_comes_from_the_setting_or_one_generated_file(tmp_path):
    assert link_secret(Settings(link_secret="s" * 20, workspaces_dir=tmp_path)) == b"s" * 20
    settings = Settings(workspaces_dir=tmp_path / "ws")
    generated = link_secret(settings)
    assert len(generated) == 64 and link_secret(settings) == generated
    assert (tmp_path / "ws" / ".link-secret").stat().st_mode & 0o077 == 0
    assert link_secret(Settings(workspaces_dir=tmp_path / "other")) != generated
    assert "link_secret" not in repr(Settings(link_secret="s" * 20))


def test_a_run_keeps_its_filmstrip_until_the_run_is_deleted(tmp_path):
    from cnn_core.service.workspace import FolderWorkspaceStore, MemoryWorkspaceStore, Workspace, new_id

    for store in (MemoryWorkspaceStore(), FolderWorkspaceStore(tmp_path, max_bytes=2**20)):
        workspace = Workspace(store, new_id())
        key = workspace.add_run({"name": "a run"})
        assert workspace.filmstrip(key) is None
        workspace.put_filmstrip(key, b"PK npz bytes")
        assert workspace.filmstrip(key) == b"PK npz bytes"
        workspace.delete_run(key)
        assert workspace.filmstrip(key) is None and workspace.runs() == []
