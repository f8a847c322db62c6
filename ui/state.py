"""The one typed object that holds everything a visitor's session owns.

Every page reads and writes this object instead of scattering keys over st.session_state,
so what a session owns is written down in one place and nothing leaks between sessions:
the object lives in that session's st.session_state and nowhere else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

from cnn_core.engine.specs import Experiment, Layer, TrainingConfig
from cnn_core.workshop import presets

if TYPE_CHECKING:
    from cnn_core.engine.activations import FeatureExtractor
    from cnn_core.engine.evaluation import Evaluation
    from cnn_core.engine.inference import Predictor
    from cnn_core.service.persistence import ModelBundle
    from cnn_core.service.queue import TrainingJob

STATE_KEY = "app_state"

# The shipped models are shared read-only by every session; they are named, not copied.
DEFAULT_MODEL_NAMES = {"mnist": "Default MNIST model", "fashion_mnist": "Default Fashion-MNIST model"}
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


@dataclass
class AppState:
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # The session's own models (trained or uploaded); the defaults are not copied in here.
    models: dict[str, ModelBundle] = field(default_factory=dict)
    predictors: dict[str, Predictor] = field(default_factory=dict)
    extractors: dict[str, FeatureExtractor] = field(default_factory=dict)
    # Cached evaluations per model name, so the Evaluate page does not redo 10 000 predictions.
    evaluations: dict[str, Evaluation] = field(default_factory=dict)
    active_model: str = DEFAULT_MODEL_NAMES["mnist"]
    last_drawing: np.ndarray | None = None
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

    def __post_init__(self) -> None:
        if not self.editor_rows:
            preset = presets.get(STARTING_PRESET)
            self.set_layers(preset.model.layers)
            self.editor_training = preset.training

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

    def model_names(self) -> list[str]:
        return [*DEFAULT_MODEL_NAMES.values(), *self.models]

    def unique_model_name(self, wanted: str) -> str:
        """`wanted`, or `wanted (2)`, `wanted (3)`... so a new model never hides another."""
        taken = set(self.model_names())
        name, number = wanted, 2
        while name in taken:
            name = f"{wanted} ({number})"
            number += 1
        return name

    def add_model(self, bundle: ModelBundle) -> str:
        """Keep `bundle` under a name no other model has, make it active, and return that name.

        A session keeps at most MAX_SESSION_MODELS models; the oldest go first, so a long workshop
        cannot fill the server's memory with one visitor's models.
        """
        bundle.name = self.unique_model_name(bundle.name)
        self.models[bundle.name] = bundle
        self.active_model = bundle.name
        while len(self.models) > MAX_SESSION_MODELS:
            self._forget_model(next(iter(self.models)))
        return bundle.name

    def _forget_model(self, name: str) -> None:
        for cache in (self.models, self.predictors, self.extractors, self.evaluations):
            cache.pop(name, None)


def get() -> AppState:
    """This session's state, created on first use."""
    if STATE_KEY not in st.session_state:
        st.session_state[STATE_KEY] = AppState()
    return st.session_state[STATE_KEY]


def default_dataset_of(name: str) -> str | None:
    for dataset, default_name in DEFAULT_MODEL_NAMES.items():
        if default_name == name:
            return dataset
    return None
