"""The drawing canvas: a thin wrapper around streamlit-drawable-canvas.

Tests replace `render` (AppTest shows the canvas as an unknown element and cannot draw on it),
so every page goes through `show` and never calls st_canvas directly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import threading
from pathlib import Path

import numpy as np

from cnn_core.engine.errors import UserError

logger = logging.getLogger(__name__)

CANVAS_SIZE = 280
BACKGROUND = "#000000"
INK = "#FFFFFF"
# The component sends its pixels as a PNG data URL that its own Python side decodes with no size
# check; a crafted message can carry a small PNG of 100+ megapixels. A real 280×280 canvas (even
# at 3× device pixels) is well under these.
MAX_DATA_URL_CHARS = 4_000_000
MAX_SCALE = 4


class CanvasDataError(UserError):
    """The canvas value is not a drawing this page can use."""


def decode_data_url(data_url: object, size: int = CANVAS_SIZE) -> np.ndarray:
    """The canvas's `data:image/png;base64,…` value as RGBA pixels, with every size checked first.

    CanvasDataError for anything else: not a data URL, too long, not base64, not an image, or an
    image larger than the canvas could produce (checked from the PNG header before decoding).
    """
    from PIL import Image, UnidentifiedImageError

    damaged = "The drawing arrived damaged; clear the canvas and draw again."
    if not isinstance(data_url, str) or ";base64," not in data_url[:100]:
        raise CanvasDataError(damaged)
    if len(data_url) > MAX_DATA_URL_CHARS:
        raise CanvasDataError("The drawing is far larger than this canvas can make; clear it and draw again.")
    try:
        data = base64.b64decode(data_url.split(";base64,", 1)[1], validate=True)
        with Image.open(io.BytesIO(data)) as picture:
            width, height = picture.size  # read from the header; nothing is decoded yet
            if width > MAX_SCALE * size or height > MAX_SCALE * size:
                raise CanvasDataError(
                    f"The drawing is {width}×{height} pixels, far larger than this canvas can make; draw again."
                )
            pixels = np.asarray(picture.convert("RGBA"), dtype=np.uint8)
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        if isinstance(error, CanvasDataError):
            raise
        raise CanvasDataError(damaged) from None
    return pixels


COMPONENT = "streamlit-drawable-canvas.streamlit_drawable_canvas"
# The canvas's hover toolbar, minus the buttons that break drawing or repeat the page's own:
# "Edit" switches to selecting strokes (a stroke then draws nothing, without a word), the bin
# repeats Clear, and the upload arrow sends what every stroke already sends. Undo and redo stay.
HIDDEN_TOOLBAR_BUTTONS = ("Edit", "Reset canvas & history", "Update the app with this drawing")
TOOLBAR_CSS = "".join(f'.dc-icon-button[aria-label="{label}"]{{display:none !important}}'
                      for label in HIDDEN_TOOLBAR_BUTTONS) + ".dc-toolbar-separator{display:none}"
_registered: set[int] = set()
_register_lock = threading.Lock()


def _register_trimmed_toolbar() -> None:
    """Re-declare the canvas component with its own CSS plus TOOLBAR_CSS, once per Streamlit runtime.

    The component draws inside a shadow root, so page CSS cannot reach its toolbar, and version
    0.13.0 has no option to hide single buttons. Its script stays the package's own file.
    """
    import streamlit as st
    import streamlit_drawable_canvas
    from streamlit.runtime import Runtime

    runtime = id(Runtime.instance()) if Runtime.exists() else 0
    with _register_lock:
        if runtime in _registered:
            return
        build = Path(streamlit_drawable_canvas.__file__).parent / "frontend" / "build"
        css = "\n".join(path.read_text() for path in sorted(build.glob("index-*.css")))
        st.components.v2.component(COMPONENT, js="index-*.js", css=css + TOOLBAR_CSS,
                                   html='<div class="canvas-root"></div>', isolate_styles=True)
        _registered.add(runtime)


def render(*, key: str, stroke_width: int, size: int, clears: int) -> np.ndarray | None:
    """Draw the real canvas; return its RGBA pixels (H, W, 4) uint8, or None before the first stroke.

    `clears` counts the Clear presses: a new count empties the canvas in place. A new key would
    empty it too, but it mounts a new canvas, and a stroke drawn while that one starts up is lost.
    """
    # Imported here: the component registers itself with the running Streamlit server on import.
    import streamlit as st
    from streamlit_drawable_canvas import st_canvas

    _register_trimmed_toolbar()

    try:
        result = st_canvas(
            stroke_width=stroke_width,
            stroke_color=INK,
            background_color=BACKGROUND,
            width=size,
            height=size,
            drawing_mode="freedraw",
            return_image_data=True,
            # The component redraws itself from `initial_drawing` whenever that changes; the count makes it change.
            initial_drawing={"objects": [], "clears": clears},
            key=key,
        )
        # The data URL itself, not `result.image_data`, which decodes it without any check (0.13.0).
        data_url = result._image_data_url
    except (AttributeError, KeyError, TypeError) as error:
        # The browser sends the component's value; a malformed one is the sender's problem, not a crash.
        logger.info("Ignoring a malformed canvas value: %r", error)
        st.warning("The drawing arrived damaged; clear the canvas and draw again.")
        return None
    if data_url is None:
        return None
    try:
        return decode_data_url(data_url, size)
    except CanvasDataError as error:
        st.warning(str(error))
        return None


def _fingerprint(image: np.ndarray | None) -> str | None:
    return None if image is None else hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest()


def show(*, key: str, stroke_width: int = 18, size: int = CANVAS_SIZE, clears: int = 0) -> np.ndarray | None:
    """A white-on-black drawing area, like an MNIST digit; returns RGBA pixels or None while empty.

    Raise `clears` to empty the canvas. The page goes blank at once: until the component has
    redrawn itself and sent its empty picture (a second or so later), it still reports the drawing
    made before Clear, and that drawing is not shown again.
    """
    import streamlit as st

    image = render(key=key, stroke_width=stroke_width, size=size, clears=clears)
    seen = st.session_state.setdefault(f"{key}-clears-seen", clears)
    if seen != clears:
        st.session_state[f"{key}-clears-seen"] = clears
        st.session_state[f"{key}-before-clear"] = _fingerprint(image)
    stale = st.session_state.get(f"{key}-before-clear")
    if stale is not None:
        if _fingerprint(image) == stale:
            return None
        # Anything else (the empty canvas, a new stroke) means the component has caught up.
        st.session_state[f"{key}-before-clear"] = None
    return image
