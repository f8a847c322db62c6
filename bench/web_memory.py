"""The web server's memory per finished Redis run, in one process, without workers or a browser (issue #14).

`bench.redis_workers --drawing` saw a Streamlit server's RSS grow about 8 MB per run that a
participant watched to its end. This reproduces only the web tier's part of that, cheaply: one
real run is trained once by a real RQ worker (`rq_worker --burst`) as the template; then, in one
process, N simulated participants each open the Train page (AppTest, through `app.py`'s
navigation), press Start, and a stand-in worker copies the template's event stream, result and
`.keras` bytes into the new run exactly as `rq_worker` leaves them; the page is rerun until it
shows the finished run, as a participant's browser would. The process's RSS is read after each
(after a full garbage collection, so what is counted is what is still reachable or leaked).

Variants, each in a fresh process so none inherits another's memory:

* ``page``: every participant's session is closed after its run (as Streamlit drops it);
* ``page-kept``: every session stays open (30 participants who keep their tab);
* ``draw-kept``: as ``page-kept``, and each participant also draws once on the Draw page with their model;
* ``load``: only `model_from_bytes` of the result, dropped at once (a per-load leak in Keras);
* ``load-predictor``: that plus a traced `Predictor` and one prediction (a per-trace leak in TensorFlow);
* ``server``, ``server-batches``: a real Streamlit server with protocol participants (one, or 6, at a time);
* ``draw-visitors``: the same server with only 10 drawing visitors for 3 minutes, no runs (`bench.redis_workers
  --drawing` has them too): MB per minute.

    .venv/bin/python -m bench.web_memory [--quick] [--runs N] [--variants page page-kept ...]
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FULL = {"runs": 30, "variants": ("page", "page-kept", "draw-kept", "load", "load-predictor")}
QUICK = {"runs": 4, "variants": ("page-kept", "load")}
GOAL_MB_PER_RUN = 1.0
# server-batches: participants at once (a workshop's runs overlap; their sessions and live views too)
BATCH = 6
# draw-visitors: 10 visitors draw this long (seconds), no runs
VISITOR_S, VISITOR_S_QUICK = int(os.environ.get("WEB_MEMORY_VISITOR_S", "180")), 20
TEMPLATE_OWNER = "bench-template"
ROOT = Path(__file__).resolve().parent.parent


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _per_run(rss: list[float]) -> float:
    """MB per run once warm: the least-squares slope over the last two thirds of the runs."""
    import numpy as np

    start = len(rss) // 3
    tail = np.asarray(rss[start:], dtype=float)
    if len(tail) < 2:
        return float("nan")
    return float(np.polyfit(np.arange(len(tail)), tail, 1)[0])


# The template run: trained once by a real worker, so the events and bytes are what a worker sends.


def _train_template(url: str, train_subset: int) -> str:
    from cnn_core.service import redis_queue
    from cnn_core.service.settings import load_settings
    from cnn_core.workshop import presets
    from tests.core.service.redis_harness import worker_env

    experiment = presets.get("quick_mnist").experiment
    import dataclasses

    experiment = dataclasses.replace(experiment, training=dataclasses.replace(
        experiment.training, train_subset=train_subset, epochs=1))
    queue = redis_queue.RedisJobQueue(load_settings({"CNN_REDIS_URL": url}))
    job = queue.submit(experiment, owner=TEMPLATE_OWNER)
    with tempfile.TemporaryDirectory(prefix="cnn-bench-worker-") as folder:
        subprocess.run([sys.executable, "-m", "cnn_core.service.rq_worker", "--burst", "--threads", "1"],
                       cwd=folder, env=worker_env(url), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=600)
    queue.shutdown()
    if job.state != "finished":
        raise RuntimeError(f"The template run ended {job.state}: {job.error}")
    return job.id


def replay(conn, template_id: str, run_id: str, spread_s: float = 0.0) -> None:
    """Finish `run_id` as a worker would have, with the template run's events, result and model bytes.

    `spread_s` spreads the events over that long, so a live view sees the run running.
    """
    from cnn_core.service import redis_queue as keys

    fields = {keys._text(k): v for k, v in conn.hgetall(keys.run_key(template_id)).items()}
    owner = keys._text(conn.hget(keys.run_key(run_id), "owner"))
    now = keys.redis_now(conn)
    # The worker's heartbeat, so this replica's reaper does not declare the run lost while it is copied.
    conn.set(keys.run_key(run_id, "alive"), "replay", ex=60)
    if not keys.transition(conn, run_id, ("queued",), {"state": "running", "started_at": repr(now - 2),
                                                         "worker": "replay", "started_event": fields["started_event"]}):
        raise RuntimeError(f"Run {run_id} was not queued.")
    from rq import Queue
    from rq.serializers import JSONSerializer

    Queue(keys.QUEUE_NAME, connection=conn, serializer=JSONSerializer).remove(run_id)  # no worker may take it
    entries = conn.xrange(keys.run_key(template_id, "events"))
    for _, entry in entries:
        conn.xadd(keys.run_key(run_id, "events"), entry)
        if spread_s:
            time.sleep(spread_s / len(entries))
    for entry in conn.lrange(keys.run_key(template_id, "frames"), 0, -1):  # the filmstrip, since issue #14
        conn.rpush(keys.run_key(run_id, "frames"), entry)
    conn.set(keys.run_key(run_id, "model"), conn.get(keys.run_key(template_id, "model")), ex=3600)
    keys.finish_run(conn, run_id, owner, ("running",), 3600,
                    {"state": "finished", "result": fields["result"], "finished_at": repr(keys.redis_now(conn))})
    conn.delete(keys.run_key(run_id, "alive"))


# One variant, in its own process (`--child`).


def _participant(template_id: str, conn, draw: bool):
    """One participant's session: Train page, quick preset, Start, the finished run shown (and a drawing)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/train.py").run()
    at.selectbox(key="train-preset").set_value("quick_mnist").run()
    at.button(key="train-run-start").click().run()
    job = at.session_state["app_state"].training_job
    if job is None:
        raise RuntimeError(f"Start did not start a run: {[e.value for e in at.error]}")
    replay(conn, template_id, job.id)
    deadline = time.monotonic() + 60
    while not any("now your **active model**" in m.value for m in at.markdown):
        if time.monotonic() > deadline:
            raise RuntimeError(f"The finished run was not shown: {[e.value for e in at.error]}")
        time.sleep(0.3)
        at.run()
    if draw:
        from tests.app.conftest import drawing
        from ui.components import canvas

        image = drawing("7")
        canvas.render = lambda **_: image  # what the browser's canvas would send after a stroke
        at.switch_page("pages/draw.py").run()
        state = at.session_state["app_state"]
        if hasattr(state, "predictors"):  # before issue #14's model cache: each session kept its predictors
            predicted = state.active_model in state.predictors
        else:
            from ui import loaders

            predicted = state.models.cache_key(state.active_model) in loaders.model_cache()
        if not predicted:
            raise RuntimeError(f"The Draw page did not predict with the participant's model: {at.error}")
    return at


def _child(variant: str, runs: int, url: str, template_id: str) -> dict:
    if variant == "draw-visitors":
        return _draw_visitors(runs)
    if variant.startswith("server"):
        return _server(variant, runs, url, template_id)
    os.environ["CNN_REDIS_URL"] = url
    os.environ["CNN_MAX_QUEUED_JOBS"] = str(runs + 5)
    os.environ.setdefault("CNN_WORKSPACES_DIR", tempfile.mkdtemp(prefix="cnn-bench-ws-"))
    os.environ.setdefault("CNN_MODELS_DIR", tempfile.mkdtemp(prefix="cnn-bench-models-"))
    from cnn_core.service import redis_queue as keys

    conn = keys.connect(url)
    data = conn.get(keys.run_key(template_id, "model"))
    kept = []
    rss: list[float] = []
    seconds: list[float] = []
    if variant.startswith("load"):
        import numpy as np

        from cnn_core.engine.inference import Predictor
        from cnn_core.engine.models import model_from_bytes
    for _ in range(runs):
        begun = time.perf_counter()
        if variant in ("page", "page-kept", "draw-kept"):
            at = _participant(template_id, conn, draw=variant == "draw-kept")
            if variant != "page":
                kept.append(at)
            del at
        else:
            model = model_from_bytes(data)
            if variant == "load-predictor":
                Predictor(model).predict(np.zeros((28, 28), np.float32))
            del model
        seconds.append(time.perf_counter() - begun)
        gc.collect()
        rss.append(_rss_mb())
    return {"variant": variant, "rss_mb": [round(value, 1) for value in rss], "mb_per_run": round(_per_run(rss), 2),
            "seconds_per_run": round(sorted(seconds)[len(seconds) // 2], 2)}


def _replay_worker(url: str, template_id: str, stop, spread_s: float) -> None:
    """Stands in for the RQ workers: every run the server queues is finished from the template."""
    from cnn_core.service import redis_queue as keys

    conn = keys.connect(url)
    while not stop.is_set():
        for raw in conn.smembers(keys.ACTIVE_KEY):
            run_id = keys._text(raw)
            if keys._text(conn.hget(keys.run_key(run_id), "state")) == "queued":
                replay(conn, template_id, run_id, spread_s)
        stop.wait(0.1)


def _server(variant: str, runs: int, url: str, template_id: str) -> dict:
    """A real Streamlit server on CNN_REDIS_URL; protocol participants one after another (bench.redis_workers')."""
    import asyncio
    import threading

    import psutil

    from bench.redis_workers import _participant_run
    from tests.app.browser.harness import serve_app

    env = {"CNN_REDIS_URL": url, "CNN_MAX_QUEUED_JOBS": str(runs + 5)}
    if variant == "server-ttl1":
        # Streamlit keeps a closed tab's session this long for a reconnect (default 120 s).
        env["STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL"] = "1"
    rss: list[float] = []
    seconds: list[float] = []
    stop = threading.Event()
    worker = threading.Thread(target=_replay_worker, args=(url, template_id, stop, 1.5), daemon=True)
    worker.start()
    try:
        with serve_app(env) as app:
            server = psutil.Process(app.process.pid)
            at_once = BATCH if variant == "server-batches" else 1

            async def batch(log: dict) -> None:
                await asyncio.gather(*(_participant_run(app.url, 500, log) for _ in range(at_once)))

            for _ in range(runs // at_once):
                log: dict = {"ended": [], "failures": [], "refreshes": 0}
                begun = time.perf_counter()
                asyncio.run(batch(log))
                if log["failures"]:
                    raise RuntimeError(f"A participant failed: {log['failures']}")
                seconds.append(time.perf_counter() - begun)
                time.sleep(1.0)
                rss.append(server.memory_info().rss / 2**20)
    finally:
        stop.set()
        worker.join(timeout=10)
    return {"variant": variant, "rss_mb": [round(value, 1) for value in rss],
            "mb_per_run": round(_per_run(rss) / at_once, 2), "seconds_per_run": round(sorted(seconds)[len(seconds) // 2], 2)}


def _draw_visitors(duration_s: float, visitors: int = 10) -> dict:
    """Only drawing visitors (bench.load_test's), no runs: what they cost the server's memory over time."""
    import asyncio
    import threading

    import psutil

    from bench.load_test import _drawings, _visitor
    from tests.app.browser.harness import serve_app

    samples: list = []
    failures: list = []
    memory: list[tuple[float, float]] = []
    # e.g. WEB_MEMORY_SERVER_ENV='{"STREAMLIT_RUNNER_POST_SCRIPT_GC": "true"}' to compare a server setting
    with serve_app(json.loads(os.environ.get("WEB_MEMORY_SERVER_ENV", "{}"))) as app:
        server = psutil.Process(app.process.pid)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(5.0):
                memory.append((time.monotonic(), server.memory_info().rss / 2**20))

        async def draw() -> None:
            drawings = _drawings(30, seed=13)
            stop_at = time.monotonic() + duration_s
            await asyncio.gather(*(_visitor(app.url, drawings, stop_at, samples, failures) for _ in range(visitors)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        asyncio.run(draw())
        done.set()
        sampler.join()
    import numpy as np

    half = memory[len(memory) // 2:]
    slope = float(np.polyfit([t for t, _ in half], [mb for _, mb in half], 1)[0]) * 60 if len(half) > 1 else float("nan")
    return {"variant": "draw-visitors", "rss_mb": [round(mb, 1) for _, mb in memory], "mb_per_minute": round(slope, 1),
            "strokes": len(samples), "failures": failures[:3]}


def run(quick: bool, runs: int | None = None, variants: tuple[str, ...] | None = None) -> dict:
    from tests.core.service.redis_harness import redis_missing_message, redis_server

    sizes = QUICK if quick else FULL
    runs = runs or sizes["runs"]
    variants = variants or sizes["variants"]
    if redis_missing_message():
        return {"notes": f"skipped: {redis_missing_message()}"}
    results: dict = {"runs per variant": runs}
    with redis_server() as server:
        template = _train_template(server.url, 500)
        for variant in variants:
            count = (VISITOR_S_QUICK if quick else VISITOR_S) if variant == "draw-visitors" else runs
            done = subprocess.run(
                [sys.executable, "-m", "bench.web_memory", "--child", variant, str(count), server.url, template],
                cwd=ROOT, capture_output=True, text=True, timeout=3600,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)},
            )
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode or not lines:
                raise RuntimeError(f"variant {variant} failed: {done.stderr[-2000:]}")
            figures = json.loads(lines[-1])
            if variant == "draw-visitors":
                results["draw-visitors: MB per minute, second half"] = figures["mb_per_minute"]
                results["draw-visitors: RSS MB every 5 s"] = " ".join(f"{v:.0f}" for v in figures["rss_mb"])
                results["draw-visitors: strokes answered / failures"] = f"{figures['strokes']} / {figures['failures']}"
                continue
            results[f"{variant}: MB per run once warm"] = figures["mb_per_run"]
            results[f"{variant}: RSS MB after each run"] = " ".join(f"{value:.0f}" for value in figures["rss_mb"])
            results[f"{variant}: seconds per run (median)"] = figures["seconds_per_run"]
    results["notes"] = (
        f"{runs} simulated participants per variant in one process each (see the module docstring); RSS after a "
        "full garbage collection; MB per run is the slope over the last two thirds of the runs."
    )
    if "page-kept" in variants:
        value = results["page-kept: MB per run once warm"]
        results["summary"] = [{
            "what": "web server memory per finished Redis run shown on the Train page, sessions kept open "
                    "(`python -m bench.web_memory`)",
            "value": f"{value:+.2f} MB/run", "compared_with": ", ".join(
                f"{v}: {results[f'{v}: MB per run once warm']:+.2f}" for v in variants if v != "page-kept"),
            "goal": f"< {GOAL_MB_PER_RUN:g} MB/run once warm", "met": None if quick else value < GOAL_MB_PER_RUN,
        }]
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        variant, runs, url, template = sys.argv[2:6]
        print(json.dumps(_child(variant, int(runs), url, template)))
        sys.exit(0)
    arguments = sys.argv[1:]
    count = int(arguments[arguments.index("--runs") + 1]) if "--runs" in arguments else None
    chosen = None
    if "--variants" in arguments:
        chosen = tuple(name for name in arguments[arguments.index("--variants") + 1:] if not name.startswith("--"))
    print(json.dumps(run("--quick" in arguments, count, chosen), indent=2, default=str))
