"""Pick one 28×28 image to look at: a test image, the last drawing, or an uploaded picture."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from cnn_core.engine import own_data
from cnn_core.engine.errors import UserError
from ui import errors, loaders, uploads
from ui import state as app_state
from ui.text import class_label, plain

TEST_IMAGE = "A test image"
DRAWING = "My last drawing"
UPLOAD = "Upload a picture"


@dataclass(frozen=True)
class PickedImage:
    image: np.ndarray  # (28, 28) float32 in [0, 1]
    caption: str
    label: int | None = None  # the true class, when the image comes from the dataset


def decode_upload(data: bytes, max_bytes: int) -> np.ndarray:
    """An uploaded PNG/JPEG as a (28, 28) MNIST-style image; UserError saying what to change.

    The file size is checked here, the pixel count (from the header, before decoding) and the rest
    by `own_data.decode_picture`, which the own-classes zips use too.
    """
    if len(data) > max_bytes:
        raise UserError(f"The picture is {megabytes(len(data))}; upload one of at most {megabytes(max_bytes)}.")
    return own_data.decode_picture(data, "That file")


def decoded_upload(key: str, upload, max_bytes: int) -> np.ndarray:
    """`decode_upload` once per uploaded file: reruns (every slider move) reuse the result or the error."""
    cache_key = f"{key}-decoded"
    cached = st.session_state.get(cache_key)
    if cached is None or cached[0] != upload.file_id:
        try:
            cached = (upload.file_id, decode_upload(upload.getvalue(), max_bytes), None)
        except UserError as error:
            cached = (upload.file_id, None, str(error))
        st.session_state[cache_key] = cached
    if cached[2] is not None:
        raise UserError(cached[2])
    return cached[1]


def megabytes(count: int) -> str:
    """A byte count as people read it, in MB of 1024 × 1024 bytes like the settings' limits."""
    value = count / (1024 * 1024)
    return f"{value:.1f} MB" if value < 10 else f"{value:.0f} MB"


def photo_upload(key: str, *, what: str = "one object") -> PickedImage | None:
    """An uploader for a PNG/JPEG picture, with its real size limit; the picture as MNIST input, or None.

    Every picture goes through `decode_upload`, so `preprocess.image_to_mnist` is its one way in.
    """
    limit = uploads.cap_bytes(loaders.settings().max_image_bytes)
    upload = st.file_uploader(
        f"A photo or scan of {what} (PNG or JPEG, at most {megabytes(limit)})", type=["png", "jpg", "jpeg"],
        key=f"{key}-upload", max_upload_size=uploads.cap_mb(limit / (1024 * 1024)),
    )
    if upload is None:
        st.caption(f"{what.capitalize()} on a plain background works best; it is cropped, centred and scaled "
                   "to 28×28 like the MNIST images.")
        return None
    try:
        image = decoded_upload(key, upload, limit)
    except Exception as error:
        st.error(errors.message(error))
        return None
    return PickedImage(image, f"Your picture ({plain(upload.name)})")


def dataset_image(key: str, dataset_name: str) -> PickedImage:
    data = loaders.test_images(dataset_name, None)
    names = data.class_names
    left, right = st.columns(2)
    label = left.selectbox("Class", range(len(names)), format_func=lambda i: class_label(names, i),
                           key=f"{key}-class")
    indices = np.flatnonzero(data.y_test == label)
    number = right.number_input(f"Example (1–{len(indices)})", 1, len(indices), 1, key=f"{key}-example")
    index = int(indices[int(number) - 1])
    return PickedImage(data.x_test[index, ..., 0], f"Test image #{index}: {names[label]}", int(label))


def show(key: str, *, dataset_name: str, allow_drawing: bool = True) -> PickedImage | None:
    """Let the user choose an image; None (with a hint shown) when the chosen source has none yet."""
    state = app_state.get()
    sources = [TEST_IMAGE, *([DRAWING] if allow_drawing else []), UPLOAD]
    source = st.radio("Image", sources, horizontal=True, key=f"{key}-source")
    if source == TEST_IMAGE:
        return dataset_image(key, dataset_name)
    if source == DRAWING:
        if state.last_drawing is None:
            st.info("You have not drawn anything yet: draw a digit on the **Draw a digit** page first.")
            return None
        return PickedImage(state.last_drawing, "Your last drawing")
    return photo_upload(key)
