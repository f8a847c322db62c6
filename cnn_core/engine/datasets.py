"""MNIST and Fashion-MNIST, loaded from the copies bundled in data/ so the app works offline."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parents[2] / "data"

FILES = {
    "mnist": ("mnist.npz", "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"),
    "fashion_mnist": ("fashion_mnist.npz", "5b6d2c4c694a91887af8ab7d039c04f80af3c29378d731c93a538d2e831aa469"),
}
TITLES = {"mnist": "MNIST digits", "fashion_mnist": "Fashion-MNIST"}
# Known without loading (the files are checked against their sha256), so a server can check a
# run's size without holding the images itself.
TRAIN_IMAGES = {"mnist": 60_000, "fashion_mnist": 60_000}
CLASS_NAMES = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion_mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
}


@dataclass(frozen=True)
class Dataset:
    """Images as float32 (N, 28, 28, 1) in [0, 1] and integer labels, as every model here expects."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]

    @property
    def title(self) -> str:
        return TITLES[self.name]


def check_name(name: str) -> str:
    if name not in FILES:
        raise ValueError(f"Unknown dataset {name!r}; use one of {', '.join(FILES)}.")
    return name


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_arrays(name: str, data_dir: Path) -> tuple[np.ndarray, ...]:
    filename, expected = FILES[name]
    path = data_dir / filename
    if path.exists():
        actual = file_sha256(path)
        if actual != expected:
            raise ValueError(
                f"{path} is corrupted (sha256 {actual[:12]}…, expected {expected[:12]}…); "
                f"restore it with `git checkout -- data/{filename}` or delete it to download it again."
            )
        with np.load(path, allow_pickle=False) as arrays:
            return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]
    # Fallback for a checkout without the bundled files: the same arrays from Keras (needs internet).
    import keras

    loader = keras.datasets.mnist if name == "mnist" else keras.datasets.fashion_mnist
    (x_train, y_train), (x_test, y_test) = loader.load_data()
    return x_train, y_train, x_test, y_test


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) or float (N, 28, 28[, 1]) → float32 (N, 28, 28, 1) in [0, 1]."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    else:
        images = images.astype(np.float32, copy=False)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    return images


def load(name: str, data_dir: Path | str = DATA_DIR) -> Dataset:
    """Load a dataset once per process; later calls return the same read-only arrays."""
    check_name(name)
    # Normalise the folder so load("mnist") and load("mnist", "data/") share one cached copy.
    return _load_cached(name, Path(data_dir).resolve())


def load_for_one_run(name: str, train_images: int | None = None, data_dir: Path | str = DATA_DIR) -> Dataset:
    """A private copy with only the first `train_images` training images (None: all) and the test set.

    For a worker process that trains one run after another: it holds what the current run uses
    and gives it back when the run ends, instead of keeping the whole set for its lifetime.
    """
    check_name(name)
    return _prepare(name, *_read_arrays(name, Path(data_dir).resolve()), train_images=train_images)


@functools.cache
def _load_cached(name: str, data_dir: Path) -> Dataset:
    dataset = _prepare(name, *_read_arrays(name, data_dir))
    for array in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test):
        # Shared by every session in the process, so nobody may modify them in place.
        array.setflags(write=False)
    return dataset


def _prepare(name, x_train, y_train, x_test, y_test, train_images: int | None = None) -> Dataset:
    x_train, y_train = x_train[:train_images], y_train[:train_images]
    return Dataset(name, to_model_input(x_train), y_train.astype(np.int64), to_model_input(x_test),
                   y_test.astype(np.int64), class_names=CLASS_NAMES[name])
