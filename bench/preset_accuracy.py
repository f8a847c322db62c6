"""Each preset with a figure from its seed notebook, trained as the seed trained it, on the full data.

The full run trains every preset that reports an accuracy with its own epochs and batch size;
`quick` trains each on 2,000 images for one epoch only to prove the path still works.

A seed that kept its best epoch's weights (the Fashion-MNIST tutorial) chose that epoch on the
test set. For such a preset the like-for-like row repeats the seed's protocol with plain Keras;
the app's own run, which chooses on a validation split, is reported next to it for reference.
"""

from __future__ import annotations

import dataclasses

from cnn_core.engine import datasets
from cnn_core.engine.datasets import Dataset
from cnn_core.engine.models import build_model
from cnn_core.engine.training import EVALUATION_BATCH_SIZE, train
from cnn_core.workshop import presets

# Within this many accuracy points of the seed's reported figure counts as reproduced.
TOLERANCE_POINTS = 0.5
SEEDS = (0, 1, 2)


def seed_protocol(preset: presets.Preset, dataset: Dataset | None = None) -> dict:
    """Train the preset's model the way its seed notebook did when it kept the best epoch's weights.

    The seed fit on all the training images with the test set as `validation_data`, so its
    checkpoint picked the epoch with the best *test* accuracy. The app never selects on the test
    set; this plain-Keras run exists only to compare like with like against the seed's figure.
    Returns the test accuracy of every epoch, the best one (the seed's protocol) and the last one.
    """
    config = preset.training
    dataset = dataset if dataset is not None else datasets.load(config.dataset)
    model = build_model(preset.model, config)
    history = model.fit(
        dataset.x_train, dataset.y_train, batch_size=config.batch_size, epochs=config.epochs,
        validation_data=(dataset.x_test, dataset.y_test), validation_batch_size=EVALUATION_BATCH_SIZE, verbose=0,
    )
    per_epoch = [round(float(value), 4) for value in history.history["val_accuracy"]]
    best = max(range(len(per_epoch)), key=per_epoch.__getitem__)
    return {"test accuracy per epoch": per_epoch, "best epoch": best + 1, "best test accuracy": per_epoch[best],
            "last test accuracy": per_epoch[-1]}


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
        row = {
            "what": f"preset `{preset.key}` test accuracy ({experiment.training.epochs} epochs)",
            "value": f"{outcome.test_accuracy:.2%}",
            "compared_with": f"seed: {preset.reported_accuracy:.2%}",
            "goal": f"within {TOLERANCE_POINTS} points (or above)",
            "met": None if quick else gap >= -TOLERANCE_POINTS,
        }
        if experiment.training.restore_best:
            row |= _seed_protocol_rows(preset, experiment, quick, result)
        result["summary"].append(row)
    return result


def _seed_protocol_rows(preset: presets.Preset, experiment, quick: bool, result: dict) -> dict:
    """For a preset whose seed kept its best epoch: add the like-for-like row; return changes to the app's row.

    The seed chose that epoch by test accuracy, which the app never does, so its figure is compared
    with the same protocol here, and the app's own run (best epoch on its validation split) is
    reported beside it without a goal.
    """
    dataset = datasets.load(experiment.training.dataset)
    if quick:
        dataset = Dataset(dataset.name, dataset.x_train[:2000], dataset.y_train[:2000], dataset.x_test[:1000],
                          dataset.y_test[:1000], dataset.class_names)
    # One run of 10 epochs varies by about a point from seed to seed; the median of three is the figure.
    runs = []
    for seed in SEEDS:
        seeded = dataclasses.replace(experiment, training=dataclasses.replace(experiment.training, seed=seed))
        runs.append(seed_protocol(dataclasses.replace(preset, experiment=seeded), dataset))
        for key, value in runs[-1].items():
            result[f"{preset.key} seed protocol, seed {seed}: {key}"] = value
    best = sorted(run["best test accuracy"] for run in runs)
    median = best[len(best) // 2]
    gap = (median - preset.reported_accuracy) * 100
    epochs = experiment.training.epochs
    result["summary"].append(
        {
            "what": f"preset `{preset.key}`, seed's protocol: all {len(dataset.x_train):,} training images, "
            f"best of {epochs} epochs by test accuracy, median of seeds {', '.join(map(str, SEEDS))}",
            "value": f"{median:.2%} (min {best[0]:.2%}, max {best[-1]:.2%})",
            "compared_with": f"seed: {preset.reported_accuracy:.2%}",
            "goal": f"within {TOLERANCE_POINTS} points (or above)",
            "met": None if quick else gap >= -TOLERANCE_POINTS,
        }
    )
    split = experiment.training.validation_split
    return {
        "what": f"preset `{preset.key}` as the app trains it: {1 - split:.0%} of the training images, best of "
        f"{epochs} epochs by validation accuracy",
        "goal": "for reference: the seed's figure picked its epoch on the test set",
        "met": None,
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
