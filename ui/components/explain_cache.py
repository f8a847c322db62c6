"""Explanations computed once per (model, image) in this session, so clicking around recomputes nothing.

Keyed by the model's name and identity and a hash of the image's bytes. Kept in the session
(a model may be the session's own) and bounded, so a long session cannot pile them up.
"""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict
from typing import Any

import numpy as np
import streamlit as st

CACHE_KEY = "explain-cache"
MAX_ENTRIES = 16
# Where an entry keeps its model: a key no caller asks for.
MODEL = ("model",)


def image_hash(image: np.ndarray) -> str:
    values = np.ascontiguousarray(np.asarray(image, dtype=np.float32))
    return hashlib.sha1(values.tobytes()).hexdigest()[:16]


def entry(name: str, model, image: np.ndarray) -> dict[str, Any]:
    """The dict of everything already explained for this model and image (filled in lazily by callers)."""
    cache: OrderedDict = st.session_state.setdefault(CACHE_KEY, OrderedDict())
    key = (name, id(model), image_hash(image))
    # An id is reused once its object is freed: a model reloaded or retrained under the same name can get
    # the old one's id, so an entry also remembers (weakly) which model it was for.
    kept = cache.get(key)
    if kept is not None and kept[MODEL]() is model:
        cache.move_to_end(key)
        return kept
    cache[key] = {MODEL: weakref.ref(model)}
    cache.move_to_end(key)
    while len(cache) > MAX_ENTRIES:
        cache.popitem(last=False)
    return cache[key]


def get(name: str, model, image: np.ndarray, what: tuple, compute) -> Any:
    """`compute()` the first time `what` is asked for this model and image; the kept result afterwards."""
    store = entry(name, model, image)
    if what not in store:
        store[what] = compute()
    return store[what]


def probabilities(name: str, model, image: np.ndarray) -> np.ndarray:
    from cnn_core.engine import explain

    return get(name, model, image, ("probabilities",), lambda: explain.probabilities(model, image))


def occlusion(name: str, model, image: np.ndarray, target: int) -> np.ndarray:
    from cnn_core.engine import explain

    return get(name, model, image, ("occlusion", target), lambda: explain.occlusion_map(model, image, target))


def saliency(name: str, model, image: np.ndarray, target: int) -> np.ndarray:
    from cnn_core.engine import explain

    return get(name, model, image, ("saliency", target), lambda: explain.saliency_map(model, image, target))


def outputs(name: str, model, image: np.ndarray) -> list[np.ndarray | None]:
    from cnn_core.engine import explain

    return get(name, model, image, ("outputs",), lambda: explain.forward(model, image))
