"""Work survives a reload, a second tab and a server restart; workspaces never mix; locks hold.

One server (and its workspaces folder) for the module, so the restart test can start a second
server on the same folder. Runs are tiny (a few hundred images, one epoch).
"""

from __future__ import annotations

import re
import tempfile
import time
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from cnn_core.engine.specs import Dense, Experiment, Flatten, ModelSpec, TrainingConfig
from cnn_core.service import persistence
from cnn_core.workshop import sharing
from tests.app.browser.conftest import screenshot
from tests.app.browser.harness import LINK_SECRET, serve_app, wait_until_idle
from tests.app.browser.test_layout import assert_whole_button

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (persistence.MODELS_DIR / "default_mnist.keras").exists(),
                       reason="the default models are missing; create them with `make models`"),
]

FOLDERS = {"CNN_WORKSPACES_DIR": tempfile.mkdtemp(prefix="cnn-ws-test-"),
           "CNN_MODELS_DIR": tempfile.mkdtemp(prefix="cnn-ws-models-")}


@pytest.fixture(scope="module")
def server(chromium_path):
    with serve_app(extra_env=FOLDERS) as app:
        yield app


@pytest.fixture
def new_context(browser, server):
    contexts = []

    def make(width: int = 1400):
        context = browser.new_context(viewport={"width": width, "height": 1000}, base_url=server.url)
        contexts.append(context)
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        return tab

    yield make
    for context in contexts:
        context.close()


def workspace_of(page) -> str:
    ids = parse_qs(urlparse(page.url).query).get("ws", [])
    assert len(ids) == 1, page.url
    return ids[0]


def wait_for_workspace(page) -> str:
    deadline = time.monotonic() + 30
    while "ws=" not in page.url and time.monotonic() < deadline:
        time.sleep(0.1)
    return workspace_of(page)


def open_in_sidebar(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    wait_until_idle(page)


def small_run_settings(page, epochs: int = 1, images: int = 300) -> None:
    page.get_by_text("Train on a subset").click()
    wait_until_idle(page)
    field = page.get_by_role("spinbutton", name="Training images")
    field.fill(str(images))
    field.press("Enter")
    field = page.get_by_role("spinbutton", name="Epochs")
    field.fill(str(epochs))
    field.press("Enter")
    wait_until_idle(page)


def train_a_small_model(page) -> str:
    """Train Quick-sized run on the Train page; returns the new model's name."""
    page.goto("/train")
    wait_until_idle(page)
    small_run_settings(page)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("The model is now your active model").wait_for(timeout=180_000)
    wait_until_idle(page)
    text = page.locator('[data-testid="stMain"]').inner_text()
    return re.search(r"active model: (.+?)\. Try it", text).group(1)


def picker_options(page) -> str:
    page.locator('[data-testid="stSelectbox"]').first.click()
    options = page.locator('[data-testid="stSelectboxVirtualDropdown"]').inner_text()
    page.keyboard.press("Escape")
    return options


def test_reload_new_tab_and_restart_keep_models_runs_and_the_picker(new_context, browser):
    page = new_context()
    name = train_a_small_model(page)
    workspace = wait_for_workspace(page)

    # A page link drops query parameters; the app puts the workspace back.
    open_in_sidebar(page, "Compare runs")
    assert wait_for_workspace(page) == workspace
    page.reload()
    wait_until_idle(page)
    assert workspace_of(page) == workspace
    assert page.get_by_text("No runs yet").count() == 0
    assert name in page.locator('[data-testid="stMain"]').inner_text()

    # A second tab with the same address sees the same models.
    other_tab = page.context.new_page()
    other_tab.goto(f"/draw?ws={workspace}")
    wait_until_idle(other_tab)
    assert name in picker_options(other_tab)

    # A restarted server (a second one on the same folder) opens the same workspace.
    with serve_app(extra_env=FOLDERS) as restarted:
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=restarted.url)
        try:
            fresh = context.new_page()
            fresh.set_default_timeout(60_000)
            fresh.goto(f"/draw?ws={workspace}")
            wait_until_idle(fresh)
            options = picker_options(fresh)
            assert name in options and "MNIST digits" in options
            fresh.goto(f"/runs?ws={workspace}")
            wait_until_idle(fresh)
            assert name in fresh.locator('[data-testid="stMain"]').inner_text()
            screenshot(fresh, "workspace-runs-after-restart")
        finally:
            context.close()


def test_two_browsers_never_share_a_workspace_and_start_over_empties_ones_own(new_context):
    first = new_context()
    name = train_a_small_model(first)
    mine = wait_for_workspace(first)

    second = new_context()
    second.goto("/runs")
    wait_until_idle(second)
    theirs = wait_for_workspace(second)
    assert theirs != mine and len(theirs) >= 22
    assert second.get_by_text("No runs yet").count() == 1
    second.goto(f"/draw?ws={theirs}")
    wait_until_idle(second)
    assert name not in picker_options(second)

    # Start over: the first browser's work is gone and it gets a new, empty workspace.
    first.goto(f"/?ws={mine}")
    wait_until_idle(first)
    assert name in first.locator('[data-testid="stMain"]').inner_text()
    first.get_by_role("button", name="Start over").click()
    first.get_by_role("button", name="Yes, start over").click()
    wait_until_idle(first)
    assert wait_for_workspace(first) != mine
    assert first.get_by_text("0 models of your own, 0 training runs").count() == 1
    first.goto(f"/runs?ws={mine}")
    wait_until_idle(first)
    assert first.get_by_text("No runs yet").count() == 1


def test_a_running_job_reattaches_after_a_reload_and_stops(new_context):
    page = new_context()
    page.goto("/train")
    wait_until_idle(page)
    # Long enough that the reload and Stop land mid-run, even with bfloat16 on a fast CPU (minutes).
    small_run_settings(page, epochs=60, images=20000)
    page.get_by_role("button", name="Start training").click()
    progress = page.locator('[data-testid="stMain"] [data-testid="stProgress"]')
    progress.get_by_text(re.compile(r"step \d+ of")).wait_for(timeout=120_000)
    workspace = wait_for_workspace(page)

    page.reload()
    progress.get_by_text(re.compile(r"step \d+ of")).wait_for(timeout=60_000)
    assert workspace_of(page) == workspace
    # The settings the run was started with are still in the form.
    assert page.get_by_role("spinbutton", name="Epochs").input_value() == "60"
    assert page.get_by_role("spinbutton", name="Training images").input_value() == "20000"
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Stop training").click()
    page.get_by_text(re.compile("Stopped (during|after) epoch")).wait_for(timeout=90_000)
    wait_until_idle(page)
    screenshot(page, "workspace-stopped-after-reload")
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_model_saved_by_name_reopens_in_every_picker_and_can_be_deleted(new_context):
    page = new_context()
    train_a_small_model(page)
    screenshot(page, "workspace-before-save")
    field = page.locator('[data-testid="stTextInput"]').filter(has_text="Save on this server as").locator("input")
    field.fill("kept_cnn")
    field.press("Enter")
    wait_until_idle(page)
    page.get_by_role("button", name="Save", exact=True).click()
    message = page.get_by_text("Saved as “kept_cnn (saved)”")
    message.wait_for()
    assert "/" not in message.inner_text()

    # Another browser on this (local) server finds it, with its dataset and accuracy, on every page.
    other = new_context()
    for path in ("draw", "feature_maps", "evaluate"):
        other.goto(f"/{path}")
        wait_until_idle(other)
        assert re.search(r"kept_cnn \(saved\) \(MNIST digits, \d+\.\d\d%\)", picker_options(other)), path
    other.goto("/draw")
    wait_until_idle(other)
    other.locator('[data-testid="stSelectbox"]').first.click()
    other.get_by_role("option", name=re.compile("kept_cnn")).click()
    wait_until_idle(other)
    other.get_by_role("button", name="Delete").click()
    other.get_by_role("button", name="Delete this model").click()
    wait_until_idle(other)
    assert "kept_cnn" not in picker_options(other)


def locked_link(locked) -> str:
    experiment = Experiment(
        ModelSpec((Flatten(), Dense(32), Dense(10, "softmax")), name="workshop_dense"),
        TrainingConfig(learning_rate=0.002, batch_size=100, epochs=2, validation_split=0.1, restore_best=True),
    )
    return urlencode(sharing.to_query_params(experiment, locked=locked, secret=LINK_SECRET.encode()))


def test_the_participants_view_of_a_locked_link_cannot_be_unlocked(new_context):
    page = new_context()
    page.goto(f"/train?{locked_link({'layers', 'learning_rate', 'restore_best'})}")
    wait_until_idle(page)
    main = page.locator('[data-testid="stMain"]')
    assert main.get_by_text("fixed: Layers (the whole architecture), Learning rate, Keep the best").count() == 1
    assert page.get_by_role("button", name=re.compile("nlock")).count() == 0
    assert page.get_by_role("checkbox", name="Keep the best validation epoch").is_disabled()
    # The exact values of the link, not the nearest slider stops.
    assert page.get_by_role("slider", name="Learning rate").get_attribute("aria-valuetext") == "0.002"
    assert page.get_by_role("slider", name="Batch size").get_attribute("aria-valuetext") == "100"
    screenshot(page, "workspace-locked-link")

    # Removing the lock from the address does not unlock it: the edited link is refused and the
    # workspace keeps the instructor's lock.
    workspace = wait_for_workspace(page)
    edited = {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items() if k != "lock"}
    page.goto(f"/train?{urlencode(edited)}")
    wait_until_idle(page)
    assert workspace_of(page) == workspace
    assert main.get_by_text("was changed after it was made").count() == 1
    assert page.get_by_role("checkbox", name="Keep the best validation epoch").is_disabled()
    assert page.get_by_role("button", name="Reset", exact=True).is_disabled()
    # So does a reload on another page.
    page.goto(f"/?ws={workspace}")
    wait_until_idle(page)
    page.goto(f"/train?ws={workspace}")
    wait_until_idle(page)
    assert page.get_by_role("button", name="Reset", exact=True).is_disabled()

    # A fresh browser with the edited link gets nothing of it.
    fresh = new_context()
    edited.pop("ws")
    fresh.goto(f"/train?{urlencode(edited)}")
    wait_until_idle(fresh)
    assert fresh.get_by_text("was changed after it was made").count() == 1
    assert fresh.get_by_text("1 · Flatten").count() == 0
    assert not fresh.get_by_role("button", name="Reset", exact=True).is_disabled()


def test_a_paused_run_survives_a_reload_and_resumes_to_the_end(new_context):
    page = new_context()
    page.goto("/train")
    wait_until_idle(page)
    small_run_settings(page, epochs=4, images=3000)
    page.get_by_role("button", name="Start training").click()
    progress = page.locator('[data-testid="stMain"] [data-testid="stProgress"]')
    progress.get_by_text(re.compile(r"step \d+ of")).wait_for(timeout=120_000)
    page.get_by_role("button", name="Pause").click()
    progress.get_by_text(re.compile("Paused at epoch")).wait_for(timeout=60_000)
    workspace = wait_for_workspace(page)
    paused_at = progress.inner_text()

    page.reload()
    progress.get_by_text(re.compile("Paused at epoch")).wait_for(timeout=60_000)
    assert workspace_of(page) == workspace
    # Still paused where it was: not a step further, with the curves so far on screen.
    page.wait_for_timeout(3000)
    assert progress.inner_text() == paused_at
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=60_000)
    assert page.get_by_role("button", name="Pause").count() == 0
    screenshot(page, "workspace-paused-after-reload")
    page.get_by_role("button", name="Resume").click()
    page.get_by_text("The model is now your active model").wait_for(timeout=240_000)
    wait_until_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_finished_runs_result_is_still_there_after_a_reload(new_context):
    """The result of the last run (message, curves, filmstrip, Continue, download, save) outlives the session."""
    page = new_context()
    name = train_a_small_model(page)
    main = page.locator('[data-testid="stMain"]')
    success = main.locator('[data-testid="stAlertContentSuccess"]').first.inner_text()
    charts = main.locator('[data-testid="stVegaLiteChart"]').count()
    slider = page.get_by_role("slider", name=re.compile("Filmstrip"))
    frame = slider.get_attribute("aria-valuetext")
    assert charts >= 2 and slider.count() == 1

    page.reload()
    wait_until_idle(page)
    page.get_by_text("The model is now your active model").wait_for(timeout=30_000)
    wait_until_idle(page)
    assert f"active model: {name}." in main.inner_text()
    assert main.locator('[data-testid="stAlertContentSuccess"]').first.inner_text() == success
    assert main.locator('[data-testid="stVegaLiteChart"]').count() == charts
    assert slider.count() == 1 and slider.get_attribute("aria-valuetext") == frame
    for button in ("Continue training", "Save", "Start training"):
        assert page.get_by_role("button", name=button, exact=True).count() == 1, button
    assert page.get_by_role("button", name="Download the model (.keras)").count() == 1
    screenshot(page, "workspace-result-after-reload")
    assert page.locator('[data-testid="stException"]').count() == 0
    # Before, at 800 px (sidebar open): "Continue tr…" and "Download …" in four equal columns.
    page.set_viewport_size({"width": 800, "height": 1000})
    page.wait_for_timeout(800)
    for button in ("Continue training", "Download as script", "Download as notebook"):
        assert_whole_button(page, button)
