"""Train the default models the app ships in models/ (`make models`).

    python -m scripts.train_default_models                 # both datasets, written to models/
    python -m scripts.train_default_models --dataset mnist
    python -m scripts.train_default_models --quick --output /tmp/models   # a fast smoke run

The MNIST model is trained for drawings, not only for MNIST scans: besides the 60,000 training
digits it sees training digits re-drawn as mouse drawings (cnn_core.engine.drawing) and prepared by
the app's own path (cnn_core.engine.preprocess.canvas_to_mnist), so a digit drawn on the canvas looks
like something it was trained on. The drawn-digit score in the metrics uses MNIST *test*
digits, which the augmentation never draws.

Everything is seeded, so a rerun on the same versions gives the same models up to the
floating-point order of multi-threaded CPU kernels.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cnn_core.engine import datasets, drawing
from cnn_core.engine.specs import (
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Experiment,
    Flatten,
    MaxPool,
    ModelSpec,
    TrainingConfig,
)

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
SEED = 20240611
# Drawn MNIST test digits scored for the metrics file (the benchmark draws the same ones).
DRAWN_TEST_COUNT = 2000
# The largest file the app should have to load (and the repository to carry) per model.
MAX_FILE_BYTES = 5 * 1024 * 1024


def _compact_convnet(name: str, widths: tuple[int, int, int], dense: int, dropout: float) -> ModelSpec:
    """Three 'same' 3×3 convolutions with batch norm, each halving the image, then a small dense head.

    Cheap enough to train on two CPU cores in minutes, and every layer still shows readable
    feature maps (28×28, 14×14 and 7×7).
    """
    first, second, third = widths
    layers = (
        Conv2D(first, 3, padding="same"), BatchNorm(), MaxPool(2),
        Conv2D(second, 3, padding="same"), BatchNorm(), MaxPool(2),
        Conv2D(third, 3, padding="same"), BatchNorm(), MaxPool(2),
        Flatten(), Dropout(dropout), Dense(dense), Dropout(dropout), Dense(10, "softmax"),
    )  # fmt: skip
    return ModelSpec(layers=layers, name=name)


@dataclass(frozen=True)
class Recipe:
    """How one default model is trained: the experiment plus what the spec cannot say."""

    experiment: Experiment
    # Training digits re-drawn as canvas drawings and added to the training set (MNIST only).
    drawn_count: int = 0
    # Mirror half the images left-right each epoch (clothes look the same mirrored; digits do not).
    mirror: bool = False
    description: str = ""


RECIPES: dict[str, Recipe] = {
    "mnist": Recipe(
        Experiment(
            _compact_convnet("default_mnist", (32, 64, 64), 128, 0.3),
            TrainingConfig(dataset="mnist", optimizer="adam", learning_rate=2e-3, batch_size=128, epochs=10,
                           validation_split=0.0, seed=SEED),
        ),
        drawn_count=30_000,
        description="Compact convnet for digits, trained on MNIST plus 30,000 training digits re-drawn as "
        "canvas drawings and prepared like the canvas, so drawn digits are recognised too.",
    ),
    "fashion_mnist": Recipe(
        Experiment(
            _compact_convnet("default_fashion_mnist", (32, 64, 64), 128, 0.3),
            TrainingConfig(dataset="fashion_mnist", optimizer="adam", learning_rate=2e-3, batch_size=128,
                           epochs=12, validation_split=0.0, seed=SEED),
        ),
        mirror=True,
        description="Compact convnet for clothes, trained on Fashion-MNIST with left-right mirroring.",
    ),
}


def drawn_training_digits(dataset: datasets.Dataset, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` training digits, drawn on a canvas and prepared by the app's path: (N, 28, 28, 1) and labels."""
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(dataset.x_train), size=count, replace=False))
    images = drawing.drawn_mnist(dataset.x_train[chosen], seed=seed + 1)
    return images[..., np.newaxis], dataset.y_train[chosen]


def drawn_test_accuracy(model, count: int = DRAWN_TEST_COUNT) -> float:
    images, labels = drawing.drawn_test_digits(count)
    predictions = model.predict(images[..., np.newaxis], batch_size=256, verbose=0).argmax(axis=1)
    return float((predictions == labels).mean())


def _batches(x: np.ndarray, y: np.ndarray, batch_size: int, mirror: bool, seed: int):
    """An endless, seeded stream of shuffled batches (a fresh order and fresh mirroring every epoch)."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(x))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            index = np.sort(order[start : start + batch_size])
            images = x[index]
            if mirror:
                flip = rng.random(len(index)) < 0.5
                images = np.where(flip[:, None, None, None], images[:, :, ::-1, :], images)
            yield images, y[index]


def train_default(dataset_name: str, quick: bool = False, log=print):
    """Train one default model; returns (keras model, Experiment, metrics dict)."""
    import keras
    import tensorflow as tf

    from cnn_core.engine.models import build_model, make_optimizer

    recipe = RECIPES[dataset_name]
    experiment = recipe.experiment
    training = experiment.training
    if quick:
        training = replace(training, epochs=1, train_subset=3000)
        experiment = replace(experiment, training=training)
    dataset = datasets.load(dataset_name)
    started = time.perf_counter()

    x_train, y_train = dataset.x_train, dataset.y_train
    if training.train_subset:
        x_train, y_train = x_train[: training.train_subset], y_train[: training.train_subset]
    drawn_count = min(recipe.drawn_count, 500) if quick else recipe.drawn_count
    if drawn_count:
        log(f"[{dataset_name}] drawing {drawn_count} training digits as canvas drawings…")
        drawn_x, drawn_y = drawn_training_digits(dataset, drawn_count, training.seed)
        x_train = np.concatenate([x_train, drawn_x])
        y_train = np.concatenate([y_train, drawn_y])
    drawing_seconds = time.perf_counter() - started

    model = build_model(experiment.model, training)
    steps_per_epoch = len(x_train) // training.batch_size
    # Cosine decay to zero: large steps first, then settle; a few points of accuracy for free.
    schedule = keras.optimizers.schedules.CosineDecay(training.learning_rate, steps_per_epoch * training.epochs)
    model.compile(
        optimizer=type(make_optimizer(training))(learning_rate=schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    stream = _batches(x_train, y_train, training.batch_size, recipe.mirror, training.seed)
    dataset_tf = tf.data.Dataset.from_generator(
        lambda: stream,
        output_signature=(
            tf.TensorSpec((training.batch_size, 28, 28, 1), tf.float32),
            tf.TensorSpec((training.batch_size,), tf.int64),
        ),
    ).prefetch(2)
    log(f"[{dataset_name}] training on {len(x_train)} images for {training.epochs} epochs…")

    class _Log(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            log(f"[{dataset_name}] epoch {epoch + 1}/{training.epochs}: loss {logs.get('loss', math.nan):.4f}, "
                f"accuracy {logs.get('accuracy', math.nan):.4f} ({time.perf_counter() - started:.0f} s)")

    model.fit(
        dataset_tf, epochs=training.epochs, steps_per_epoch=steps_per_epoch, shuffle=False, verbose=0, callbacks=[_Log()]
    )
    train_seconds = time.perf_counter() - started
    # Ship a model compiled as build_model would compile it, so fine-tuning it in the app behaves
    # like any other model (and the file carries no schedule or optimizer state).
    model.compile(optimizer=make_optimizer(training), loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    test_loss, test_accuracy = model.evaluate(dataset.x_test, dataset.y_test, batch_size=256, verbose=0)
    metrics = {
        "test_accuracy": round(float(test_accuracy), 5),
        "test_loss": round(float(test_loss), 5),
        "train_images": int(len(x_train)),
        "drawn_training_images": int(drawn_count),
        "mirrored": recipe.mirror,
        "params": int(model.count_params()),
        "training_seconds": round(train_seconds, 1),
        "drawing_seconds": round(drawing_seconds, 1),
        "learning_rate_schedule": "cosine decay to 0",
        "description": recipe.description,
        "made_by": "python -m scripts.train_default_models",
        "seed": training.seed,
        "trained_on": datetime.date.today().isoformat(),
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
        "quick": quick,
    }
    if dataset_name == "mnist":
        count = 300 if quick else DRAWN_TEST_COUNT
        metrics["drawn_digit_accuracy"] = round(drawn_test_accuracy(model, count), 5)
        metrics["drawn_digit_count"] = count
    log(f"[{dataset_name}] test accuracy {test_accuracy:.4f}"
        + (f", drawn digits {metrics['drawn_digit_accuracy']:.4f}" if "drawn_digit_accuracy" in metrics else "")
        + f" ({train_seconds:.0f} s)")
    return model, experiment, metrics


def save_default(model, experiment: Experiment, metrics: dict, dataset_name: str, output: Path) -> Path:
    from cnn_core.service.persistence import ModelBundle, save_bundle

    name = f"default_{dataset_name}"
    bundle = ModelBundle(
        model=model,
        experiment=experiment,
        metrics=metrics,
        name=name,
        source="default",
    )
    path = save_bundle(bundle, output, shipped=True)
    size = Path(output, f"{name}.keras").stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{name}.keras is {size / 1e6:.1f} MB, above the 5 MB limit; use a smaller model.")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=[*RECIPES, "all"], default="all")
    parser.add_argument("--output", type=Path, default=MODELS_DIR, help="folder for the .keras and .json files")
    parser.add_argument("--quick", action="store_true", help="1 epoch on 3,000 images: checks the pipeline only")
    parser.add_argument("--no-save", action="store_true", help="train and report, but write nothing")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    names = list(RECIPES) if args.dataset == "all" else [args.dataset]
    for name in names:
        model, experiment, metrics = train_default(name, quick=args.quick)
        if not args.no_save:
            args.output.mkdir(parents=True, exist_ok=True)
            print(f"[{name}] saved {save_default(model, experiment, metrics, name, args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
