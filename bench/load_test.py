"""Hosted-demo load: N visitors draw and get predictions while one training job runs, all on loopback.

The visitors speak Streamlit's websocket protocol (`bench.streamlit_client`): each one opens the
Draw page, sends the canvas value a browser sends after every stroke (MNIST test digits re-drawn
stroke by stroke), reads the answer, pauses like a person, and clears the canvas after each digit.
A headless browser per visitor would spend the 2 cores on rendering and measure the load
generator instead of the server; a real deployment's browsers run on the visitors' own machines.
One more visitor trains a model on the Train page and keeps its live view open, refreshing it
every second like the browser does. One real Chromium visitor draws alongside them, so the run
also reports what a person sees: from mouse-up to the answer drawn, which includes the canvas
component's own delay (a few hundred ms by design of streamlit-drawable-canvas).

Latency is timed per stroke from sending the canvas value to the end of the script run that shows
the prediction: the server's queueing and work plus loopback transport. The server runs in host
mode (CNN_HOST_MODE=1), as the public demo does, so training happens in a worker process; memory
is the PSS of the streamlit process plus its workers (shared library pages split between them),
sampled twice a second. The run is bounded in visitors and seconds and only talks to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from bench.streamlit_client import StreamlitClient
from tests.app.browser.harness import CANVAS_SIZE, CHROMIUM, CHROMIUM_ARGS, serve_app

GOAL_P95_MS = 200.0
GOAL_RSS_MB = 2048.0
STROKES = [[(140, 40), (138, 240)], [(70, 50), (210, 50), (120, 240)], [(90, 80), (190, 80), (140, 230)]]

# Records every change of the app's script state with the state it left: a quick run can enter and
# leave "running" within one batch of mutations, so the current attribute alone would miss it.
OBSERVER_JS = """
() => {
  window.__states = [];
  const app = document.querySelector('[data-testid="stApp"]');
  new MutationObserver(mutations => {
    for (const mutation of mutations) window.__states.push([performance.now(), mutation.oldValue]);
  }).observe(app, {attributes: true, attributeOldValue: true, attributeFilter: ['data-test-script-state']});
}
"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _stroke(page, points, steps: int = 8) -> float:
    box = await page.locator("canvas.upper-canvas").bounding_box()
    scale = box["width"] / CANVAS_SIZE
    jitter_x, jitter_y = random.uniform(-30, 30), random.uniform(-20, 20)

    def at(point):
        return box["x"] + (point[0] + jitter_x) * scale, box["y"] + (point[1] + jitter_y) * scale

    await page.mouse.move(*at(points[0]))
    await page.mouse.down()
    for start, end in zip(points, points[1:], strict=False):
        for step in range(1, steps + 1):
            t = step / steps
            await page.mouse.move(*at((start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)))
    await page.mouse.up()
    return await page.evaluate("() => performance.now()")


async def _wait_for_prediction(page, released_at: float, timeout_s: float = 60.0) -> tuple[float, float] | None:
    """Return (rerun ms, end-to-end ms) of the first completed rerun after the stroke."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        changes = await page.evaluate("() => window.__states")
        running_at = None
        for stamp, left_state in changes:
            if stamp < released_at:
                continue
            if left_state != "running":
                running_at = stamp
            elif running_at is not None:
                if await page.locator('[data-testid="stMetricValue"]').count():
                    return stamp - running_at, stamp - released_at
                running_at = None
        await asyncio.sleep(0.05)
    return None


async def _open_draw_page(browser, url: str):
    """A fresh browser context (a separate person) on the Draw page, with the script-state observer installed."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(120_000)
    await page.goto(f"{url}/draw")
    await page.locator("canvas.upper-canvas").wait_for()
    await page.evaluate(OBSERVER_JS)
    return context, page


def _canvas_value(rgba: np.ndarray, objects: list[dict]) -> str:
    """The value streamlit-drawable-canvas sends after a stroke: fabric.js objects and the canvas as a PNG."""
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG")
    return json.dumps({"drawing": {
        "raw": {"version": "7.4.0", "objects": objects, "background": "#000000"},
        "data": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(),
    }})


BLANK_CANVAS = _canvas_value(np.dstack([np.zeros((CANVAS_SIZE, CANVAS_SIZE, 3), np.uint8),
                                        np.full((CANVAS_SIZE, CANVAS_SIZE), 255, np.uint8)]), [])


def _drawings(count: int, seed: int) -> list[list[str]]:
    """For each of `count` MNIST test digits, the canvas value after each of its strokes (up to four).

    The digits are re-drawn as mouse strokes (`cnn_core.engine.drawing`), one more stroke each time.
    """
    from cnn_core.engine import datasets, drawing

    result = []
    for index, digit in enumerate(datasets.load("mnist").x_test[:count]):
        paths = drawing.digit_paths(digit)[:4]
        values, objects = [], []
        for strokes in range(1, len(paths) + 1):
            canvas = drawing.render_paths(paths[:strokes], np.random.default_rng(seed + index))
            points = (paths[strokes - 1][:, ::-1] * 10).round(1).tolist()
            objects.append({"type": "Path", "stroke": "#FFFFFF", "strokeWidth": 18,
                            "path": [["M", *points[0]]] + [["L", *point] for point in points[1:]]})
            values.append(_canvas_value(canvas, list(objects)))
        result.append(values)
    return result


def _key_ending(client: StreamlitClient, suffix: str) -> str:
    keys = [key for key in client.widget_ids if key.endswith(suffix)]
    if not keys:
        raise RuntimeError(f"No widget key ends with {suffix!r}; the page showed {sorted(client.widget_ids)}.")
    return max(keys)  # The newest of a re-keyed widget's keys sorts last (train-name-0, -1, …).


async def _visitor(url: str, drawings: list[list[str]], stop_at: float, samples: list, failures: list) -> None:
    """A visitor on the Draw page: draws digits stroke by stroke, reads each answer, clears, draws the next."""
    try:
        async with StreamlitClient(url) as client:
            await client.open("draw")
            while time.monotonic() < stop_at:
                for value in random.choice(drawings):
                    # Drawing a stroke and looking at the answer takes a person a second or two.
                    await asyncio.sleep(random.uniform(1.0, 2.5))
                    if time.monotonic() >= stop_at:
                        return
                    client.set("draw-canvas", "json_value", value)
                    result = await client.rerun()
                    if result.shows("The model sees"):
                        samples.append(result.milliseconds)
                    else:
                        failures.append("a stroke got no prediction")
                await asyncio.sleep(random.uniform(0.5, 1.5))
                await client.rerun(triggers=("draw-clear",))
                # The emptied canvas then sends its blank state, as the component does.
                client.set("draw-canvas", "json_value", BLANK_CANVAS)
                await client.rerun()
    except Exception as exc:  # noqa: BLE001 - a broken visitor is a result to report, not a crash.
        failures.append(f"{type(exc).__name__}: {exc}"[:200])


async def _trainer(url: str, stop_at: float, log: dict) -> None:
    """One visitor trains on the Train page and watches its live view, starting a new run when one ends."""
    stage = "opening the Train page"
    try:
        async with StreamlitClient(url) as client:
            await client.open("train")
            stage = "setting the run's size"
            client.set(_key_ending(client, "-use-subset"), "bool_value", True)
            await client.rerun()
            client.set(_key_ending(client, "-subset"), "int_value", 20_000)
            client.set(_key_ending(client, "-epochs"), "int_value", 10)
            await client.rerun()
            runs, refreshes = 0, 0
            while time.monotonic() < stop_at:
                stage = f"starting run {runs + 1}"
                started = await client.rerun(triggers=(_key_ending(client, "-start"),))
                if not client.fragments:
                    raise RuntimeError(f"Training did not start; the page said: {started.sentences()[-3:]}")
                runs += 1
                stage = f"watching run {runs}"
                last_run = dict.fromkeys(client.fragments, time.monotonic())
                while time.monotonic() < stop_at and client.fragments:
                    await asyncio.sleep(0.2)
                    # Each live part of the page reruns on its own timer, as the browser schedules it.
                    for fragment, interval in list(client.fragments.items()):
                        # A full rerun (the run ended) replaces the page's timers; the server ignores a
                        # gone fragment without any reply.
                        if fragment not in client.fragments:
                            continue
                        if time.monotonic() - last_run.get(fragment, 0.0) >= interval:
                            last_run[fragment] = time.monotonic()
                            await client.rerun(fragment_id=fragment)
                            refreshes += 1
            log["training runs started"] = runs
            log["live-view refreshes"] = refreshes
            if client.fragments:
                stage = "stopping the last run"
                live_view = min(client.fragments, key=client.fragments.get)
                await client.rerun(fragment_id=live_view, triggers=(_key_ending(client, "-stop"),))
                log["last run stopped at the end"] = True
    except Exception as exc:  # noqa: BLE001
        log["training error"] = f"{stage}: {type(exc).__name__}: {exc}"[:300]


async def _witness(url: str, stop_at: float, samples: list, failures: list) -> None:
    """One real Chromium visitor: the answer as a person sees it, canvas component and rendering included."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context, page = await _open_draw_page(browser, url)
            # When a stroke gets no answer, whether the page sent anything tells the canvas from the server.
            sent: list[float] = []
            page.on("websocket", lambda socket: socket.on("framesent", lambda _: sent.append(time.monotonic())))
            await page.reload()
            await page.locator("canvas.upper-canvas").wait_for()
            await page.evaluate(OBSERVER_JS)
            strokes = since_clear = 0
            while time.monotonic() < stop_at:
                stroke_at = time.monotonic()
                timing = await _wait_for_prediction(page, await _stroke(page, random.choice(STROKES)), timeout_s=20)
                strokes += 1
                since_clear += 1
                if timing is None:
                    messages = sum(1 for stamp in sent if stamp >= stroke_at)
                    failures.append(f"browser stroke {strokes} ({since_clear} since the last Clear) got no answer "
                                    f"within 20 s; the page sent {messages} messages after it")
                else:
                    samples.append(timing)
                if since_clear == 3:
                    since_clear = 0
                    await page.get_by_role("button", name="Clear").click()
                    await page.locator('[data-testid="stMetricValue"]').wait_for(state="detached", timeout=60_000)
                    await page.locator("canvas.upper-canvas").wait_for()
                await asyncio.sleep(random.uniform(2.0, 4.0))
            await context.close()
        except Exception as exc:  # noqa: BLE001
            failures.append(f"browser visitor: {type(exc).__name__}: {exc}"[:200])
        finally:
            await browser.close()


async def _load(url: str, visitors: int, seconds: float, results: dict) -> None:
    drawings = _drawings(30, seed=11)
    # One unmeasured visit first: a real server has long since imported TensorFlow and loaded the
    # model when a crowd arrives (bench.cold_start measures that first visit on its own).
    async with StreamlitClient(url) as client:
        await client.open("draw")
        client.set("draw-canvas", "json_value", drawings[0][-1])
        warm_up = await client.rerun()
        results["log"]["warm-up prediction ms"] = round(warm_up.milliseconds)
    stop_at = time.monotonic() + seconds
    tasks = [_trainer(url, stop_at, results["log"]),
             _witness(url, stop_at, results["browser"], results["browser failures"])]
    for index in range(visitors):
        await asyncio.sleep(0.3)  # Visitors arrive over a few seconds, not in one instant.
        tasks.append(_visitor(url, drawings, stop_at + index * 0.3, results["samples"], results["failures"]))
    await asyncio.gather(*tasks)


def run(quick: bool, visitors: int | None = None, seconds: float | None = None) -> dict:
    visitors = visitors or (3 if quick else 20)
    seconds = seconds or (25 if quick else 90)
    random.seed(0)
    results: dict = {"samples": [], "browser": [], "failures": [], "browser failures": [], "log": {}}
    # RSS counts TensorFlow's shared libraries once per process that maps them; PSS splits shared
    # pages between those processes, so the sum of PSS is what the server and its workers really use.
    rss: list[float] = []
    pss: list[float] = []
    server_rss: list[float] = []
    timing_log = Path(tempfile.mkdtemp(prefix="cnn-load-")) / "timing.jsonl"
    with serve_app({"CNN_HOST_MODE": "1", "CNN_TIMING_LOG": str(timing_log)}) as app:
        server = psutil.Process(app.process.pid)
        done = threading.Event()

        def memory_mb(process: psutil.Process) -> tuple[float, float]:
            try:
                info = process.memory_full_info()
                return info.rss / 2**20, info.pss / 2**20
            except psutil.Error:
                return 0.0, 0.0  # A worker that just exited holds no memory.

        def sample_memory() -> None:
            while not done.wait(0.5):
                try:
                    processes = [server, *server.children(recursive=True)]
                except psutil.Error:
                    return
                usage = [memory_mb(process) for process in processes]
                rss.append(sum(r for r, _ in usage))
                pss.append(sum(p for _, p in usage))
                server_rss.append(usage[0][0])

        sampler = threading.Thread(target=sample_memory, daemon=True)
        sampler.start()
        cpu_before = server.cpu_times()
        try:
            asyncio.run(_load(app.url, visitors, seconds, results))
        finally:
            cpu_after = server.cpu_times()
            done.set()
            sampler.join()
    samples, browser, failures, log = results["samples"], results["browser"], results["failures"], results["log"]
    browser_failures = results["browser failures"]
    # Server-side time of every Draw run that made a prediction, warm-up visit excluded.
    runs = [json.loads(line) for line in timing_log.read_text().splitlines()] if timing_log.exists() else []
    server_ms = [run["ms"] for run in runs[1:]]
    if not samples or not server_ms:
        raise RuntimeError(f"No prediction was measured; failures: {failures[:5]}, {log}")
    p95 = _percentile(samples, 0.95)
    server_p95 = _percentile(server_ms, 0.95)
    peak = max(pss) if pss else float("nan")
    browser_text = (f"a real Chromium visitor, mouse-up to answer drawn: p50 {statistics.median(b[1] for b in browser):.0f} ms, "
                    f"p95 {_percentile([b[1] for b in browser], 0.95):.0f} ms ({len(browser)} strokes)"
                    if browser else "the Chromium visitor measured nothing")
    server_cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    return {
        "visitors": visitors,
        "seconds": seconds,
        "predictions measured": len(samples),
        "predictions per second": round(len(samples) / seconds, 1),
        "failed predictions": len(failures),
        "failures (first 3)": failures[:3],
        "browser visitor failures": browser_failures,
        "stroke to answer ms (p50/p95/max)": [round(statistics.median(samples)), round(p95), round(max(samples))],
        "page script time of a Draw prediction run ms (p50/p95/max)": [
            round(statistics.median(server_ms)), round(server_p95), round(max(server_ms))],
        "browser visitor: rerun ms, mouse-up to answer ms (p50)": [
            round(statistics.median(b[0] for b in browser)), round(statistics.median(b[1] for b in browser))]
        if browser else None,
        "server process CPU seconds per second of load": round(server_cpu_s / seconds, 2),
        "server process alone RSS MB (peak)": round(max(server_rss)) if server_rss else None,
        "server + workers PSS MB (start/peak/end)": [round(pss[0]) if pss else None, round(peak),
                                                     round(pss[-1]) if pss else None],
        "server + workers RSS MB (peak), shared libraries counted once per process": round(max(rss)) if rss else None,
        "training": log,
        "summary": [
            {
                "what": f"hosted load: {visitors} visitors drawing + 1 training, stroke to prediction p95",
                "value": f"{p95:.0f} ms ({len(samples)} strokes)",
                "compared_with": f"page script alone p95 {server_p95:.0f} ms; {browser_text}",
                "goal": f"p95 ≤ {GOAL_P95_MS:.0f} ms",
                "met": None if quick else p95 <= GOAL_P95_MS,
            },
            {
                "what": "hosted load: strokes that got no answer",
                "value": f"{len(failures)} of {len(samples) + len(failures)} protocol visitors' strokes, "
                         f"{len(browser_failures)} of {len(browser) + len(browser_failures)} of the Chromium visitor's",
                "compared_with": "; ".join(browser_failures[:2]) or "—",
                "goal": "none",
                "met": None if quick else not failures and not browser_failures,
            },
            {
                "what": "hosted load: server memory peak (server + training worker, sum of PSS)",
                "value": f"{peak:.0f} MB",
                "compared_with": f"sum of RSS {max(rss):.0f} MB (counts TensorFlow's shared libraries twice); "
                                 f"server process alone RSS {max(server_rss):.0f} MB",
                "goal": f"≤ {GOAL_RSS_MB:.0f} MB",
                "met": None if quick else peak <= GOAL_RSS_MB,
            },
        ],
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
