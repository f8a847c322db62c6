"""Does a long-lived server leak memory when every training run is a thread? Measure RSS over many jobs.

Each mode runs in a fresh Python process so one cannot warm up or pollute another. A worker loads
MNIST, then runs K small jobs through a real `JobQueue` (one thread per job), takes each result
and drops it, as the app does, and records the process's resident memory after every job.
Three different architectures alternate, so every job traces new TensorFlow functions.

Modes:
  threads         the thread runner, nothing between jobs
  clear_session   the thread runner, gc.collect() + keras.backend.clear_session() after each job
  main_thread     training.train called directly in the main thread: no threads at all
  threads_arena2  the thread runner with MALLOC_ARENA_MAX=2 (rules out per-thread malloc arenas)
  parallel2       the thread runner, two jobs at a time
  process         the process runner (worker replaced every JOBS_PER_WORKER jobs); RSS is the
                  server's, and the worker's RSS is listed separately

RSS "plateaus" when the growth over the second half of the jobs stays under
PLATEAU_MIB_PER_JOB per job. The cost of the alternative, a worker process per job, is measured
as the time a fresh process needs to import TensorFlow and load MNIST before it could train.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("threads", "clear_session", "main_thread", "threads_arena2", "parallel2", "process")
# `make bench` keeps within its time budget with these; the other modes run one at a time with
# `python -m bench.memory_jobs --worker MODE`.
FULL_RUN_MODES = ("threads", "clear_session", "main_thread", "process")
PLATEAU_MIB_PER_JOB = 2.0
# Small enough that the full run shows a worker being replaced and its memory coming back.
JOBS_PER_WORKER = 6


def _experiments(train_subset: int):
    from cnn_core.engine.specs import (
        AvgPool,
        Conv2D,
        Dense,
        Dropout,
        Experiment,
        Flatten,
        MaxPool,
        ModelSpec,
        TrainingConfig,
    )

    config = TrainingConfig(dataset="mnist", epochs=1, batch_size=64, validation_split=0.1, train_subset=train_subset)
    head = Dense(10, "softmax")
    stacks = [
        (Conv2D(16, 3), MaxPool(2), Flatten(), head),
        (Conv2D(8, 5, padding="same"), AvgPool(2), Conv2D(16, 3), MaxPool(2), Flatten(), Dense(32), head),
        (Conv2D(12, 3, strides=2), Dropout(0.2), Flatten(), Dense(24, "tanh"), head),
    ]
    return [Experiment(ModelSpec(layers, name=f"bench_{i}"), config) for i, layers in enumerate(stacks)]


def _rss_mib(pid: int | None = None) -> float:
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.NoSuchProcess:
        # A worker that was just recycled has no memory left to count.
        return 0.0


def worker(mode: str, jobs: int, train_subset: int) -> dict:
    """Run `jobs` trainings in this process and return RSS after each (MiB)."""
    import gc

    import keras

    from cnn_core.engine import datasets
    from cnn_core.service.queue import JobQueue
    from cnn_core.service.settings import Settings

    datasets.load("mnist")
    experiments = _experiments(train_subset)
    if mode == "main_thread":
        return _worker_main_thread(experiments, jobs)
    parallel = 2 if mode == "parallel2" else 1
    runner = "process" if mode == "process" else "thread"
    queue = JobQueue(
        Settings(max_concurrent_jobs=parallel, max_queued_jobs=parallel, abandon_after_s=600, job_runner=runner,
                 jobs_per_worker=JOBS_PER_WORKER)
    )
    start_rss = _rss_mib()
    rss: list[float] = []
    worker_rss: list[float] = []
    seconds: list[float] = []
    for first in range(0, jobs, parallel):
        begun = time.perf_counter()
        batch = [
            queue.submit(experiments[i % len(experiments)], owner=f"bench-{i}") for i in range(first, min(first + parallel, jobs))
        ]
        for job in batch:
            job.wait()
            if job.state != "finished":
                raise RuntimeError(f"{job} ended {job.state}: {job.error}")
            result = job.take_result()
            del result
            # A worker replaced after this job has already exited: nothing to measure.
            if job.worker_pid is not None and _rss_mib(job.worker_pid) > 0:
                worker_rss.append(_rss_mib(job.worker_pid))
        del batch, job
        if mode == "clear_session":
            gc.collect()
            keras.backend.clear_session()
        seconds.append(time.perf_counter() - begun)
        rss.extend([_rss_mib()] * parallel)
    queue.shutdown()
    return {
        "start_rss_mib": start_rss, "rss_mib": rss[:jobs], "seconds_per_round": seconds, "worker_rss_mib": worker_rss
    }


def _worker_main_thread(experiments, jobs: int) -> dict:
    """The same jobs called directly in the main thread: TensorFlow's own growth, without threads."""
    from cnn_core.engine import training

    start_rss = _rss_mib()
    rss: list[float] = []
    seconds: list[float] = []
    for i in range(jobs):
        begun = time.perf_counter()
        result = training.train(experiments[i % len(experiments)])
        del result
        seconds.append(time.perf_counter() - begun)
        rss.append(_rss_mib())
    return {"start_rss_mib": start_rss, "rss_mib": rss, "seconds_per_round": seconds, "worker_rss_mib": []}


def _process_start_seconds() -> float:
    """What a worker process per job would pay before training: import TensorFlow and load MNIST."""
    code = "import keras, tensorflow; from cnn_core.engine import datasets; datasets.load('mnist')"
    begun = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), check=True, capture_output=True)
    return time.perf_counter() - begun


def _env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}


def _run_mode(mode: str, jobs: int, train_subset: int) -> dict:
    command = [sys.executable, "-m", "bench.memory_jobs", "--worker", mode, "--jobs", str(jobs),
               "--train-subset", str(train_subset)]
    env = _env()
    if mode == "threads_arena2":
        # glibc gives each new thread its own malloc arena (up to 8 per core); two arenas in all
        # shows how much of the growth is allocator fragmentation rather than live objects.
        env["MALLOC_ARENA_MAX"] = "2"
    completed = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _slope(values: list[float]) -> float:
    """Least-squares growth per job, MiB."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


def run(quick: bool) -> dict:
    jobs, train_subset = (4, 500) if quick else (12, 2000)
    result: dict = {
        "notes": (
            f"{jobs} one-epoch jobs on {train_subset} MNIST images per mode, each mode in a fresh process; "
            "RSS in MiB after each job. 'second-half slope' is the least-squares growth per job over the "
            f"last {jobs // 2} jobs; below {PLATEAU_MIB_PER_JOB} MiB/job counts as a plateau."
        ),
        "summary": [],
    }
    slopes: dict[str, tuple[float, float]] = {}
    # The smoke run only proves both runners still work; the comparison needs the full run.
    for mode in ("threads", "process") if quick else FULL_RUN_MODES:
        measured = _run_mode(mode, jobs, train_subset)
        rss = measured["rss_mib"]
        second_half = rss[len(rss) // 2 :]
        slope = _slope(second_half)
        result[f"{mode} rss after each job (MiB)"] = [round(v) for v in rss]
        result[f"{mode} rss before first job (MiB)"] = round(measured["start_rss_mib"])
        result[f"{mode} growth first→last job (MiB)"] = round(rss[-1] - rss[0], 1)
        result[f"{mode} second-half slope (MiB/job)"] = round(slope, 2)
        result[f"{mode} mean seconds per round"] = round(
            sum(measured["seconds_per_round"]) / len(measured["seconds_per_round"]), 2
        )
        if measured["worker_rss_mib"]:
            result[f"{mode} worker rss after each job (MiB)"] = [round(v) for v in measured["worker_rss_mib"]]
        slopes[mode] = (slope, rss[-1] - rss[0])
    # The process runner is the default in local and host mode; the thread runner is what it replaced.
    slope, growth = slopes["process"]
    thread_slope, thread_growth = slopes["threads"]
    result["summary"].append(
        {
            "what": f"server RSS growth per job, second half of {jobs} jobs (process runner, the default)",
            "value": f"{slope:.2f} MiB/job (first→last {growth:+.0f} MiB)",
            "compared_with": f"thread runner: {thread_slope:.2f} MiB/job (first→last {thread_growth:+.0f} MiB)",
            "goal": f"< {PLATEAU_MIB_PER_JOB} MiB/job (plateau)",
            "met": None if quick else slope < PLATEAU_MIB_PER_JOB,
        }
    )
    result["process-per-job start cost (s)"] = round(_process_start_seconds(), 2)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=MODES, help="internal: run one mode in this process")
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--train-subset", type=int, default=2000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.jobs, args.train_subset)))
    else:
        print(json.dumps(run(quick=args.quick), indent=2))


if __name__ == "__main__":
    main()
