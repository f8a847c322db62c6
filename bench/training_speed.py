"""How much faster the app trains each preset than a plain float32 `model.fit`, at the same test accuracy.

For every preset, three runs on the same first N training images, interleaved so a burst of load
from elsewhere on the machine hits all of them alike:

- plain float32, seed s: `build_model` + `model.fit(x, y, shuffle=True)` + `model.evaluate`, the
  way the seed notebooks train (with the preset's optimizer, batch size and validation split);
- the app, seed s: `training.train` in the precision `CNN_BF16=auto` picks on this CPU (bfloat16
  with AMX / AVX-512 BF16), with its input pipeline and live-progress callback;
- plain float32, seed s + 1: the seed-to-seed spread of the plain run's test accuracy.

Each time is the whole run (building, every epoch, the test evaluation), because that is what a
learner waits for. The app's accuracy counts as equal when it is no more than the seed-to-seed
spread (at least half a point) below the plainer of the two float32 runs.

`--knobs` also measures the other defaults (thread counts, oneDNN, batch size vs steps) on the
quick preset, each variant in a fresh process because TensorFlow reads them at start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_SPEEDUP = 1.6
# The smallest accuracy spread that counts as "the same" when two seeds happen to agree closely.
MIN_TOLERANCE = 0.005


def _experiment(key: str, images: int, epochs: int):
    import dataclasses

    from cnn_core.workshop import presets

    preset = presets.get(key)
    training = dataclasses.replace(preset.training, train_subset=images, epochs=min(epochs, preset.training.epochs),
                                   target_accuracy=None)
    return dataclasses.replace(preset.experiment, training=training)


def _cpu_seconds() -> float:
    """This process's CPU time (all threads): steadier than wall time while other jobs share the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


CPU: list[float] = []  # the CPU seconds of the last run, next to the (seconds, accuracy) it returns


def _plain_fit(experiment, dataset, seed: int) -> tuple[float, float]:
    import dataclasses

    from cnn_core.engine.models import build_model

    config = dataclasses.replace(experiment.training, seed=seed)
    cpu = _cpu_seconds()
    begun = time.perf_counter()
    model = build_model(experiment.model, config)
    images = config.train_subset
    model.fit(dataset.x_train[:images], dataset.y_train[:images], batch_size=config.batch_size, epochs=config.epochs,
              validation_split=config.validation_split, shuffle=True, verbose=0)
    _, accuracy = model.evaluate(dataset.x_test, dataset.y_test, batch_size=256, verbose=0)
    CPU[:] = [_cpu_seconds() - cpu]
    return time.perf_counter() - begun, float(accuracy)


def _app_train(experiment, dataset, precision: str) -> tuple[float, float]:
    from cnn_core.engine import training

    cpu = _cpu_seconds()
    begun = time.perf_counter()
    # With a listener, as the app always trains: the per-batch events are part of its cost.
    result = training.train(experiment, dataset=dataset, precision=precision, listeners=[training.ProgressRecorder()])
    CPU[:] = [_cpu_seconds() - cpu]
    return time.perf_counter() - begun, result.test_accuracy


def measure_presets(images: int, epochs: int, keys: list[str] | None = None, quick: bool = False) -> dict:
    from cnn_core.engine import datasets, precision
    from cnn_core.workshop import presets

    chosen = precision.resolve("auto")
    result: dict = {"app precision": chosen, "summary": []}
    # Both paths once on a few images first: otherwise the first preset's first plain fit also pays
    # TensorFlow's process start-up (its first run was 1.7x its second on a quiet machine).
    warm = _experiment("quick_mnist", 256, 1)
    warm_data = datasets.load(warm.training.dataset)
    _plain_fit(warm, warm_data, warm.training.seed)
    _app_train(warm, warm_data, chosen)
    for key in keys or list(presets.PRESETS):
        experiment = _experiment(key, images, epochs)
        dataset = datasets.load(experiment.training.dataset)
        seed = experiment.training.seed
        plain_seconds, plain_accuracy = _plain_fit(experiment, dataset, seed)
        plain_cpu = CPU[0]
        app_seconds, app_accuracy = _app_train(experiment, dataset, chosen)
        app_cpu = CPU[0]
        other_seconds, other_accuracy = _plain_fit(experiment, dataset, seed + 1)
        other_cpu = CPU[0]
        speedup = (plain_seconds + other_seconds) / 2 / app_seconds
        cpu_speedup = (plain_cpu + other_cpu) / 2 / app_cpu
        spread = max(abs(plain_accuracy - other_accuracy), MIN_TOLERANCE)
        equal = app_accuracy >= min(plain_accuracy, other_accuracy) - spread
        result[f"{key}: plain float32 seconds (two seeds)"] = [round(plain_seconds, 2), round(other_seconds, 2)]
        result[f"{key}: app seconds"] = round(app_seconds, 2)
        result[f"{key}: speed-up"] = round(speedup, 2)
        result[f"{key}: CPU seconds plain (two seeds) / app"] = [round(plain_cpu, 2), round(other_cpu, 2), round(app_cpu, 2)]
        result[f"{key}: CPU-time speed-up"] = round(cpu_speedup, 2)
        result[f"{key}: test accuracy plain (two seeds) / app"] = [
            round(plain_accuracy, 4), round(other_accuracy, 4), round(app_accuracy, 4)
        ]
        result[f"{key}: accuracy equal within seed spread"] = equal
        result["summary"].append({
            "what": f"training speed-up, {presets.get(key).title} ({epochs} epoch(s) of {images:,} images)",
            "value": f"{speedup:.2f}× ({app_seconds:.1f} s vs {(plain_seconds + other_seconds) / 2:.1f} s); "
                     f"CPU time {cpu_speedup:.2f}×",
            "compared_with": f"plain float32 model.fit; accuracy {app_accuracy:.2%} vs "
                             f"{plain_accuracy:.2%}/{other_accuracy:.2%}",
            "goal": f"≥ {GOAL_SPEEDUP}×, equal accuracy",
            "met": None if quick else speedup >= GOAL_SPEEDUP and equal,
        })
    return result


def measure_executions(images: int, epochs: int, keys: list[str], rounds: int = 2) -> dict:
    """The app with one batch per call into TensorFlow (as before engine.executions) vs adaptive executions.

    Interleaved in this process; the same seed trains the same run either way, so only time differs.
    """
    from cnn_core.engine import datasets, executions, precision

    chosen = precision.resolve("auto")
    default = executions.MAX_STEPS
    result: dict = {}
    try:
        for key in keys:
            experiment = _experiment(key, images, epochs)
            dataset = datasets.load(experiment.training.dataset)
            for _ in range(rounds):
                for name, steps in (("one batch per call", 1), ("adaptive executions", default)):
                    executions.MAX_STEPS = steps
                    seconds, accuracy = _app_train(experiment, dataset, chosen)
                    result.setdefault(f"{key}: {name}: seconds, CPU seconds, accuracy", []).append(
                        [round(seconds, 2), round(CPU[0], 2), round(accuracy, 4)])
    finally:
        executions.MAX_STEPS = default
    return result


# The knobs: each variant trains the quick preset in a fresh process (environment read at import).
KNOBS = {
    "default (oneDNN on, TensorFlow's threads)": {},
    "TF_ENABLE_ONEDNN_OPTS=0": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "intra-op threads 1": {"BENCH_INTRA": "1"},
    "inter-op threads 1": {"BENCH_INTER": "1"},
    "batch 256 (half the steps)": {"BENCH_BATCH": "256"},
    "float32": {"BENCH_PRECISION": "float32"},
}


def _knob_worker(images: int) -> dict:
    import dataclasses

    import tensorflow as tf

    from cnn_core.engine import datasets, precision

    if os.environ.get("BENCH_INTRA"):
        tf.config.threading.set_intra_op_parallelism_threads(int(os.environ["BENCH_INTRA"]))
    if os.environ.get("BENCH_INTER"):
        tf.config.threading.set_inter_op_parallelism_threads(int(os.environ["BENCH_INTER"]))
    experiment = _experiment("quick_mnist", images, 2)
    if os.environ.get("BENCH_BATCH"):
        experiment = dataclasses.replace(
            experiment, training=dataclasses.replace(experiment.training, batch_size=int(os.environ["BENCH_BATCH"]))
        )
    chosen = os.environ.get("BENCH_PRECISION") or precision.resolve("auto")
    dataset = datasets.load("mnist")
    seconds, accuracy = _app_train(experiment, dataset, chosen)
    return {"seconds": seconds, "accuracy": accuracy}


def measure_knobs(images: int, rounds: int) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    times: dict[str, list[float]] = {name: [] for name in KNOBS}
    accuracy: dict[str, list[float]] = {name: [] for name in KNOBS}
    for _ in range(rounds):
        for name, extra in KNOBS.items():
            command = [sys.executable, "-m", "bench.training_speed", "--knob-worker", "--images", str(images)]
            done = subprocess.run(command, cwd=ROOT, env={**env, **extra}, check=True, capture_output=True, text=True)
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            times[name].append(measured["seconds"])
            accuracy[name].append(measured["accuracy"])
    base = min(times["default (oneDNN on, TensorFlow's threads)"])
    result = {}
    for name in KNOBS:
        best = min(times[name])
        result[f"knob {name}: seconds (best of {rounds})"] = round(best, 2)
        result[f"knob {name}: relative to default"] = round(best / base, 2)
        result[f"knob {name}: test accuracy"] = round(max(accuracy[name]), 4)
    return result


def run(quick: bool, knobs: bool | None = None) -> dict:
    """The preset comparison; the knobs too in a full run (`knobs=None`), since each needs fresh processes."""
    knobs = not quick if knobs is None else knobs
    images, epochs = (600, 1) if quick else (12_000, 2)
    result = {
        "notes": (
            f"Each preset for {epochs} epoch(s) of its first {images:,} training images (the preset's own batch "
            "size, optimizer and validation split), three runs interleaved: plain float32 model.fit seed s, the "
            "app's training.train seed s, plain float32 seed s+1. Seconds are whole runs (build + fit + test "
            "evaluation). Measured on a machine shared with other jobs: ratios within one run are what count."
        ),
        **measure_presets(images, epochs, quick=quick),
    }
    if knobs:
        result.update(measure_knobs(4_000 if quick else 12_000, 1 if quick else 2))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--knobs", action="store_true", default=None,
                        help="measure threads, oneDNN and batch size even in a quick run")
    parser.add_argument("--presets", nargs="*", help="only these preset keys")
    parser.add_argument("--images", type=int, default=12_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--knob-worker", action="store_true", help="internal: one knob variant in this process")
    parser.add_argument("--executions", action="store_true",
                        help="with --presets: the app with one batch per call vs adaptive executions")
    args = parser.parse_args(argv)
    if args.knob_worker:
        print(json.dumps(_knob_worker(args.images)))
    elif args.executions:
        print(json.dumps(measure_executions(args.images, args.epochs, args.presets or ["dense_baseline"]), indent=2))
    elif args.presets:
        print(json.dumps(measure_presets(args.images, args.epochs, args.presets), indent=2, default=str))
    else:
        print(json.dumps(run(quick=args.quick, knobs=args.knobs), indent=2, default=str))


if __name__ == "__main__":
    main()
