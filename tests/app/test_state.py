"""The session state object: unique model names, a bounded model list, experiments loaded with locks."""

from __future__ import annotations

import numpy as np

from cnn_core.service.persistence import ModelBundle
from cnn_core.service.workspace import MemoryWorkspaceStore, Workspace, new_id
from cnn_core.workshop import presets
from ui.state import DEFAULT_MODEL, DEFAULT_MODEL_TITLES, MAX_SESSION_MODELS, AppState, RunRecord


def add(state: AppState, name: str) -> str:
    # The model is never serialised when its bytes are given.
    return state.add_model(bundle(name), keras_bytes=b"keras bytes")


def bundle(name: str) -> ModelBundle:
    # Bytes without a live model, as a worker's result arrives: nothing is loaded until a page asks.
    return ModelBundle(model=None, experiment=None, name=name, dataset_name="mnist")


def test_a_new_state_starts_from_the_first_seed_preset():
    state = AppState()
    preset = presets.get("mnist_functional")
    assert state.layers == preset.model.layers
    assert state.editor_training == preset.training
    assert state.active_model == DEFAULT_MODEL
    assert len({row.uid for row in state.editor_rows}) == len(state.editor_rows)


def test_sessions_get_their_own_ids_and_lists():
    first, second = AppState(), AppState()
    add(first, "mine")
    assert first.session_id != second.session_id
    assert second.models == {}


def test_added_models_get_unique_names_and_become_active():
    state = AppState()
    assert add(state, "cnn") == "cnn"
    assert add(state, "cnn") == "cnn (2)"
    title = DEFAULT_MODEL_TITLES[DEFAULT_MODEL]
    # A learner's model never takes a default's id, nor the title it is shown with.
    assert add(state, DEFAULT_MODEL) == f"{DEFAULT_MODEL} (2)"
    assert add(state, title) == f"{title} (2)"
    assert state.active_model == f"{title} (2)"


def test_a_session_keeps_a_bounded_number_of_models_oldest_out_first():
    state = AppState()
    for number in range(MAX_SESSION_MODELS + 2):
        add(state, f"model {number}")
    assert len(state.models) == MAX_SESSION_MODELS
    assert "model 0" not in state.models
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


def run_record(name: str) -> RunRecord:
    experiment = presets.get("dense_baseline").experiment
    return RunRecord(name=name, experiment=experiment, dataset="mnist", architecture="Flatten → Dense", params=10,
                     settings={"epochs": 1}, history=[{"epoch": 0, "accuracy": 0.5, "loss": 1.0}],
                     test_accuracy=0.5, test_loss=1.0, seconds=1.0, stopped_reason="finished")


def test_a_state_reopened_on_its_workspace_has_the_models_runs_drawing_and_active_model():
    store, workspace_id = MemoryWorkspaceStore(), new_id()
    first = AppState(workspace=Workspace(store, workspace_id))
    add(first, "mine")
    first.add_run(run_record("mine"))
    first.last_drawing = np.full((28, 28), 0.5, dtype=np.float32)

    again = AppState(workspace=Workspace(store, workspace_id))
    assert list(again.models) == ["mine"]
    assert again.models.info("mine").dataset == "mnist"
    assert again.active_model == "mine"
    assert again.runs == [run_record("mine")]
    np.testing.assert_array_equal(again.last_drawing, first.last_drawing)
    assert again.session_id == first.session_id == workspace_id

    stranger = AppState(workspace=Workspace(store, new_id()))
    assert list(stranger.models) == [] and stranger.runs == [] and stranger.last_drawing is None


def test_another_tab_sees_new_models_and_runs_after_a_refresh():
    store, workspace_id = MemoryWorkspaceStore(), new_id()
    tab, other_tab = AppState(workspace=Workspace(store, workspace_id)), AppState(workspace=Workspace(store, workspace_id))
    add(tab, "mine")
    tab.add_run(run_record("mine"))
    other_tab.refresh()
    assert list(other_tab.models) == ["mine"] and [run.name for run in other_tab.runs] == ["mine"]
    other_tab.forget_model("mine")
    tab.refresh()
    assert list(tab.models) == [] and tab.active_model == DEFAULT_MODEL


def test_a_model_kept_by_name_is_never_pushed_out():
    state = AppState()
    add(state, "keep me")
    assert state.keep_model("keep me", "favourite") == "favourite"
    for number in range(MAX_SESSION_MODELS + 1):
        add(state, f"model {number}")
    assert "favourite" in state.models and state.models.info("favourite").saved
    assert len(state.models) == MAX_SESSION_MODELS + 1


def test_the_editor_and_its_locks_survive_a_reopen():
    store, workspace_id = MemoryWorkspaceStore(), new_id()
    first = AppState(workspace=Workspace(store, workspace_id))
    experiment = presets.get("dense_baseline").experiment
    first.load_experiment(experiment, frozenset({"layers", "learning_rate"}))
    first.add_layer(first.layers[-1], position=1)
    first.editor_name = "my own"
    first.save_editor()

    again = AppState(workspace=Workspace(store, workspace_id))
    assert again.editor_restored
    assert again.layers == first.layers and again.editor_name == "my own"
    assert again.editor_training == experiment.training
    assert again.locked == frozenset({"layers", "learning_rate"})
    assert not AppState(workspace=Workspace(store, new_id())).editor_restored


def test_a_model_is_known_by_its_id_and_shown_by_its_title():
    from ui import state as app_state

    assert app_state.default_dataset_of("default:fashion_mnist") == "fashion_mnist"
    # A learner's model named like a default's title is not the default.
    assert app_state.default_dataset_of("Default MNIST model") is None
    assert app_state.model_title("default:mnist") == "Default MNIST model"
    assert app_state.model_title("my cnn") == "my cnn"
