"""Which workspace this browser works in, and the learner's models as one list: the Streamlit side of workspaces.

A Streamlit reload starts a new session, so nothing a learner makes may live only in
`st.session_state`. Each browser gets a workspace id (`cnn_core.service.workspace.new_id`, 144
random bits) kept in the address as ``?ws=``: the app adds it on the first visit and puts it back
on every page (Streamlit's page links and `st.switch_page` drop query parameters), so a reload,
a bookmark or a second tab opens the same workspace. A running job is found again through the
job queue, whose owner is the workspace id.

`ModelShelf` is what `AppState.models` is: every model the learner can pick, by name — the
workspace's own (trained, uploaded) and, on a local server, every model saved by name in
`CNN_MODELS_DIR`. It keeps only names and descriptions; the live Keras models are in the one
bounded cache of the process (`ui.loaders.model_cache()`), loaded from the store on use and again
after they were pushed out, so a workshop's finished runs do not pile up in the server (issue #14).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from cnn_core.engine.errors import UserError
from cnn_core.service import workspace as ws_store
from cnn_core.service.workspace import Workspace

if TYPE_CHECKING:
    from cnn_core.service.persistence import ModelBundle
    from ui.state import AppState

logger = logging.getLogger(__name__)

PARAM = "ws"
SAVED_SUFFIX = " (saved)"
# Idle workspaces are looked for at most this often (host mode with a TTL only).
EXPIRE_EVERY_S = 3600.0
_expiry_lock = threading.Lock()
_last_expiry = 0.0


@dataclass(frozen=True)
class ModelInfo:
    """What the picker says about a model, known without loading it."""

    name: str
    dataset: str
    accuracy: float | None
    source: str  # "trained", "uploaded", or "saved" (a file in CNN_MODELS_DIR)
    saved: bool  # kept until deleted: saved by name, never pushed out by newer models
    key: str | None = None  # the workspace entry
    path: Path | None = None  # the saved .keras file


def _accuracy(metrics: Any) -> float | None:
    value = metrics.get("test_accuracy") if isinstance(metrics, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def describe(bundle: ModelBundle, *, saved: bool = False) -> dict[str, Any]:
    """A bundle's JSON description for the workspace (everything but the weights)."""
    return {
        "name": bundle.name,
        "source": bundle.source,
        "dataset": bundle.dataset,
        "experiment": None if bundle.experiment is None else json.loads(bundle.experiment.to_json()),
        "metrics": bundle.metrics,
        "saved": saved,
        "created": time.time(),
    }


class StoredBundle:
    """A learner's model as a `ModelBundle` whose Keras model is not kept here: `.model` asks the
    process-wide model cache (`cnn_core/service/model_cache.py`) on each use, which loads it from the
    workspace again after it was pushed out. Holding a StoredBundle (a widget callback's argument,
    a download's closure) therefore never keeps a model alive."""

    def __init__(self, shelf: ModelShelf, name: str, experiment, metrics: dict[str, Any], source: str,
                 dataset_name: str | None):
        self._shelf = shelf
        self.name = name
        self.experiment = experiment
        self.metrics = metrics
        self.source = source
        self.dataset_name = dataset_name

    @property
    def model(self):
        return self._shelf.cached(self.name).model

    @property
    def dataset(self) -> str:
        from cnn_core.service.persistence import ModelBundle

        # The same rule as a ModelBundle's: its experiment's dataset, else the one it was stored with.
        return ModelBundle.dataset.fget(self)

    def as_bundle(self, **changes: Any) -> ModelBundle:
        """A plain `ModelBundle` holding the live model (to save it), with `changes` applied."""
        from cnn_core.service.persistence import ModelBundle

        values = {"model": self.model, "experiment": self.experiment, "metrics": self.metrics, "name": self.name,
                  "source": self.source, "dataset_name": self.dataset_name}
        return ModelBundle(**{**values, **changes})


def _shared_cache():
    from ui import loaders

    return loaders.model_cache()


class ModelShelf(Mapping):
    """The learner's models by name (see the module docstring); `shelf[name]` is a `StoredBundle`.

    Only descriptions are kept per session; live Keras models are in the process-wide `cache`
    (by default `ui.loaders.model_cache()`), keyed by workspace id and entry, loaded on use.
    """

    def __init__(self, workspace: Workspace, saved_dir: Path | None = None, cache=None):
        self.workspace = workspace
        self.saved_dir = None if saved_dir is None else Path(saved_dir)
        self._cache = cache
        self._infos: dict[str, ModelInfo] = {}
        self._descriptions: dict[str, dict[str, Any]] = {}
        self._seen: tuple | None = None
        self.refresh()

    @property
    def cache(self):
        if self._cache is None:
            self._cache = _shared_cache()
        return self._cache

    # Reading

    def _fingerprint(self) -> tuple:
        saved = None
        if self.saved_dir is not None:
            try:
                saved = os.stat(self.saved_dir).st_mtime_ns
            except FileNotFoundError:
                saved = None
        return tuple(self.workspace.model_keys()), saved

    def refresh(self, force: bool = False) -> None:
        """Re-read the list when the store or the saved-models folder changed (another tab, a save)."""
        seen = self._fingerprint()
        if seen == self._seen and not force:
            return
        self._seen = seen
        infos: dict[str, ModelInfo] = {}
        descriptions: dict[str, dict[str, Any]] = {}
        for description in self.workspace.models():
            name = str(description.get("name") or "model")
            infos[name] = ModelInfo(
                name, str(description.get("dataset") or "mnist"), _accuracy(description.get("metrics")),
                str(description.get("source") or "trained"), bool(description.get("saved")), key=description["key"],
            )
            descriptions[name] = description
        for path, description in self._saved_files():
            name = f"{path.stem}{SAVED_SUFFIX}"
            infos[name] = ModelInfo(name, str(description.get("dataset") or "mnist"),
                                    _accuracy(description.get("metrics")), "saved", True, path=path)
            descriptions[name] = description
        self._infos, self._descriptions = infos, descriptions

    def _saved_files(self) -> list[tuple[Path, dict[str, Any]]]:
        if self.saved_dir is None or not self.saved_dir.is_dir():
            return []
        from cnn_core.service import persistence

        found = []
        for path in sorted(self.saved_dir.glob("*.keras")):
            # The description is inside the .keras file (one file per save, see persistence.save_bundle).
            description = persistence.read_description(path)
            if isinstance(description, dict):
                found.append((path, description))
        return found

    def __getitem__(self, name: str) -> StoredBundle:
        if name not in self._infos:
            raise KeyError(name)
        info = self._infos[name]
        description = self._descriptions.get(name, {})
        from cnn_core.service import persistence

        source = str(description.get("source") or "trained")
        return StoredBundle(self, name, _experiment(description.get("experiment")), dict(description.get("metrics") or {}),
                            source if source in persistence.SOURCES else "trained", info.dataset)

    def __iter__(self) -> Iterator[str]:
        return iter(self._infos)

    def __len__(self) -> int:
        return len(self._infos)

    def info(self, name: str) -> ModelInfo:
        return self._infos[name]

    def cache_key(self, name: str) -> tuple:
        """The model cache's key for a model: its workspace and entry (a saved file: its path and version)."""
        info = self._infos[name]
        if info.path is not None:
            try:
                version = os.stat(info.path).st_mtime_ns
            except FileNotFoundError:
                version = None
            return ("saved", str(info.path), version)
        return ("workspace", self.workspace.id, info.key)

    def cached(self, name: str):
        """The live model of `name` (with its Predictor and FeatureExtractor), from the process-wide cache."""
        if name not in self._infos:
            raise KeyError(name)
        info = self._infos[name]
        return self.cache.get(self.cache_key(name), lambda: self._load(info))

    def _load(self, info: ModelInfo):
        from cnn_core.engine.models import model_from_bytes
        from cnn_core.service import persistence

        if info.path is not None:
            return persistence.load_bundle(info.path).model
        data = self.workspace.model_bytes(info.key)
        if data is None:
            raise UserError(f"The model {info.name!r} is no longer in your workspace; pick another one.")
        return model_from_bytes(data)

    # Changing

    def add(self, bundle: ModelBundle, keras_bytes: bytes | None = None) -> None:
        """Put a model into the workspace under `bundle.name` (the caller made it unique).

        `bundle.model` may be None when `keras_bytes` are given (a result that came from a worker
        as bytes): no Keras model is built until a page needs one. A live model goes into the cache.
        """
        if keras_bytes is None:
            from cnn_core.engine.models import model_to_bytes

            keras_bytes = model_to_bytes(bundle.model)
        self.workspace.add_model(keras_bytes, describe(bundle))
        self.refresh(force=True)
        if bundle.model is not None and bundle.name in self._infos:
            self.cache.put(self.cache_key(bundle.name), bundle.model)

    def keep(self, name: str, new_name: str) -> None:
        """Mark a workspace model as saved under `new_name`: it stays until deleted (same entry, same cache key)."""
        info = self._infos[name]
        description = dict(self._descriptions[name], name=new_name, saved=True)
        self.workspace.update_model(info.key, description)
        self.refresh(force=True)

    def delete(self, name: str) -> None:
        info = self._infos.get(name)
        if info is None:
            return
        self.cache.discard(self.cache_key(name))
        if info.path is not None:
            for suffix in (".keras", ".json"):
                info.path.with_suffix(suffix).unlink(missing_ok=True)
        else:
            self.workspace.delete_model(info.key)
        self.refresh(force=True)

    def temporary(self) -> list[str]:
        """Workspace models not saved by name, oldest first: the ones a newer model may push out."""
        return [name for name, info in self._infos.items() if not info.saved and info.key is not None]


def _experiment(value: Any):
    from cnn_core.engine.specs import Experiment

    if value is None:
        return None
    try:
        return Experiment.from_json(json.dumps(value))
    except (KeyError, TypeError, ValueError):
        return None


# The workspace of this browser


def _expire_now_and_then(store: ws_store.WorkspaceStore, ttl_days: float) -> None:
    global _last_expiry
    if ttl_days <= 0:
        return
    with _expiry_lock:
        if time.monotonic() - _last_expiry < EXPIRE_EVERY_S and _last_expiry:
            return
        _last_expiry = time.monotonic()
    try:
        removed = store.expire(ttl_days * 86400)
    except OSError:
        logger.exception("Removing idle workspaces failed; will try again later.")
        return
    if removed:
        logger.info("Removed %d workspaces idle for more than %g days.", len(removed), ttl_days)


def requested_id() -> str | None:
    """The valid workspace id in the address, if there is one."""
    value = st.query_params.get(PARAM)
    return value if ws_store.is_valid_id(value) else None


def open_state(workspace_id: str | None = None) -> AppState:
    """The state of a workspace (the address's, or a new one), read back from the store."""
    from ui import loaders
    from ui.state import AppState

    settings = loaders.settings()
    store = loaders.workspace_store()
    _expire_now_and_then(store, settings.workspace_ttl_days if settings.host_mode else 0.0)
    workspace = Workspace(store, workspace_id or requested_id() or ws_store.new_id())
    workspace.touch()
    state = AppState(workspace=workspace, saved_dir=None if settings.host_mode else settings.models_dir)
    attach_job(state)
    return state


def keep_in_address(state: AppState) -> None:
    """Put `?ws=` back into the address when a page link or page switch dropped it."""
    if st.query_params.get(PARAM) != state.session_id:
        st.query_params[PARAM] = state.session_id


def attach_job(state: AppState) -> None:
    """Show the workspace's newest job (after a reload, or one started in another tab)."""
    from ui import loaders

    jobs = loaders.job_queue().jobs_for(state.session_id)
    if not jobs:
        return
    newest = jobs[-1]
    current = state.training_job
    if current is None or (current is not newest and not current.is_active):
        state.training_job = newest


def follow_address() -> AppState:
    """Once per page run: the address's workspace (reopened if it names another one), kept in the
    address, and caught up with what other tabs changed in it."""
    from ui import state as app_state

    state = app_state.get()
    requested = requested_id()
    if requested is not None and requested != state.session_id:
        state = st.session_state[app_state.STATE_KEY] = open_state(requested)
    keep_in_address(state)
    state.refresh()
    # What the last run (and this run's callbacks) changed in the editor.
    state.save_editor()
    attach_job(state)
    return state
