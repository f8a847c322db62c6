"""Teach a model someone's handwriting: fine-tune it on a few of their drawings without forgetting MNIST.

A learner draws each digit a few times (5 × 10 is plenty). Fine-tuning on 50 images alone would
bend the model to them and lose MNIST, so every batch mixes the learner's drawings (shifted by a
pixel or two, so five copies are not five identical images) with a replay sample of the original
training digits, at a small learning rate, for a fixed, short number of steps. Two modes:

* ``"head"``: only the dense layers after Flatten learn; the convolutions (what the model sees)
  stay as they were. Cheapest, and cannot disturb the features.
* ``"all"``: every layer learns, at a tenth of the head's learning rate. Batch normalisation keeps
  its statistics either way (its layers run in inference mode), so the replay digits are not
  re-normalised by 50 drawings.

`fine_tune` returns a new model; the one passed in is untouched. Which mode generalises better to
the learner's held-out drawings was measured in bench/finetune.py (see BENCHMARKS.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from cnn_core.engine.errors import UserError

Mode = Literal["head", "all"]
MIN_PER_CLASS = 2
MAX_DRAWINGS = 2_000


@dataclass(frozen=True)
class FineTuneResult:
    model: object
    mode: Mode
    steps: int
    seconds: float
    drawings: int
    replay: int


def check_drawings(images: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The learner's drawings as (N, 28, 28, 1) float32 and int labels; UserError when they can't teach."""
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != (28, 28, 1) or len(images) != len(labels):
        raise UserError("The drawings must be 28×28 images, one label each; draw them on the page again.")
    if len(images) > MAX_DRAWINGS:
        raise UserError(f"That is {len(images):,} drawings; fine-tuning takes at most {MAX_DRAWINGS:,}.")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=0) < 0 or labels.max(initial=0) >= num_classes:
        raise UserError(f"Every label must be a class from 0 to {num_classes - 1}.")
    counts = np.bincount(labels.astype(int), minlength=num_classes)
    missing = [str(c) for c in range(num_classes) if counts[c] < MIN_PER_CLASS]
    if missing:
        raise UserError(
            f"Draw at least {MIN_PER_CLASS} of each class before teaching the model; still needed: "
            f"{', '.join(missing)}."
        )
    return images, labels.astype(np.int64)


def _shifted(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by up to 2 pixels in each direction (the drawings are centred by mass)."""
    out = np.empty_like(images)
    for index, image in enumerate(images):
        dy, dx = rng.integers(-2, 3, size=2)
        out[index] = np.roll(np.roll(image, dy, axis=0), dx, axis=1)
    return out


def _head_start(model) -> int:
    """Index of the first layer after the last Flatten/GlobalAveragePooling: the classifier head."""
    import keras

    start = 0
    for index, layer in enumerate(model.layers):
        if isinstance(layer, keras.layers.Flatten | keras.layers.GlobalAveragePooling2D):
            start = index + 1
    return start


def fine_tune(
    model,
    images: np.ndarray,
    labels: np.ndarray,
    replay_images: np.ndarray,
    replay_labels: np.ndarray,
    *,
    mode: Mode = "head",
    steps: int = 120,
    batch_size: int = 64,
    own_share: float = 0.25,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> FineTuneResult:
    """A copy of `model` fine-tuned on the drawings, each batch `own_share` drawings and the rest replay."""
    import keras
    import tensorflow as tf

    if mode not in ("head", "all"):
        raise UserError("Choose what to fine-tune: 'head' (the dense layers) or 'all' (every layer).")
    num_classes = int(model.output_shape[-1])
    images, labels = check_drawings(images, labels, num_classes)
    replay_images = np.asarray(replay_images, dtype=np.float32).reshape(-1, 28, 28, 1)
    replay_labels = np.asarray(replay_labels, dtype=np.int64)
    started = time.perf_counter()

    tuned = keras.models.clone_model(model)
    tuned.set_weights(model.get_weights())
    head = _head_start(tuned)
    for index, layer in enumerate(tuned.layers):
        frozen = mode == "head" and index < head
        # BatchNorm keeps its running statistics in both modes (trainable=False puts it in inference mode).
        layer.trainable = not frozen and not isinstance(layer, keras.layers.BatchNormalization)
    rate = learning_rate if mode == "head" else learning_rate / 10
    optimizer = keras.optimizers.Adam(rate)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    variables = tuned.trainable_variables

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, tuned(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    rng = np.random.default_rng(seed)
    own = max(1, int(round(batch_size * own_share))) if len(replay_images) else batch_size
    other = batch_size - own
    for _ in range(steps):
        pick = rng.integers(0, len(images), size=own)
        x, y = _shifted(images[pick], rng), labels[pick]
        if other and len(replay_images):
            more = rng.integers(0, len(replay_images), size=other)
            x = np.concatenate([x, replay_images[more]])
            y = np.concatenate([y, replay_labels[more]])
        step(tf.constant(x), tf.constant(y))
    return FineTuneResult(tuned, mode, steps, time.perf_counter() - started, len(images), len(replay_images))


def accuracy(model, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000) -> float:
    """Share of `images` the model labels right (batched, through the model's call, not predict)."""
    images = np.asarray(images, dtype=np.float32).reshape(-1, 28, 28, 1)
    right = 0
    for start in range(0, len(images), batch_size):
        probabilities = np.asarray(model(images[start : start + batch_size], training=False))
        right += int((probabilities.argmax(axis=1) == np.asarray(labels[start : start + batch_size])).sum())
    return right / max(len(images), 1)


def steps_for(drawings: int, epochs: float = 4.0, batch_size: int = 64, own_share: float = 0.25) -> int:
    """Steps that show each drawing about `epochs` times (shifted differently each time)."""
    return max(20, math.ceil(epochs * drawings / max(1, round(batch_size * own_share))))
