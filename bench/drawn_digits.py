"""How well the default MNIST model reads digits drawn on the canvas.

MNIST *test* digits are re-drawn as mouse drawings (cnn_core.engine.drawing: random size, place,
slant and brush width on a 280×280 canvas) and fed to the default model two ways:
through the app's own preparation (`canvas_to_mnist`: crop, scale to 20 px, centre of mass)
and, for comparison, by naively shrinking the whole canvas to 28×28. The default model's
training drew only *training* digits, so none of these drawings were seen in training.
"""

from __future__ import annotations

import time

import numpy as np

from cnn_core.engine import datasets, drawing
from cnn_core.engine.inference import Predictor
from cnn_core.engine.preprocess import canvas_to_mnist
from cnn_core.service.persistence import load_default

GOAL = 0.98  # the handwriting issue's goal (it was 97% before the default model was trained on more drawings)


def naive_resize(canvas: np.ndarray) -> np.ndarray:
    """The whole canvas shrunk to 28×28 with no cropping or centring: what a quick app might do."""
    from PIL import Image

    alpha = Image.fromarray(canvas[..., 3])
    return np.asarray(alpha.resize((28, 28), Image.Resampling.BOX), dtype=np.float32) / 255.0


def run(quick: bool) -> dict:
    count = 300 if quick else 2000
    mnist = datasets.load("mnist")
    predictor = Predictor(load_default("mnist").model)

    app_path, naive, render_seconds, prepare_seconds = [], [], 0.0, 0.0
    canvases = drawing.render_digits(mnist.x_test[:count], seed=drawing.DRAWN_TEST_SEED)
    while True:
        begun = time.perf_counter()
        canvas = next(canvases, None)
        render_seconds += time.perf_counter() - begun
        if canvas is None:
            break
        begun = time.perf_counter()
        app_path.append(canvas_to_mnist(canvas))
        prepare_seconds += time.perf_counter() - begun
        naive.append(naive_resize(canvas))
    labels = mnist.y_test[:count]

    app_accuracy = float((predictor.predict_batch(np.stack(app_path)).argmax(axis=1) == labels).mean())
    naive_accuracy = float((predictor.predict_batch(np.stack(naive)).argmax(axis=1) == labels).mean())
    scan_accuracy = float((predictor.predict_batch(mnist.x_test[:count]).argmax(axis=1) == labels).mean())
    # The renderer judged without any model: does each drawing keep its digit's loops and strokes?
    judged = drawing.faithfulness(mnist.x_test[:count], np.stack(app_path))
    return {
        "drawings": count,
        "app path accuracy": round(app_accuracy, 4),
        "naive resize accuracy": round(naive_accuracy, 4),
        "same digits as MNIST scans accuracy": round(scan_accuracy, 4),
        "renders per second": round(count / render_seconds, 1),
        "canvas_to_mnist ms per drawing": round(prepare_seconds / count * 1000, 2),
        "renderer version": drawing.RENDERER_VERSION,
        "drawings that lost a loop of their digit": round(float(judged.loop_lost.mean()), 4),
        "drawings that lost a stroke (over 10% of the ink)": round(float(judged.stroke_lost.mean()), 4),
        "unfaithful drawings (either)": round(float(judged.unfaithful.mean()), 4),
        "drawings whose ink pieces or holes changed": round(float(judged.topology_changed.mean()), 4),
        "unfaithful per digit": {
            int(d): round(float(judged.unfaithful[labels == d].mean()), 3) for d in range(10) if (labels == d).any()
        },
        "summary": [
            {
                "what": f"drawn-digit accuracy, default MNIST model ({count} drawn test digits)",
                "value": f"{app_accuracy:.2%}",
                "compared_with": f"naive resize: {naive_accuracy:.2%}",
                "goal": f"≥ {GOAL:.0%}",
                "met": app_accuracy >= GOAL,
            }
        ],
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
