"""`quick_mnist` on the Train page's default 5,000-image subset: final training and test accuracy per seed.

`python -m bench.quick_subset` measures the app as it is; `python -m bench.quick_subset --old` pins
BatchNorm's momentum to Keras' 0.99, as before issue #13, to show what the change fixed.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

from cnn_core.engine import models, training
from cnn_core.workshop import presets

SUBSET = 5_000
SEEDS = (0, 1, 2)


def run(old: bool = False) -> list[dict]:
    if old:
        models.batchnorm_momentum = lambda total_steps: 0.99
    preset = presets.get("quick_mnist")
    rows = []
    for seed in SEEDS:
        config = dataclasses.replace(preset.training, train_subset=SUBSET, seed=seed)
        started = time.perf_counter()
        result = training.train(dataclasses.replace(preset.experiment, training=config))
        rows.append({"seed": seed, "training accuracy (last epoch)": round(result.history[-1]["accuracy"], 4),
                     "test accuracy": round(result.test_accuracy, 4),
                     "seconds": round(time.perf_counter() - started, 1)})
    return rows


if __name__ == "__main__":
    print(json.dumps(run(old="--old" in sys.argv), indent=2))
