"""Own classes: 3 drawn shape classes × 20 drawings → validation accuracy and training time.

A "learner" draws circles, triangles and squares on the app's 280×280 canvas (white strokes on
black, as the browser canvas sends them), each a little different: position, size, tilt and pen
width vary, as hands do. The drawings go through the one canvas path
(`preprocess.canvas_to_mnist`), then `own_data.build_arrays` (one in five held back as the test
set, three shifted/rotated copies of the rest), and the page's own experiment
(`presets.for_own_classes`: the Quick MNIST convnet with three outputs and a 20% validation split)
trains on them, as "Train on these classes" does.
"""

from __future__ import annotations

import math
import time

import numpy as np

SHAPES = ("circle", "triangle", "square")
PER_CLASS = 20
GOAL_ACCURACY = 0.9


def shape_drawing(kind: str, rng: np.random.Generator, size: int = 280) -> np.ndarray:
    """One hand-drawn-looking shape: an RGBA canvas, white ink on black."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGBA", (size, size), (0, 0, 0, 255))
    pen = ImageDraw.Draw(picture)
    radius = rng.uniform(50, 110)
    cx, cy = rng.uniform(radius + 15, size - radius - 15, size=2)
    tilt = rng.uniform(-0.35, 0.35)
    width = int(rng.integers(12, 24))
    corners = {"circle": 48, "triangle": 3, "square": 4}[kind]
    start = tilt + (-math.pi / 2 if kind == "triangle" else math.pi / 4)
    points = []
    for index in range(corners + 1):
        angle = start + 2 * math.pi * index / corners
        # A hand does not close the loop exactly or keep the radius steady.
        wobble = radius * (1 + rng.normal(0, 0.04))
        points.append((cx + wobble * math.cos(angle), cy + wobble * math.sin(angle)))
    pen.line(points, fill=(255, 255, 255, 255), width=width, joint="curve")
    return np.asarray(picture)


def drawn_collection(per_class: int, seed: int) -> dict[str, np.ndarray]:
    from cnn_core.engine import own_data, preprocess

    rng = np.random.default_rng(seed)
    return {
        kind: np.stack([own_data.as_uint8(preprocess.canvas_to_mnist(shape_drawing(kind, rng)))
                        for _ in range(per_class)])
        for kind in SHAPES
    }


def run(quick: bool) -> dict:
    from cnn_core.engine import datasets, own_data, registry, training
    from cnn_core.workshop import presets

    collection = drawn_collection(PER_CLASS, seed=7)
    names, arrays = own_data.build_arrays(collection)
    info = registry.register(registry.DatasetInfo(
        name="bench-own-shapes", title="Bench shapes", class_names=names,
        train_size=len(arrays[0]), test_size=len(arrays[2]), arrays=lambda: arrays,
    ))
    try:
        experiment = presets.for_own_classes(info.name, info.num_classes)
        if quick:
            import dataclasses

            experiment = dataclasses.replace(experiment, training=dataclasses.replace(experiment.training, epochs=3))
        begun = time.perf_counter()
        result = training.train(experiment, dataset=datasets.load(info.name))
        seconds = time.perf_counter() - begun
    finally:
        registry.unregister(info.name)
    last = result.history[-1]
    val_accuracy = float(last.get("val_accuracy", float("nan")))
    reached = next((row["epoch"] + 1 for row in result.history if row.get("val_accuracy", 0) >= GOAL_ACCURACY), None)
    summary = [{
        "what": f"own classes: {len(SHAPES)} drawn shapes × {PER_CLASS} drawings, "
                f"{experiment.training.epochs} epochs of {presets.OWN_CLASSES_PRESET}: validation accuracy",
        "value": f"{val_accuracy:.1%} (test {result.test_accuracy:.1%} on {info.test_size} held-back drawings) "
                 f"in {seconds:.1f} s",
        "goal": f"≥ {GOAL_ACCURACY:.0%}",
        "met": val_accuracy >= GOAL_ACCURACY,
    }]
    return {
        "training pictures (with copies) / validation share / test": (
            f"{info.train_size} / {experiment.training.validation_split:.0%} / {info.test_size}"),
        "epochs": experiment.training.epochs,
        "validation accuracy (last epoch)": round(val_accuracy, 4),
        "test accuracy": round(float(result.test_accuracy), 4),
        f"first epoch with validation ≥ {GOAL_ACCURACY:.0%}": reached,
        "training seconds (build + fit + test)": round(seconds, 1),
        "summary": summary,
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
