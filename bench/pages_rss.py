"""What the pages that look at test images cost a host's web server in memory (resident set size).

A real `streamlit run app.py` in host mode (CNN_HOST_MODE=1), driven by headless Chromium: one
visitor opens Datasets (training part, then test part), Evaluate, Explain and Feature maps (a test
image, then the journey of a class), and the server process's RSS is read after each. None of these
pages needs a whole training set (188 MB as float32 for MNIST): they read the test images, the
labels, a 6,000-image training sample and the class means (`ui.loaders`).

    .venv/bin/python -m bench.pages_rss
"""

from __future__ import annotations

import os
import time

from bench.inside_model_rss import _rss_mb  # one way to read the server's memory

GOAL_MB = 150  # what the Datasets page (both parts, no TensorFlow) may add to a fresh server


STEPS = (
    ("home", "/", None),
    ("datasets, training part", "/datasets", None),
    ("datasets, test part", "/datasets", "test images"),
    ("evaluate", "/evaluate", None),
    ("explain", "/explain", None),
    ("feature maps", "/feature_maps", None),
    ("feature maps, journey of a class", "/feature_maps", "Journey of a class"),
)


def run(quick: bool) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.app.browser.harness import CHROMIUM, CHROMIUM_ARGS, serve_app, wait_until_idle

    if not CHROMIUM.exists():
        return {"notes": f"skipped: {CHROMIUM} is missing"}
    steps: dict[str, float] = {}
    with serve_app(extra_env={"CNN_HOST_MODE": "1"}) as app, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=app.url)
            page = context.new_page()
            page.set_default_timeout(300_000)
            for label, path, click in STEPS:
                if click is None or path != page.url.removeprefix(app.url).split("?")[0]:
                    page.goto(path)
                    wait_until_idle(page, timeout_ms=300_000)
                if click is not None:
                    page.get_by_text(click, exact=True).first.click()
                    wait_until_idle(page, timeout_ms=300_000)
                time.sleep(1)
                steps[f"after {label}, MB"] = round(_rss_mb(app.process.pid), 1)
            context.close()
        finally:
            browser.close()
    start, end = steps["after home, MB"], steps[f"after {STEPS[-1][0]}, MB"]
    datasets_page = steps["after datasets, test part, MB"] - start
    return {
        "notes": (
            f"Host mode, one visitor, MNIST and the default model; RSS of the server process only. "
            f"Load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)."
        ),
        **steps,
        "the Datasets page adds, MB": round(datasets_page, 1),
        "the five pages add, MB": round(end - start, 1),
        "summary": [{
            "what": "host-mode server memory: Datasets (both parts), then Evaluate, Explain, Feature maps (one visitor)",
            "value": f"Datasets +{datasets_page:.0f} MB; all five +{end - start:.0f} MB (server at {end:.0f} MB)",
            "compared_with": f"server at {start:.0f} MB after Home",
            "goal": f"Datasets ≤ {GOAL_MB} MB, no training set",
            "met": None if quick else datasets_page <= GOAL_MB,
        }],
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
