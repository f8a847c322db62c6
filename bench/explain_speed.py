"""Speed of the Explain page: saliency, occlusion, one neuron trace, and the page's rerun after a click.

Measured on the default MNIST model with test images it has not explained yet (so nothing is
served from a cache), each figure the median over the images. The page rerun is timed with
Streamlit's AppTest: the Explain page open on a test image, then the row picker changed (what a
click on a feature-map cell does), and the script's own run timed — server time, no browser.
"""

from __future__ import annotations

import time

import numpy as np

from cnn_core.engine import datasets, explain
from cnn_core.service.persistence import load_default

GOALS_MS = {"saliency": 150.0, "occlusion": 400.0, "trace": 50.0, "rerun": 300.0}


def _median_ms(values: list[float]) -> float:
    return round(float(np.median(values)) * 1000, 2)


def _page_rerun_ms(clicks: int) -> tuple[list[float], float]:
    from streamlit.testing.v1 import AppTest

    from bench.run import ROOT

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    begun = time.perf_counter()
    at.switch_page("pages/explain.py").run()
    first = time.perf_counter() - begun
    if at.exception:
        raise RuntimeError(f"The Explain page failed: {at.exception[0].value}")
    layer = at.selectbox(key="explain-layer").value
    times = []
    for click in range(clicks):
        row = at.number_input(key=f"explain-row-{layer}")
        row.set_value((int(row.value) + 3 + click) % (int(row.proto.max) + 1))
        begun = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - begun)
    return times, first


def run(quick: bool) -> dict:
    model = load_default("mnist").model
    data = datasets.load("mnist")
    count = 5 if quick else 30
    test_images = data.x_test[100 : 100 + count, ..., 0]
    # The first call builds and traces the compiled functions (once per model); reported apart.
    begun = time.perf_counter()
    explain.saliency_map(model, data.x_test[0, ..., 0], 0)
    explain.occlusion_map(model, data.x_test[0, ..., 0], 0)
    build_ms = (time.perf_counter() - begun) * 1000
    layers = [info for info in explain.layers(model) if info.explainable]
    rng = np.random.default_rng(0)
    saliency, occlusion, trace, trace_cached = [], [], [], []
    for image in test_images:
        target = int(np.argmax(explain.probabilities(model, image)))
        begun = time.perf_counter()
        explain.saliency_map(model, image, target)
        saliency.append(time.perf_counter() - begun)
        begun = time.perf_counter()
        explain.occlusion_map(model, image, target)
        occlusion.append(time.perf_counter() - begun)
        for timings in (trace, trace_cached):  # a new image (one forward pass first), then the same image again
            info = layers[int(rng.integers(len(layers)))]
            shape = info.output_shape
            cell = [int(rng.integers(n)) for n in shape] if len(shape) == 3 else [0, 0, int(rng.integers(shape[0]))]
            if timings is trace:
                explain._explainer(model)._cache_key = None  # as for an image never traced before
            begun = time.perf_counter()
            explain.neuron_trace(model, image, info.index, *cell)
            timings.append(time.perf_counter() - begun)
    reruns, first_s = _page_rerun_ms(4 if quick else 12)
    figures = {"saliency": _median_ms(saliency), "occlusion": _median_ms(occlusion), "trace": _median_ms(trace),
               "rerun": _median_ms(reruns)}
    words = {"saliency": "saliency map (SmoothGrad × input, 16 noisy copies, one batched gradient)",
             "occlusion": "occlusion map (6×6 patch, stride 3: 81 occluded copies in one batch)",
             "trace": "one neuron trace, new image (forward pass included)",
             "rerun": "Explain page rerun after a click on a feature-map cell (AppTest, server time)"}
    return {
        "images": count,
        "first call ms (builds the compiled functions, once per model)": round(build_ms, 1),
        "saliency median ms": figures["saliency"],
        "occlusion median ms": figures["occlusion"],
        "neuron trace median ms (new image)": figures["trace"],
        "neuron trace median ms (image already traced)": _median_ms(trace_cached),
        "page first open s": round(first_s, 2),
        "page rerun after a click median ms": figures["rerun"],
        "page rerun after a click max ms": round(max(reruns) * 1000, 1),
        "notes": "Measured on the shared 2-core machine while other work ran; medians over the images.",
        "summary": [
            {"what": words[name], "value": f"{figures[name]:.1f} ms", "goal": f"≤ {GOALS_MS[name]:.0f} ms",
             "met": figures[name] <= GOALS_MS[name]}
            for name in ("saliency", "occlusion", "trace", "rerun")
        ],
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
