"""Two Streamlit replicas on two ports against one Redis and one RQ worker, driven by real Chromium.

A run started through replica A is watched (its filmstrip too), paused, resumed, stopped and
collected after the browser comes back through replica B (the proxy's cookie expired, replica A went away); with Redis down the page
says the training service is unavailable, without a traceback, and works again once it is back.
"""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlparse

import pytest

from cnn_core.service.redis_queue import connect
from tests.app.browser.conftest import screenshot
from tests.app.browser.harness import serve_app, wait_until_idle
from tests.core.service.conftest import require_redis
from tests.core.service.redis_harness import redis_server, supervised_workers, wait_for_workers

STEP = re.compile(r"step \d+ of")


@pytest.fixture(scope="module")
def replicas(chromium_path):
    require_redis()
    with redis_server() as server, supervised_workers(server.url, 1) as worker:
        env = {"CNN_REDIS_URL": server.url}
        with serve_app(env) as replica_a, serve_app(env) as replica_b:
            wait_for_workers(connect(server.url), 1)
            yield server, replica_a.url, replica_b.url, worker


def _open(browser, url: str, path: str, idle: bool = True):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=url)
    page = context.new_page()
    page.set_default_timeout(90_000)
    page.goto(path)
    if idle:  # a page with a live run never goes idle: its fragment reruns every second
        wait_until_idle(page)
    return context, page


def _progress(page):
    return page.locator('[data-testid="stMain"] [data-testid="stProgress"]').get_by_text(STEP)


def _click_until(page, button: str, outcome, tries: int = 3) -> None:
    """Click `button` until `outcome` shows: on a loaded machine the fragment that reruns every second can
    swallow a click (with any runner), and a learner would click again too."""
    for attempt in range(tries):
        try:
            if attempt == 0 or page.get_by_role("button", name=button).count():
                page.get_by_role("button", name=button).click()
            outcome.wait_for(timeout=20_000 if attempt < tries - 1 else 90_000)
            return
        except Exception:
            if attempt == tries - 1:
                screenshot(page, f"redis-replica-b-{button.lower().replace(' ', '-')}-failed")
                raise


def test_a_run_started_on_replica_a_is_stopped_and_kept_through_replica_b(browser, replicas):
    server, url_a, url_b, _ = replicas
    context_a, page = _open(browser, url_a, "/train")
    page.get_by_text("Train on a subset").click()
    wait_until_idle(page)
    images = page.get_by_role("spinbutton", name="Training images")
    images.fill("20000")  # with the multi-batch loop 3,000 × 30 epochs could end before Stop
    images.press("Enter")
    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill("30")  # long enough that Stop lands mid-run on B
    epochs.press("Enter")
    wait_until_idle(page)
    page.get_by_role("button", name="Start training").click()
    _progress(page).wait_for()
    workspace = parse_qs(urlparse(page.url).query)["ws"][0]
    context_a.close()  # the browser leaves replica A

    context_b, page = _open(browser, url_b, f"/train?ws={workspace}", idle=False)
    _progress(page).wait_for()
    first = _progress(page).inner_text()
    deadline = time.monotonic() + 30
    while _progress(page).inner_text() == first and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _progress(page).inner_text() != first  # live on B, fed by the worker through Redis
    # The curve so far was replayed from the run's stream, not only what came after the reattach.
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
    # The filmstrip's frames came through Redis as well: its slider scrubs them while the run goes on.
    page.get_by_role("slider", name=re.compile("Filmstrip")).wait_for()
    screenshot(page, "redis-replica-b-running")
    # Steering reaches the worker through Redis: the run holds, then goes on after Resume.
    page.get_by_role("button", name="Pause").click()
    paused = page.locator('[data-testid="stMain"] [data-testid="stProgress"]').get_by_text(re.compile("Paused at epoch"))
    paused.wait_for()
    held = paused.inner_text()
    time.sleep(2.5)
    assert paused.inner_text() == held
    screenshot(page, "redis-replica-b-paused")
    _click_until(page, "Resume", page.get_by_role("button", name="Pause"))
    _progress(page).filter(has_not_text="Paused").wait_for()
    _click_until(page, "Stop training", page.get_by_text(re.compile("Stopped (during|after) epoch")))
    wait_until_idle(page)
    assert page.get_by_text("is now your active model").count() >= 1
    assert page.locator('[data-testid="stException"]').count() == 0
    screenshot(page, "redis-replica-b-stopped")

    server.stop()
    page.reload()
    wait_until_idle(page)
    page.get_by_text(re.compile("training service is unavailable")).first.wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in page.inner_text('[data-testid="stMain"]')
    screenshot(page, "redis-down")

    server.start()  # an empty Redis on the same port: the app carries on by itself
    page.reload()
    wait_until_idle(page)
    page.get_by_role("button", name="Start training").wait_for()
    assert page.get_by_text(re.compile("unavailable")).count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0
    context_b.close()
