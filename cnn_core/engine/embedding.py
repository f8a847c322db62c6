"""The embedding map: the penultimate layer's activations of test images, projected to 2-D with PCA.

PCA (an SVD in NumPy, a few milliseconds for 2,000 images) is the only projection: scikit-learn
is not installed here, and t-SNE/UMAP would add a heavy dependency and seconds per map on two
cores. PCA is also honest for teaching: distances on the map are (projected) distances in the
network's feature space. `separation` puts one number on "the classes pull apart".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

MAP_IMAGES = 2000


@dataclass(frozen=True)
class Projection:
    """A 2-D PCA: subtract `mean`, multiply by `components.T` (2, features); `explained` variance shares."""

    mean: np.ndarray
    components: np.ndarray
    explained: tuple[float, float]

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, dtype=np.float64) - self.mean) @ self.components.T


@dataclass(frozen=True)
class EmbeddingMap:
    """`points` (N, 2) for `labels`/`indices` (positions in the test set); `drawing` (2,) or None."""

    points: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    explained: tuple[float, float]
    separation: float
    drawing: np.ndarray | None


def penultimate(model: keras.Model, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """What the last layer sees: the activations feeding the classifier, (N, features) float32."""
    import keras

    features = keras.Model(model.inputs, model.layers[-1].input)
    parts = []
    for start in range(0, len(images), batch_size):
        output = features([np.asarray(images[start:start + batch_size], dtype=np.float32)], training=False)
        parts.append(np.asarray(output, dtype=np.float32).reshape(len(output), -1))
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def fit_pca(features: np.ndarray) -> Projection:
    """The two principal directions of `features`; signs fixed so the same data always gives the same map."""
    data = np.asarray(features, dtype=np.float64)
    if data.ndim != 2 or len(data) < 2:
        raise ValueError("A 2-D map needs at least two feature vectors.")
    mean = data.mean(axis=0)
    _, singular, vt = np.linalg.svd(data - mean, full_matrices=False)
    components = np.zeros((2, data.shape[1]))
    count = min(2, len(vt))
    components[:count] = vt[:count]
    for row in components:
        # Make the largest coefficient positive: SVD's signs are arbitrary.
        if row[np.argmax(np.abs(row))] < 0:
            row *= -1
    variance = singular**2
    total = float(variance.sum())
    shares = [float(v / total) if total > 0 else 0.0 for v in variance[:2]] + [0.0, 0.0]
    return Projection(mean, components, (shares[0], shares[1]))


def separation(points: np.ndarray, labels: np.ndarray) -> float:
    """Between-class over within-class spread of the points (higher: classes further apart)."""
    points = np.asarray(points, dtype=np.float64)
    centre = points.mean(axis=0)
    between = within = 0.0
    for label in np.unique(labels):
        group = points[labels == label]
        mean = group.mean(axis=0)
        between += len(group) * float(((mean - centre) ** 2).sum())
        within += float(((group - mean) ** 2).sum())
    return between / within if within > 0 else float("inf")


def embedding_map(
    model: keras.Model, images: np.ndarray, labels: np.ndarray, *, drawing: np.ndarray | None = None,
    count: int = MAP_IMAGES, batch_size: int = 500,
) -> EmbeddingMap:
    """The map of the first `count` images (N, H, W, 1) and, as a star, the learner's (H, W) drawing.

    `batch_size` bounds the activations held at once (a web server passes a small one).
    """
    images, labels = np.asarray(images)[:count], np.asarray(labels)[:count]
    features = penultimate(model, images, batch_size)
    projection = fit_pca(features)
    points = projection(features)
    drawn = None
    if drawing is not None:
        picture = np.asarray(drawing, dtype=np.float32).reshape(1, *images.shape[1:])
        drawn = projection(penultimate(model, picture))[0]
    return EmbeddingMap(points, labels, np.arange(len(images)), projection.explained, separation(points, labels), drawn)
