"""The default MNIST model on handwriting styles MNIST has few of (cnn_core.engine.handwriting).

The held-out style check set (its own seeds; never trained on) draws 1s with a flag, crossed 7s,
open-top 4s, open or flat 9s, open 6s and small thick 5s as canvas strokes and prepares them
through the app's preprocessing. Reported per style, beside the drawn-MNIST figure in
bench.drawn_digits. The goal (≥ 97% overall) is the handwriting issue's.
"""

from __future__ import annotations

import time

import numpy as np

GOAL = 0.97


def run(quick: bool) -> dict:
    from cnn_core.engine import handwriting
    from cnn_core.engine.inference import Predictor
    from cnn_core.service.persistence import load_default

    per_style = 20 if quick else 200
    begun = time.perf_counter()
    images, labels, names = handwriting.style_check_set(per_style)
    drawing_s = time.perf_counter() - begun
    predictor = Predictor(load_default("mnist").model)
    predicted = np.argmax(predictor.predict_batch(images[..., None]), axis=1)
    right = predicted == labels
    result: dict = {"drawings": len(labels), "drawing seconds": round(drawing_s, 1)}
    names = np.asarray(names)
    for name in handwriting.STYLES:
        mask = names == name
        wrong = predicted[mask & ~right]
        common = np.bincount(wrong, minlength=10).argmax() if len(wrong) else None
        result[f"{name} accuracy"] = round(float(right[mask].mean()), 4)
        result[f"{name} most often read as"] = "—" if common is None else int(common)
    overall = float(right.mean())
    result["overall accuracy"] = round(overall, 4)
    result["summary"] = [{
        "what": f"default MNIST model on the held-out handwriting-style check set ({len(labels)} drawings, "
                "6 styles MNIST has few of)",
        "value": f"{overall:.2%}",
        "compared_with": "worst style: " + min(
            ((name, result[f"{name} accuracy"]) for name in handwriting.STYLES), key=lambda item: item[1]
        )[0],
        "goal": f"≥ {GOAL:.0%}",
        "met": overall >= GOAL,
    }]
    return result


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
