"""Score a model on a dataset's test set: accuracy, per-class accuracy, confusion matrix, mistakes.

Pure NumPy around a `predict_batch` function, so it works with any model wrapper (a
`Predictor`, a Keras model's `predict`, or a fake in tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cnn_core.engine.datasets import Dataset


# One batch of a costly model should keep the cores busy for tens of milliseconds, not seconds:
# 64 images of a 100-MFLOP model measured p95 129 ms for another visitor's prediction against
# 1.6 s with batches of 1000 (bench/evaluate_fairness.py). Cheap models keep big batches.
FLOPS_PER_BATCH = 64 * 100e6


def batch_size_for(flops_per_image: float | None, largest: int = 1000, smallest: int = 16) -> int:
    """A batch size whose compute stays near FLOPS_PER_BATCH; `smallest` when the cost is unknown."""
    if flops_per_image is None or flops_per_image <= 0:
        return smallest
    return int(min(largest, max(smallest, FLOPS_PER_BATCH // flops_per_image)))


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
    # How many test images were asked for; more than len(labels) when a time budget ran out first.
    requested: int | None = None

    @property
    def complete(self) -> bool:
        return self.requested is None or len(self.labels) >= self.requested

    @property
    def confidences(self) -> np.ndarray:
        """The probability each prediction was given."""
        return self.probabilities[np.arange(len(self.predictions)), self.predictions]


def evaluate(
    predict_batch: Callable[[np.ndarray], np.ndarray],
    dataset: Dataset,
    limit: int | None = None,
    batch_size: int = 1000,
    time_budget_s: float | None = None,
    pause_fraction: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Evaluation:
    """Run `predict_batch` over the test set (the first `limit` images) in batches and score it.

    Per-class accuracy is NaN for a class with no test images in the evaluated slice.

    A visitor's Evaluate must not starve everyone else's drawings (TensorFlow gives one batch all
    the cores): `time_budget_s` stops after the batch that crosses it and scores the images done
    so far (`complete` is then False), and `pause_fraction` sleeps that fraction of each batch's
    time after it, leaving the cores free in between. Small batches keep each busy spell short.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive whole number of test images, got {limit!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive whole number, got {batch_size!r}.")
    images = dataset.x_test if limit is None else dataset.x_test[:limit]
    labels = np.asarray(dataset.y_test if limit is None else dataset.y_test[:limit], dtype=np.int64)
    num_classes = len(dataset.class_names)

    if time_budget_s is not None and not time_budget_s > 0:
        raise ValueError(f"time_budget_s must be a positive number of seconds, got {time_budget_s!r}.")
    chunks = []
    started = clock()
    for start in range(0, len(images), batch_size):
        if chunks and time_budget_s is not None and clock() - started >= time_budget_s:
            break
        batch_started = clock()
        chunk = np.asarray(predict_batch(images[start : start + batch_size]), dtype=np.float32)
        if pause_fraction > 0:
            sleep((clock() - batch_started) * pause_fraction)
        expected = (min(batch_size, len(images) - start), num_classes)
        if chunk.shape != expected:
            raise ValueError(
                f"The model returned probabilities of shape {chunk.shape} for a batch, expected {expected}; "
                f"it must output one probability per class ({num_classes})."
            )
        chunks.append(chunk)
    probabilities = np.concatenate(chunks) if chunks else np.zeros((0, num_classes), np.float32)
    return from_probabilities(probabilities, labels, dataset.class_names)


def from_probabilities(probabilities: np.ndarray, labels: np.ndarray, class_names) -> Evaluation:
    """Score probabilities already computed for the first images of `labels` (a run's own test pass).

    Fewer probabilities than labels is an evaluation stopped by its time budget (`complete` False).
    """
    probabilities = np.asarray(probabilities, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = len(class_names)
    if probabilities.ndim != 2 or probabilities.shape[1] != num_classes or len(probabilities) > len(labels):
        raise ValueError(
            f"Expected probabilities of shape {(len(labels), num_classes)} for {len(labels)} images, "
            f"got {probabilities.shape}."
        )
    predictions = probabilities.argmax(axis=1)
    requested = len(labels)
    labels = labels[: len(probabilities)]

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
        class_names=tuple(class_names),
        requested=requested,
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
