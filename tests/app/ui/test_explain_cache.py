"""Explanations are reused for the same model and image, and never handed to another model."""

import gc
from types import SimpleNamespace

import numpy as np

from ui.components import explain_cache


class FakeModel:
    pass


def _session(monkeypatch):
    monkeypatch.setattr(explain_cache, "st", SimpleNamespace(session_state={}))


def test_the_same_model_and_image_reuse_what_was_computed(monkeypatch):
    _session(monkeypatch)
    model, image, calls = FakeModel(), np.zeros((28, 28), np.float32), []
    for _ in range(3):
        assert explain_cache.get("m", model, image, ("x",), lambda: calls.append(1) or "answer") == "answer"
    assert calls == [1]
    # Another image is another entry.
    explain_cache.get("m", model, image + 1, ("x",), lambda: calls.append(2) or "other")
    assert calls == [1, 2]


def test_a_new_model_that_gets_a_freed_models_id_is_explained_again(monkeypatch):
    _session(monkeypatch)
    image = np.zeros((28, 28), np.float32)
    old = FakeModel()
    old_id = id(old)
    explain_cache.get("my model", old, image, ("probabilities",), lambda: "the old model's answer")
    del old
    gc.collect()
    # CPython hands a freed object's memory to the next object of its size: find one with the same id.
    candidates = [FakeModel() for _ in range(10_000)]
    reused = [model for model in candidates if id(model) == old_id]
    assert reused, "no new object got the freed id; the test could not set up the case it checks"
    answer = explain_cache.get("my model", reused[0], image, ("probabilities",), lambda: "the new model's answer")
    assert answer == "the new model's answer"


def test_the_cache_stays_bounded(monkeypatch):
    _session(monkeypatch)
    model = FakeModel()
    for value in range(explain_cache.MAX_ENTRIES + 5):
        explain_cache.get("m", model, np.full((28, 28), value, np.float32), ("x",), lambda value=value: value)
    assert len(explain_cache.st.session_state[explain_cache.CACHE_KEY]) == explain_cache.MAX_ENTRIES
