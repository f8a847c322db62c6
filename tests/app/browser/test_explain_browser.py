"""The Explain page in a real browser: a click on a feature-map cell explains exactly that cell."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cnn_core.engine import datasets, explain
from cnn_core.service import persistence
from tests.app.browser.conftest import screenshot
from tests.app.browser.harness import wait_until_idle

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (persistence.MODELS_DIR / "default_mnist.keras").exists(),
                       reason="the default models are missing; create them with `make models`"),
]



def _wait_for_change(locator, old: str, page, timeout_s: float = 60) -> str:
    for _ in range(int(timeout_s * 10)):
        if locator.input_value() != old:
            return locator.input_value()
        page.wait_for_timeout(100)
    raise AssertionError(f"The picker still shows {old!r} after the click.")


def test_clicking_a_feature_map_cell_shows_its_sum(page):
    page.goto("/explain")
    wait_until_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    chart = page.locator(".st-key-explain-map .vega-embed canvas, .st-key-explain-map .vega-embed svg.marks").first
    chart.scroll_into_view_if_needed()
    chart.wait_for()
    box = chart.bounding_box()
    # The 28×28 grid fills the chart's drawing area.
    row, col = 10, 7
    page.mouse.click(box["x"] + (col + 0.5) * box["width"] / 28, box["y"] + (row + 0.5) * box["height"] / 28)
    rows = page.locator('[data-testid="stNumberInput"]').filter(has_text="Row (0–27)").locator("input")
    cols = page.locator('[data-testid="stNumberInput"]').filter(has_text="Column (0–27)").locator("input")
    assert (rows.input_value(), cols.input_value()) == ("14", "14")  # the centre, before the click
    _wait_for_change(rows, "14", page)
    wait_until_idle(page)
    # Vega may draw the cells a little out of square, so the cell hit is the aimed one or a neighbour;
    # the pickers say which one it was, and the page must explain exactly that one.
    row, col = int(rows.input_value()), int(cols.input_value())
    assert abs(row - 10) <= 1 and abs(col - 7) <= 1

    data = datasets.load("mnist")
    image = data.x_test[int(np.flatnonzero(data.y_test == 0)[0]), ..., 0]
    trace = explain.neuron_trace(persistence.load_default("mnist").model, image, 1, row, col, 0)
    formula = page.get_by_text(re.compile(rf"^conv2d_1\[{row}, {col}\], channel 0 = ")).first
    # Compared as numbers: the page writes a sum that rounds to zero as "0.00", Python's format "-0.00".
    shown = float(formula.inner_text().strip().rsplit("= ", 1)[1])
    assert shown == pytest.approx(trace.preactivation - trace.bias, abs=0.006)
    assert page.get_by_text("equals the model's own output: ✓").count() == 1
    screenshot(page, "explain-clicked")
