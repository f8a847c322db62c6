"""Train the default models the app ships in models/ (`make models`).

    python -m scripts.train_default_models                 # both datasets, written to models/
    python -m scripts.train_default_models --dataset mnist
    python -m scripts.train_default_models --quick --output /tmp/models   # a fast smoke run

The MNIST model is trained for drawings, not only for MNIST scans: besides the 60,000 training
digits it sees every training digit re-drawn twice as a mouse drawing (cnn_core.engine.drawing) and
generated drawings of handwriting styles MNIST has few of (cnn_core.engine.handwriting, from
STYLE_SEED), all prepared by the app's own path (cnn_core.engine.preprocess.canvas_to_mnist), so a
digit drawn on the canvas looks like something it was trained on. Nothing else enters its training
data. The metrics score MNIST *test* digits drawn the same way (never drawn for training) and the
held-out style check set (its own seeds, never trained on). BENCHMARKS.md ("Default MNIST model:
recipe") says what each part of the recipe gained (`python -m scripts.compare_mnist_recipes`).

    python -m scripts.train_default_models --dataset mnist --cache /tmp/train   # keep the drawings for a rerun

Everything is seeded, so a rerun on the same versions gives the same models up to the
floating-point order of multi-threaded CPU kernels.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cnn_core.engine import datasets, drawing, handwriting
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
# Seed of the generated handwriting styles trained on. The check set's seed (handwriting.CHECK_SEED)
# and bench.finetune's learner seeds (1010–1019, 2020–2029) are others, so neither is ever trained on
# (handwriting.style_training_set refuses seeds from the check set's; a test pins both).
STYLE_SEED = 424_242
# Drawings per style in the check set scored for the metrics file (bench.handwriting_styles scores the same).
STYLE_CHECK_PER_STYLE = 200


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
    # Generated drawings per handwriting style (flagged 1s, crossed 7s…; cnn_core.engine.handwriting),
    # drawn from STYLE_SEED, never the check set's seeds (MNIST only).
    style_count: int = 0
    # Share of the images given a fresh elastic distortion each epoch (0: none), and its strength in pixels.
    elastic: float = 0.0
    elastic_alpha: float = 1.5
    # Training precision setting (cnn_core.engine.precision: "auto" is bfloat16 where the CPU has it).
    # The shipped file is always a float32 copy, so it predicts at full speed on any CPU.
    precision: str = "off"
    # Mirror half the images left-right each epoch (clothes look the same mirrored; digits do not).
    mirror: bool = False
    description: str = ""


RECIPES: dict[str, Recipe] = {
    "mnist": Recipe(
        Experiment(
            _compact_convnet("default_mnist", (32, 64, 64), 128, 0.3),
            TrainingConfig(dataset="mnist", optimizer="adam", learning_rate=2e-3, batch_size=128, epochs=8,
                           validation_split=0.0, seed=SEED),
        ),
        drawn_count=120_000,
        style_count=1_200,
        precision="auto",
        description="Compact convnet for digits, trained on MNIST plus every training digit re-drawn twice as a "
        "canvas drawing (120,000) and 1,200 generated drawings of each handwriting style MNIST has few of "
        "(flagged 1s, crossed 7s, open 4s, 6s and 9s, small thick 5s), all prepared like the canvas.",
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
    """`count` training digits, drawn on a canvas and prepared by the app's path: (N, 28, 28, 1) and labels.

    More than there are training digits draws them again in rounds, each digit once per round and
    each round with its own brush, size and slant.
    """
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for round_ in range(math.ceil(count / len(dataset.x_train))):
        size = min(len(dataset.x_train), count - round_ * len(dataset.x_train))
        chosen = np.sort(rng.choice(len(dataset.x_train), size=size, replace=False))
        images.append(drawing.drawn_mnist(dataset.x_train[chosen], seed=seed + 1 + round_))
        labels.append(dataset.y_train[chosen])
    return np.concatenate(images)[..., np.newaxis], np.concatenate(labels)


def style_training_drawings(per_style: int, seed: int = STYLE_SEED) -> tuple[np.ndarray, np.ndarray]:
    """`per_style` generated drawings of every handwriting style, prepared by the app's path: (N, 28, 28, 1), labels.

    `handwriting.style_training_set` refuses the check set's seed, so these are never the drawings
    the check set scores.
    """
    images, labels, _ = handwriting.style_training_set(per_style, seed)
    return images[..., np.newaxis], labels


def drawn_test_accuracy(model, count: int = DRAWN_TEST_COUNT) -> float:
    images, labels = drawing.drawn_test_digits(count)
    predictions = model.predict(images[..., np.newaxis], batch_size=256, verbose=0).argmax(axis=1)
    return float((predictions == labels).mean())


def style_check_accuracy(model, per_style: int = STYLE_CHECK_PER_STYLE) -> tuple[float, dict[str, float]]:
    """Accuracy on the held-out handwriting-style check set: overall and per style."""
    images, labels, names = handwriting.style_check_set(per_style)
    right = model.predict(images[..., np.newaxis], batch_size=256, verbose=0).argmax(axis=1) == labels
    names = np.asarray(names)
    per = {name: round(float(right[names == name].mean()), 4) for name in handwriting.STYLES}
    return float(right.mean()), per


def elastic_distort(images: np.ndarray, rng: np.random.Generator, alpha: float, sigma: float = 4.0) -> np.ndarray:
    """Simard-style elastic distortion of (N, 28, 28, 1) images: each pixel moves along a smooth random field.

    The field is Gaussian noise smoothed over `sigma` pixels and scaled so its typical displacement is
    `alpha` pixels: strokes bend and thicken or thin a little, as different hands draw them.
    """
    from scipy.ndimage import gaussian_filter, map_coordinates

    count, height, width = images.shape[:3]
    field = gaussian_filter(rng.normal(size=(2, count, height, width)), sigma=(0, 0, sigma, sigma))
    field *= alpha / (field.std(axis=(2, 3), keepdims=True) + 1e-8)
    index, rows, cols = np.meshgrid(np.arange(count), np.arange(height), np.arange(width), indexing="ij")
    coordinates = np.stack([index, rows + field[0], cols + field[1]])
    moved = map_coordinates(images[..., 0], coordinates, order=1, mode="constant", cval=0.0)
    return np.clip(moved, 0.0, 1.0).astype(np.float32)[..., np.newaxis]


def _batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, mirror: bool, seed: int, elastic: float = 0.0,
    elastic_alpha: float = 1.5,
):
    """An endless, seeded stream of shuffled batches (a fresh order, mirroring and distortion every epoch)."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(x))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            index = np.sort(order[start : start + batch_size])
            images = x[index]
            if mirror:
                flip = rng.random(len(index)) < 0.5
                images = np.where(flip[:, None, None, None], images[:, :, ::-1, :], images)
            if elastic:
                bent = rng.random(len(index)) < elastic
                if bent.any():
                    images = images.copy()
                    images[bent] = elastic_distort(images[bent], rng, elastic_alpha)
            yield images, y[index]


def training_arrays(dataset: datasets.Dataset, recipe: Recipe, quick: bool = False, log=print):
    """The recipe's training images and labels: the dataset's own, then drawn digits, then generated styles."""
    training = recipe.experiment.training
    subset = 3000 if quick else training.train_subset
    x_train, y_train = dataset.x_train, dataset.y_train
    if subset:
        x_train, y_train = x_train[:subset], y_train[:subset]
    parts_x, parts_y = [x_train], [y_train]
    drawn_count = min(recipe.drawn_count, 500) if quick else recipe.drawn_count
    if drawn_count:
        log(f"[{dataset.name}] drawing {drawn_count} training digits as canvas drawings…")
        drawn_x, drawn_y = drawn_training_digits(dataset, drawn_count, training.seed)
        parts_x.append(drawn_x)
        parts_y.append(drawn_y)
    style_count = min(recipe.style_count, 20) if quick else recipe.style_count
    if style_count:
        log(f"[{dataset.name}] drawing {style_count} generated drawings of each handwriting style…")
        style_x, style_y = style_training_drawings(style_count)
        parts_x.append(style_x)
        parts_y.append(style_y)
    counts = {"drawn_training_images": int(drawn_count), "style_training_images": int(style_count) * len(
        handwriting.STYLES) if style_count else 0}
    return np.concatenate(parts_x), np.concatenate(parts_y), counts


def fit(recipe: Recipe, x_train: np.ndarray, y_train: np.ndarray, log=print, precision: str = "float32"):
    """Train the recipe's model on the arrays (cosine-decayed learning rate); returns a float32 Keras model."""
    import keras
    import tensorflow as tf

    from cnn_core.engine.models import build_model, make_optimizer, to_float32

    experiment = recipe.experiment
    training = experiment.training
    name = training.dataset
    started = time.perf_counter()
    model = build_model(experiment.model, training, precision=precision)
    steps_per_epoch = len(x_train) // training.batch_size
    # Cosine decay to zero: large steps first, then settle; a few points of accuracy for free.
    schedule = keras.optimizers.schedules.CosineDecay(training.learning_rate, steps_per_epoch * training.epochs)
    model.compile(
        optimizer=type(make_optimizer(training))(learning_rate=schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    stream = _batches(x_train, y_train, training.batch_size, recipe.mirror, training.seed, recipe.elastic,
                      recipe.elastic_alpha)
    dataset_tf = tf.data.Dataset.from_generator(
        lambda: stream,
        output_signature=(
            tf.TensorSpec((training.batch_size, 28, 28, 1), tf.float32),
            tf.TensorSpec((training.batch_size,), tf.int64),
        ),
    ).prefetch(2)
    log(f"[{name}] training on {len(x_train)} images for {training.epochs} epochs ({precision})…")

    class _Log(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            log(f"[{name}] epoch {epoch + 1}/{training.epochs}: loss {logs.get('loss', math.nan):.4f}, "
                f"accuracy {logs.get('accuracy', math.nan):.4f} ({time.perf_counter() - started:.0f} s)")

    model.fit(
        dataset_tf, epochs=training.epochs, steps_per_epoch=steps_per_epoch, shuffle=False, verbose=0, callbacks=[_Log()]
    )
    # Ship a float32 model compiled as build_model would compile it, so it predicts at full speed on any
    # CPU and fine-tuning it in the app behaves like any other model (no schedule or optimizer state).
    model = to_float32(model, training)
    model.compile(optimizer=make_optimizer(training), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def score(model, dataset: datasets.Dataset, quick: bool = False) -> dict:
    """Test accuracy and loss; for MNIST also the drawn-digit and handwriting-style check accuracies."""
    test_loss, test_accuracy = model.evaluate(dataset.x_test, dataset.y_test, batch_size=256, verbose=0)
    metrics = {"test_accuracy": round(float(test_accuracy), 5), "test_loss": round(float(test_loss), 5)}
    if dataset.name == "mnist":
        count = 300 if quick else DRAWN_TEST_COUNT
        metrics["drawn_digit_accuracy"] = round(drawn_test_accuracy(model, count), 5)
        metrics["drawn_digit_count"] = count
        per_style = 20 if quick else STYLE_CHECK_PER_STYLE
        overall, per = style_check_accuracy(model, per_style)
        metrics["style_check_accuracy"] = round(overall, 5)
        metrics["style_check_per_style"] = per
        metrics["style_check_count"] = per_style * len(handwriting.STYLES)
    return metrics


def train_default(
    dataset_name: str, quick: bool = False, log=print, cache: Path | None = None, draw_only: bool = False
):
    """Train one default model; returns (keras model, Experiment, metrics dict).

    `cache` names an .npz file for the training images: drawing them takes minutes and is
    deterministic, so a rerun of the same recipe (same counts and seeds) reads them back.
    """
    import keras
    import tensorflow as tf

    from cnn_core.engine import precision as precisions

    recipe = RECIPES[dataset_name]
    precision = precisions.resolve(recipe.precision)
    if quick:
        training = replace(recipe.experiment.training, epochs=1, train_subset=3000)
        recipe = replace(recipe, experiment=replace(recipe.experiment, training=training))
    experiment = recipe.experiment
    dataset = datasets.load(dataset_name)
    started = time.perf_counter()
    key = np.asarray([recipe.drawn_count, recipe.style_count, experiment.training.seed, STYLE_SEED, int(quick),
                      experiment.training.train_subset or 0, drawing.RENDERER_VERSION])
    if cache is not None and cache.exists() and np.array_equal(np.load(cache)["key"], key):
        log(f"[{dataset_name}] training images from {cache} (drawn by an earlier run of this recipe)")
        stored = np.load(cache)
        x_train, y_train = stored["x"], stored["y"]
        counts = json.loads(str(stored["counts"]))
        # The time the drawing took when it was drawn, not the time to read it back.
        drawing_seconds = float(stored["drawing_seconds"]) if "drawing_seconds" in stored else None
    else:
        x_train, y_train, counts = training_arrays(dataset, recipe, quick=quick, log=log)
        drawing_seconds = time.perf_counter() - started
        if cache is not None:
            np.savez(cache, key=key, x=x_train, y=y_train, counts=json.dumps(counts), drawing_seconds=drawing_seconds)
    if draw_only:
        return None
    fit_started = time.perf_counter()
    model = fit(recipe, x_train, y_train, log=log, precision=precision)
    train_seconds = time.perf_counter() - fit_started
    scores = score(model, dataset, quick=quick)
    metrics = {
        "test_accuracy": scores["test_accuracy"],
        "test_loss": scores["test_loss"],
        "train_images": int(len(x_train)),
        **counts,
        "elastic_share": recipe.elastic,
        "mirrored": recipe.mirror,
        "params": int(model.count_params()),
        "training_seconds": round(train_seconds, 1),
        "drawing_seconds": None if drawing_seconds is None else round(drawing_seconds, 1),
        "learning_rate_schedule": "cosine decay to 0",
        "trained_in": precision,
        "description": recipe.description,
        "made_by": "python -m scripts.train_default_models",
        "seed": experiment.training.seed,
        "trained_on": datetime.date.today().isoformat(),
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
        "quick": quick,
        **{k: v for k, v in scores.items() if k not in ("test_accuracy", "test_loss")},
    }
    log(f"[{dataset_name}] test accuracy {scores['test_accuracy']:.4f}"
        + (f", drawn digits {metrics['drawn_digit_accuracy']:.4f}, styles {metrics['style_check_accuracy']:.4f}"
           if "drawn_digit_accuracy" in metrics else "")
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
    parser.add_argument("--cache", type=Path, help="an .npz file to keep (and reuse) the drawn training images in")
    parser.add_argument("--draw-only", action="store_true", help="only draw the training images into --cache")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    names = list(RECIPES) if args.dataset == "all" else [args.dataset]
    for name in names:
        cache = None if args.cache is None else args.cache.with_suffix(f".{name}.npz")
        if args.draw_only:
            if cache is None:
                parser.error("--draw-only needs --cache")
            train_default(name, quick=args.quick, cache=cache, draw_only=True)
            continue
        model, experiment, metrics = train_default(name, quick=args.quick, cache=cache)
        if not args.no_save:
            args.output.mkdir(parents=True, exist_ok=True)
            print(f"[{name}] saved {save_default(model, experiment, metrics, name, args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
