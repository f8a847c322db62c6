"""One way to explain a convolution cell, used by the playground's toy example and by the real network.

The same words, colours and arithmetic layout in both places: the window in the layer below
(outlined in orange), × the kernel's weights, = the element-wise products (red adds, blue
subtracts), then "sum + bias = preactivation → activation = value". The grids are small
Vega-Lite charts drawn by the browser, so a click costs the server milliseconds, not a figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import streamlit as st

ACCENT = "#e4572e"
CELL_PX = 30
WORDS = {
    "window": "window",
    "weights": "× weights",
    "products": "= products",
}
ACTIVATION_LINES = {
    "relu": "ReLU keeps positives and turns negatives into 0: max(0, {pre}) = **{value}**",
    "linear": "no activation: the output is the sum itself, **{value}**",
    "sigmoid": "sigmoid squashes it into 0…1: 1 / (1 + e^−({pre})) = **{value}**",
    "tanh": "tanh squashes it into −1…1: tanh({pre}) = **{value}**",
}


def _number(value: float, decimals: int) -> str:
    return f"{round(float(value), decimals) + 0.0:.{decimals}f}"


def grid_spec(matrix: np.ndarray, *, title: str = "", highlight: tuple[int, int, int, int] | None = None,
              signed: bool = False, decimals: int = 2, numbers: bool = True, cell_px: int = CELL_PX,
              selectable: bool = False, selected: tuple[int, int] | None = None) -> dict:
    """A Vega-Lite spec drawing `matrix` as coloured cells, numbers written in, a window outlined.

    `signed` uses the red–blue scale centred on 0 (weights, products, signed outputs); otherwise
    greys, darker for larger. `highlight` is (row, column, height, width), clipped to the matrix.
    `selectable` adds a click selection named "cell" over the fields r and c.
    """
    values = np.asarray(matrix, dtype=np.float64)
    if values.ndim == 1:
        values = values[np.newaxis]
    rows, cols = values.shape
    if cell_px == CELL_PX and max(rows, cols) <= 5:
        cell_px = 42  # a kernel's few cells, large enough to read
    finite = values[np.isfinite(values)]
    limit = float(np.abs(finite).max()) if finite.size else 1.0
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    data = []
    for (r, c), v in np.ndenumerate(values):
        if not np.isfinite(v):
            data.append({"r": r, "c": c, "v": None, "t": "", "dark": False})
            continue
        dark = abs(v) > 0.6 * limit if signed else (high > low and v > (low + high) / 2)
        data.append({"r": r, "c": c, "v": float(v), "t": _number(v, decimals), "dark": bool(dark)})
    scale = ({"scheme": "redblue", "reverse": True, "domain": [-(limit or 1.0), limit or 1.0]} if signed
             else {"scheme": "greys", "domain": [min(low, 0.0), max(high, low + 1e-9)]})
    x = {"field": "c", "type": "ordinal", "axis": None}
    y = {"field": "r", "type": "ordinal", "axis": None}
    rect = {"mark": {"type": "rect", "stroke": "white", "strokeWidth": 1 if cell_px >= 8 else 0},
            "encoding": {"x": x, "y": y,
                         "color": {"field": "v", "type": "quantitative", "scale": scale, "legend": None},
                         "tooltip": [{"field": "r", "title": "row"}, {"field": "c", "title": "column"},
                                     {"field": "t", "title": "value"}]}}
    if selectable:
        rect["params"] = [{"name": "cell", "select": {"type": "point", "fields": ["r", "c"], "on": "click"}}]
    layers = [rect]
    if numbers:
        layers.append({"mark": {"type": "text", "fontSize": 12 if cell_px >= 40 else 10 if cell_px >= 28 else 8},
                       "encoding": {"x": x, "y": y, "text": {"field": "t"},
                                    "color": {"condition": {"test": "datum.dark", "value": "white"},
                                              "value": "black"}}})
    boxes = []
    if highlight is not None:
        top, left, height, width = highlight
        r0, c0 = max(top, 0), max(left, 0)
        r1, c1 = min(top + height, rows), min(left + width, cols)
        if r1 > r0 and c1 > c0:
            boxes.append({"x": c0 * cell_px, "y": r0 * cell_px, "x2": c1 * cell_px, "y2": r1 * cell_px,
                          "kind": "window"})
    if selected is not None:
        r, c = selected
        boxes.append({"x": c * cell_px, "y": r * cell_px, "x2": (c + 1) * cell_px, "y2": (r + 1) * cell_px,
                      "kind": "picked"})
    if boxes:
        pixels = {"type": "quantitative", "scale": None, "axis": None}
        layers.append({"data": {"values": boxes},
                       "mark": {"type": "rect", "fill": None, "stroke": ACCENT, "strokeWidth": 3},
                       "encoding": {"x": {"field": "x", **pixels}, "y": {"field": "y", **pixels},
                                    "x2": {"field": "x2"}, "y2": {"field": "y2"}}})
    spec = {"data": {"values": data}, "layer": layers, "width": cols * cell_px, "height": rows * cell_px,
            "view": {"stroke": None}, "config": {"view": {"stroke": None}}}
    if title:
        spec["title"] = {"text": title, "fontSize": 12, "fontWeight": "normal", "anchor": "start"}
    return spec


def grid(matrix: np.ndarray, *, key: str | None = None, **options) -> None:
    """Draw one numeric grid (see `grid_spec`)."""
    st.vega_lite_chart(grid_spec(matrix, **options), width="content", key=key)


def grid_row(key: str):
    """A row for grids side by side. A grid keeps its size (its cells must stay readable), so in
    `st.columns` a 9×9 one spilled over its neighbour at 800 px; here one that does not fit moves below."""
    return st.container(horizontal=True, wrap=True, gap="medium", key=f"{key}-grids")


@dataclass(frozen=True)
class ChannelPart:
    """One input channel's share of a convolution cell."""

    label: str  # "channel 3", or "" when there is only one
    below: np.ndarray | None  # the whole map in the layer below, to outline the window in; None: the window only
    patch: np.ndarray  # (k, k)
    weights: np.ndarray  # (k, k)
    products: np.ndarray  # (k, k)
    total: float


@dataclass(frozen=True)
class ConvExplanation:
    where: str  # "output[1, 3]" or "conv2d_4[3, 5], channel 7"
    window: tuple[int, int, int, int]  # (top, left, height, width) in the layer below
    parts: Sequence[ChannelPart]  # strongest first
    channels: int  # how many input channels the cell sums over (parts may show fewer)
    bias: float
    preactivation: float
    activation: str
    value: float
    model_value: float | None = None  # the model's own output, for the check line
    matches: bool | None = None
    decimals: int = 2


def arithmetic(explanation: ConvExplanation) -> list[str]:
    """The lines that add it up, as Markdown (numbers only; never user text)."""
    e, d = explanation, explanation.decimals
    lines = []
    if e.channels == 1 and e.parts:
        part = e.parts[0]
        terms = " + ".join(f"({_number(x, d)}×{w:.3g})" for x, w in
                           zip(part.patch.ravel(), part.weights.ravel(), strict=True))
        lines.append(f"{e.where} = {terms} = **{_number(part.total, d)}**")
        total = part.total
    else:
        total = e.preactivation - e.bias
        shown = " + ".join(f"({_number(p.total, d)})" for p in e.parts[:6])
        rest = "" if len(e.parts) >= e.channels and len(e.parts) <= 6 else f" + … ({e.channels} channels in all)"
        lines.append(f"{e.where}: the products of every channel add up to {shown}{rest} = **{_number(total, d)}**")
    if e.bias != 0 or e.channels > 1:
        # Escaped: a line starting with "+" would become a Markdown list item.
        lines.append(f"\\+ bias {_number(e.bias, d)} = **{_number(e.preactivation, d)}**")
    template = ACTIVATION_LINES.get(e.activation, e.activation + "({pre}) = **{value}**")
    lines.append(template.format(pre=_number(e.preactivation, d), value=_number(e.value, d)))
    if e.model_value is not None:
        mark = "✓" if e.matches else "✗"
        lines.append(f"equals the model's own output: {mark} (the model computed {e.model_value:.6g})")
    return lines


def show_part(part: ChannelPart, window: tuple[int, int, int, int], decimals: int, key: str) -> None:
    """One channel: its window in the layer below, × weights, = products, and what they add to."""
    _, _, height, width = window
    row = grid_row(key)
    with row:
        if part.below is not None and max(part.below.shape) <= 32:
            numbers = max(part.below.shape) <= 9
            grid(part.below, title=f"{part.label} {WORDS['window']}".strip(), highlight=window, decimals=decimals,
                 numbers=numbers, cell_px=CELL_PX if numbers else max(4, 140 // max(part.below.shape)),
                 key=f"{key}-below")
        else:
            grid(part.patch, title=f"{part.label} {WORDS['window']}".strip(), decimals=decimals, key=f"{key}-patch")
        grid(part.weights, title=WORDS["weights"], signed=True, decimals=decimals, key=f"{key}-weights")
        grid(part.products, title=WORDS["products"], signed=True, decimals=decimals, key=f"{key}-products")
    st.caption(f"{part.label + ': ' if part.label else ''}the {height * width} products add up to "
               f"{_number(part.total, decimals)}")


def show(explanation: ConvExplanation, *, key: str, parts_shown: int = 3) -> None:
    """The whole explanation: the strongest channels' grids, then the arithmetic lines."""
    for number, part in enumerate(explanation.parts[:parts_shown]):
        show_part(part, explanation.window, explanation.decimals, f"{key}-{number}")
    for line in arithmetic(explanation):
        st.markdown(line)
