"""The drawing canvas: a thin wrapper around streamlit-drawable-canvas.

Tests replace `render` (AppTest shows the canvas as an unknown element and cannot draw on it),
so every page goes through `show` and never calls st_canvas directly.
"""

from __future__ import annotations

import numpy as np

CANVAS_SIZE = 280
BACKGROUND = "#000000"
INK = "#FFFFFF"


def render(*, key: str, stroke_width: int, size: int, clears: int) -> np.ndarray | None:
    """Draw the real canvas; return its RGBA pixels (H, W, 4) uint8, or None before the first stroke.

    `clears` counts the Clear presses: a new count empties the canvas in place. A new key would
    empty it too, but it mounts a new canvas, and a stroke drawn while that one starts up is lost.
    """
    # Imported here: the component registers itself with the running Streamlit server on import.
    from streamlit_drawable_canvas import st_canvas

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
