"""Workspaces: what one learner made (models, runs, drawings), kept on the server under an unguessable id.

A browser names its workspace with an id of 144 random bits (`new_id`, kept in the page address
as ``?ws=``), so a reload, a second tab or a server restart finds the same work, and nobody can
reach another learner's work without being given the address.

Two layers:

* `WorkspaceStore` is the storage interface: bytes in, bytes out, addressed by
  (workspace id, kind, entry name). It is deliberately small so a second backend (Redis for
  several replicas) is a second implementation, not a rewrite. Implementations must:

  - validate ids and names (`check_id`, `check_name`) before touching storage, so a crafted id
    can never reach outside its workspace;
  - replace an entry atomically (a reader sees the old bytes or the new, never half);
  - refuse a `put` that would take the workspace over `max_bytes` with `WorkspaceFull`;
  - list entry names of a kind sorted (names made by `Workspace` sort by creation time);
  - record use with `touch` and delete workspaces idle longer than a given time in `expire`.

  `FolderWorkspaceStore` (the default: one folder per workspace on the server's disk) and
  `MemoryWorkspaceStore` (tests; a reference for new backends) implement it.

* `Workspace` binds a store to one id and speaks in models, runs and drawings: a model is its
  ``.keras`` bytes plus a JSON description, a run is one JSON document (settings, curves,
  results), a drawing is ``.npy`` bytes. It never imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from cnn_core.engine.errors import UserError
from cnn_core.service import atomic

# 18 random bytes = 144 bits, 24 url-safe characters: far beyond guessing (≥ 128 bits asked).
ID_BYTES = 18
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22,64}")
# Entry names: no path separators, never hidden (temporary files start with a dot), bounded.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")
KINDS = ("models", "runs", "drawings", "meta", "filmstrips")
TOUCH_FILE = ".touched"


class WorkspaceFull(UserError):
    """A put would take a workspace over its size cap."""


def new_id() -> str:
    """A fresh workspace id: 144 random bits as 24 url-safe characters."""
    return secrets.token_urlsafe(ID_BYTES)


def is_valid_id(text: Any) -> bool:
    return isinstance(text, str) and ID_PATTERN.fullmatch(text) is not None


def check_id(text: Any) -> str:
    if not is_valid_id(text):
        raise UserError("That workspace address is not valid; open the app without '?ws=' to get a new workspace.")
    return text


def check_name(kind: str, name: Any) -> str:
    if kind not in KINDS:
        raise ValueError(f"Unknown workspace entry kind {kind!r}; use one of {', '.join(KINDS)}.")
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None or ".." in name:
        raise ValueError(f"{name!r} is not a valid workspace entry name.")
    return name


def entry_key(suffix: str = "") -> str:
    """A new entry name that sorts after every earlier one (nanosecond time, then randomness)."""
    return f"{time.time_ns():020d}-{secrets.token_hex(4)}{suffix}"


class WorkspaceStore(ABC):
    """Bytes stored per (workspace id, kind, name); see the module docstring for the contract."""

    max_bytes: int

    @abstractmethod
    def put(self, workspace_id: str, kind: str, name: str, data: bytes) -> None:
        """Store `data` under the name, replacing what was there; WorkspaceFull over the cap."""

    @abstractmethod
    def get(self, workspace_id: str, kind: str, name: str) -> bytes | None:
        """The stored bytes, or None when there is no such entry."""

    @abstractmethod
    def names(self, workspace_id: str, kind: str) -> list[str]:
        """The entry names of a kind, sorted."""

    @abstractmethod
    def delete(self, workspace_id: str, kind: str, name: str) -> None:
        """Remove an entry; a missing one is not an error."""

    @abstractmethod
    def clear(self, workspace_id: str) -> None:
        """Remove everything in the workspace."""

    @abstractmethod
    def used_bytes(self, workspace_id: str) -> int:
        """How many bytes the workspace's entries take."""

    @abstractmethod
    def touch(self, workspace_id: str) -> None:
        """Record that the workspace is in use now (expiry counts idle time from here)."""

    @abstractmethod
    def expire(self, idle_s: float) -> list[str]:
        """Delete every workspace not touched for `idle_s` seconds; returns their ids."""

    # Helpers every backend gets for free.

    def put_json(self, workspace_id: str, kind: str, name: str, value: Any) -> None:
        self.put(workspace_id, kind, name, json.dumps(value, allow_nan=False, default=_to_builtin).encode("utf-8"))

    def get_json(self, workspace_id: str, kind: str, name: str) -> Any:
        data = self.get(workspace_id, kind, name)
        if data is None:
            return None
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None

    def _check_room(self, workspace_id: str, replaced: int, added: int) -> None:
        used = self.used_bytes(workspace_id) - replaced
        if used + added > self.max_bytes:
            raise WorkspaceFull(
                f"Your workspace is full ({used / 2**20:.1f} of {self.max_bytes / 2**20:.0f} MiB); "
                "delete a model you no longer need and try again."
            )


def _to_builtin(value: Any) -> Any:
    # NumPy scalars and arrays arrive in metrics and curves straight from Keras.
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class FolderWorkspaceStore(WorkspaceStore):
    """One folder per workspace under `root`: ``<root>/<id>/<kind>/<name>``.

    Entries are replaced with `atomic.write_bytes` (temporary file, fsync, rename); listings skip
    the hidden temporary folders a killed writer may leave.
    """

    def __init__(self, root: str | Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        # One lock per store: the size check and the write must not interleave with another put.
        self._lock = threading.Lock()

    def _folder(self, workspace_id: str) -> Path:
        return self.root / check_id(workspace_id)

    def _path(self, workspace_id: str, kind: str, name: str) -> Path:
        return self._folder(workspace_id) / kind / check_name(kind, name)

    def put(self, workspace_id: str, kind: str, name: str, data: bytes) -> None:
        path = self._path(workspace_id, kind, name)
        with self._lock:
            replaced = path.stat().st_size if path.exists() else 0
            self._check_room(workspace_id, replaced, len(data))
            path.parent.mkdir(parents=True, exist_ok=True)
            # A writer killed mid-put (kill -9, power cut) leaves a hidden folder; the next put removes old ones.
            atomic.clean_stale(path.parent)
            atomic.write_bytes(path, bytes(data))
            self._touch(path.parent.parent)

    def get(self, workspace_id: str, kind: str, name: str) -> bytes | None:
        try:
            return self._path(workspace_id, kind, name).read_bytes()
        except FileNotFoundError:
            return None

    def names(self, workspace_id: str, kind: str) -> list[str]:
        check_name(kind, "probe")
        folder = self._folder(workspace_id) / kind
        try:
            return sorted(entry.name for entry in os.scandir(folder) if not entry.name.startswith("."))
        except FileNotFoundError:
            return []

    def delete(self, workspace_id: str, kind: str, name: str) -> None:
        with self._lock:
            self._path(workspace_id, kind, name).unlink(missing_ok=True)

    def clear(self, workspace_id: str) -> None:
        folder = self._folder(workspace_id)
        with self._lock:
            for kind in KINDS:
                shutil.rmtree(folder / kind, ignore_errors=True)

    def used_bytes(self, workspace_id: str) -> int:
        folder = self._folder(workspace_id)
        total = 0
        for kind in KINDS:
            try:
                total += sum(entry.stat().st_size for entry in os.scandir(folder / kind) if entry.is_file())
            except FileNotFoundError:
                continue
        return total

    @staticmethod
    def _touch(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / TOUCH_FILE).touch()

    def touch(self, workspace_id: str) -> None:
        folder = self._folder(workspace_id)
        # Only workspaces with something in them get a folder; a visitor who looks around leaves nothing.
        if folder.exists():
            self._touch(folder)

    def expire(self, idle_s: float) -> list[str]:
        cutoff = time.time() - idle_s
        removed = []
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        for entry in entries:
            if not entry.is_dir() or not is_valid_id(entry.name):
                continue
            marker = Path(entry.path) / TOUCH_FILE
            try:
                last_used = marker.stat().st_mtime if marker.exists() else entry.stat().st_mtime
            except FileNotFoundError:
                continue
            if last_used < cutoff:
                with self._lock:
                    shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.name)
        return removed


class MemoryWorkspaceStore(WorkspaceStore):
    """Everything in a dict: for tests, and the shortest complete example of the interface."""

    def __init__(self, max_bytes: int = 2**30):
        self.max_bytes = int(max_bytes)
        self._data: dict[str, dict[tuple[str, str], bytes]] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def put(self, workspace_id: str, kind: str, name: str, data: bytes) -> None:
        key = (kind, check_name(kind, name))
        with self._lock:
            entries = self._data.setdefault(check_id(workspace_id), {})
            self._check_room(workspace_id, len(entries.get(key, b"")), len(data))
            entries[key] = bytes(data)
            self._touched[workspace_id] = time.time()

    def get(self, workspace_id: str, kind: str, name: str) -> bytes | None:
        return self._data.get(check_id(workspace_id), {}).get((kind, check_name(kind, name)))

    def names(self, workspace_id: str, kind: str) -> list[str]:
        check_name(kind, "probe")
        return sorted(name for k, name in self._data.get(check_id(workspace_id), {}) if k == kind)

    def delete(self, workspace_id: str, kind: str, name: str) -> None:
        with self._lock:
            self._data.get(check_id(workspace_id), {}).pop((kind, check_name(kind, name)), None)

    def clear(self, workspace_id: str) -> None:
        with self._lock:
            self._data.pop(check_id(workspace_id), None)

    def used_bytes(self, workspace_id: str) -> int:
        return sum(len(value) for value in self._data.get(check_id(workspace_id), {}).values())

    def touch(self, workspace_id: str) -> None:
        if check_id(workspace_id) in self._data:
            self._touched[workspace_id] = time.time()

    def expire(self, idle_s: float) -> list[str]:
        cutoff = time.time() - idle_s
        with self._lock:
            gone = [ws for ws, at in self._touched.items() if at < cutoff]
            for ws in gone:
                self._data.pop(ws, None)
                self._touched.pop(ws, None)
        return gone


class Workspace:
    """One learner's workspace: models, runs, drawings and a little session memory, in a store."""

    def __init__(self, store: WorkspaceStore, workspace_id: str):
        self.store = store
        self.id = check_id(workspace_id)

    # Models: "<key>.keras" holds the model, "<key>.json" what is known about it. The JSON is
    # written second, so a model is listed only once both are there.

    def add_model(self, keras_bytes: bytes, description: dict[str, Any]) -> str:
        key = entry_key()
        self.store.put(self.id, "models", f"{key}.keras", keras_bytes)
        try:
            self.store.put_json(self.id, "models", f"{key}.json", dict(description, key=key))
        except BaseException:
            self.store.delete(self.id, "models", f"{key}.keras")
            raise
        return key

    def models(self) -> list[dict[str, Any]]:
        """Each model's description (with its "key"), oldest first."""
        found = []
        for name in self.store.names(self.id, "models"):
            if name.endswith(".json"):
                description = self.store.get_json(self.id, "models", name)
                if isinstance(description, dict):
                    found.append(dict(description, key=name.removesuffix(".json")))
        return found

    def model_bytes(self, key: str) -> bytes | None:
        return self.store.get(self.id, "models", f"{key}.keras")

    def update_model(self, key: str, description: dict[str, Any]) -> None:
        self.store.put_json(self.id, "models", f"{key}.json", dict(description, key=key))

    def delete_model(self, key: str) -> None:
        self.store.delete(self.id, "models", f"{key}.json")
        self.store.delete(self.id, "models", f"{key}.keras")

    # Runs: one JSON document each.

    def add_run(self, run: dict[str, Any]) -> str:
        key = entry_key()
        self.store.put_json(self.id, "runs", f"{key}.json", run)
        return key

    def runs(self) -> list[dict[str, Any]]:
        """Each run's document (with its "key"), oldest first."""
        found = []
        for name in self.store.names(self.id, "runs"):
            run = self.store.get_json(self.id, "runs", name)
            if isinstance(run, dict):
                found.append(dict(run, key=name.removesuffix(".json")))
        return found

    def run_keys(self) -> list[str]:
        return [name.removesuffix(".json") for name in self.store.names(self.id, "runs")]

    def model_keys(self) -> list[str]:
        return [name.removesuffix(".json") for name in self.store.names(self.id, "models") if name.endswith(".json")]

    def delete_run(self, key: str) -> None:
        self.store.delete(self.id, "runs", f"{key}.json")
        self.store.delete(self.id, "filmstrips", f"{key}.npz")

    # A run's filmstrip: npz bytes (`engine.filmstrip.Filmstrip.to_bytes`) under the run's key.

    def put_filmstrip(self, run_key: str, data: bytes) -> None:
        self.store.put(self.id, "filmstrips", f"{run_key}.npz", data)

    def filmstrip(self, run_key: str) -> bytes | None:
        return self.store.get(self.id, "filmstrips", f"{run_key}.npz")

    # Drawings and small session memory (the active model, a workshop link's lock).

    def put_drawing(self, name: str, data: bytes) -> None:
        self.store.put(self.id, "drawings", name, data)

    def drawing(self, name: str) -> bytes | None:
        return self.store.get(self.id, "drawings", name)

    def put_meta(self, name: str, value: Any) -> None:
        self.store.put_json(self.id, "meta", f"{name}.json", value)

    def meta(self, name: str) -> Any:
        return self.store.get_json(self.id, "meta", f"{name}.json")

    def used_bytes(self) -> int:
        return self.store.used_bytes(self.id)

    def touch(self) -> None:
        self.store.touch(self.id)

    def clear(self) -> None:
        self.store.clear(self.id)


def make_store(settings) -> WorkspaceStore:
    """The store the settings ask for: Redis when `CNN_REDIS_URL` is set (replicas share it), else a folder."""
    max_bytes = int(settings.workspace_max_mb * 2**20)
    if getattr(settings, "redis_url", None):
        from cnn_core.service.redis_queue import connect
        from cnn_core.service.redis_workspace import RedisWorkspaceStore

        return RedisWorkspaceStore(connect(settings.redis_url), max_bytes=max_bytes)
    return FolderWorkspaceStore(settings.workspaces_dir, max_bytes=max_bytes)


LINK_SECRET_FILE = ".link-secret"


def link_secret(settings) -> bytes:
    """The key that signs shared links: `CNN_LINK_SECRET`, else one generated once and kept on disk.

    The generated key lives in ``<workspaces dir>/.link-secret`` (not readable by others), so links
    stay valid across restarts; replicas behind one address must share `CNN_LINK_SECRET` instead.
    """
    if settings.link_secret:
        return settings.link_secret.encode("utf-8")
    path = Path(settings.workspaces_dir) / LINK_SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting together cannot both write a different key.
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(handle, "w") as file:
            file.write(secrets.token_hex(32))
            file.flush()
            os.fsync(file.fileno())
    for _ in range(50):
        text = path.read_text().strip()
        if text:
            return text.encode("utf-8")
        # Another process created the file a moment ago and is still writing it.
        time.sleep(0.01)
    raise RuntimeError(f"{path} is empty; delete it and restart the server.")
