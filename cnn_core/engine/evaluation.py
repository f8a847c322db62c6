"""Score a model on a dataset's test set: accuracy, per-class accuracy, confusion matrix, mistakes.

Pure NumPy around a `predict_batch` function, so it works with any model wrapper (a
`Predictor`, a Keras model's `predict`, or a fake in tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cnn_core.engine.datasets import Dataset


@dataclass(frozen=True)
class Evaluation:
    """Predictions for the first N test images; `confusion` rows are true classes, columns predicted."""

    probabilities: np.ndarray
    predictions: np.ndarray
    labels: np.ndarray
    accuracy: float
    per_class_accuracy: np.ndarray
    confusion: np.ndarray
    class_names: tuple[str, ...]

    @property
    def confidences(self) -> np.ndarray:
        """The probability each prediction was given."""
        return self.probabilities[np.arange(len(self.predictions)), self.predictions]


def evaluate(
    predict_batch: Callable[[np.ndarray], np.ndarray],
    dataset: Dataset,
    limit: int | None = None,
    batch_size: int = 1000,
) -> Evaluation:
    """Run `predict_batch` over the test set (the first `limit` images) in batches and score it.

    Per-class accuracy is NaN for a class with no test images in the evaluated slice.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive whole number of test images, got {limit!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive whole number, got {batch_size!r}.")
    images = dataset.x_test if limit is None else dataset.x_test[:limit]
    labels = np.asarray(dataset.y_test if limit is None else dataset.y_test[:limit], dtype=np.int64)
    num_classes = len(dataset.class_names)

    chunks = []
    for start in range(0, len(images), batch_size):
        chunk = np.asarray(predict_batch(images[start : start + batch_size]), dtype=np.float32)
        expected = (min(batch_size, len(images) - start), num_classes)
        if chunk.shape != expected:
            raise ValueError(
                f"The model returned probabilities of shape {chunk.shape} for a batch, expected {expected}; "
                f"it must output one probability per class ({num_classes})."
            )
        chunks.append(chunk)
    probabilities = np.concatenate(chunks) if chunks else np.zeros((0, num_classes), np.float32)
    predictions = probabilities.argmax(axis=1)

    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    per_class_total = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class_accuracy = np.where(per_class_total > 0, np.diag(confusion) / per_class_total, np.nan)
    accuracy = float(np.mean(predictions == labels)) if len(labels) else float("nan")
    return Evaluation(
        probabilities=probabilities,
        predictions=predictions,
        labels=labels,
        accuracy=accuracy,
        per_class_accuracy=per_class_accuracy,
        confusion=confusion,
        class_names=tuple(dataset.class_names),
    )


def _check_class(evaluation: Evaluation, value: int, what: str) -> None:
    count = len(evaluation.class_names)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value < count:
        raise ValueError(f"{what} must be a class index from 0 to {count - 1}, got {value!r}.")


def mistakes(evaluation: Evaluation, true_class: int, predicted_class: int) -> np.ndarray:
    """Indices of test images of `true_class` predicted as `predicted_class`, most confident first.

    With `true_class == predicted_class` this lists the correct predictions of that class.
    """
    _check_class(evaluation, true_class, "true_class")
    _check_class(evaluation, predicted_class, "predicted_class")
    indices = np.flatnonzero((evaluation.labels == true_class) & (evaluation.predictions == predicted_class))
    # Stable sort keeps test-set order among equal confidences, so results are reproducible.
    order = np.argsort(-evaluation.confidences[indices], kind="stable")
    return indices[order]


def most_confident_mistakes(evaluation: Evaluation, n: int) -> np.ndarray:
    """Indices of the `n` wrong predictions the model was most sure of."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a whole number of images (0 or more), got {n!r}.")
    wrong = np.flatnonzero(evaluation.predictions != evaluation.labels)
    order = np.argsort(-evaluation.confidences[wrong], kind="stable")
    return wrong[order][:n]
