"""Layouts that hold at every window width, from a 1400 px desktop to a 400 px phone.

`st.columns` splits the width by ratio, so at 800 px (sidebar open) a column can be narrower than
the 280 px canvas or nine kernel cells, and the contents are clipped. These rows use wrapping
flex containers instead: a part with a fixed width keeps it, the others share what is left and
move below when there is not enough room.
"""

from __future__ import annotations

import streamlit as st

from ui.components import canvas

# The canvas plus its iframe's border.
CANVAS_COLUMN_PX = canvas.CANVAS_SIZE + 4
# Below this width a stretching part moves under the fixed one instead of being squeezed.
STRETCH_MIN = "16rem"
# A part with a row of controls in it (the layer editor's rows) needs more before it moves down.
WIDE_MIN = "22rem"
# A column of single controls (a select box, a slider) reads well down to this.
NARROW_MIN = "12rem"

# A keyed container inside a horizontal one sits in a wrapper element: the wrapper is the flex item.
CSS = f"""
<style>
[data-testid="stLayoutWrapper"]:has(> [class*="st-key-layout-stretch-"]) {{
  min-width: min({STRETCH_MIN}, 100%); flex: 1 1 {STRETCH_MIN} !important; }}
[data-testid="stLayoutWrapper"]:has(> [class*="st-key-layout-wide-"]) {{
  min-width: min({WIDE_MIN}, 100%); flex: 1 1 {WIDE_MIN} !important; }}
[data-testid="stLayoutWrapper"]:has(> [class*="st-key-layout-narrow-"]) {{
  min-width: min({NARROW_MIN}, 100%); flex: 1 1 {NARROW_MIN} !important; }}
</style>
"""


def apply() -> None:
    """The few style rules the rows below need; call once per page that uses them."""
    st.html(CSS)


def wrapping_row(key: str, widths: list[int | str | None], *, gap: str = "large") -> list:
    """Containers side by side: an int is a fixed width in pixels, None takes a share of the rest
    ("wide": a share, but at least WIDE_MIN; "narrow": at least NARROW_MIN).

    A part that no longer fits moves to the next line, so nothing is ever squeezed below its width
    (a stretching part below STRETCH_MIN).
    """
    row = st.container(horizontal=True, wrap=True, gap=gap, key=f"layout-row-{key}")
    return [
        row.container(key=f"layout-stretch-{key}-{index}") if width is None
        else row.container(key=f"layout-wide-{key}-{index}") if width == "wide"
        else row.container(key=f"layout-narrow-{key}-{index}") if width == "narrow"
        else row.container(width=width, key=f"layout-fixed-{key}-{index}")
        for index, width in enumerate(widths)
    ]


def fixed_and_stretch(key: str, fixed_px: int, *, gap: str = "large"):
    """Two containers in a row: one exactly `fixed_px` wide, one taking the rest (below it when narrow)."""
    return wrapping_row(key, [fixed_px, None], gap=gap)


def canvas_columns(key: str):
    """The canvas column (always wide enough for the whole canvas) and a column beside or below it."""
    return fixed_and_stretch(key, CANVAS_COLUMN_PX)
