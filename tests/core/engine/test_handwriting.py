"""Handwriting styles MNIST has few of: reproducible, inked, labelled, and a check set kept apart."""

import numpy as np
import pytest

from cnn_core.engine import handwriting


def test_every_style_draws_a_prepared_digit_with_its_label():
    images, labels, names = handwriting.style_set(3, seed=11)
    assert images.shape == (3 * len(handwriting.STYLES), 28, 28) and images.dtype == np.float32
    assert names[:3] == ["flagged 1"] * 3
    expected = [label for label, _, _ in handwriting.STYLES.values() for _ in range(3)]
    assert labels.tolist() == expected
    # Prepared like a drawing: ink in [0, 1], centred in the 20-pixel box MNIST uses.
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert all(image.sum() > 10 for image in images)
    ink_rows = np.nonzero(images.sum(axis=(0, 2)))[0]
    assert ink_rows.min() >= 1 and ink_rows.max() <= 26


def test_sets_are_reproducible_and_seeds_differ():
    a, _, _ = handwriting.style_set(2, seed=3)
    b, _, _ = handwriting.style_set(2, seed=3)
    c, _, _ = handwriting.style_set(2, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_training_material_never_uses_the_check_sets_seeds():
    with pytest.raises(ValueError, match="check set"):
        handwriting.style_training_set(2, seed=handwriting.CHECK_SEED)
    check, _, _ = handwriting.style_check_set(2)
    train, _, _ = handwriting.style_training_set(2, seed=0)
    assert not np.array_equal(check, train)


def test_flagged_ones_have_a_flag():
    rng = np.random.default_rng(0)
    stroke = handwriting.flagged_one(rng)[0]
    # The stroke starts left of the stem and below its top: the flag.
    assert stroke[0, 1] < stroke[-1, 1] - 0.05 and stroke[0, 0] > 0.05


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_bad_counts_are_refused(bad):
    with pytest.raises(ValueError):
        handwriting.style_set(bad, seed=0)
