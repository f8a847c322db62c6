import json

import numpy as np
import pytest

from cnn_core.engine import datasets
from cnn_core.service.persistence import load_bundle
from scripts import train_default_models as script


def test_recipes_are_valid_and_small():
    from cnn_core.engine.specs import count_params, validate_training

    for name, recipe in script.RECIPES.items():
        assert recipe.experiment.training.dataset == name
        validate_training(recipe.experiment.training)
        # Small enough to train on two CPU cores in minutes and to ship well under 5 MB.
        assert count_params(recipe.experiment.model) < 300_000


def test_drawn_training_digits_come_from_the_training_set():
    mnist = datasets.load("mnist")
    images, labels = script.drawn_training_digits(mnist, 20, seed=3)
    assert images.shape == (20, 28, 28, 1) and images.dtype == np.float32
    again, again_labels = script.drawn_training_digits(mnist, 20, seed=3)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, again_labels)
    assert set(labels.tolist()) <= set(range(10))


def test_batches_cover_every_image_once_per_epoch():
    x = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1) * np.ones((10, 2, 2, 1), dtype=np.float32)
    y = np.arange(10)
    stream = script._batches(x, y, batch_size=5, mirror=False, seed=0)
    seen = np.concatenate([next(stream)[1] for _ in range(2)])
    assert sorted(seen.tolist()) == list(range(10))


@pytest.mark.parametrize("dataset", ["mnist"])
def test_quick_run_writes_a_loadable_bundle(tmp_path, dataset):
    assert script.main(["--dataset", dataset, "--quick", "--output", str(tmp_path)]) == 0
    bundle = load_bundle(tmp_path / f"default_{dataset}.keras")
    assert bundle.source == "default" and bundle.dataset == dataset
    description = json.loads((tmp_path / f"default_{dataset}.json").read_text())
    metrics = description["metrics"]
    assert metrics["quick"] is True and metrics["seed"] == script.SEED
    assert {"test_accuracy", "drawn_digit_accuracy", "trained_on", "versions"} <= set(metrics)
    assert bundle.model.count_params() == metrics["params"]
