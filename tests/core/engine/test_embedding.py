"""The embedding map: PCA by SVD, and classes that pull apart once a model is trained."""

import numpy as np
import pytest

from cnn_core.engine import datasets, embedding, training
from cnn_core.engine.datasets import Dataset
from cnn_core.engine.models import build_model
from cnn_core.engine.specs import Conv2D, Dense, Experiment, Flatten, MaxPool, ModelSpec, TrainingConfig


def test_pca_finds_the_directions_of_most_variance():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(500, 2)) * [5.0, 1.0]
    rotation = np.linalg.qr(rng.normal(size=(6, 6)))[0][:2]
    features = base @ rotation + 3.0
    projection = embedding.fit_pca(features)
    assert projection.explained[0] == pytest.approx(25 / 26, abs=0.03)
    assert sum(projection.explained) == pytest.approx(1.0)
    np.testing.assert_allclose(np.abs(projection.components @ rotation.T), np.eye(2), atol=0.05)
    points = projection(features)
    np.testing.assert_allclose(points.mean(axis=0), 0, atol=1e-9)
    # Deterministic signs: the same data always gives the same map.
    np.testing.assert_array_equal(embedding.fit_pca(features.copy()).components, projection.components)
    with pytest.raises(ValueError):
        embedding.fit_pca(features[:1])


def test_separation_is_higher_when_classes_are_apart():
    labels = np.repeat([0, 1], 50)
    near = np.random.default_rng(1).normal(size=(100, 2))
    far = near + labels[:, None] * 10
    assert embedding.separation(far, labels) > 10 * embedding.separation(near, labels)


def test_training_pulls_the_classes_apart_and_the_drawing_lands_on_the_map():
    mnist = datasets.load("mnist")
    small = Dataset("mnist", mnist.x_train[:2000], mnist.y_train[:2000], mnist.x_test[:500], mnist.y_test[:500],
                    mnist.class_names)
    spec = ModelSpec((Conv2D(8, 3), MaxPool(2), Flatten(), Dense(32), Dense(10, "softmax")))
    config = TrainingConfig(epochs=2, batch_size=100, validation_split=0.0, seed=0)
    trained = training.train(Experiment(spec, config), dataset=small).model
    untrained = build_model(spec, config)
    drawing = mnist.x_test[0, ..., 0]
    before = embedding.embedding_map(untrained, small.x_test, small.y_test, count=500)
    after = embedding.embedding_map(trained, small.x_test, small.y_test, drawing=drawing, count=500)
    assert after.points.shape == (500, 2) and list(after.indices[:3]) == [0, 1, 2]
    assert embedding.penultimate(trained, small.x_test[:3]).shape == (3, 32)
    assert after.separation > 1.5 * before.separation
    # The drawing is test image 0 itself, so its star sits exactly on that dot.
    np.testing.assert_allclose(after.drawing, after.points[0], atol=1e-4)
    assert before.drawing is None
