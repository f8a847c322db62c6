"""What the Embedding map and Health views cost a host's web server in memory (resident set size).

A real `streamlit run app.py` in host mode (CNN_HOST_MODE=1: runs train in worker processes, so
the web server itself trains nothing), driven by headless Chromium: open the Train page, train a
tiny run, open the embedding map, then the health check, and read the server process's RSS after
each step (its worker processes not counted). The views should cost the test slice they use
(2,000 images) and its hover pictures once per process, never the 60,000-image training set
(188 MB as float32 for MNIST). A second visitor opening the same views shows what each further
visitor costs.

    .venv/bin/python -m bench.inside_model_rss
"""

from __future__ import annotations

import os
import re
import time

GOAL_MB = 60  # what the first visitor's two views may add to the server: the slice, pictures, maps


def _rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def _train_and_open_views(page, wait_until_idle) -> None:
    page.goto("/train")
    wait_until_idle(page)
    page.get_by_text("Train on a subset", exact=True).click()
    wait_until_idle(page)
    field = page.get_by_role("spinbutton", name="Training images")
    field.fill("300")
    field.press("Enter")
    field = page.get_by_role("spinbutton", name="Epochs")
    field.fill("1")
    field.press("Enter")
    wait_until_idle(page)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("The model is now your active model").wait_for(timeout=300_000)
    wait_until_idle(page)


def run(quick: bool) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.app.browser.harness import CHROMIUM, CHROMIUM_ARGS, serve_app, wait_until_idle

    if not CHROMIUM.exists():
        return {"notes": f"skipped: {CHROMIUM} is missing"}
    steps: dict[str, float] = {}
    with serve_app(extra_env={"CNN_HOST_MODE": "1"}) as app, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for visitor in ("first", "second"):
                context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=app.url)
                page = context.new_page()
                page.set_default_timeout(120_000)
                _train_and_open_views(page, wait_until_idle)
                time.sleep(1)
                steps[f"{visitor} visitor: run finished, MB"] = _rss_mb(app.process.pid)
                page.get_by_role("button", name="Draw the embedding map").click()
                page.get_by_text(re.compile("Class separation")).first.wait_for(timeout=400_000)
                wait_until_idle(page)
                steps[f"{visitor} visitor: embedding map drawn, MB"] = _rss_mb(app.process.pid)
                page.get_by_role("tab", name="Health of the network").click()
                page.get_by_role("button", name="Check the network's health").click()
                page.get_by_text(re.compile(r"never fire · \d+ saturated")).first.wait_for(timeout=400_000)
                wait_until_idle(page)
                steps[f"{visitor} visitor: health checked, MB"] = _rss_mb(app.process.pid)
                context.close()
        finally:
            browser.close()
    first = steps["first visitor: health checked, MB"] - steps["first visitor: run finished, MB"]
    second = steps["second visitor: health checked, MB"] - steps["second visitor: run finished, MB"]
    return {
        "notes": (
            f"Host mode, MNIST, a 300-image 1-epoch run per visitor, then both views; RSS of the server process "
            f"only. Load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)."
        ),
        **{key: round(value, 1) for key, value in steps.items()},
        "first visitor's two views add, MB": round(first, 1),
        "second visitor's two views add, MB": round(second, 1),
        "summary": [{
            "what": "host-mode server memory for the Embedding map + Health views (first visitor)",
            "value": f"+{first:.0f} MB (second visitor +{second:.0f} MB)",
            "compared_with": f"server at {steps['first visitor: run finished, MB']:.0f} MB after the run",
            "goal": f"≤ {GOAL_MB} MB, no training set",
            "met": None if quick else first <= GOAL_MB,
        }],
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
