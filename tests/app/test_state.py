"""The session state object: unique model names, a bounded model list, experiments loaded with locks."""

from __future__ import annotations

from cnn_core.service.persistence import ModelBundle
from cnn_core.workshop import presets
from ui.state import DEFAULT_MODEL_NAMES, MAX_SESSION_MODELS, AppState


def bundle(name: str) -> ModelBundle:
    # The state never looks inside the model, so a placeholder object is enough here.
    return ModelBundle(model=object(), experiment=None, name=name, dataset_name="mnist")


def test_a_new_state_starts_from_the_first_seed_preset():
    state = AppState()
    preset = presets.get("mnist_functional")
    assert state.layers == preset.model.layers
    assert state.editor_training == preset.training
    assert state.active_model == DEFAULT_MODEL_NAMES["mnist"]
    assert len({row.uid for row in state.editor_rows}) == len(state.editor_rows)


def test_sessions_get_their_own_ids_and_lists():
    first, second = AppState(), AppState()
    first.add_model(bundle("mine"))
    assert first.session_id != second.session_id
    assert second.models == {}


def test_added_models_get_unique_names_and_become_active():
    state = AppState()
    assert state.add_model(bundle("cnn")) == "cnn"
    assert state.add_model(bundle("cnn")) == "cnn (2)"
    assert state.add_model(bundle(DEFAULT_MODEL_NAMES["mnist"])) == f"{DEFAULT_MODEL_NAMES['mnist']} (2)"
    assert state.active_model == f"{DEFAULT_MODEL_NAMES['mnist']} (2)"


def test_a_session_keeps_a_bounded_number_of_models_oldest_out_first():
    state = AppState()
    for number in range(MAX_SESSION_MODELS + 2):
        state.add_model(bundle(f"model {number}"))
        state.predictors[f"model {number}"] = object()
    assert len(state.models) == MAX_SESSION_MODELS
    assert "model 0" not in state.models and "model 0" not in state.predictors
    assert state.active_model == f"model {MAX_SESSION_MODELS + 1}"


def test_loading_an_experiment_replaces_layers_and_restarts_the_controls():
    state = AppState()
    experiment = presets.get("dense_baseline").experiment
    old_uids = {row.uid for row in state.editor_rows}
    state.load_experiment(experiment, frozenset({"layers"}))
    assert state.layers == experiment.model.layers
    assert state.training_generation == 1
    assert state.locked == frozenset({"layers"})
    # Fresh uids: widgets of the old rows cannot attach to the new ones.
    assert not old_uids & {row.uid for row in state.editor_rows}
