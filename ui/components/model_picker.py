"""Pick the model a page works with: a shipped default or one of this session's own models."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from cnn_core.datasets import TITLES
from ui import loaders
from ui import state as app_state


@dataclass(frozen=True)
class ModelCard:
    name: str
    dataset: str
    accuracy: float | None

    @property
    def dataset_title(self) -> str:
        return TITLES.get(self.dataset, self.dataset)

    @property
    def accuracy_text(self) -> str:
        return "not measured" if self.accuracy is None else f"{self.accuracy:.2%}"


def card(name: str) -> ModelCard:
    """What to say about a model, without loading TensorFlow for the shipped ones."""
    state = app_state.get()
    default = app_state.default_dataset_of(name)
    if default is not None:
        return ModelCard(name, default, loaders.default_metadata(default).get("test_accuracy"))
    bundle = state.models[name]
    return ModelCard(name, bundle.dataset, bundle.metrics.get("test_accuracy"))


def _set_active(key: str) -> None:
    app_state.get().active_model = st.session_state[key]


def show(key: str, *, dataset: str | None = None) -> str:
    """A selectbox over the models (optionally only those for `dataset`); the choice becomes active."""
    state = app_state.get()
    names = [name for name in state.model_names() if dataset is None or card(name).dataset == dataset]
    if state.active_model not in state.model_names():
        state.active_model = app_state.DEFAULT_MODEL_NAMES["mnist"]
    index = names.index(state.active_model) if state.active_model in names else 0
    # The widget's own state would go stale when another page changes the active model, so the
    # key carries the active name and the choice is copied into the session state on change.
    widget_key = f"{key}-{state.active_model}"
    name = st.selectbox(
        "Model", names, index=index, key=widget_key, on_change=_set_active, args=(widget_key,),
        format_func=lambda n: f"{n} ({card(n).dataset_title}, {card(n).accuracy_text})",
    )
    if dataset is None:
        state.active_model = name
    return name
