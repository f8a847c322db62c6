"""What watching a run costs: `training.train` with the filmstrip and a steering control vs without.

Two figures, because the machine is shared:

- wall clock: the same run with and without `record_filmstrip=True` + a `TrainingControl`,
  interleaved (A, B, A, B…), median of the repeats; noisy when other work shares the cores;
- frame cost: the seconds the filmstrip's frames themselves took during the filmstrip runs
  (timed inside `Camera.frame`), as a share of those runs' training time; this hardly depends
  on the load and is the figure the goal is checked against.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time

from cnn_core.engine import datasets, filmstrip, training
from cnn_core.engine.datasets import Dataset
from cnn_core.workshop import presets

GOAL_OVERHEAD = 0.03


def _dataset(images: int) -> Dataset:
    mnist = datasets.load("mnist")
    return Dataset("mnist", mnist.x_train[:images], mnist.y_train[:images], mnist.x_test[:1000], mnist.y_test[:1000],
                   mnist.class_names)


def _timed_run(experiment, dataset: Dataset, watched: bool) -> tuple[float, float, int]:
    """Seconds from TrainStarted to the last EpochEnded, seconds spent taking frames, frames taken."""
    marks: dict[str, float] = {}
    frames = []

    def clock(event):
        if isinstance(event, training.TrainStarted):
            marks["start"] = time.perf_counter()
        elif isinstance(event, training.EpochEnded):
            marks["end"] = time.perf_counter()
        elif isinstance(event, filmstrip.Frame):
            frames.append(event)

    spent = [0.0]
    original = filmstrip.Camera.frame

    def timed_frame(self, step):
        started = time.perf_counter()
        try:
            return original(self, step)
        finally:
            spent[0] += time.perf_counter() - started

    filmstrip.Camera.frame = timed_frame
    try:
        options = {"record_filmstrip": True, "control": training.TrainingControl()} if watched else {}
        training.train(experiment, dataset=dataset, listeners=[clock, training.ProgressRecorder()], **options)
    finally:
        filmstrip.Camera.frame = original
    return marks["end"] - marks["start"], spent[0], len(frames)


def run(quick: bool) -> dict:
    images, repeats, epochs = (1_000, 1, 1) if quick else (12_000, 3, 2)
    preset = presets.get("mnist_functional")
    experiment = dataclasses.replace(
        preset.experiment, training=dataclasses.replace(preset.training, epochs=epochs, validation_split=0.0)
    )
    dataset = _dataset(images)
    # Untimed warm-up of both, so TensorFlow's one-off start-up lands on nobody.
    small = dataclasses.replace(dataset, x_train=dataset.x_train[:256], y_train=dataset.y_train[:256])
    _timed_run(experiment, small, False)
    _timed_run(experiment, small, True)
    load_before = os.getloadavg()[0]
    plain, watched, frame_seconds, frame_counts = [], [], [], []
    for _ in range(repeats):
        plain.append(_timed_run(experiment, dataset, False)[0])
        seconds, spent, count = _timed_run(experiment, dataset, True)
        watched.append(seconds)
        frame_seconds.append(spent)
        frame_counts.append(count)
    wall = statistics.median(watched) / statistics.median(plain) - 1
    frame_share = statistics.median(s / w for s, w in zip(frame_seconds, watched, strict=True))
    return {
        "notes": (
            f"Spec `{preset.key}`, {images:,} MNIST images, batch {experiment.training.batch_size}, {epochs} epochs, "
            f"{frame_counts[0]} frames per run, median of {repeats}. Load average before: {load_before:.1f} on "
            f"{os.cpu_count()} cores (shared machine: the wall-clock figure is noisy, the frame cost is not)."
        ),
        "plain train() seconds (all)": [round(v, 3) for v in plain],
        "with filmstrip + control seconds (all)": [round(v, 3) for v in watched],
        "wall-clock overhead (median)": round(wall, 4),
        "frames per run": frame_counts[0],
        "seconds taking frames (all)": [round(v, 4) for v in frame_seconds],
        "milliseconds per frame": round(statistics.median(frame_seconds) / frame_counts[0] * 1e3, 2),
        "frame cost as a share of training": round(frame_share, 5),
        "summary": [
            {
                "what": "filmstrip (12 frames) + steering control during a run",
                "value": f"{frame_share:+.2%} frame cost ({wall:+.1%} wall clock)",
                "compared_with": f"train() {statistics.median(plain):.2f} s",
                "goal": f"≤ {GOAL_OVERHEAD:.0%}",
                "met": None if quick else frame_share <= GOAL_OVERHEAD,
            }
        ],
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
