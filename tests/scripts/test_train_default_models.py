import json

import numpy as np
import pytest

from cnn_core.engine import datasets, handwriting
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
    assert {"test_accuracy", "drawn_digit_accuracy", "style_check_accuracy", "trained_on", "versions"} <= set(metrics)
    assert set(metrics["style_check_per_style"]) == set(handwriting.STYLES)
    assert bundle.model.count_params() == metrics["params"]


def test_style_training_seed_is_not_the_check_sets_nor_the_finetune_learners():
    from cnn_core.engine import handwriting

    assert script.STYLE_SEED < handwriting.CHECK_SEED
    # bench.finetune's learner draws styles from seeds 1010–1019 and 2020–2029.
    assert script.STYLE_SEED not in {seed * 10 + digit for seed in (101, 202) for digit in range(10)}
    images, labels = script.style_training_drawings(2)
    check, check_labels, _ = handwriting.style_check_set(2)
    assert images.shape == (2 * len(handwriting.STYLES), 28, 28, 1)
    np.testing.assert_array_equal(labels, check_labels)
    # Same styles, other drawings: no training drawing is a check drawing.
    assert not any(np.array_equal(a[..., 0], b) for a in images for b in check)


def test_elastic_distortion_bends_strokes_but_keeps_the_digit():
    mnist = datasets.load("mnist")
    digits = mnist.x_train[:8]
    bent = script.elastic_distort(digits, np.random.default_rng(0), alpha=1.5)
    again = script.elastic_distort(digits, np.random.default_rng(0), alpha=1.5)
    assert bent.shape == digits.shape and bent.dtype == np.float32
    np.testing.assert_array_equal(bent, again)
    assert 0.0 <= bent.min() and bent.max() <= 1.0
    change = np.abs(bent - digits).mean(axis=(1, 2, 3))
    assert (change > 0.01).all()
    # The ink moves a pixel or two (strokes are 2–3 pixels wide), so much of it overlaps and its amount changes by a third at most.
    overlap = (bent * digits).sum(axis=(1, 2, 3)) / (digits * digits).sum(axis=(1, 2, 3))
    assert (overlap > 0.3).all()
    assert np.allclose(bent.sum(axis=(1, 2, 3)), digits.sum(axis=(1, 2, 3)), rtol=0.35)
    np.testing.assert_allclose(script.elastic_distort(digits, np.random.default_rng(0), alpha=0.0), digits, atol=1e-6)


def test_elastic_batches_distort_only_their_share():
    x = np.repeat(datasets.load("mnist").x_train[:1], 64, axis=0)
    y = np.zeros(64, dtype=np.int64)
    images, _ = next(script._batches(x, y, batch_size=64, mirror=False, seed=0, elastic=0.5))
    untouched = np.all(images == x[:1], axis=(1, 2, 3))
    assert 16 <= untouched.sum() <= 48


def test_more_drawn_digits_than_training_digits_draws_them_again_differently():
    mnist = datasets.load("mnist")
    small = datasets.Dataset("mnist", mnist.x_train[:6], mnist.y_train[:6], mnist.x_test[:1], mnist.y_test[:1],
                             mnist.class_names)
    images, labels = script.drawn_training_digits(small, 10, seed=3)
    assert images.shape == (10, 28, 28, 1)
    # Round one draws all six digits, round two four of them again, with another brush.
    assert sorted(labels[:6].tolist()) == sorted(mnist.y_train[:6].tolist())
    first = {int(label): image for label, image in zip(labels[:6], images[:6], strict=True)}
    assert all(not np.array_equal(first[int(label)], image) for label, image in zip(labels[6:], images[6:],
                                                                                     strict=True))


def test_cached_drawings_keep_their_drawing_time_and_are_redrawn_for_a_new_renderer(tmp_path, monkeypatch):
    from cnn_core.engine import drawing

    cache = tmp_path / "cache.mnist.npz"
    script.train_default("mnist", quick=True, cache=cache, draw_only=True)
    stored = np.load(cache)
    assert float(stored["drawing_seconds"]) > 0.1  # the quick recipe draws 500 digits and 120 styles
    assert int(stored["key"][-1]) == drawing.RENDERER_VERSION

    class _Model:
        def count_params(self):
            return 1

    def no_drawing(*args, **kwargs):
        raise AssertionError("drew again although the cache holds this recipe's drawings")

    monkeypatch.setattr(script, "training_arrays", no_drawing)
    monkeypatch.setattr(script, "fit", lambda *args, **kwargs: _Model())
    monkeypatch.setattr(script, "score", lambda *args, **kwargs: {"test_accuracy": 0.5, "test_loss": 1.0})
    _, _, metrics = script.train_default("mnist", quick=True, cache=cache)
    # The drawing time is the time the drawing took, not the time to read the cache.
    assert metrics["drawing_seconds"] == round(float(stored["drawing_seconds"]), 1)
    # Drawings made by another version of the renderer are not reused.
    monkeypatch.setattr(drawing, "RENDERER_VERSION", drawing.RENDERER_VERSION + 1)
    with pytest.raises(AssertionError, match="drew again"):
        script.train_default("mnist", quick=True, cache=cache)
