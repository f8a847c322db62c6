"""The "Your own classes" page's parts: define classes, draw or upload examples, look at them, train.

The pictures live in the learner's workspace (`cnn_core.service.own_classes`); every change is
made on a copy and saved whole, so a refused upload or a bad name leaves what was collected as it was.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from cnn_core.engine import own_data, preprocess, registry
from cnn_core.service import own_classes
from cnn_core.workshop import presets
from ui import errors, images, layout, uploads
from ui import state as app_state
from ui.components import canvas
from ui.errors import shown_as_error
from ui.text import plain

SAMPLES_PER_CLASS = 10
MAX_ZIP_MB = 64


def choices() -> tuple[str, ...]:
    """The datasets this learner may pick: the bundled ones and their own classes, never another learner's."""
    mine = own_classes.dataset_name(app_state.get().workspace)
    return tuple(name for name in registry.names() if registry.get(name).bundled or name == mine)


def _save(collection: own_data.Collection, message: str) -> None:
    own_classes.save(app_state.get().workspace, collection)
    st.session_state["own-message"] = plain(message)


def _notice(key: str, alert: str) -> None:
    """Show, once, the message the last action left under `key`, in a slot that is there either way.

    Had the message come and gone, everything below it would move; the browser rebuilds a widget
    that moves, and the zip uploader, rebuilt mid-upload, dropped its file (a replaced zip vanished).
    """
    slot = st.empty()
    text = st.session_state.pop(key, None)
    if text:
        getattr(slot, alert)(text)


def _add_class() -> None:
    """The Add class button's callback: a callback may empty the name box, the script run after it may not."""
    try:
        collection = own_classes.load(app_state.get().workspace)
        name = own_data.check_class_name(st.session_state.get("own-new-name", ""))
        if name in collection:
            raise own_data.UserError(f"There is already a class called {name}; pick another name.")
        if len(collection) >= own_data.MAX_CLASSES:
            raise own_data.UserError(f"You can have at most {own_data.MAX_CLASSES} classes; delete one first.")
        _save({**collection, name: np.zeros((0, 28, 28), np.uint8)}, f"Added the class {name}.")
    except Exception as error:
        st.session_state["own-define-error"] = errors.message(error)
        return
    # An empty box for the next name: the added one left there invited adding it twice.
    st.session_state["own-new-name"] = ""


def define(collection: own_data.Collection) -> None:
    """Add a class, or delete one (with a confirmation)."""
    add_col, button_col = st.columns([2, 1], vertical_alignment="bottom")
    add_col.text_input("New class name", key="own-new-name", placeholder="circle", max_chars=24)
    button_col.button("Add class", key="own-add-class", width="stretch", on_click=_add_class)
    _notice("own-define-error", "error")
    if collection:
        with st.expander("Delete a class"):
            doomed = st.selectbox("Class", list(collection), key="own-delete-name")
            if st.checkbox("Delete it and all its pictures", key="own-delete-confirm") and st.button(
                    "Delete", key="own-delete"):
                _save({k: v for k, v in collection.items() if k != doomed}, f"Deleted the class {doomed}.")
                st.rerun()


def draw(collection: own_data.Collection) -> None:
    """The canvas and the class a drawing is added to."""
    st.subheader("Draw examples")
    if not collection:
        st.caption("Add a class first.")
        return
    clears = st.session_state.get("own-clears", 0)
    rgba = canvas.show(key="own-canvas", clears=clears)
    image = None if rgba is None else preprocess.canvas_to_mnist(rgba)
    counts = own_classes.counts(collection)
    fewest = min(counts, key=counts.get)
    label_col, add_col = st.columns([1, 1], vertical_alignment="bottom")
    label = label_col.selectbox("It is a", list(collection), index=list(collection).index(fewest), key="own-label")
    if add_col.button("Add drawing", type="primary", disabled=image is None, key="own-add", width="stretch"):
        with shown_as_error(stop=False):
            added = own_data.merge(collection, {label: own_data.as_uint8(image)[None]})
            _save(added, f"Added a drawing to {label}.")
            st.session_state["own-clears"] = clears + 1
            st.rerun()


def upload(collection: own_data.Collection) -> None:
    """A .zip of one folder per class; refused whole, in one sentence, if anything in it is wrong."""
    st.subheader("Or upload a .zip")
    limit_mb = uploads.cap_mb(MAX_ZIP_MB)
    st.caption("One folder per class, named after it (circle/1.png, square/1.png, …); PNG or JPEG, any size, "
               f"colour or grey; at most {own_data.MAX_IMAGES:,} pictures and {limit_mb} MB.")
    # A new key after each added zip empties the uploader: left holding the zip, it offered to add it again.
    added_zips = st.session_state.get("own-zips-added", 0)
    file = st.file_uploader("Zip of class folders", type=["zip"], key=f"own-zip-{added_zips}", max_upload_size=limit_mb)
    if file is not None and st.button("Add these pictures", key="own-add-zip"):
        with shown_as_error(stop=False):
            if file.size > limit_mb * 2**20:
                raise own_data.UserError(f"The zip is {file.size / 2**20:.0f} MB; upload one of at most {limit_mb} MB.")
            read = own_data.read_zip(file.getvalue(), max_total_bytes=limit_mb * 2**20)
            added = own_data.merge(collection, read)
            total = sum(len(v) for v in read.values())
            _save(added, f"Added {total} pictures to {len(read)} classes.")
            st.session_state["own-zips-added"] = added_zips + 1
            st.rerun()


def overview(collection: own_data.Collection) -> None:
    """Class balance and a grid of samples as the model sees them."""
    st.subheader("Your classes")
    if not collection:
        st.caption("No classes yet: add two or more, for example circle, triangle and square.")
        return
    counts = own_classes.counts(collection)
    if not any(counts.values()):
        st.caption("No pictures yet: draw some or upload a .zip.")
    else:
        st.bar_chart({"pictures": counts}, horizontal=True, height=40 + 30 * len(counts))
    for name, pictures in collection.items():
        st.text(f"{name}: {counts[name]} pictures")
        if len(pictures):
            tiles = np.concatenate([np.pad(p, 1) for p in pictures[-SAMPLES_PER_CLASS:]], axis=1)
            st.image(images.png(np.kron(tiles, np.ones((2, 2), np.uint8))))


def train_button(collection: own_data.Collection) -> None:
    """Load the small preset with these classes into the Train page."""
    st.subheader("Train")
    state = app_state.get()
    try:
        own_data.check_collection(collection)
    except own_data.UserError as error:
        st.info(str(error))
        return
    info = own_classes.register(state.workspace)
    if info is None:
        return
    st.caption(f"{info.test_size} of your pictures are held back for the test; the other {info.train_size // (own_data.COPIES + 1)} "
               f"are trained on, each with {own_data.COPIES} shifted and rotated copies ({info.train_size} in all), and "
               f"{presets.OWN_CLASSES_VALIDATION:.0%} of those are kept for validation.")
    if st.button("Train on these classes", type="primary", key="own-train"):
        state.load_experiment(presets.for_own_classes(info.name, info.num_classes))
        st.switch_page("pages/train.py")


def show() -> None:
    state = app_state.get()
    collection = own_classes.load(state.workspace)
    _notice("own-message", "success")
    # The canvas needs its whole width: in a half-width column it was clipped at 800 px, so the right
    # part moves below the left when the two no longer fit side by side.
    left, right = layout.wrapping_row("own", ["wide", None])
    with left:
        define(collection)
        draw(collection)
        upload(collection)
    with right:
        overview(collection)
        train_button(collection)
