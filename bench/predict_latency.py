"""Latency of one prediction, as the drawing page makes on every stroke.

The same default MNIST model answers one image at a time through `Predictor` (a traced
`tf.function`) and through `keras.Model.predict`, alternating, in one run.
"""

from __future__ import annotations

import time

import numpy as np

from cnn_core.engine import datasets
from cnn_core.engine.inference import Predictor
from cnn_core.service.persistence import load_default

GOAL_MS = 2.0
GOAL_SPEEDUP = 25.0


def _timed(function, images) -> np.ndarray:
    times = []
    for image in images:
        begun = time.perf_counter()
        function(image)
        times.append(time.perf_counter() - begun)
    return np.array(times) * 1000


def run(quick: bool) -> dict:
    model = load_default("mnist").model
    begun = time.perf_counter()
    predictor = Predictor(model)
    setup_ms = (time.perf_counter() - begun) * 1000
    images = datasets.load("mnist").x_test[: 200 if quick else 1000]

    # Warm both paths up first: the first keras predict builds its own function.
    predictor.predict(images[0])
    model.predict(images[:1], verbose=0)
    rounds = 3 if quick else 5
    fast, slow = [], []
    for round_index in range(rounds):
        fast.append(_timed(predictor.predict, images))
        chunk = images[round_index * 20 : round_index * 20 + (10 if quick else 20)]
        slow.append(_timed(lambda image: model.predict(image[np.newaxis], verbose=0), chunk))
    fast_ms, slow_ms = np.concatenate(fast), np.concatenate(slow)
    fast_median, slow_median = float(np.median(fast_ms)), float(np.median(slow_ms))
    speedup = slow_median / fast_median
    return {
        "Predictor setup ms": round(setup_ms, 1),
        "Predictor median ms": round(fast_median, 3),
        "Predictor p95 ms": round(float(np.percentile(fast_ms, 95)), 3),
        "Predictor calls": int(fast_ms.size),
        "model.predict median ms": round(slow_median, 2),
        "model.predict p95 ms": round(float(np.percentile(slow_ms, 95)), 2),
        "model.predict calls": int(slow_ms.size),
        "speedup (median)": round(speedup, 1),
        "summary": [
            {
                "what": "one-image prediction, Predictor (median)",
                "value": f"{fast_median:.2f} ms",
                "compared_with": f"model.predict: {slow_median:.1f} ms ({speedup:.0f}× slower)",
                "goal": f"≤ {GOAL_MS:g} ms and ≥ {GOAL_SPEEDUP:g}× faster",
                "met": fast_median <= GOAL_MS and speedup >= GOAL_SPEEDUP,
            }
        ],
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
