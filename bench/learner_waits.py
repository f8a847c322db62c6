"""The waits a learner feels: Start → first point of the live curve, Evaluate, a page switch, Clear.

- **Start → first curve point.** A real `JobQueue` with the local profile's settings; the time from
  `submit` until the run's `ProgressRecorder` holds its first batch point, which the Train page's
  live view (an `st.fragment(run_every=1)`) draws at its next tick, up to 1 s later. Three runners:
  the process runner with a worker prewarmed while the learner edits (the app's default: the Train
  page calls `prewarm()`), the same without prewarming (a worker started by Start itself), and the
  thread runner (no worker; what local mode used before). Each run is stopped after its first point.
- **Evaluate on the full test set** for a freshly trained model: predicting the 10,000 test images
  again through a `Predictor` (what the Evaluate page did before), against scoring the probabilities
  the run's own test pass already computed (`evaluation.from_probabilities`, what it does now).
- **A page switch and Clear**, in headless Chromium against `streamlit run app.py`: from the click to
  the page's script having finished (Draw → Train → Draw, and Clear on a drawn canvas).

Timings on a shared machine are noisy; each is the median of a few repeats.
"""

from __future__ import annotations

import dataclasses
import re
import statistics
import time

GOAL_FIRST_POINT_S = 1.5
GOAL_EVALUATE_S = 0.8
# The live view's refresh period: a point reaches the screen at most this much after it exists.
LIVE_VIEW_TICK_S = 1.0


def _quick_experiment(images: int):
    from cnn_core.workshop import presets

    preset = presets.get("quick_mnist")
    return dataclasses.replace(
        preset.experiment, training=dataclasses.replace(preset.training, train_subset=images, epochs=1)
    )


def _first_point_seconds(queue, experiment, owner: str) -> float:
    begun = time.perf_counter()
    job = queue.submit(experiment, owner=owner)
    while not job.progress.snapshot().batch_loss:
        if not job.is_active:
            raise RuntimeError(f"{job} ended {job.state} before its first batch: {job.error}")
        time.sleep(0.005)
    seconds = time.perf_counter() - begun
    job.stop()
    job.wait(timeout=120)
    return seconds


def first_point(repeats: int, images: int) -> dict:
    from cnn_core.engine import datasets
    from cnn_core.service.queue import JobQueue
    from cnn_core.service.settings import local_profile

    experiment = _quick_experiment(images)
    results: dict[str, list[float]] = {"process, prewarmed": [], "process, cold worker": [], "thread": []}
    base = dataclasses.replace(local_profile(), max_concurrent_jobs=1, jobs_per_worker=1)
    datasets.load("mnist")  # the thread runner's server has the data cached, as the app does
    for index in range(repeats):
        # jobs_per_worker=1: every run gets a new worker, so each repeat measures a first run.
        queue = JobQueue(base)
        try:
            queue.prewarm()
            (worker,) = queue._pool._idle
            if not worker.ready.wait(timeout=300):
                raise RuntimeError("The prewarmed worker did not get ready within 300 s.")
            results["process, prewarmed"].append(_first_point_seconds(queue, experiment, f"warm-{index}"))
            results["process, cold worker"].append(_first_point_seconds(queue, experiment, f"cold-{index}"))
        finally:
            queue.shutdown(timeout=60)
        threads = JobQueue(dataclasses.replace(base, job_runner="thread"))
        try:
            results["thread"].append(_first_point_seconds(threads, experiment, f"thread-{index}"))
        finally:
            threads.shutdown(timeout=60)
    return {name: [round(v, 2) for v in values] for name, values in results.items()}


def evaluate_seconds(repeats: int, images: int) -> dict:
    from cnn_core.engine import datasets, evaluation, training
    from cnn_core.engine.inference import Predictor

    dataset = datasets.load("mnist")
    result = training.train(_quick_experiment(images), dataset=dataset)
    again, cached = [], []
    for _ in range(repeats):
        begun = time.perf_counter()
        predicted = evaluation.evaluate(Predictor(result.model).predict_batch, dataset)
        again.append(time.perf_counter() - begun)
        begun = time.perf_counter()
        kept = evaluation.from_probabilities(result.test_probabilities, dataset.y_test, dataset.class_names)
        cached.append(time.perf_counter() - begun)
        if kept.accuracy != predicted.accuracy:
            raise RuntimeError(f"Kept probabilities score {kept.accuracy}, predicting again {predicted.accuracy}.")
    return {"predict again": again, "kept from the run": cached}


def browser_waits(repeats: int) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.app.browser.harness import CHROMIUM, CHROMIUM_ARGS, draw_stroke, serve_app, wait_until_idle

    switches, clears = [], []
    with sync_playwright() as playwright, serve_app() as app:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(120_000)
            page.goto(f"{app.url}/draw")
            wait_until_idle(page)
            for _ in range(repeats):
                for target in ("train", "draw"):
                    begun = time.perf_counter()
                    page.locator(f'[data-testid="stSidebarNav"] a[href$="/{target}"]').click()
                    page.wait_for_url(re.compile(rf"/{target}(\?|$)"))
                    wait_until_idle(page, quiet_s=0.3)
                    switches.append(time.perf_counter() - begun - 0.3)
                canvas = page.locator("canvas.upper-canvas")
                canvas.wait_for()
                draw_stroke(page, canvas, [(140, 40), (138, 240)])
                page.locator('[data-testid="stMetricValue"]').first.wait_for()
                wait_until_idle(page, quiet_s=0.3)
                begun = time.perf_counter()
                page.get_by_role("button", name="Clear").click()
                page.locator('[data-testid="stMetricValue"]').first.wait_for(state="detached")
                clears.append(time.perf_counter() - begun)
                wait_until_idle(page, quiet_s=0.3)
        finally:
            browser.close()
    return {"page switch": switches, "clear": clears}


def _row(what, values, goal, quick, compared_with=""):
    median = statistics.median(values)
    return {
        "what": what, "value": f"{median:.2f} s", "compared_with": compared_with,
        "goal": "—" if goal is None else f"≤ {goal:g} s", "met": None if quick or goal is None else median <= goal,
    }


def run(quick: bool) -> dict:
    repeats, images = (1, 600) if quick else (3, 12_000)
    points = first_point(repeats, images)
    evaluate = evaluate_seconds(repeats, 600 if quick else 2_000)
    result: dict = {
        "notes": (
            f"Start → first point: quick preset on {images:,} images, median of {repeats}; the Train page draws the "
            f"point at its live view's next tick (every {LIVE_VIEW_TICK_S:g} s). Evaluate: the 10,000 MNIST test "
            "images for a just-trained quick-preset model."
        ),
        **{f"start → first point, {name} (s)": values for name, values in points.items()},
        "evaluate, predicting again (s)": [round(v, 3) for v in evaluate["predict again"]],
        "evaluate, kept from the run (s)": [round(v, 4) for v in evaluate["kept from the run"]],
    }
    summary = [
        _row("Start → first curve point (process runner, prewarmed worker)", points["process, prewarmed"],
             GOAL_FIRST_POINT_S, quick,
             f"cold worker {statistics.median(points['process, cold worker']):.2f} s, "
             f"thread runner {statistics.median(points['thread']):.2f} s"),
        _row("Evaluate a trained model on the 10,000 test images", evaluate["kept from the run"], GOAL_EVALUATE_S,
             quick, f"predicting again: {statistics.median(evaluate['predict again']):.2f} s"),
    ]
    try:
        waits = browser_waits(1 if quick else 3)
    except Exception as error:  # no browser on this machine: the other figures still count
        result["browser waits"] = f"not measured: {type(error).__name__}: {error}"
    else:
        result["page switch (s)"] = [round(v, 2) for v in waits["page switch"]]
        result["clear (s)"] = [round(v, 2) for v in waits["clear"]]
        summary.append(_row("page switch (click → page finished)", waits["page switch"], None, quick))
        summary.append(_row("Clear on the canvas (click → prediction gone)", waits["clear"], None, quick,
                            "before: ~1 s"))
    result["summary"] = summary
    return result


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
