"""AppTest helpers: open a page through app.py's navigation, and fake the drawing canvas."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO_ROOT
from ui.components import canvas as canvas_component

APP = REPO_ROOT / "app.py"
# Saved models go to a throw-away folder, never into the repository. Set at import time because
# the app caches its settings once per process.
os.environ["CNN_MODELS_DIR"] = tempfile.mkdtemp(prefix="cnn-app-tests-")
os.environ["CNN_WORKSPACES_DIR"] = tempfile.mkdtemp(prefix="cnn-app-workspaces-")

# Strokes on the 280×280 canvas, in canvas pixels, as a person would draw them.
STROKES = {
    "1": [[(150, 40), (145, 240)]],
    "7": [[(70, 50), (210, 50), (120, 240)]],
    "0": [[(140, 40), (200, 80), (210, 160), (170, 235), (110, 235), (70, 160), (80, 80), (140, 40)]],
}


def drawing(digit: str, size: int = canvas_component.CANVAS_SIZE, width: int = 18) -> np.ndarray:
    """A canvas image (RGBA uint8, white ink on black) with `digit` drawn in thick strokes."""
    picture = Image.new("RGBA", (size, size), (0, 0, 0, 255))
    pen = ImageDraw.Draw(picture)
    for stroke in STROKES[digit]:
        pen.line(stroke, fill=(255, 255, 255, 255), width=width, joint="curve")
    return np.asarray(picture)


class FakeCanvas:
    """Stands in for the browser canvas: whatever `image` holds is what the user 'drew'.

    Like the real component, a new `clears` count empties it.
    """

    def __init__(self) -> None:
        self.image: np.ndarray | None = None
        self.keys: list[str] = []
        self.clears: list[int] = []

    def render(self, *, key: str, stroke_width: int, size: int, clears: int) -> np.ndarray | None:
        if self.clears and clears != self.clears[-1]:
            self.image = None
        self.keys.append(key)
        self.clears.append(clears)
        return self.image


@pytest.fixture
def fake_canvas(monkeypatch) -> FakeCanvas:
    fake = FakeCanvas()
    monkeypatch.setattr(canvas_component, "render", fake.render)
    return fake


@pytest.fixture
def open_page(fake_canvas) -> Callable[[str], AppTest]:
    """Open a page (file stem under pages/) in a fresh session, the way a visitor's browser would."""

    def _open(page: str) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=120)
        at.run()
        if page != "home":
            at.switch_page(f"pages/{page}.py").run()
        return at

    return _open


def run_until(at: AppTest, done: Callable[[AppTest], bool], *, limit_s: float = 180, pause_s: float = 0.5) -> AppTest:
    """Rerun the page until `done` holds; fail after `limit_s` so a hung job cannot hang the suite."""
    deadline = time.monotonic() + limit_s
    while not done(at):
        if time.monotonic() > deadline:
            pytest.fail(f"The page did not reach the expected state within {limit_s:.0f} s.")
        time.sleep(pause_s)
        at.run()
    return at


def texts(at: AppTest) -> str:
    """Everything the page wrote as markdown, captions, metrics and alerts, in one string."""
    parts = [element.value for element in at.markdown]
    parts += [element.value for element in at.caption]
    parts += [str(element.value) for element in at.metric]
    for alerts in (at.error, at.warning, at.info, at.success):
        parts += [element.value for element in alerts]
    parts += [element.value for element in at.title] + [element.value for element in at.subheader]
    return "\n".join(parts)
