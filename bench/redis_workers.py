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

The machine is shared (2 cores, other jobs running), so the figures that matter are ratios taken
within one run.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import statistics
import time

from tests.core.service.redis_harness import redis_server, supervised_workers, wait_for_workers

FULL = {"runs": 30, "train_subset": 1000, "stops": 5}
QUICK = {"runs": 6, "train_subset": 500, "stops": 2}


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
    return results
