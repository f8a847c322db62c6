"""The drawing canvas: a thin wrapper around streamlit-drawable-canvas.

Tests replace `render` (AppTest shows the canvas as an unknown element and cannot draw on it),
so every page goes through `show` and never calls st_canvas directly.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

CANVAS_SIZE = 280
BACKGROUND = "#000000"
INK = "#FFFFFF"


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
    from streamlit_drawable_canvas import st_canvas

    _register_trimmed_toolbar()

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
    image = result.image_data
    if image is None:
        return None
    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 3 and image.shape[2] == 3:
        # An opaque PNG may come without an alpha channel; the preprocessing expects RGBA.
        image = np.dstack([image, np.full(image.shape[:2], 255, dtype=np.uint8)])
    return image


def show(*, key: str, stroke_width: int = 18, size: int = CANVAS_SIZE, clears: int = 0) -> np.ndarray | None:
    """A white-on-black drawing area, like an MNIST digit; returns RGBA pixels or None while empty.

    Raise `clears` to empty the canvas.
    """
    return render(key=key, stroke_width=stroke_width, size=size, clears=clears)
