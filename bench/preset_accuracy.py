"""Each preset with a figure from its seed notebook, trained as the seed trained it, on the full data.

The full run trains every preset that reports an accuracy with its own epochs and batch size;
`quick` trains each on 2,000 images for one epoch only to prove the path still works.
"""

from __future__ import annotations

import dataclasses

from cnn_core import presets
from cnn_core.training import train

# Within this many accuracy points of the seed's reported figure counts as reproduced.
TOLERANCE_POINTS = 0.5


def run(quick: bool) -> dict:
    result: dict = {"summary": []}
    for preset in presets.PRESETS.values():
        if preset.reported_accuracy is None:
            continue
        experiment = preset.experiment
        if quick:
            training = dataclasses.replace(experiment.training, epochs=1, train_subset=2000)
            experiment = dataclasses.replace(experiment, training=training)
        outcome = train(experiment)
        gap = (outcome.test_accuracy - preset.reported_accuracy) * 100
        result[f"{preset.key} test accuracy"] = round(outcome.test_accuracy, 4)
        result[f"{preset.key} seconds"] = round(outcome.seconds, 1)
        result["summary"].append(
            {
                "what": f"preset `{preset.key}` test accuracy ({experiment.training.epochs} epochs)",
                "value": f"{outcome.test_accuracy:.2%}",
                "compared_with": f"seed: {preset.reported_accuracy:.2%}",
                "goal": f"within {TOLERANCE_POINTS} points (or above)",
                "met": None if quick else gap >= -TOLERANCE_POINTS,
            }
        )
    return result


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
