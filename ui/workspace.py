"""Which workspace this browser works in, and the learner's models as one list: the Streamlit side of workspaces.

A Streamlit reload starts a new session, so nothing a learner makes may live only in
`st.session_state`. Each browser gets a workspace id (`cnn_core.service.workspace.new_id`, 144
random bits) kept in the address as ``?ws=``: the app adds it on the first visit and puts it back
on every page (Streamlit's page links and `st.switch_page` drop query parameters), so a reload,
a bookmark or a second tab opens the same workspace. A running job is found again through the
job queue, whose owner is the workspace id.

`ModelShelf` is what `AppState.models` is: every model the learner can pick, by name — the
workspace's own (trained, uploaded; loaded from the store on first use) and, on a local server,
every model saved by name in `CNN_MODELS_DIR`.
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


class ModelShelf(Mapping):
    """The learner's models by name (see the module docstring); `shelf[name]` loads one on first use."""

    def __init__(self, workspace: Workspace, saved_dir: Path | None = None):
        self.workspace = workspace
        self.saved_dir = None if saved_dir is None else Path(saved_dir)
        self._infos: dict[str, ModelInfo] = {}
        self._descriptions: dict[str, dict[str, Any]] = {}
        self._loaded: dict[str, ModelBundle] = {}
        self._seen: tuple | None = None
        self.refresh()

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
        self._infos, self._descriptions = infos, descriptions
        self._loaded = {name: bundle for name, bundle in self._loaded.items() if name in infos}

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

    def __getitem__(self, name: str) -> ModelBundle:
        if name not in self._infos:
            raise KeyError(name)
        if name not in self._loaded:
            self._loaded[name] = self._load(self._infos[name])
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._infos)

    def __len__(self) -> int:
        return len(self._infos)

    def info(self, name: str) -> ModelInfo:
        return self._infos[name]

    def _load(self, info: ModelInfo) -> ModelBundle:
        from cnn_core.engine.models import model_from_bytes
        from cnn_core.engine.specs import Experiment
        from cnn_core.service import persistence

        if info.path is not None:
            bundle = persistence.load_bundle(info.path)
            bundle.name = info.name
            return bundle
        data = self.workspace.model_bytes(info.key)
        if data is None:
            raise ValueError(f"The model {info.name!r} is no longer in your workspace; pick another one.")
        description = self._descriptions[info.name]
        experiment = description.get("experiment")
        return persistence.ModelBundle(
            model=model_from_bytes(data),
            experiment=None if experiment is None else Experiment.from_json(json.dumps(experiment)),
            metrics=dict(description.get("metrics") or {}), name=info.name,
            source=info.source if info.source in persistence.SOURCES else "trained", dataset_name=info.dataset,
        )

    # Changing

    def add(self, bundle: ModelBundle, keras_bytes: bytes | None = None) -> None:
        """Put a model into the workspace under `bundle.name` (the caller made it unique)."""
        if keras_bytes is None:
            from cnn_core.engine.models import model_to_bytes

            keras_bytes = model_to_bytes(bundle.model)
        self.workspace.add_model(keras_bytes, describe(bundle))
        self.refresh(force=True)
        self._loaded[bundle.name] = bundle

    def keep(self, name: str, new_name: str) -> None:
        """Mark a workspace model as saved under `new_name`: it stays until deleted."""
        info = self._infos[name]
        description = dict(self._descriptions[name], name=new_name, saved=True)
        self.workspace.update_model(info.key, description)
        bundle = self._loaded.pop(name, None)
        self.refresh(force=True)
        if bundle is not None:
            bundle.name = new_name
            self._loaded[new_name] = bundle

    def delete(self, name: str) -> None:
        info = self._infos.get(name)
        if info is None:
            return
        if info.path is not None:
            for suffix in (".keras", ".json"):
                info.path.with_suffix(suffix).unlink(missing_ok=True)
        else:
            self.workspace.delete_model(info.key)
        self._loaded.pop(name, None)
        self.refresh(force=True)

    def temporary(self) -> list[str]:
        """Workspace models not saved by name, oldest first: the ones a newer model may push out."""
        return [name for name, info in self._infos.items() if not info.saved and info.key is not None]


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
