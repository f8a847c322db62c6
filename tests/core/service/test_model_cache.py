"""The process-wide model cache: least recently used out first, bounded by count and bytes, loads once."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import numpy as np
import pytest

from cnn_core.service.model_cache import BYTES_PER_PARAM, ModelCache


class FakeModel:
    def __init__(self, params: int = 10):
        self.params = params

    def count_params(self) -> int:
        return self.params


def test_the_least_recently_used_model_goes_first():
    cache = ModelCache(max_models=2, max_bytes=2**30)
    first = cache.get("a", FakeModel).model
    cache.get("b", FakeModel)
    assert cache.get("a", FakeModel).model is first  # used again: now the newest
    cache.get("c", FakeModel)
    assert cache.keys() == ["a", "c"]
    assert cache.loads == 3


def test_the_byte_budget_bounds_the_cache_but_the_newest_model_always_stays():
    cache = ModelCache(max_models=100, max_bytes=BYTES_PER_PARAM * 250)
    for key in "abc":
        cache.get(key, lambda: FakeModel(100))
    assert cache.keys() == ["b", "c"]
    # A model over the whole budget still works: it is cached alone, the next to go.
    huge = cache.get("huge", lambda: FakeModel(10_000))
    assert cache.keys() == ["huge"] and huge.bytes == BYTES_PER_PARAM * 10_000


def test_two_sessions_asking_for_one_model_at_once_load_it_once():
    cache = ModelCache(max_models=4, max_bytes=2**30)
    calls = []

    def slow_load():
        calls.append(1)
        time.sleep(0.2)
        return FakeModel()

    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("a", slow_load).model)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len({id(model) for model in got}) == 1


def test_a_failed_load_is_not_cached_and_can_be_tried_again():
    cache = ModelCache(max_models=4, max_bytes=2**30)

    def broken():
        raise ValueError("no such model")

    with pytest.raises(ValueError):
        cache.get("a", broken)
    assert "a" not in cache
    assert cache.get("a", FakeModel).model.count_params() == 10


def test_discard_forgets_a_deleted_model():
    cache = ModelCache(max_models=4, max_bytes=2**30)
    cache.get("a", FakeModel)
    cache.discard("a")
    cache.discard("never there")
    assert "a" not in cache and len(cache) == 0


def test_an_evicted_keras_model_and_its_traced_predictor_are_freed():
    from cnn_core.engine.models import build_model
    from cnn_core.engine.specs import Conv2D, Dense, Flatten, ModelSpec

    cache = ModelCache(max_models=1, max_bytes=2**30)
    spec = ModelSpec(layers=(Conv2D(2, 3), Flatten(), Dense(10, "softmax")), name="tiny")
    entry = cache.get("a", lambda: build_model(spec))
    entry.predictor.predict(np.zeros((28, 28), np.float32))
    entry.extractor  # noqa: B018 (built, so its references count too)
    model, predictor = weakref.ref(entry.model), weakref.ref(entry.predictor)
    del entry
    cache.get("b", lambda: build_model(spec))
    gc.collect()
    assert model() is None and predictor() is None
