"""Pick the model a page works with: a shipped default or one of this session's own models."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from cnn_core.engine.datasets import TITLES
from cnn_core.engine.specs import DATASETS
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


def _upload(key: str) -> None:
    """Load the uploaded .keras file into this session and make it the active model."""
    from cnn_core.service import persistence

    state = app_state.get()
    upload = st.session_state.get(f"{key}-upload-file")
    if upload is None:
        return
    try:
        bundle = persistence.load_upload(
            upload.getvalue(), upload.name, st.session_state[f"{key}-upload-dataset"],
            max_bytes=loaders.settings().max_upload_bytes,
        )
    except ValueError as error:
        st.session_state[f"{key}-upload-message"] = str(error)
        return
    bundle.name = f"{bundle.name} (uploaded)"
    state.add_model(bundle)


def upload_form(key: str) -> None:
    """A small form to bring in a model trained elsewhere (a .keras file for 28×28×1 images, 10 classes)."""
    with st.popover("Upload", icon=":material/upload:", help="Use a .keras model trained elsewhere",
                    width="stretch"):
        st.selectbox("It was trained on", DATASETS, format_func=TITLES.get, key=f"{key}-upload-dataset")
        st.file_uploader("A .keras file", type=["keras"], key=f"{key}-upload-file", on_change=_upload,
                         args=(key,), help="Saved with model.save('name.keras'); standard Keras layers only.")


def show(key: str, *, dataset: str | None = None, allow_upload: bool = True) -> str:
    """A selectbox over the models (optionally only those for `dataset`); the choice becomes active."""
    state = app_state.get()
    names = [name for name in state.model_names() if dataset is None or card(name).dataset == dataset]
    if state.active_model not in state.model_names():
        state.active_model = app_state.DEFAULT_MODEL_NAMES["mnist"]
    index = names.index(state.active_model) if state.active_model in names else 0
    # The widget's own state would go stale when another page changes the active model, so the
    # key carries the active name and the choice is copied into the session state on change.
    widget_key = f"{key}-{state.active_model}"
    picker_col, upload_col = st.columns([5, 1], vertical_alignment="bottom") if allow_upload else (st, None)
    name = picker_col.selectbox(
        "Model", names, index=index, key=widget_key, on_change=_set_active, args=(widget_key,),
        format_func=lambda n: f"{n} ({card(n).dataset_title}, {card(n).accuracy_text})",
    )
    if upload_col is not None:
        with upload_col:
            upload_form(key)
        message = st.session_state.pop(f"{key}-upload-message", None)
        if message:
            st.error(f"That model could not be used: {message}")
    if dataset is None:
        state.active_model = name
    return name
