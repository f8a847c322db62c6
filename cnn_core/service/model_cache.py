"""One process-wide, bounded cache of live Keras models, shared by every session of a web server.

A learner's model is kept as `.keras` bytes in their workspace; a page that needs it as a Keras
model (to predict, explain, look inside) gets it from here, loaded from those bytes on first use
and kept while it is among the most recently used. Sessions hold keys, never models: before
this, each participant's session kept its finished run's model (with a traced `Predictor` and a
feature extractor) until the session ended, and a workshop's server grew with every run
(issue #14, `bench/web_memory.py`).

Keys carry the workspace id, so two workspaces never share an entry; the workspace's own entry
key is unique per stored model, so a model saved again under a new name keeps its entry and a
deleted one is `discard`-ed. The bound is a count and a byte budget on the weights (with room for
an optimizer's slots, since a loaded model comes compiled); the newest entry always stays, so a
model over the budget still works, it is only the next to go. Eviction only drops the cache's
references; a page run that holds the model finishes with it, and then it is garbage.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

    from cnn_core.engine.activations import FeatureExtractor
    from cnn_core.engine.inference import Predictor

# A loaded model holds its weights and, compiled with Adam, two slots per weight.
BYTES_PER_PARAM = 4 * 3


class CachedModel:
    """A live model and what is built from it once (its Predictor, its FeatureExtractor)."""

    def __init__(self, model: keras.Model):
        self.model = model
        self.bytes = BYTES_PER_PARAM * int(model.count_params())
        self._lock = threading.Lock()
        self._predictor: Predictor | None = None
        self._extractor: FeatureExtractor | None = None

    @property
    def predictor(self) -> Predictor:
        with self._lock:
            if self._predictor is None:
                from cnn_core.engine.inference import Predictor

                self._predictor = Predictor(self.model)
            return self._predictor

    @property
    def extractor(self) -> FeatureExtractor:
        with self._lock:
            if self._extractor is None:
                from cnn_core.engine.activations import FeatureExtractor

                self._extractor = FeatureExtractor(self.model)
            return self._extractor


class ModelCache:
    """At most `max_models` live models and about `max_bytes` of weights, least recently used out first."""

    def __init__(self, max_models: int, max_bytes: int):
        if max_models < 1:
            raise ValueError("A model cache must hold at least one model.")
        self.max_models = max_models
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, CachedModel] = OrderedDict()
        self._lock = threading.Lock()
        # One lock per key being loaded, so two sessions asking for one model load it once.
        self._loading: dict[Hashable, threading.Lock] = {}
        self.loads = 0

    def get(self, key: Hashable, load: Callable[[], keras.Model]) -> CachedModel:
        """The entry for `key`, loaded with `load()` when it is not (or no longer) here."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                    return entry
            try:
                entry = CachedModel(load())
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            self.loads += 1
            return self._put(key, entry)

    def put(self, key: Hashable, model: keras.Model) -> CachedModel:
        """Keep a model that is already live (a run trained in this process) under `key`."""
        return self._put(key, CachedModel(model))

    def _put(self, key: Hashable, entry: CachedModel) -> CachedModel:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > 1 and (
                len(self._entries) > self.max_models or self.used_bytes() > self.max_bytes
            ):
                self._entries.popitem(last=False)
        return entry

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def used_bytes(self) -> int:
        return sum(entry.bytes for entry in self._entries.values())

    def keys(self) -> list[Any]:
        with self._lock:
            return list(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
