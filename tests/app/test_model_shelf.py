"""Learners' models live in one bounded, process-wide cache; sessions keep names, and a pushed-out
model comes back from the workspace (issue #14: the web server's memory while a workshop's runs drain)."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from cnn_core.engine.models import build_model, model_to_bytes
from cnn_core.engine.specs import Conv2D, Dense, Experiment, Flatten, ModelSpec, TrainingConfig
from cnn_core.service.model_cache import ModelCache
from cnn_core.service.persistence import MODELS_DIR, ModelBundle
from cnn_core.service.workspace import MemoryWorkspaceStore, Workspace, new_id
from tests.app.conftest import drawing
from ui.state import AppState

IMAGES = np.random.default_rng(3).random((4, 28, 28), dtype=np.float32)


def _experiment(seed: int) -> Experiment:
    spec = ModelSpec(layers=(Conv2D(2, 3), Flatten(), Dense(10, "softmax")), name="tiny")
    return Experiment(spec, TrainingConfig(epochs=1, seed=seed))


def _state(cache: ModelCache, store=None) -> AppState:
    state = AppState(workspace=Workspace(store or MemoryWorkspaceStore(), new_id()))
    state.models._cache = cache
    return state


def _add(state: AppState, seed: int, name: str = "mine") -> str:
    """A model as a worker's result arrives: `.keras` bytes, no live model."""
    experiment = _experiment(seed)
    data = model_to_bytes(build_model(experiment.model, experiment.training))
    return state.add_model(ModelBundle(model=None, experiment=experiment, name=name), keras_bytes=data)


def test_a_model_pushed_out_of_the_cache_is_reloaded_and_predicts_the_same():
    cache = ModelCache(max_models=1, max_bytes=2**30)
    state = _state(cache)
    name = _add(state, seed=1)
    assert len(cache) == 0  # nothing built until a page needs the model
    before = state.models.cached(name).predictor.predict_batch(IMAGES)
    other = _state(cache)
    other.models.cached(_add(other, seed=2))  # pushes the first model out
    assert state.models.cache_key(name) not in cache
    after = state.models.cached(name).predictor.predict_batch(IMAGES)
    np.testing.assert_array_equal(before, after)
    assert cache.loads == 3


def test_two_workspaces_never_see_each_others_models_under_the_same_name():
    cache = ModelCache(max_models=8, max_bytes=2**30)
    store = MemoryWorkspaceStore()  # one server's store, two learners
    alice, bob = _state(cache, store), _state(cache, store)
    assert _add(alice, seed=1) == _add(bob, seed=2) == "mine"
    alice_model, bob_model = alice.models.cached("mine").model, bob.models.cached("mine").model
    assert alice_model is not bob_model
    assert alice.models.cache_key("mine") != bob.models.cache_key("mine")
    assert not np.array_equal(alice_model.get_weights()[0], bob_model.get_weights()[0])
    assert "mine" not in AppState(workspace=Workspace(store, new_id())).models


def test_a_session_keeps_no_live_model_once_the_cache_dropped_it():
    cache = ModelCache(max_models=1, max_bytes=2**30)
    state = _state(cache)
    name = _add(state, seed=1)
    bundle = state.models[name]  # what a page or a widget callback may hold on to
    entry = state.models.cached(name)
    entry.predictor.predict(IMAGES[0])
    model, predictor = weakref.ref(entry.model), weakref.ref(entry.predictor)
    del entry
    other = _state(cache)
    other.models.cached(_add(other, seed=2))
    gc.collect()
    assert model() is None and predictor() is None
    assert bundle.model.count_params() == build_model(_experiment(1).model).count_params()  # reloaded on use


def test_deleting_or_renaming_a_model_keeps_the_cache_right():
    cache = ModelCache(max_models=8, max_bytes=2**30)
    state = _state(cache)
    name = _add(state, seed=1)
    key = state.models.cache_key(name)
    state.models.cached(name)
    kept = state.keep_model(name, "kept")
    assert state.models.cache_key(kept) == key and key in cache  # the same stored model, still loaded
    state.forget_model(kept)
    assert key not in cache and kept not in state.models


def _draw_in_workspace(workspace_id: str):
    """A new session of that workspace (a reload, a second tab) opening the Draw page."""
    from streamlit.testing.v1 import AppTest

    from tests.app.conftest import APP

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["ws"] = workspace_id
    at.run()
    return at.switch_page("pages/draw.py").run()


@pytest.mark.skipif(not (MODELS_DIR / "default_mnist.keras").exists(), reason="the default MNIST model is missing")
def test_a_learners_model_pushed_out_of_the_cache_still_works_on_the_draw_page(open_page, fake_canvas):
    from cnn_core.service import persistence
    from ui import loaders

    at = open_page("draw")
    state = at.session_state["app_state"]
    default = persistence.load_default("mnist")
    # As a finished worker run arrives: bytes into the workspace, no Keras model built.
    name = state.add_model(ModelBundle(model=None, experiment=default.experiment, name="my MNIST model"),
                           keras_bytes=model_to_bytes(default.model))
    cache = loaders.model_cache()
    key = state.models.cache_key(name)
    assert key not in cache
    fake_canvas.image = drawing("7")
    first = _draw_in_workspace(state.session_id)
    assert not first.exception
    assert first.session_state["app_state"].active_model == name and first.metric[0].value == "7"
    assert key in cache
    loads = cache.loads
    cache.discard(key)  # pushed out by other learners' models
    fake_canvas.image = drawing("1")
    again = _draw_in_workspace(state.session_id)
    assert not again.exception and again.metric[0].value == "1"
    assert key in cache and cache.loads == loads + 1


def test_a_workers_result_is_collected_without_building_a_keras_model():
    from cnn_core.engine.training import ProgressRecorder, TrainingResult
    from ui import training_session

    experiment = _experiment(seed=4)
    data = model_to_bytes(build_model(experiment.model, experiment.training))

    class FinishedJob:
        id, state = "run-1", "finished"

        def take_result(self):
            return TrainingResult(model=None, model_bytes=data, experiment=experiment, history=[], test_loss=0.5,
                                  test_accuracy=0.9, stopped_reason="completed", message="Done.", seconds=1.0)

        class filmstrip:  # noqa: N801 (stands in for an empty Filmstrip)
            def __len__(self):
                return 0

        filmstrip = filmstrip()
        # The curves a run keeps come from its progress (here: a run with no batch recorded).
        progress = ProgressRecorder()

    cache = ModelCache(max_models=4, max_bytes=2**30)
    state = _state(cache)
    name = training_session.collect(state, FinishedJob())
    assert name in state.models and state.active_model == name and len(cache) == 0
    assert state.workspace.model_bytes(state.models.info(name).key) == data  # kept as they came
    assert state.models.cached(name).predictor.predict(IMAGES[0]).shape == (10,)
