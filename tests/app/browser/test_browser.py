"""The app in a real browser: every page opens cleanly, a drawn digit is recognised, training runs live."""

from __future__ import annotations

import re
import time
from urllib.parse import urlencode

import pytest

from cnn_core.engine.specs import Dense, Experiment, Flatten, ModelSpec, TrainingConfig
from cnn_core.service import persistence
from cnn_core.workshop import sharing
from tests.app.browser.conftest import screenshot
from tests.app.browser.harness import LINK_SECRET, draw_stroke, wait_until_idle

pytestmark = pytest.mark.browser

PAGES = ["", "draw", "feature_maps", "train", "own_classes", "evaluate", "runs", "playground", "datasets", "exercises", "classroom"]
needs_default_models = pytest.mark.skipif(
    not (persistence.MODELS_DIR / "default_mnist.keras").exists(),
    reason="the default models are missing; create them with `make models`",
)


def test_a_shared_link_opened_first_on_a_fresh_server_gets_the_full_app(page):
    # Runs first on a fresh server: a deep link must not bypass app.py's navigation (see ui/entry.py).
    experiment = Experiment(
        ModelSpec((Flatten(), Dense(32), Dense(10, "softmax")), name="shared_dense"),
        TrainingConfig(dataset="fashion_mnist", epochs=2),
    )
    link = sharing.to_query_params(experiment, locked={"layers"}, secret=LINK_SECRET.encode())
    page.goto(f"/train?{urlencode(link)}")
    wait_until_idle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    for section in ("Start", "See", "Train", "Explore", "Workshop"):
        assert sidebar.get_by_text(section, exact=True).count() == 1
    assert page.get_by_text("1 · Flatten").count() == 1
    assert page.get_by_text("fixed: Layers (the whole architecture)").count() == 1
    assert page.locator('[data-testid="stException"]').count() == 0


@pytest.mark.parametrize("path", PAGES)
def test_every_page_opens_without_an_exception(page, path):
    if path in ("draw", "feature_maps", "evaluate") and not (persistence.MODELS_DIR / "default_mnist.keras").exists():
        pytest.skip("the default models are missing; create them with `make models`")
    page.goto(f"/{path}")
    wait_until_idle(page)
    screenshot(page, path or "home")
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stMain"] h1').first.inner_text().strip()


@needs_default_models
def test_drawn_digits_are_recognised(page):
    page.goto("/draw")
    wait_until_idle(page)
    for digit, strokes in (("1", [[(140, 40), (138, 240)]]), ("7", [[(70, 50), (210, 50), (120, 240)]])):
        canvas = page.locator("canvas.upper-canvas")
        canvas.wait_for()
        for stroke in strokes:
            draw_stroke(page, canvas, stroke)
        prediction = page.locator('[data-testid="stMetricValue"]')
        prediction.wait_for(timeout=60_000)
        wait_until_idle(page)
        assert prediction.first.inner_text().strip() == digit
        assert page.locator('[data-testid="stException"]').count() == 0
        screenshot(page, f"draw-{digit}")
        page.get_by_role("button", name="Clear").click()
        page.get_by_text("Draw a digit on the black square").wait_for()
        wait_until_idle(page)


def progress_step(page) -> int | None:
    text = page.locator('[data-testid="stMain"] [data-testid="stProgress"]').first.inner_text()
    match = re.search(r"step (\d+) of", text)
    return int(match.group(1)) if match else None


def test_training_shows_live_curves_and_stops(page):
    page.goto("/train")
    wait_until_idle(page)
    page.get_by_text("Train on a subset").click()
    wait_until_idle(page)
    images = page.get_by_role("spinbutton", name="Training images")
    images.fill("20000")  # with the multi-batch loop 3,000 × 30 epochs could end before Stop
    images.press("Enter")
    epochs = page.get_by_role("spinbutton", name="Epochs")
    # Long enough that Stop always lands mid-run, however fast the machine trains.
    epochs.fill("30")
    epochs.press("Enter")
    wait_until_idle(page)
    page.get_by_role("button", name="Start training").click()

    page.locator('[data-testid="stMain"] [data-testid="stProgress"]').get_by_text(re.compile(r"step \d+ of")).wait_for(timeout=90_000)
    first = progress_step(page)
    deadline = time.monotonic() + 30
    while progress_step(page) == first and time.monotonic() < deadline:
        time.sleep(0.5)
    # The fragment redraws the progress (and the curves) while the script is otherwise idle.
    assert progress_step(page) != first
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=60_000)
    # The Train page shows the run live itself, without the sidebar's indicator of the same run
    # (every other page shows it: tests/app/test_train.py).
    assert page.locator('[data-testid="stSidebar"]').get_by_text("Watch it on the Train page").count() == 0
    screenshot(page, "train-running")

    page.get_by_role("button", name="Stop training").click()
    page.get_by_text(re.compile("Stopped (during|after) epoch")).wait_for(timeout=90_000)
    wait_until_idle(page)
    # The curves drawn while training stay on the page with the result (the filmstrip and the
    # trained model's views add charts of their own below them).
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 2
    assert page.get_by_text(re.compile(r"Stopped (during|after) epoch")).count() >= 1
    assert page.locator('[data-testid="stException"]').count() == 0
    screenshot(page, "train-stopped")
