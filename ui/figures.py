"""ui.plotting figures rendered to PNG once and cached, for figures a page redraws often.

Rendering a small Matplotlib figure costs about 0.2 s here; a slider that walks over a grid asks
for the same few figures again and again, so they are drawn once per distinct input. One cached
function per figure: each has its own cache, and a page calls the figure it means by name.
"""

from __future__ import annotations

import io

import streamlit as st
from matplotlib.figure import Figure

from ui import plotting


def to_png(figure: Figure, dpi: int = 150) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


@st.cache_data(max_entries=256, show_spinner=False)
def filter_grid(*args, **kwargs) -> bytes:
    """`plotting.filter_grid` as PNG bytes."""
    return to_png(plotting.filter_grid(*args, **kwargs))


@st.cache_data(max_entries=256, show_spinner=False)
def journey(*args, **kwargs) -> bytes:
    """`plotting.journey` as PNG bytes."""
    return to_png(plotting.journey(*args, **kwargs))


@st.cache_data(max_entries=512, show_spinner=False)
def numeric_grid(*args, **kwargs) -> bytes:
    """`plotting.numeric_grid` as PNG bytes."""
    return to_png(plotting.numeric_grid(*args, **kwargs))


def show(png: bytes) -> None:
    """Draw a figure's PNG at its natural size (shrunk to fit the column), so equal cells look equal."""
    st.image(png)
