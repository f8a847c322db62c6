"""Cold start: from `streamlit run app.py` to the first prediction of a drawn digit in a real browser.

Compared with importing TensorFlow alone in a fresh interpreter, the floor any app that uses it pays.
The browser is started before the clock starts, as a visitor's browser already runs.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from tests.app.browser.harness import CHROMIUM, CHROMIUM_ARGS, draw_stroke, serve_app

GOAL_S = 6.0
ONE = [(140, 40), (138, 240)]


def _tensorflow_import_seconds() -> float:
    code = "import time; t = time.perf_counter(); import tensorflow; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    return float(out.stdout.strip().splitlines()[-1])


def _first_prediction_seconds(browser) -> float:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        with serve_app() as app:
            page.goto(f"{app.url}/draw")
            canvas = page.locator("canvas.upper-canvas")
            canvas.wait_for()
            draw_stroke(page, canvas, ONE)
            page.locator('[data-testid="stMetricValue"]').first.wait_for()
            seconds = time.perf_counter() - app.started_at
            shown = page.locator('[data-testid="stMetricValue"]').first.inner_text().strip()
            if shown != "1":
                raise RuntimeError(f"The first prediction of a drawn 1 was {shown!r}.")
            return seconds
    finally:
        context.close()


def run(quick: bool) -> dict:
    from playwright.sync_api import sync_playwright

    repeats = 1 if quick else 5
    imports = [_tensorflow_import_seconds() for _ in range(repeats)]
    starts = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for _ in range(repeats):
                starts.append(_first_prediction_seconds(browser))
        finally:
            browser.close()
    median = statistics.median(starts)
    return {
        "server start → first Draw prediction, s (min/median/max)": [round(min(starts), 2), round(median, 2),
                                                                    round(max(starts), 2)],
        "import tensorflow alone, s (min/median/max)": [round(min(imports), 2), round(statistics.median(imports), 2),
                                                        round(max(imports), 2)],
        "repeats": repeats,
        "summary": [{
            "what": "cold start: server start → first Draw prediction (median)",
            "value": f"{median:.2f} s",
            "compared_with": f"import tensorflow alone: {statistics.median(imports):.2f} s",
            "goal": f"≤ {GOAL_S:g} s",
            "met": None if quick else median <= GOAL_S,
        }],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
