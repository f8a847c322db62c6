"""Pick the model a page works with: a shipped default or one of the learner's own (trained, uploaded, saved)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from cnn_core.engine import registry
from ui import errors, loaders, own_classes, uploads
from ui import state as app_state
from ui.text import message as error_text


@dataclass(frozen=True)
class ModelCard:
    """What a page says about a model: `id` is what it is picked and cached by, `name` what it is called."""

    id: str
    name: str
    dataset: str
    accuracy: float | None

    @property
    def dataset_title(self) -> str:
        return registry.title(self.dataset)

    @property
    def accuracy_text(self) -> str:
        return "not measured" if self.accuracy is None else f"{self.accuracy:.2%}"

    @property
    def label(self) -> str:
        """The name, plus the dataset and accuracy unless the name already says them (a trained model's does)."""
        extra = []
        if self.dataset_title not in self.name:
            extra.append(self.dataset_title)
        if self.accuracy is None or f"{self.accuracy:.1%}" not in self.name:
            extra.append(self.accuracy_text)
        return f"{self.name} ({', '.join(extra)})" if extra else self.name


def card(model_id: str) -> ModelCard:
    """What to say about a model, without loading TensorFlow for the shipped ones."""
    state = app_state.get()
    title = app_state.model_title(model_id)
    default = app_state.default_dataset_of(model_id)
    if default is not None:
        return ModelCard(model_id, title, default, loaders.default_metadata(default).get("test_accuracy"))
    info = state.models.info(model_id)
    return ModelCard(model_id, title, info.dataset, info.accuracy)


def _set_active(key: str) -> None:
    app_state.get().active_model = st.session_state[key]


def _upload(key: str) -> None:
    """Load the uploaded .keras file into this session and make it the active model."""
    from cnn_core.service import persistence

    state = app_state.get()
    upload = st.session_state.get(f"{key}-upload-file")
    if upload is None:
        return
    settings = loaders.settings()
    limits = persistence.UploadLimits(max_params=settings.max_params, max_mflops=settings.max_upload_mflops,
                                      max_layers=settings.max_upload_layers)
    try:
        bundle = persistence.load_upload(
            upload.getvalue(), upload.name, st.session_state[f"{key}-upload-dataset"],
            max_bytes=settings.max_upload_bytes, limits=limits,
        )
    except Exception as error:
        st.session_state[f"{key}-upload-message"] = errors.message(error)
        return
    bundle.name = f"{bundle.name} (uploaded)"
    try:
        state.add_model(bundle, keras_bytes=upload.getvalue())
    except Exception as error:
        st.session_state[f"{key}-upload-message"] = errors.message(error)


def upload_form(key: str) -> None:
    """A small form to bring in a model trained elsewhere (a .keras file for 28×28×1 images, 10 classes)."""
    limit_mb = uploads.cap_mb(loaders.settings().max_upload_bytes / (1024 * 1024))
    with st.popover("Upload a model", icon=":material/upload:", width="content",
                    help="Use a .keras model trained elsewhere (a picture goes on the page itself)"):
        st.selectbox("It was trained on", own_classes.choices(), format_func=registry.title, key=f"{key}-upload-dataset")
        # The settings' limit, unless the server's own cap is lower (that one cannot be lifted per widget).
        st.file_uploader(f"A .keras model file (at most {limit_mb} MB)", type=["keras"], key=f"{key}-upload-file",
                         on_change=_upload, args=(key,), max_upload_size=limit_mb,
                         help="Saved with model.save('name.keras'); standard Keras layers only.")


def _delete(name: str, key: str) -> None:
    state = app_state.get()
    state.forget_model(name)
    st.session_state[f"{key}-delete-message"] = f"Deleted the model {name!r}."


def delete_form(key: str, name: str) -> None:
    """Delete one of the learner's models (a shipped default cannot be deleted)."""
    with st.popover("Delete", icon=":material/delete:", help="Delete this model", width="content",
                    disabled=app_state.default_dataset_of(name) is not None):
        st.text(f"Delete {app_state.model_title(name)}? This cannot be undone.")
        st.button("Delete this model", key=f"{key}-delete", on_click=_delete, args=(name, key), type="primary")


def show(key: str, *, dataset: str | None = None, allow_upload: bool = True) -> str:
    """A selectbox over the models (optionally only those for `dataset`); the choice becomes active."""
    state = app_state.get()
    names = [name for name in state.model_ids() if dataset is None or card(name).dataset == dataset]
    if state.active_model not in state.model_ids():
        state.active_model = app_state.DEFAULT_MODEL
    index = names.index(state.active_model) if state.active_model in names else 0
    # The widget's own state would go stale when another page changes the active model, so the
    # key carries the active name and the choice is copied into the session state on change.
    widget_key = f"{key}-{state.active_model}"
    if allow_upload:
        # A wrapping row: the buttons keep their whole labels and move under the picker when narrow.
        row = st.container(horizontal=True, wrap=True, vertical_alignment="bottom")
        picker_col, upload_col, delete_col = row.container(key=f"layout-wide-picker-{key}"), row, row
    else:
        picker_col, upload_col, delete_col = st, None, None
    name = picker_col.selectbox(
        "Model", names, index=index, key=widget_key, on_change=_set_active, args=(widget_key,),
        format_func=lambda n: card(n).label,
    )
    if upload_col is not None:
        with upload_col:
            upload_form(key)
        with delete_col:
            delete_form(key, name)
        deleted = st.session_state.pop(f"{key}-delete-message", None)
        if deleted:
            st.toast(deleted)
        message = st.session_state.pop(f"{key}-upload-message", None)
        if message:
            st.error(f"That model could not be used: {error_text(message)}")
    if dataset is None:
        state.active_model = name
    return name
