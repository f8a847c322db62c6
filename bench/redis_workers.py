"""The Redis + RQ runner under a workshop's load: drain, scale-out, stop latency, a killed worker.

A real redis-server on a free port and real worker processes (`python -m cnn_core.service.rq_worker`,
each in its own empty folder, so they share nothing with this "web server" but Redis). Runs are
submitted through `RedisJobQueue`'s own API, one owner per participant, as the Train page does.

* drain: N participants each start the quick preset on a small subset at once, 2 workers.
  All N must finish, none lost or trained twice (one TrainStarted per run's stream), and every
  waiting participant's position must only ever go down. Drain time is compared with the sum of
  the runs' own times ÷ 2 (what two workers could do at best).
* scale-out: the same N runs with 1 worker, then with 2: throughput ratio.
* stop latency: Stop pressed (`stop_requested_at`) → the worker's training callback sees it
  (`stop_seen_at`, after which no batch runs), both on Redis' clock.
* killed worker: kill -9 a worker mid-run → its run shows "failed: the worker was lost".
* drawing during a drain: a Streamlit server started with CNN_REDIS_URL; protocol visitors
  (`bench.load_test`'s, which send the canvas value a browser sends after each stroke) draw on its
  Draw page, first alone (the calm figures), then while N protocol participants each start the
  quick preset on the Train page and keep its live view refreshing until their run ends, through
  the 2 workers: stroke-to-answer latency, and the web server process's RSS before the visitors
  came, when the drain began, half-way, at its peak and at the end.

The machine is shared (2 cores, other jobs running), so the figures that matter are ratios taken
within one run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import multiprocessing
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.core.service.redis_harness import redis_server, supervised_workers, wait_for_workers

# drawing_runs: the runs participants start on the Train page while the visitors draw.
FULL = {"runs": 30, "train_subset": 1000, "stops": 5, "visitors": 10, "calm_s": 30, "drawing_runs": 30}
QUICK = {"runs": 6, "train_subset": 500, "stops": 2, "visitors": 3, "calm_s": 8, "drawing_runs": 3}
GOAL_STROKE_P95_MS = 200.0
# "The web server's memory stays flat": what the server process may grow while the runs drain.
GOAL_GROWTH_MB = 50.0
# How long after the drain (and the visitors) ended the server's RSS is sampled once more.
LEFT_S = 30.0


def _quick_preset(train_subset: int):
    from cnn_core.workshop import presets

    experiment = presets.get("quick_mnist").experiment
    training = dataclasses.replace(experiment.training, train_subset=train_subset, epochs=1, validation_split=0.0)
    return dataclasses.replace(experiment, training=training)


def _queue(url: str):
    from cnn_core.service.redis_queue import RedisJobQueue
    from cnn_core.service.settings import Settings

    return RedisJobQueue(Settings(redis_url=url, max_queued_jobs=100, abandon_after_s=600, result_ttl_s=600),
                         reap_interval=0.5)


def _drain(url: str, runs: int, train_subset: int) -> dict:
    from cnn_core.service.redis_queue import run_key

    queue = _queue(url)
    experiment = _quick_preset(train_subset)
    started = time.monotonic()
    jobs = [queue.submit(experiment, owner=f"participant-{index}") for index in range(runs)]
    last_position = {job.id: job.queue_position for job in jobs}
    positions_went_up = 0
    while any(job.is_active for job in jobs):
        for job in jobs:
            job.refresh()
            job.heartbeat()
            position = job.queue_position
            before = last_position[job.id]
            if position is not None and before is not None and position > before:
                positions_went_up += 1
            last_position[job.id] = position
        time.sleep(0.2)
    drain = time.monotonic() - started
    run_seconds, trained_twice = [], 0
    for job in jobs:
        fields = queue.redis.hgetall(run_key(job.id))
        run_seconds.append(float(fields[b"finished_at"]) - float(fields[b"started_at"]))
        starts = sum(1 for _, entry in queue.redis.xrange(run_key(job.id, "events")) if entry[b"kind"] == b"TrainStarted")
        trained_twice += starts != 1
    finished = sum(job.state == "finished" for job in jobs)
    queue.shutdown()
    return {"drain_s": drain, "run_seconds": run_seconds, "finished": finished, "trained_twice": trained_twice,
            "positions_went_up": positions_went_up}


def _stop_latencies(url: str, count: int) -> list[float]:
    from cnn_core.service.redis_queue import run_key

    queue = _queue(url)
    experiment = _quick_preset(5000)
    latencies = []
    for index in range(count):
        job = queue.submit(experiment, owner=f"stopper-{index}")
        while len(job.progress.snapshot().batch_loss) < 3:
            job.heartbeat()
            time.sleep(0.05)
        job.stop()
        job.wait(60)
        fields = queue.redis.hgetall(run_key(job.id))
        latencies.append(float(fields[b"stop_seen_at"]) - float(fields[b"stop_requested_at"]))
        job.take_result()
    queue.shutdown()
    return latencies


def _kill_detection(url: str) -> tuple[float, str]:
    from cnn_core.service.redis_queue import run_key

    queue = _queue(url)
    job = queue.submit(_quick_preset(20000), owner="unlucky")
    while len(job.progress.snapshot().batch_loss) < 3:
        job.heartbeat()
        time.sleep(0.05)
    pid = int(queue.redis.get(run_key(job.id, "alive")).decode().rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    while job.is_active and time.monotonic() - killed < 60:
        job.refresh()
        time.sleep(0.1)
    detected = time.monotonic() - killed
    queue.shutdown()
    return detected, job.error or ""


async def _draw_while(url: str, visitors: int, baseline_s: float, drain, samples: list, failures: list,
                      marks: dict):
    """`visitors` protocol visitors draw on the Draw page from before `await drain()` begins until it ends.

    Returns what `drain()` returned; the strokes are in `samples`, stamped with when they were answered.
    """
    from bench.load_test import _drawings, _visitor
    from bench.streamlit_client import StreamlitClient

    drawings = _drawings(30, seed=13)
    # One unmeasured visit first: a running server has long since loaded the model.
    async with StreamlitClient(url) as client:
        await client.open("draw")
        client.set("draw-canvas", "json_value", drawings[0][-1])
        await client.rerun()
    marks["warm"] = time.monotonic()
    far = time.monotonic() + 24 * 3600
    tasks = []
    for _ in range(visitors):
        tasks.append(asyncio.create_task(_visitor(url, drawings, far, samples, failures)))
        await asyncio.sleep(0.3)
    # Everyone draws a while before the first run is submitted: the strokes of this calm spell
    # (after the first few seconds of arrivals) are what the drain's strokes are compared with.
    await asyncio.sleep(3)
    calm = len(samples)
    await asyncio.sleep(baseline_s)
    marks["baseline"] = samples[calm:]
    marks["drain"] = time.monotonic()
    marks["drain_wall"] = time.time()  # the server's timing log stamps wall-clock time
    try:
        return await drain()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# How long a participant watches at most: a quick-preset run takes seconds, so a run still going
# after this is stuck, reported as a failure instead of holding the benchmark (and CI) for an hour.
WATCH_LIMIT_S = 120.0
WATCH_LIMIT_PER_RUN_S = 30.0


async def _participant_run(url: str, train_subset: int, log: dict, watch_limit_s: float) -> None:
    """One participant on the Train page: the quick preset on a subset, Start, the live view until the run ends."""
    from bench.load_test import _key_ending
    from bench.streamlit_client import StreamlitClient
    from cnn_core.workshop import presets

    stage = "opening the Train page"
    try:
        async with StreamlitClient(url) as client:
            await client.open("train")
            stage = "picking the quick preset"
            client.set("train-preset", "string_value", presets.get("quick_mnist").title)
            await client.rerun()
            client.set(_key_ending(client, "-use-subset"), "bool_value", True)
            await client.rerun()
            client.set(_key_ending(client, "-subset"), "int_value", train_subset)
            client.set(_key_ending(client, "-epochs"), "int_value", 1)
            await client.rerun()
            stage = "starting the run"
            started = await client.click(_key_ending(client, "-start"))
            if not client.fragments:
                raise RuntimeError(f"no live view after Start; the page said {started.sentences()[-3:]}")
            stage = "watching the run"
            # The live view reruns on its own timers, as the browser schedules them, until the run
            # ends and a full rerun shows the result (and sets no timer).
            last_run = dict.fromkeys(client.fragments, time.monotonic())
            deadline = time.monotonic() + watch_limit_s
            while client.fragments and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                for fragment, interval in list(client.fragments.items()):
                    if fragment in client.fragments and time.monotonic() - last_run.get(fragment, 0.0) >= interval:
                        last_run[fragment] = time.monotonic()
                        await client.rerun(fragment_id=fragment)
                        log["refreshes"] += 1
            if client.fragments:
                raise TimeoutError(f"the run had not ended after {watch_limit_s:.0f} s")
            log["ended"].append(time.monotonic())
    except Exception as exc:  # noqa: BLE001 - a participant who failed is a result to report.
        log["failures"].append(f"{stage}: {type(exc).__name__}: {exc}"[:300])


async def _drain_through_pages(app_url: str, redis_url: str, runs: int, train_subset: int) -> dict:
    """`runs` participants start their runs from the server's Train page at once and watch them to the end."""
    from cnn_core.service.redis_queue import connect, run_key

    log: dict = {"ended": [], "failures": [], "refreshes": 0}
    started = time.monotonic()
    limit = WATCH_LIMIT_S + WATCH_LIMIT_PER_RUN_S * runs
    await asyncio.gather(*(_participant_run(app_url, train_subset, log, limit) for _ in range(runs)))
    drain = time.monotonic() - started
    conn = connect(redis_url)
    run_seconds, finished, trained_twice, states = [], 0, 0, {}
    for key in conn.scan_iter(match=run_key("*")):
        run_id = key.decode().rsplit(":", 1)[1]
        if key.decode() != run_key(run_id):
            continue  # a run's events, liveness or result key
        fields = conn.hgetall(key)
        state = fields.get(b"state", b"?").decode()
        states[state] = states.get(state, 0) + 1
        if fields.get(b"state") == b"finished":
            finished += 1
            run_seconds.append(float(fields[b"finished_at"]) - float(fields[b"started_at"]))
        starts = sum(1 for _, entry in conn.xrange(run_key(run_id, "events")) if entry[b"kind"] == b"TrainStarted")
        trained_twice += starts > 1
    return {"drain_s": drain, "run_seconds": run_seconds, "finished": finished, "trained_twice": trained_twice,
            "participant_failures": log["failures"], "live_view_refreshes": log["refreshes"], "states": states}


class _Stamped(list):
    """A list of stroke latencies that also keeps when (monotonic) each one was answered."""

    def __init__(self):
        super().__init__()
        self.at: list[float] = []

    def append(self, value) -> None:
        self.at.append(time.monotonic())
        super().append(value)


def _cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) each named process and its children have used so far."""
    import psutil

    used = {}
    for name, pid in pids.items():
        try:
            root = psutil.Process(pid)
            total = 0.0
            for process in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    total += times.user + times.system
            used[name] = total
        except psutil.Error:
            used[name] = float("nan")
    return used


def _drain_in_own_process(app_url: str, redis_url: str, runs: int, train_subset: int) -> dict:
    """`_drain_through_pages` in a process of its own: the participants' browsers are not the visitors'.

    In one process, a visitor's answer could sit in the socket while the same event loop parsed 30
    participants' replies, and that wait would count as the server's. (Measured, it made no
    difference the drain's noise could show; a real workshop's browsers are on other machines.)
    """
    result = asyncio.run(_drain_through_pages(app_url, redis_url, runs, train_subset))
    result["participants_cpu_s"] = time.process_time()
    return result


def _drawing_during_drain(url: str, runs: int, train_subset: int, visitors: int, baseline_s: float,
                          others: dict[str, int] | None = None, drains: int = 1) -> dict:
    """The web tier under a drain: a Streamlit server on CNN_REDIS_URL serving visitors who draw.

    `others` names further processes (workers, redis) whose CPU use over the drain is reported.
    With `drains` > 1, as many classes of `runs` participants come one after another to the same
    server: growth that repeats with each class is a leak, growth only in the first is a fill.
    The figures of the first drain are the ones reported; the later drains add RSS at their ends.
    """
    import psutil

    from tests.app.browser.harness import serve_app

    samples = _Stamped()
    failures: list[str] = []
    marks: dict[str, float] = {}
    memory: list[tuple[float, float]] = []  # (monotonic time, server RSS MB)
    timing_log = Path(tempfile.mkdtemp(prefix="cnn-drain-")) / "timing.jsonl"
    # Sessions whose browser left are dropped after 10 s instead of Streamlit's 120 s, so the RSS
    # sampled a while after the drain shows what the server keeps once everyone has gone.
    # e.g. DRAIN_SERVER_ENV='{"MALLOC_ARENA_MAX": "2"}' to compare a server setting in one tree.
    with serve_app({"CNN_REDIS_URL": url, "CNN_MAX_QUEUED_JOBS": str(runs + 5),
                    "CNN_TIMING_LOG": str(timing_log), "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": "10",
                    **json.loads(os.environ.get("DRAIN_SERVER_ENV", "{}"))}) as app:
        server = psutil.Process(app.process.pid)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.5):
                try:
                    memory.append((time.monotonic(), server.memory_info().rss / 2**20))
                except psutil.Error:
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        pids = {"web server": app.process.pid, "this benchmark's clients": os.getpid(), **(others or {})}
        # The participants' clients run in a process of their own (below), which has ended by then.
        cpu: dict[str, dict[str, float]] = {}

        async def one_drain() -> dict:
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                return await asyncio.wrap_future(pool.submit(_drain_in_own_process, app.url, url, runs, train_subset))

        async def drain() -> dict:
            cpu["before"] = _cpu_seconds(pids)
            try:
                first = await one_drain()
            finally:
                cpu["after"] = _cpu_seconds(pids)
            marks["first_end"], marks["first_end_wall"] = time.monotonic(), time.time()
            for _ in range(drains - 1):
                later = await one_drain()
                marks.setdefault("later_ends", []).append(time.monotonic())
                first.setdefault("later_drains", []).append(
                    {"finished": later["finished"], "failures": len(later["participant_failures"]),
                     "drain_s": round(later["drain_s"], 1)})
            return first

        try:
            drained = asyncio.run(_draw_while(app.url, visitors, baseline_s, drain, samples, failures, marks))
            time.sleep(LEFT_S)  # everyone has left: expired sessions go, the periodic collection runs
            marks["left"] = time.monotonic()
        finally:
            done.set()
            sampler.join()

    def rss_at(moment: float) -> float:
        return min(memory, key=lambda point: abs(point[0] - moment))[1]

    def in_first_drain(moment: float) -> bool:
        return marks["drain"] <= moment <= marks["first_end"]

    during = [ms for at, ms in zip(samples.at, samples, strict=True) if in_first_drain(at)]
    if not during or not memory:
        raise RuntimeError(f"No stroke was measured during the drain; failures: {failures[:3]}")
    start, at_drain, end = rss_at(marks["warm"]), rss_at(marks["drain"]), rss_at(marks["first_end"])
    # Growth that stops is a cache filling; growth that goes on through the second half is a leak.
    middle = rss_at((marks["drain"] + marks["first_end"]) / 2)
    peak = max(mb for moment, mb in memory if in_first_drain(moment))
    # What the server itself spent per run of the Draw page and per live-view refresh during the drain.
    server: dict[str, list[tuple[float, float]]] = {}
    for line in timing_log.read_text().splitlines() if timing_log.exists() else []:
        entry = json.loads(line)
        if marks["drain_wall"] <= entry["at"] <= marks["first_end_wall"]:
            server.setdefault(entry["what"], []).append((entry["ms"], entry.get("cpu_ms", float("nan"))))
    cpu_used = {name: round(cpu["after"][name] - cpu["before"][name], 1) for name in pids}
    # The benchmark started the others: its own share is what is left of its tree's.
    cpu_used["this benchmark's clients"] = round(cpu_used["this benchmark's clients"] - sum(
        value for name, value in cpu_used.items() if name != "this benchmark's clients"), 1)
    cpu_used["the participants' clients (own process)"] = round(drained.get("participants_cpu_s", 0.0), 1)
    # Strokes by when in the drain they were answered, in 10 s spells: is the wait spread or bunched?
    spells: dict[int, list[float]] = {}
    for at, ms in zip(samples.at, samples, strict=True):
        if in_first_drain(at):
            spells.setdefault(int((at - marks["drain"]) // 10), []).append(ms)
    return {"drained": drained, "strokes": during, "baseline": marks["baseline"], "failures": failures,
            "server": server, "cpu_s": cpu_used, "spells": spells,
            "rss_start": start,
            "rss_drain": at_drain, "rss_mid": middle, "rss_peak": peak, "rss_end": end,
            "rss_left": rss_at(marks["left"]),
            "rss_later_ends": [rss_at(moment) for moment in marks.get("later_ends", [])],
            "drain_s": marks["first_end"] - marks["drain"]}


def _server_figures(values: list[tuple[float, float]], p95_of) -> list:
    wall, cpu = [v[0] for v in values], [v[1] for v in values]
    return [len(values), round(statistics.median(wall)), round(p95_of(wall)),
            round(statistics.median(cpu)), round(p95_of(cpu))]


def _drawing_rows(drawing: dict, runs: int, visitors: int, quick: bool) -> tuple[dict, list[dict]]:
    def p95_of(values: list[float]) -> float:
        return sorted(values)[min(len(values) - 1, round(0.95 * (len(values) - 1)))] if values else float("nan")

    strokes, calm = drawing["strokes"], drawing["baseline"]
    p50, p95, calm_p95 = statistics.median(strokes), p95_of(strokes), p95_of(calm)
    growth = drawing["rss_end"] - drawing["rss_drain"]
    drained = drawing["drained"]
    figures = {
        "drawing visitors during the drain": visitors,
        "drain with visitors drawing (s)": round(drawing["drain_s"], 1),
        "runs finished during it": f"{drained['finished']} of {runs}",
        "of them trained twice": drained["trained_twice"],
        "drain ÷ (sum of run times ÷ 2)": round(drawing["drain_s"] / (sum(drained["run_seconds"]) / 2), 2)
        if drained["run_seconds"] else None,
        "participants' live-view refreshes": drained["live_view_refreshes"],
        "participants who failed (first 3)": drained["participant_failures"][:3],
        "runs by their state at the end": drained.get("states", {}),
        "strokes answered during the drain": len(strokes),
        "strokes that got no answer": len(drawing["failures"]),
        "stroke to answer ms during the drain (p50/p95/max)": [round(p50), round(p95), round(max(strokes))],
        "stroke to answer ms before it, same visitors (p50/p95, strokes)": [
            round(statistics.median(calm)) if calm else None, round(calm_p95) if calm else None, len(calm)],
        **{f"server {what} during the drain: runs, wall ms p50/p95, CPU ms p50/p95": _server_figures(values, p95_of)
           for what, values in sorted(drawing.get("server", {}).items()) if values},
        "CPU seconds used during the drain, per process (with its children)": drawing["cpu_s"],
        "stroke to answer ms in each 10 s of the drain (strokes, p50, max)": [
            [len(values), round(statistics.median(values)), round(max(values))]
            for _, values in sorted(drawing["spells"].items())],
        "web server RSS MB (warm, drain start, its middle, peak, end)": [
            round(drawing[key]) for key in ("rss_start", "rss_drain", "rss_mid", "rss_peak", "rss_end")],
        f"web server RSS MB {LEFT_S:.0f} s after everyone left": round(drawing["rss_left"]),
    }
    if drawing["rss_later_ends"]:
        figures["later drains on the same server (runs finished so far, failures, s)"] = drained.get("later_drains")
        figures["web server RSS MB at the end of each later drain"] = [round(mb) for mb in drawing["rss_later_ends"]]
    rows = [
        {"what": f"workshop drain through the web tier: {runs} participants start and watch runs on the Train "
                 f"page (server on CNN_REDIS_URL, 2 workers) while {visitors} visitors draw: stroke to answer p95",
         "value": f"{p95:.0f} ms ({len(strokes)} strokes, {len(drawing['failures'])} unanswered)",
         "compared_with": f"p50 {p50:.0f} ms; before the drain p95 {calm_p95:.0f} ms "
                          f"({p95 / calm_p95:.1f}×); {drained['finished']} of {runs} runs drained in "
                          f"{drawing['drain_s']:.0f} s",
         "goal": f"p95 ≤ {GOAL_STROKE_P95_MS:.0f} ms, all runs finish", "met": None if quick else
         p95 <= GOAL_STROKE_P95_MS and not drawing["failures"] and drained["finished"] == runs},
        {"what": "workshop drain through the web tier: web server RSS while the runs drain",
         "value": f"{growth:+.0f} MB ({drawing['rss_drain']:.0f} → {drawing['rss_end']:.0f} MB, "
                  f"peak {drawing['rss_peak']:.0f} MB)",
         "compared_with": f"{drawing['rss_end'] - drawing['rss_mid']:+.0f} MB in the drain's second half; "
                          f"{drawing['rss_start']:.0f} MB warm, before the visitors; "
                          f"{drawing['rss_left']:.0f} MB {LEFT_S:.0f} s after everyone left",
         "goal": f"flat: growth ≤ {GOAL_GROWTH_MB:.0f} MB", "met": None if quick else growth <= GOAL_GROWTH_MB},
    ]
    return figures, rows


def _lower_priority(supervisor, niceness: int) -> None:
    """Renice the worker supervisor and its workers; workers it starts later inherit the niceness."""
    import psutil

    root = psutil.Process(supervisor.pid)
    for process in [root, *root.children(recursive=True)]:
        process.nice(niceness)


def run_drawing(quick: bool, niced: bool = False, drains: int = 1) -> dict:
    """Only the drawing-during-a-drain measurement (`python -m bench.redis_workers --drawing [--nice] [--drains N]`).

    With `niced`, the same drain runs a second time with the workers at nice 19: on a server whose
    workers share the web tier's cores, what the visitors gain when training yields the CPU to them.
    """
    from cnn_core.service.redis_queue import connect

    sizes = QUICK if quick else FULL
    results: dict = {"runs": sizes["drawing_runs"], "train_subset": sizes["train_subset"], "drains": drains,
                     "summary": []}
    for niceness in (0, 19) if niced else (0,):
        with redis_server() as server, supervised_workers(server.url, 2) as workers:
            wait_for_workers(connect(server.url), 2)
            if niceness:
                _lower_priority(workers, niceness)
            drawing = _drawing_during_drain(server.url, sizes["drawing_runs"], sizes["train_subset"],
                                            sizes["visitors"], sizes["calm_s"],
                                            {"workers": workers.pid, "redis": server.process.pid}, drains)
        figures, rows = _drawing_rows(drawing, sizes["drawing_runs"], sizes["visitors"], quick)
        label = f" (workers at nice {niceness})" if niceness else ""
        results.update({key + label: value for key, value in figures.items()})
        results["summary"] += [{**row, "what": row["what"] + label} for row in rows]
    return results


def run(quick: bool) -> dict:
    from cnn_core.service.redis_queue import connect

    sizes = QUICK if quick else FULL
    results: dict = {"runs": sizes["runs"], "train_subset": sizes["train_subset"]}
    with redis_server() as server:
        conn = connect(server.url)
        with supervised_workers(server.url, 1) as _:
            wait_for_workers(conn, 1)
            one = _drain(server.url, sizes["runs"], sizes["train_subset"])
        conn.flushall()
        with supervised_workers(server.url, 2) as _:
            wait_for_workers(conn, 2)
            two = _drain(server.url, sizes["runs"], sizes["train_subset"])
            stops = _stop_latencies(server.url, sizes["stops"])
            detected, error = _kill_detection(server.url)
        conn.flushall()
        with supervised_workers(server.url, 2) as workers:
            wait_for_workers(conn, 2)
            drawing = _drawing_during_drain(server.url, sizes["drawing_runs"], sizes["train_subset"],
                                            sizes["visitors"], sizes["calm_s"],
                                            {"workers": workers.pid, "redis": server.process.pid})
    ideal = sum(two["run_seconds"]) / 2
    ratio = two["drain_s"] / ideal
    scale = one["drain_s"] / two["drain_s"]
    stop_median = statistics.median(stops)
    results.update({
        "drain, 2 workers (s)": round(two["drain_s"], 1),
        "sum of run times ÷ 2 (s)": round(ideal, 1),
        "median run (s)": round(statistics.median(two["run_seconds"]), 2),
        "finished of submitted": f"{two['finished']} of {sizes['runs']}",
        "trained twice": two["trained_twice"],
        "positions that went up": two["positions_went_up"] + one["positions_went_up"],
        "drain, 1 worker (s)": round(one["drain_s"], 1),
        "median run, 1 worker (s)": round(statistics.median(one["run_seconds"]), 2),
        "stop latencies (s)": [round(value, 3) for value in stops],
        "killed worker detected after (s)": round(detected, 1),
        "killed run's message": error,
    })
    results["summary"] = [
        {"what": f"workshop drain: {sizes['runs']} quick-preset runs, 2 RQ workers",
         "value": f"{two['finished']} of {sizes['runs']} finished, {two['trained_twice']} twice, "
                  f"positions went up {two['positions_went_up']}×; drain {ratio:.2f}× (sum of run times ÷ 2)",
         "goal": "all finish, none twice, positions only decrease, ≤ 1.1×",
         "met": two["finished"] == sizes["runs"] and two["trained_twice"] == 0 and two["positions_went_up"] == 0
         and ratio <= 1.1},
        {"what": "scale-out: throughput 2 workers ÷ 1 worker", "value": f"{scale:.2f}×",
         "goal": "≥ 1.8× (2 cores shared with the web tier and others)", "met": scale >= 1.8},
        {"what": "Stop → worker's last batch (median)", "value": f"{stop_median * 1000:.0f} ms",
         "goal": "≤ 1 s", "met": stop_median <= 1.0},
        {"what": "kill -9 of a worker → run failed", "value": f"{detected:.1f} s", "goal": "≤ 15 s",
         "met": detected <= 15 and "worker was lost" in error},
    ]
    figures, rows = _drawing_rows(drawing, sizes["drawing_runs"], sizes["visitors"], quick)
    results.update(figures)
    results["summary"] += rows
    return results


if __name__ == "__main__":
    import json

    quick = "--quick" in sys.argv
    if "--drawing" in sys.argv:
        drains = int(sys.argv[sys.argv.index("--drains") + 1]) if "--drains" in sys.argv else 1
        print(json.dumps(run_drawing(quick, niced="--nice" in sys.argv, drains=drains), indent=2, default=str))
    else:
        print(json.dumps(run(quick), indent=2, default=str))
