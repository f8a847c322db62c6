"""ui.plotting figures rendered to PNG once and cached, for figures a page redraws often.

Rendering a small Matplotlib figure costs about 0.2 s here; a slider that walks over a grid asks
for the same few figures again and again, so they are drawn once per distinct input.
"""

from __future__ import annotations

import io
from typing import Any

import streamlit as st
from matplotlib.figure import Figure

from ui import plotting


@st.cache_data(max_entries=512, show_spinner=False)
def png(plot: str, *args: Any, **kwargs: Any) -> bytes:
    """`plotting.<plot>(*args, **kwargs)` as PNG bytes (hashable arguments: arrays, numbers, text)."""
    figure = getattr(plotting, plot)(*args, **kwargs)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=150, bbox_inches="tight")
    return buffer.getvalue()


def show(plot: str, *args: Any, **kwargs: Any) -> None:
    """Draw the figure at its natural size (shrunk to fit the column), so equal cells look equal."""
    st.image(png(plot, *args, **kwargs))


def show_figure(figure: Figure, dpi: int = 130) -> None:
    """Draw a one-off figure (not worth caching) as a PNG at a modest resolution, which renders faster."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    st.image(buffer.getvalue())
