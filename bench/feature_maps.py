"""Cost of the feature-map view: every conv/pool map of one image, computed and made into figures.

Measured on the default MNIST model with a `FeatureExtractor` built once (as the app caches
it), against one plain forward pass of the same model through `Predictor`. The figures are the
channel mosaics the Feature maps page shows (`ui.images.mosaic`); encoding them to PNG (what the
page sends) is reported separately.
"""

from __future__ import annotations

import time

import numpy as np

from cnn_core.engine import datasets
from cnn_core.engine.activations import FeatureExtractor
from cnn_core.engine.inference import Predictor
from cnn_core.service.persistence import load_default
from ui import images as pictures

GOAL_MS = 300.0


def run(quick: bool) -> dict:
    model = load_default("mnist").model
    begun = time.perf_counter()
    extractor = FeatureExtractor(model)
    build_ms = (time.perf_counter() - begun) * 1000
    predictor = Predictor(model)
    images = datasets.load("mnist").x_test[: 5 if quick else 20]
    extractor.maps(images[0])
    predictor.predict(images[0])

    maps_ms, figures_ms, png_ms, forward_ms = [], [], [], []
    for image in images:
        begun = time.perf_counter()
        maps = extractor.maps(image)
        maps_ms.append(time.perf_counter() - begun)
        figures = [pictures.mosaic(layer.activations, max_channels=layer.activations.shape[2], columns=16)
                   for layer in maps]
        figures_ms.append(time.perf_counter() - begun)
        begun = time.perf_counter()
        for figure in figures:
            pictures.png(figure)
        png_ms.append(time.perf_counter() - begun)
        begun = time.perf_counter()
        predictor.predict(image)
        forward_ms.append(time.perf_counter() - begun)

    def median_ms(values: list[float]) -> float:
        return round(float(np.median(values)) * 1000, 2)

    total = median_ms(figures_ms)
    return {
        "layers": len(maps),
        "channels": sum(layer.activations.shape[2] for layer in maps),
        "extractor build ms (once per model)": round(build_ms, 1),
        "all maps, one pass, median ms": median_ms(maps_ms),
        "maps + figures median ms": total,
        "figures drawn to PNG median ms": median_ms(png_ms),
        "plain forward pass median ms": median_ms(forward_ms),
        "summary": [
            {
                "what": f"all feature maps of one image ({len(maps)} layers) computed and made into figures",
                "value": f"{total:.0f} ms",
                "compared_with": f"maps alone: {median_ms(maps_ms):.1f} ms; forward pass: {median_ms(forward_ms):.1f} ms",
                "goal": f"≤ {GOAL_MS:.0f} ms",
                "met": total <= GOAL_MS,
            }
        ],
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
