"""A learner's own classes, kept in their workspace and registered as a dataset like MNIST.

The pictures are one ``.npz`` entry in the workspace ("drawings" kind), so a reload, a second tab
or a server restart finds them again. `register` turns them into a registry entry whose name is
derived from (but does not reveal) the workspace id, so Train, Draw, Feature maps, Explain,
Evaluate and Compare runs use them by name like any bundled dataset. The thread and process
runners train on it (the process runner ships the arrays to its worker); the Redis runner stores
them in Redis under their hash, and its workers register them the same way.
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np

from cnn_core.engine import own_data, registry
from cnn_core.service.workspace import Workspace

ENTRY = "own_classes.npz"
PREFIX = "own-"
_LOCK = threading.Lock()
# dataset name → (digest of the stored bytes, its registry entry): a page load re-registers nothing that is unchanged.
_REGISTERED: dict[str, tuple[str, registry.DatasetInfo]] = {}


def dataset_name(workspace: Workspace) -> str:
    """This workspace's dataset name: a hash, since the id itself is the key to the learner's work."""
    return PREFIX + hashlib.sha256(workspace.id.encode("ascii")).hexdigest()[:12]


def is_own(name: str) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def load(workspace: Workspace) -> own_data.Collection:
    """The learner's classes (name → uint8 images, in the order defined); empty if none or unreadable."""
    data = workspace.drawing(ENTRY)
    if data is None:
        return {}
    try:
        return own_data.from_npz(data)
    except own_data.UserError:
        return {}


def save(workspace: Workspace, collection: own_data.Collection) -> registry.DatasetInfo | None:
    """Keep the collection in the workspace and (re-)register it; returns the entry, None while it can't train."""
    workspace.put_drawing(ENTRY, own_data.to_npz(collection))
    return register(workspace)


def register(workspace: Workspace) -> registry.DatasetInfo | None:
    """Register the workspace's classes as a dataset when they can be trained on; None (and unregistered) otherwise."""
    name = dataset_name(workspace)
    data = workspace.drawing(ENTRY)
    if data is None:
        registry.unregister(name)
        return None
    digest = hashlib.sha256(data).hexdigest()
    with _LOCK:
        known = _REGISTERED.get(name)
        if known is not None and known[0] == digest and name in registry.names():
            return known[1]
    collection = load(workspace)
    try:
        class_names, arrays = own_data.build_arrays(collection)
    except own_data.UserError:
        registry.unregister(name)
        with _LOCK:
            _REGISTERED.pop(name, None)
        return None
    for array in arrays:
        array.setflags(write=False)
    info = registry.register(registry.DatasetInfo(
        name=name,
        title=f"Your classes ({', '.join(class_names)})",
        class_names=class_names,
        train_size=len(arrays[0]),
        test_size=len(arrays[2]),
        arrays=lambda: arrays,
    ))
    with _LOCK:
        _REGISTERED[name] = (digest, info)
    return info


def counts(collection: own_data.Collection) -> dict[str, int]:
    return {name: int(len(np.asarray(images))) for name, images in collection.items()}
