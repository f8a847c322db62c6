"""MNIST and Fashion-MNIST, loaded from the copies bundled in data/ so the app works offline."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn_core.engine import registry
from cnn_core.engine.pixels import to_unit_float

DATA_DIR = Path(__file__).resolve().parents[2] / "data"


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
    def info(self) -> registry.DatasetInfo:
        return registry.get(self.name)

    @property
    def title(self) -> str:
        return registry.title(self.name)


def check_name(name: str) -> str:
    """`name` if it is a registered dataset; UserError otherwise."""
    registry.get(name)
    return name


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


PARTS = ("x_train", "y_train", "x_test", "y_test")


def _read_arrays(name: str, data_dir: Path, parts: tuple[str, ...] = PARTS) -> tuple[np.ndarray, ...]:
    """The dataset's arrays named in `parts`, in that order; a bundled file's other members are never read."""
    info = registry.get(name)
    if info.arrays is not None:
        arrays = dict(zip(PARTS, info.arrays(), strict=True))
        return tuple(np.asarray(arrays[part]) for part in parts)
    filename, expected = info.file, info.sha256
    path = data_dir / filename
    if path.exists():
        actual = file_sha256(path)
        if actual != expected:
            raise ValueError(
                f"{path} is corrupted (sha256 {actual[:12]}…, expected {expected[:12]}…); "
                f"restore it with `git checkout -- data/{filename}` or delete it to download it again."
            )
        with np.load(path, allow_pickle=False) as arrays:
            return tuple(arrays[part] for part in parts)
    # Fallback for a checkout without the bundled files: the same arrays from Keras (needs internet).
    import keras

    loader = keras.datasets.mnist if name == "mnist" else keras.datasets.fashion_mnist
    (x_train, y_train), (x_test, y_test) = loader.load_data()
    arrays = dict(zip(PARTS, (x_train, y_train, x_test, y_test), strict=True))
    return tuple(arrays[part] for part in parts)


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) or float (N, 28, 28[, 1]) → float32 (N, 28, 28, 1) in [0, 1]."""
    images = to_unit_float(images)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    return images


def load(name: str, data_dir: Path | str = DATA_DIR) -> Dataset:
    """Load a dataset, read-only; a bundled one once per process (later calls return the same arrays).

    A registered dataset (a learner's own classes) is prepared again on every call: it changes with every
    drawing added, and a cache here would keep every version for the life of the process (`ui.loaders`
    caches it per version).
    """
    check_name(name)
    info = registry.get(name)
    if not info.bundled:
        return _read_only(_prepare(name, *_read_arrays(name, Path(data_dir).resolve())))
    # Normalise the folder so load("mnist") and load("mnist", "data/") share one cached copy.
    return _load_cached(info, Path(data_dir).resolve())


def load_for_one_run(name: str, train_images: int | None = None, data_dir: Path | str = DATA_DIR) -> Dataset:
    """A private copy with only the first `train_images` training images (None: all) and the test set.

    For a worker process that trains one run after another: it holds the float32 images the current
    run uses and gives them back when the run ends, instead of keeping the whole set for its lifetime.
    A bundled dataset's uint8 arrays are read once per process (`keep_bundled`), because unpacking
    the .npz was 0.25-0.55 s of every run's wait for its first point.
    """
    check_name(name)
    info = registry.get(name)
    if info.bundled:
        arrays = _bundled_arrays(info, Path(data_dir).resolve())
    else:
        arrays = _read_arrays(name, Path(data_dir).resolve())
    return _prepare(name, *arrays, train_images=train_images)


def keep_bundled(data_dir: Path | str = DATA_DIR) -> None:
    """Read every bundled dataset's uint8 arrays now (55 MB each), so a worker's first run does not wait for it."""
    for name in registry.names():
        info = registry.get(name)
        if info.bundled:
            _bundled_arrays(info, Path(data_dir).resolve())


@functools.lru_cache(maxsize=8)
def _bundled_arrays(info: registry.DatasetInfo, data_dir: Path) -> tuple[np.ndarray, ...]:
    # The file's own uint8 arrays, read-only: every run converts its own float32 copy from them.
    arrays = _read_arrays(info.name, data_dir)
    for array in arrays:
        array.setflags(write=False)
    return arrays


def load_test(name: str, count: int | None = None, data_dir: Path | str = DATA_DIR) -> Dataset:
    """Only the first `count` test images (None: all) and no training images, read-only.

    For views that look at a model on test images in a web server (the embedding map, the health
    check): the training set (60,000 images, 188 MB as float32 for MNIST) is never read.
    """
    check_name(name)
    x_test, y_test = _read_arrays(name, Path(data_dir).resolve(), ("x_test", "y_test"))
    x_test, y_test = np.array(x_test[:count]), np.array(y_test[:count])
    empty = np.zeros((0, *x_test.shape[1:]), dtype=x_test.dtype)
    return _read_only(_prepare(name, empty, y_test[:0], x_test, y_test))


def load_train(name: str, count: int, data_dir: Path | str = DATA_DIR) -> Dataset:
    """Only the first `count` training images and no test images, read-only (samples to look at, not to train on).

    The whole training set is read and let go: only the slice stays in memory.
    """
    check_name(name)
    x_train, y_train = _read_arrays(name, Path(data_dir).resolve(), ("x_train", "y_train"))
    x_train, y_train = np.array(x_train[:count]), np.array(y_train[:count])
    empty = np.zeros((0, *x_train.shape[1:]), dtype=x_train.dtype)
    return _read_only(_prepare(name, x_train, y_train, empty, y_train[:0]))


def load_labels(name: str, part: str = "test", data_dir: Path | str = DATA_DIR) -> np.ndarray:
    """The labels of one part ("train" or "test"; int64, read-only) without reading any image."""
    check_name(name)
    (labels,) = _read_arrays(name, Path(data_dir).resolve(), (f"y_{_part(part)}",))
    labels = np.asarray(labels).astype(np.int64)
    labels.setflags(write=False)
    return labels


def load_test_labels(name: str, data_dir: Path | str = DATA_DIR) -> np.ndarray:
    """The test set's labels (int64, read-only) without reading any image."""
    return load_labels(name, "test", data_dir)


def class_means(name: str, part: str = "train", data_dir: Path | str = DATA_DIR) -> np.ndarray:
    """The mean image of each class of one part, (classes, 28, 28) float32 in [0, 1], read-only.

    Computed one class at a time from the stored (uint8) images, which are let go afterwards: the
    60,000 MNIST training images never sit in memory as float32 (188 MB).
    """
    check_name(name)
    x, y = _read_arrays(name, Path(data_dir).resolve(), (f"x_{_part(part)}", f"y_{_part(part)}"))
    x, y = np.asarray(x).reshape(len(x), *np.shape(x)[1:3]), np.asarray(y)
    scale = 255.0 if x.dtype == np.uint8 else 1.0  # the pixel scale of `to_unit_float`
    means = np.zeros((registry.get(name).num_classes, *x.shape[1:3]), dtype=np.float32)
    for index in range(len(means)):
        members = x[y == index]
        if len(members):
            means[index] = members.mean(axis=0, dtype=np.float64) / scale
    means.setflags(write=False)
    return means


def _part(part: str) -> str:
    if part not in ("train", "test"):
        raise ValueError(f"A dataset part is 'train' or 'test', not {part!r}.")
    return part


def _read_only(dataset: Dataset) -> Dataset:
    # Shared by every session in the process, so nobody may modify them in place.
    for array in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test):
        array.setflags(write=False)
    return dataset


@functools.cache
def _load_cached(info: registry.DatasetInfo, data_dir: Path) -> Dataset:
    # Keyed by the registry entry itself, so a dataset registered again under its name is read again.
    return _read_only(_prepare(info.name, *_read_arrays(info.name, data_dir)))


def _prepare(name, x_train, y_train, x_test, y_test, train_images: int | None = None) -> Dataset:
    x_train, y_train = x_train[:train_images], y_train[:train_images]
    return Dataset(name, to_model_input(x_train), y_train.astype(np.int64), to_model_input(x_test),
                   y_test.astype(np.int64), class_names=registry.get(name).class_names)
