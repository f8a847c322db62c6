"""Fine-tuning on a learner's drawings: checks at the door, head-only leaves the convolutions, no forgetting."""

import numpy as np
import pytest

from cnn_core.engine import finetune
from cnn_core.engine.errors import UserError


@pytest.fixture(scope="module")
def small_model():
    from cnn_core.engine.models import build_model
    from cnn_core.engine.specs import BatchNorm, Conv2D, Dense, Flatten, MaxPool, ModelSpec, TrainingConfig

    spec = ModelSpec((Conv2D(4, 3), BatchNorm(), MaxPool(2), Flatten(), Dense(16), Dense(10, "softmax")), name="s")
    return build_model(spec, TrainingConfig(epochs=1))


def weighted(model):
    """The model's layers that hold weights, in order (a functional model starts with its InputLayer)."""
    return [layer for layer in model.layers if layer.get_weights()]


def drawings(per_class=3, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random((10 * per_class, 28, 28)).astype(np.float32)
    return images, np.repeat(np.arange(10), per_class)


def test_drawings_are_checked_at_the_door():
    images, labels = drawings()
    with pytest.raises(UserError, match="still needed: 3"):
        finetune.check_drawings(images[labels != 3], labels[labels != 3], 10)
    with pytest.raises(UserError, match="28×28"):
        finetune.check_drawings(np.zeros((30, 32, 32)), labels, 10)
    with pytest.raises(UserError, match="from 0 to 9"):
        finetune.check_drawings(images, labels + 5, 10)
    x, y = finetune.check_drawings(images, labels, 10)
    assert x.shape == (30, 28, 28, 1) and y.dtype == np.int64


def test_head_mode_changes_only_the_head_and_leaves_the_original(small_model):
    images, labels = drawings()
    before = [w.copy() for w in small_model.get_weights()]
    result = finetune.fine_tune(small_model, images, labels, images, labels, mode="head", steps=5)
    for original, now in zip(before, small_model.get_weights(), strict=True):
        np.testing.assert_array_equal(original, now)
    tuned = result.model
    conv_before, conv_after = weighted(small_model)[0].get_weights()[0], weighted(tuned)[0].get_weights()[0]
    np.testing.assert_array_equal(conv_before, conv_after)
    bn_before, bn_after = weighted(small_model)[1].get_weights(), weighted(tuned)[1].get_weights()
    for a, b in zip(bn_before, bn_after, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(small_model.layers[-1].get_weights()[0], tuned.layers[-1].get_weights()[0])
    assert result.steps == 5 and result.drawings == 30


def test_all_mode_moves_the_convolutions_too(small_model):
    images, labels = drawings()
    tuned = finetune.fine_tune(small_model, images, labels, images, labels, mode="all", steps=5).model
    assert not np.array_equal(weighted(small_model)[0].get_weights()[0], weighted(tuned)[0].get_weights()[0])


def test_fine_tuning_learns_the_drawings(small_model):
    # Ten separable "styles": a bright block in its own cell of a 2×5 grid, far apart for ±2 px shifts.
    images = np.zeros((50, 28, 28), np.float32)
    labels = np.repeat(np.arange(10), 5)
    for i, label in enumerate(labels):
        row, col = divmod(int(label), 5)
        images[i, 3 + 13 * row : 10 + 13 * row, 1 + 5 * col : 4 + 5 * col] = 1.0
    before = finetune.accuracy(small_model, images, labels)
    tuned = finetune.fine_tune(small_model, images, labels, images[:0], labels[:0], mode="all", steps=150,
                               learning_rate=3e-2).model
    assert finetune.accuracy(tuned, images, labels) > max(before, 0.5)


def test_bad_mode_is_a_user_error(small_model):
    images, labels = drawings()
    with pytest.raises(UserError):
        finetune.fine_tune(small_model, images, labels, images, labels, mode="everything")
