"""The one registry of dataset facts: what a dataset is called, its classes, sizes and shape.

Everything that needs to know about a dataset without loading its images (spec validation, the
job queue's size caps, the UI's selectboxes and titles, the exercises' baselines) asks here.
Pure Python, no NumPy, so `specs` can use it while a learner types.

The bundled datasets are registered below. A user-defined dataset (own classes) is registered
the same way with `register(DatasetInfo(...))`, giving `arrays` (a function returning
`(x_train, y_train, x_test, y_test)`) instead of a bundled `file`.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cnn_core.engine.errors import UserError

Arrays = tuple[Any, Any, Any, Any]


# eq=False: entries are compared and hashed by identity, so a loader can cache per entry.
@dataclass(frozen=True, eq=False)
class DatasetInfo:
    """Facts about one dataset, known without loading it.

    `baselines` holds reference test accuracies by name (e.g. ``{"dense_baseline": 0.9768}``).
    `file` and `sha256` name a bundled `.npz` under data/; `arrays` loads a dataset that is not
    bundled (one a user registered), returning uint8 or [0, 1] float images and integer labels.
    """

    name: str
    title: str
    class_names: tuple[str, ...]
    train_size: int
    test_size: int
    input_shape: tuple[int, int, int] = (28, 28, 1)
    baselines: dict[str, float] = field(default_factory=dict)
    file: str | None = None
    sha256: str | None = None
    arrays: Callable[[], Arrays] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def bundled(self) -> bool:
        return self.file is not None


_LOCK = threading.Lock()
_REGISTRY: dict[str, DatasetInfo] = {}
# name → the number of the register() call that put its entry there (one counter for all names, so a
# name registered again, even after an unregister, never gets a number it had before).
_VERSIONS: dict[str, int] = {}
_REGISTERED = itertools.count(1)


def register(info: DatasetInfo) -> DatasetInfo:
    """Add (or replace) a dataset entry; returns it."""
    if not isinstance(info, DatasetInfo):
        raise TypeError("register() takes a DatasetInfo.")
    if (info.file is None) == (info.arrays is None):
        raise ValueError(f"Dataset {info.name!r} needs exactly one of a bundled file or an arrays loader.")
    if len(info.class_names) < 2 or info.train_size < 1 or info.test_size < 1:
        raise ValueError(f"Dataset {info.name!r} needs at least two classes and some training and test images.")
    with _LOCK:
        _REGISTRY[info.name] = info
        _VERSIONS[info.name] = next(_REGISTERED)
    return info


def unregister(name: str) -> None:
    """Remove a registered dataset (a user's, when its session ends); the bundled ones stay."""
    with _LOCK:
        entry = _REGISTRY.get(name)
        if entry is not None and not entry.bundled:
            del _REGISTRY[name]
            del _VERSIONS[name]


def version(name: object) -> int:
    """A number that changes whenever `name` is registered again (a learner's classes changed): what a cache of a
    dataset's arrays is keyed on with its name, so nobody is handed the images of an older version; UserError for
    an unknown name."""
    with _LOCK:
        if isinstance(name, str) and name in _REGISTRY:
            return _VERSIONS[name]
    get(name)  # the UserError naming the known datasets
    return version(name)  # registered meanwhile


def names() -> tuple[str, ...]:
    """The registered dataset names, bundled ones first."""
    with _LOCK:
        return tuple(_REGISTRY)


def get(name: object) -> DatasetInfo:
    """The entry for `name`; UserError naming the known datasets otherwise."""
    with _LOCK:
        entry = _REGISTRY.get(name) if isinstance(name, str) else None
        known = ", ".join(_REGISTRY)
    if entry is None:
        raise UserError(f"Unknown dataset {name!r}; use one of {known}.")
    return entry


def title(name: str) -> str:
    """The display title, or the name itself for a dataset that is not registered."""
    with _LOCK:
        entry = _REGISTRY.get(name)
    return entry.title if entry is not None else str(name)


MNIST = register(DatasetInfo(
    name="mnist",
    title="MNIST digits",
    class_names=tuple(str(d) for d in range(10)),
    train_size=60_000,
    test_size=10_000,
    # Test accuracy of the dense_baseline preset (Flatten → Dense 128 → Dense 10, adam, batch 32,
    # 5 epochs, all training images), the mean over seeds 0 and 1 with this repository's models.py.
    baselines={"dense_baseline": 0.9768},
    file="mnist.npz",
    sha256="06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64",
))
FASHION_MNIST = register(DatasetInfo(
    name="fashion_mnist",
    title="Fashion-MNIST",
    class_names=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    train_size=60_000,
    test_size=10_000,
    baselines={"dense_baseline": 0.8664},
    file="fashion_mnist.npz",
    sha256="5b6d2c4c694a91887af8ab7d039c04f80af3c29378d731c93a538d2e831aa469",
))
