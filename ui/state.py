"""The one typed object that holds everything a visitor's session owns.

Every page reads and writes this object instead of scattering keys over st.session_state,
so what a session owns is written down in one place and nothing leaks between sessions.
What must outlive the session (models, runs, the last drawing, the active model, a workshop
link's lock) is written through to the browser's workspace (`ui.workspace`), and read back from
it when a reload or a second tab starts a new session.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

from cnn_core.engine.errors import UserError
from cnn_core.engine.specs import Experiment, Layer, ModelSpec, TrainingConfig
from cnn_core.service import own_classes
from cnn_core.service.workspace import MemoryWorkspaceStore, Workspace, new_id
from cnn_core.workshop import presets
from ui.workspace import ModelShelf

if TYPE_CHECKING:
    from cnn_core.engine.evaluation import Evaluation
    from cnn_core.service.persistence import ModelBundle
    from cnn_core.service.queue import TrainingJob

logger = logging.getLogger(__name__)

STATE_KEY = "app_state"

# The shipped models are shared read-only by every session; they are referred to by id, not copied.
# A model's id is what pages, caches and the workspace key it by; its title is only for display.
DEFAULT_MODEL_IDS = {"mnist": "default:mnist", "fashion_mnist": "default:fashion_mnist"}
DEFAULT_MODEL_TITLES = {"default:mnist": "Default MNIST model", "default:fashion_mnist": "Default Fashion-MNIST model"}
DEFAULT_MODEL = DEFAULT_MODEL_IDS["mnist"]
STARTING_PRESET = "mnist_functional"
MAX_SESSION_MODELS = 8


@dataclass
class EditorRow:
    """One layer in the editor; `uid` keeps its widgets attached to it while rows move."""

    uid: int
    layer: Layer


@dataclass
class RunRecord:
    """A finished (or stopped) training run, kept as plain data for the comparison page."""

    name: str
    experiment: Experiment
    dataset: str
    architecture: str
    params: int
    settings: dict[str, Any]
    history: list[dict[str, float]]
    test_accuracy: float | None
    test_loss: float | None
    seconds: float
    stopped_reason: str
    # What the Train page showed when the run ended, so a reload shows it again (older runs lack them).
    message: str = ""
    precision: str = "float32"
    # The batch curve, thinned (`positions`, `loss`, `accuracy`), and the chart's `markers`.
    curve: dict[str, list] = field(default_factory=dict)
    # The workspace's key for the run (its filmstrip is kept under it); set when read back.
    key: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["experiment"] = json.loads(self.experiment.to_json())
        data.pop("key")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in names}
        values["experiment"] = Experiment.from_json(json.dumps(data["experiment"]))
        return cls(**values)


def _memory_workspace() -> Workspace:
    # Outside the app (tests, scripts) a state keeps its workspace in memory.
    return Workspace(MemoryWorkspaceStore(), new_id())


@dataclass
class AppState:
    # Where what outlives the session is kept; its id is the browser's workspace id.
    workspace: Workspace = field(default_factory=_memory_workspace)
    # Local mode: models saved by name in this folder are listed too (host mode: None).
    saved_dir: Path | None = None
    # The learner's own models (workspace and saved ones); the defaults are not copied in here. Only
    # names and descriptions: the live Keras models (and predictors) are in `ui.loaders.model_cache()`.
    models: ModelShelf = field(init=False)
    # Cached evaluations per model name, so the Evaluate page does not redo 10 000 predictions.
    evaluations: dict[str, Evaluation] = field(default_factory=dict)
    _active_model: str = DEFAULT_MODEL
    _last_drawing: np.ndarray | None = None
    # Bumped by "Clear": the canvas empties itself when the count changes.
    canvas_clears: int = 0
    # The session's current (or last) training job; the queue runs it, the session only watches it.
    training_job: TrainingJob | None = None
    last_result_message: str | None = None
    # Jobs whose result has already been turned into a session model and a run record.
    collected_jobs: set[str] = field(default_factory=set)
    runs: list[RunRecord] = field(default_factory=list)
    editor_rows: list[EditorRow] = field(default_factory=list)
    editor_training: TrainingConfig = field(default_factory=TrainingConfig)
    editor_name: str = STARTING_PRESET
    # Bumped whenever the config is replaced from outside the controls, so their widgets restart.
    training_generation: int = 0
    next_uid: int = 0
    # Fields fixed by a shared link or an exercise ("layers", "epochs", ...; see sharing.LOCKABLE_FIELDS).
    locked: frozenset[str] = frozenset()
    query_loaded: bool = False
    exercise_key: str | None = None
    # The name and layers last loaded (a preset, a link, an exercise): a run of changed layers is not
    # called by that name (see `run_name`).
    loaded_from: tuple[str, tuple[Layer, ...]] | None = None

    def __post_init__(self) -> None:
        if not self.editor_rows:
            preset = presets.get(STARTING_PRESET)
            self.set_layers(preset.model.layers)
            self.editor_training = preset.training
            self.loaded_from = (preset.model.name, tuple(preset.model.layers))
        self.models = ModelShelf(self.workspace, self.saved_dir)
        # The learner's own classes are registered per process: a reload or a restarted server registers them again.
        own_classes.register(self.workspace)
        self._run_keys: list[str] = []
        self.refresh()
        active = self.workspace.meta("active_model")
        if isinstance(active, str) and active in self.model_ids():
            self._active_model = active
        self._saved_editor: dict[str, Any] | None = None
        self.editor_restored = self._restore_editor()
        drawing = self.workspace.drawing("last.npy")
        if drawing is not None:
            try:
                self._last_drawing = np.load(io.BytesIO(drawing), allow_pickle=False)
            except ValueError:
                self._last_drawing = None

    @property
    def session_id(self) -> str:
        """The workspace id: the job queue's owner for this learner's runs."""
        return self.workspace.id

    @property
    def active_model(self) -> str:
        return self._active_model

    @active_model.setter
    def active_model(self, name: str) -> None:
        if name != self._active_model:
            self._active_model = name
            self.workspace.put_meta("active_model", name)

    @property
    def last_drawing(self) -> np.ndarray | None:
        return self._last_drawing

    @last_drawing.setter
    def last_drawing(self, image: np.ndarray | None) -> None:
        if image is not None and self._last_drawing is not None and np.array_equal(image, self._last_drawing):
            return
        self._last_drawing = image
        if image is not None:
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(image, dtype=np.float32), allow_pickle=False)
            self.workspace.put_drawing("last.npy", buffer.getvalue())

    def _editor_document(self) -> dict[str, Any]:
        return {
            "model": ModelSpec(self.layers, name=self.editor_name).to_dict(),
            "training": self.editor_training.to_dict(),
            "locked": sorted(self.locked),
            "exercise": self.exercise_key,
            "loaded_from": None if self.loaded_from is None else
            ModelSpec(self.loaded_from[1], name=self.loaded_from[0]).to_dict(),
        }

    def save_editor(self) -> None:
        """Keep the layers and settings being edited (and their locks) in the workspace, when they changed."""
        document = self._editor_document()
        if document != self._saved_editor:
            self.workspace.put_meta("editor", document)
            self._saved_editor = document

    def _restore_editor(self) -> bool:
        """The editor as the workspace last saw it (a reload must not undo a hand-built model); False if none."""
        document = self.workspace.meta("editor")
        if not isinstance(document, dict):
            return False
        try:
            spec = ModelSpec.from_dict(document["model"])
            training = TrainingConfig.from_dict(document["training"])
            loaded = document.get("loaded_from")
            loaded_from = None if loaded is None else ModelSpec.from_dict(loaded)
        except (KeyError, TypeError, ValueError):
            return False
        self.set_layers(spec.layers)
        self.editor_training = training
        self.editor_name = spec.name
        self.locked = frozenset(str(name) for name in document.get("locked") or ())
        exercise = document.get("exercise")
        self.exercise_key = exercise if isinstance(exercise, str) else None
        self.loaded_from = None if loaded_from is None else (loaded_from.name, tuple(loaded_from.layers))
        self._saved_editor = self._editor_document()
        return True

    def refresh(self) -> None:
        """Read back what changed in the workspace since (another tab's models and runs)."""
        self.models.refresh()
        if self._active_model not in self.model_ids():
            # Deleted in another tab.
            self._active_model = DEFAULT_MODEL
        keys = self.workspace.run_keys()
        if keys != self._run_keys:
            self._run_keys = keys
            self.runs = []
            for data in self.workspace.runs():
                try:
                    self.runs.append(RunRecord.from_dict(data))
                except (KeyError, TypeError, ValueError):
                    continue

    def add_run(self, run: RunRecord, filmstrip: bytes | None = None) -> str:
        """Record a finished run (and its filmstrip's npz bytes) in the workspace; returns the run's key."""
        key = run.key = self.workspace.add_run(run.to_dict())
        if filmstrip is not None:
            try:
                self.workspace.put_filmstrip(key, filmstrip)
            except UserError:
                # A full workspace keeps the run's figures; the pictures are the part to go without.
                logger.warning("No room for the filmstrip of run %s in workspace %s.", key, self.workspace.id)
        self.runs.append(run)
        self._run_keys = self.workspace.run_keys()
        return key

    @property
    def layers(self) -> tuple[Layer, ...]:
        return tuple(row.layer for row in self.editor_rows)

    def set_layers(self, layers: tuple[Layer, ...] | list[Layer]) -> None:
        self.editor_rows = []
        for layer in layers:
            self.add_layer(layer)

    def add_layer(self, layer: Layer, position: int | None = None) -> None:
        row = EditorRow(self.next_uid, layer)
        self.next_uid += 1
        if position is None:
            self.editor_rows.append(row)
        else:
            self.editor_rows.insert(position, row)

    def load_experiment(self, experiment: Experiment, locked: frozenset[str] = frozenset()) -> None:
        """Put an experiment (a preset, a shared link, an exercise) into the editor and controls."""
        self.set_layers(experiment.model.layers)
        self.editor_training = experiment.training
        self.training_generation += 1
        self.locked = frozenset(locked)
        self.editor_name = experiment.model.name
        self.loaded_from = (experiment.model.name, tuple(experiment.model.layers))

    def run_name(self) -> str:
        """The model's name as typed, or "custom, from <preset>" once the loaded layers were changed."""
        if self.loaded_from is not None:
            name, layers = self.loaded_from
            if self.editor_name == name and self.layers != layers:
                self.editor_name = f"custom, from {name}"
        return self.editor_name

    def model_ids(self) -> list[str]:
        """Every model this learner can pick: the shipped defaults' ids, then their own models' (unique names)."""
        return [*DEFAULT_MODEL_IDS.values(), *self.models]

    def unique_model_name(self, wanted: str) -> str:
        """`wanted`, or `wanted (2)`, `wanted (3)`... so a new model never hides another."""
        taken = set(self.model_ids()) | set(DEFAULT_MODEL_TITLES.values())
        name, number = wanted, 2
        while name in taken:
            name = f"{wanted} ({number})"
            number += 1
        return name

    def add_model(self, bundle: ModelBundle, keras_bytes: bytes | None = None) -> str:
        """Keep `bundle` in the workspace under a name no other model has, make it active, return that name.

        A workspace keeps at most MAX_SESSION_MODELS models that were not saved by name; the
        oldest go first, so a long workshop cannot fill the server with one visitor's models.
        """
        bundle.name = self.unique_model_name(bundle.name)
        self.models.add(bundle, keras_bytes)
        self.active_model = bundle.name
        while len(self.models.temporary()) > MAX_SESSION_MODELS:
            self.forget_model(self.models.temporary()[0])
        return bundle.name

    def forget_model(self, name: str) -> None:
        """Delete a model of the learner's (from the workspace, or a saved file) and what was cached for it."""
        self.models.delete(name)
        self.evaluations.pop(name, None)
        if self.active_model == name:
            self.active_model = DEFAULT_MODEL

    def keep_model(self, name: str, wanted: str) -> str:
        """Save a workspace model by name (host mode's "Save"); returns the name it got."""
        new_name = wanted if wanted == name else self.unique_model_name(wanted)
        self.models.keep(name, new_name)
        if name in self.evaluations:
            self.evaluations[new_name] = self.evaluations.pop(name)
        if self.active_model == name:
            self.active_model = new_name
        return new_name

    def remember_link(self, params: dict[str, str] | None) -> None:
        """Keep a workshop link's (signed) parameters, so its lock holds after a reload on any page."""
        self.workspace.put_meta("link", params)

    def remembered_link(self) -> dict[str, str] | None:
        link = self.workspace.meta("link")
        return link if isinstance(link, dict) else None


def get() -> AppState:
    """This session's state: created on first use from the workspace the address names (or a new one)."""
    state = st.session_state.get(STATE_KEY)
    if state is None:
        from ui import workspace

        state = st.session_state[STATE_KEY] = workspace.open_state()
    return state


def start_over() -> AppState:
    """Empty this browser's workspace and move it to a new, empty one.

    A new id rather than the old one emptied: a run still stopping, or another tab of the old
    workspace, can then never bring the old work back into the new one.
    """
    from ui import workspace

    old = get()
    job = old.training_job
    if job is not None and job.is_active:
        job.stop()
    old.workspace.clear()
    state = st.session_state[STATE_KEY] = workspace.open_state(new_id())
    workspace.keep_in_address(state)
    return state


def default_dataset_of(model_id: str) -> str | None:
    """The dataset of a shipped default model's id; None for any other model."""
    if model_id not in DEFAULT_MODEL_TITLES:
        return None
    return model_id.removeprefix("default:")


def model_title(model_id: str) -> str:
    """What to call a model on screen: a default's title, or the learner's own model's name."""
    return DEFAULT_MODEL_TITLES.get(model_id, model_id)
