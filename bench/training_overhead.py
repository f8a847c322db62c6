"""What live progress costs: `training.train` with listeners and a stop event vs a plain `model.fit`.

Three ways to train the same spec on the same images, each timed over the epochs after the first
(the first epoch pays for tracing the training step, the same for all three; model building and
the test evaluation are left out too):

- plain fit: `model.fit(x, y, shuffle=True, verbose=0)`, the way the seed notebooks train;
- pipeline fit: `model.fit` on `training.shuffled_batches`, the seeded input pipeline `train` uses,
  without any callback, to separate the pipeline's cost from the callback's;
- train(): the real thing, with a ProgressRecorder, a second listener and a stop event that is never set.

The variants run interleaved (A, B, C, A, B, C…) so a burst of load from elsewhere on the machine
hits all of them alike, and each figure is the median of the repeats.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import threading
import time

from cnn_core.engine import datasets, training
from cnn_core.engine.datasets import Dataset
from cnn_core.engine.models import build_model
from cnn_core.workshop import presets

GOAL_OVERHEAD = 0.05


def _dataset(images: int) -> Dataset:
    mnist = datasets.load("mnist")
    return Dataset("mnist", mnist.x_train[:images], mnist.y_train[:images], mnist.x_test[:500], mnist.y_test[:500],
                   mnist.class_names)


def _epoch_clock():
    """A callback that notes when epochs begin and end; it has no per-batch hook, so it costs nothing."""
    import keras

    class EpochClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.begins: list[float] = []
            self.ends: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.begins.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            self.ends.append(time.perf_counter())

    return EpochClock()


def _plain_fit(experiment, dataset: Dataset) -> float:
    config = experiment.training
    model = build_model(experiment.model, config)
    clock = _epoch_clock()
    model.fit(dataset.x_train, dataset.y_train, batch_size=config.batch_size, epochs=config.epochs, shuffle=True,
              callbacks=[clock], verbose=0)
    return clock.ends[-1] - clock.begins[1]


def _pipeline_fit(experiment, dataset: Dataset) -> float:
    config = experiment.training
    model = build_model(experiment.model, config)
    steps = -(-len(dataset.x_train) // config.batch_size)
    clock = _epoch_clock()
    batches = training.shuffled_batches(dataset.x_train, dataset.y_train, config.batch_size, config.epochs, config.seed)
    model.fit(batches, epochs=config.epochs, steps_per_epoch=steps, shuffle=False, callbacks=[clock], verbose=0)
    return clock.ends[-1] - clock.begins[1]


def _train(experiment, dataset: Dataset) -> float:
    epoch_ends: list[float] = []

    def clock(event):
        if isinstance(event, training.EpochEnded):
            epoch_ends.append(time.perf_counter())

    recorder = training.ProgressRecorder()
    training.train(experiment, dataset=dataset, listeners=[recorder, clock], stop_event=threading.Event())
    recorder.snapshot()
    return epoch_ends[-1] - epoch_ends[0]


def per_batch_cost(calls: int) -> float:
    """Microseconds the training callback spends per batch with a ProgressRecorder and a second listener.

    This is everything `train` adds to a step (Keras hands it the logs as Python floats), measured
    in isolation, so unlike the wall-clock comparison it hardly depends on the machine's load.
    """
    from cnn_core.engine.specs import Dense, Flatten, ModelSpec

    model = build_model(ModelSpec((Flatten(), Dense(10, "softmax"))))
    dispatch = training._Dispatcher([training.ProgressRecorder(), lambda event: None])
    callback = training._forwarding_callback(dispatch, 1000, threading.Event(), None, False)
    callback.set_model(model)
    callback.on_epoch_begin(0)
    logs = {"loss": 0.5, "accuracy": 0.9}
    started = time.perf_counter()
    for batch in range(calls):
        callback.on_train_batch_end(batch % 1000, logs)
    return (time.perf_counter() - started) / calls * 1e6


def run(quick: bool) -> dict:
    images, repeats = (1_000, 1) if quick else (12_000, 5)
    preset = presets.get("mnist_functional")
    experiment = dataclasses.replace(
        preset.experiment, training=dataclasses.replace(preset.training, epochs=3, validation_split=0.0)
    )
    dataset = _dataset(images)
    # One untimed run of each so TensorFlow's one-off start-up costs land on nobody.
    variants = {"plain fit": _plain_fit, "pipeline fit": _pipeline_fit, "train()": _train}
    for measure in variants.values():
        measure(experiment, dataclasses.replace(dataset, x_train=dataset.x_train[:256], y_train=dataset.y_train[:256]))
    times: dict[str, list[float]] = {name: [] for name in variants}
    load_before = os.getloadavg()[0]
    for _ in range(repeats):
        for name, measure in variants.items():
            times[name].append(measure(experiment, dataset))
    medians = {name: statistics.median(values) for name, values in times.items()}
    callback_microseconds = per_batch_cost(10_000 if quick else 100_000)
    steps_timed = (experiment.training.epochs - 1) * -(-images // experiment.training.batch_size)
    step_milliseconds = min(times["plain fit"]) / steps_timed * 1e3
    overhead = medians["train()"] / medians["plain fit"] - 1
    callback_overhead = medians["train()"] / medians["pipeline fit"] - 1
    result = {
        "notes": (
            f"Spec `{preset.key}`, {images:,} MNIST images, batch {experiment.training.batch_size}, "
            f"{experiment.training.epochs} epochs of which the last {experiment.training.epochs - 1} are timed, "
            f"median of {repeats}. Load average before: {load_before:.1f} "
            f"on {os.cpu_count()} cores (the machine is shared, so single runs are noisy)."
        ),
        "images": images,
        "repeats": repeats,
        **{f"{name} seconds (median)": round(value, 3) for name, value in medians.items()},
        **{f"{name} seconds (all)": [round(v, 3) for v in values] for name, values in times.items()},
        "overhead vs plain fit": round(overhead, 4),
        "best-of-repeats overhead vs plain fit": round(min(times["train()"]) / min(times["plain fit"]) - 1, 4),
        "callback cost per batch (µs)": round(callback_microseconds, 2),
        "fastest plain step (ms)": round(step_milliseconds, 2),
        "callback cost as a share of a step": round(callback_microseconds / 1e3 / step_milliseconds, 5),
        "callback overhead vs pipeline fit": round(callback_overhead, 4),
        "summary": [
            {
                "what": "train() with live progress vs plain model.fit",
                "value": f"{overhead:+.1%}",
                "compared_with": f"plain fit {medians['plain fit']:.2f} s",
                "goal": f"≤ {GOAL_OVERHEAD:.0%} slower",
                "met": None if quick else overhead <= GOAL_OVERHEAD,
            }
        ],
    }
    return result


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
