"""The Train page: a small run trains through the queue and lands in the session; Stop stops; bad input explains."""

from __future__ import annotations

import os
from pathlib import Path

from streamlit.testing.v1 import AppTest

from cnn_core.engine.specs import Dense, Experiment, Flatten, ModelSpec, TrainingConfig
from cnn_core.service.settings import load_settings
from cnn_core.service.workspace import link_secret
from cnn_core.workshop import sharing
from tests.app.conftest import APP, run_until, texts
from ui.text import plain

# A run this small trains in a few seconds on two shared CPU cores.
SMALL_SUBSET = 600


def signed_link(experiment: Experiment, locked=()) -> dict[str, str]:
    """A link as the app makes it: signed with the server's key (the same folder as the app under test)."""
    return sharing.to_query_params(experiment, locked, secret=link_secret(load_settings()))


def app_state(at: AppTest):
    return at.session_state["app_state"]


def settings_key(at: AppTest, name: str) -> str:
    return f"train-settings-{app_state(at).training_generation}-{name}"


def configure_small_run(at: AppTest, subset: int = SMALL_SUBSET, epochs: int = 1) -> AppTest:
    at.checkbox(key=settings_key(at, "use-subset")).check().run()
    at.number_input(key=settings_key(at, "subset")).set_value(subset).run()
    at.number_input(key=settings_key(at, "epochs")).set_value(epochs).run()
    return at


def job_ended(at: AppTest) -> bool:
    job = app_state(at).training_job
    return job is not None and not job.is_active


def test_train_page_shows_the_starting_preset_with_shapes(open_page):
    at = open_page("train")
    assert not at.exception
    table = at.table[0].value
    assert list(table["output"])[0] == "26 × 26 × 32"
    assert list(table["params"]) == [320, 0, 18496, 0, 73856, 0, 11530]
    assert "**104,202** parameters" in texts(at)


def test_a_small_run_trains_and_becomes_the_active_model(open_page):
    at = configure_small_run(open_page("train"))
    at.button(key="train-run-start").click().run()
    job = app_state(at).training_job
    assert job is not None and job.experiment.training.train_subset == SMALL_SUBSET

    run_until(at, job_ended)
    at.run()  # the rerun after the job ended collects its result
    assert not at.exception
    state = app_state(at)
    assert job.state == "finished"
    assert len(state.models) == 1
    name = next(iter(state.models))
    assert state.active_model == name
    assert state.runs[-1].name == name
    assert 0.0 <= state.runs[-1].test_accuracy <= 1.0
    assert len(state.runs[-1].history) == 1
    assert "Finished the 1 epoch." in texts(at)
    assert at.get("download_button")
    # The run's own test pass is kept, so the Evaluate page has nothing left to predict.
    assert state.evaluations[name].accuracy == state.runs[-1].test_accuracy
    # It trained in a worker process (the local default), so the server keeps no Keras leftovers.
    assert job.worker_pid is not None and job.worker_pid != os.getpid()

    # Saving by name writes the bundle into the configured models folder.
    at.text_input(key="train-run-save-name").set_value("my_first_cnn").run()
    at.button(key="train-run-save").click().run()
    saved = Path(os.environ["CNN_MODELS_DIR"]) / "my_first_cnn.keras"
    # One file: the description is inside it.
    assert saved.exists() and not saved.with_suffix(".json").exists()
    # The message names the model, not a path on the server.
    saved_messages = [message.value.replace("\\", "") for message in at.success if "Saved as" in message.value]
    assert saved_messages and "my_first_cnn (saved)" in saved_messages[0] and "/" not in saved_messages[0]
    assert "my_first_cnn (saved)" in state.models
    # "a b" would share that file with "a_b": refused, with the name to use.
    at.text_input(key="train-run-save-name").set_value("my first cnn").run()
    at.button(key="train-run-save").click().run()
    assert any("save it as 'my_first_cnn' instead" in m.value.replace("\\", "") for m in at.error)

    # Another visitor's workspace does not see this model; on a local server it sees the saved one.
    other = AppTest.from_file(str(APP), default_timeout=120).run()
    other.switch_page("pages/train.py").run()
    assert list(app_state(other).models) == ["my_first_cnn (saved)"]
    assert app_state(other).session_id != state.session_id
    other.switch_page("pages/home.py").run()
    assert plain(name) not in texts(other) and name not in texts(other)


def test_stop_ends_a_run_early(open_page):
    at = configure_small_run(open_page("train"), subset=20_000, epochs=5)
    at.button(key="train-run-start").click().run()
    job = app_state(at).training_job
    run_until(at, lambda _: job.progress.snapshot().step > 0 or not job.is_active, limit_s=120, pause_s=0.2)
    at.button(key="train-run-stop").click().run()
    run_until(at, job_ended)
    at.run()
    assert job.state == "stopped"
    assert job.progress.snapshot().finished.reason == "stopped"
    assert len(job.progress.snapshot().epoch_history) < 5
    assert "Stopped" in texts(at)


def test_removing_flatten_explains_the_problem_before_training(open_page):
    at = open_page("train")
    rows = app_state(at).editor_rows
    flatten = next(row for row in rows if row.layer.kind == "flatten")
    at.button(key=f"train-layers-{flatten.uid}-remove").click().run()
    assert not at.exception
    errors = " ".join(error.value for error in at.error)
    assert "add a Flatten or GlobalAvgPool layer before it" in errors
    assert at.button(key="train-run-start").disabled


def test_adding_and_moving_layers_updates_the_table(open_page):
    at = open_page("train")
    at.selectbox(key="train-layers-add-kind").set_value("dropout").run()
    at.button(key="train-layers-add").click().run()
    kinds = [row.layer.kind for row in app_state(at).editor_rows]
    # New layers go just before the softmax head.
    assert kinds[-2:] == ["dropout", "dense"]
    dropout = app_state(at).editor_rows[-2]
    at.button(key=f"train-layers-{dropout.uid}-up").click().run()
    kinds = [row.layer.kind for row in app_state(at).editor_rows]
    assert kinds[-3:] == ["dropout", "flatten", "dense"]
    assert "Dropout 0.25" in list(at.table[0].value["layer"])


def test_a_shared_link_loads_with_locked_fields_disabled(fake_canvas):
    experiment = Experiment(
        ModelSpec((Flatten(), Dense(32), Dense(10, "softmax")), name="shared_dense"),
        TrainingConfig(dataset="fashion_mnist", epochs=2, batch_size=32),
    )
    params = signed_link(experiment, locked={"layers", "dataset"})
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params.update(params)
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    state = app_state(at)
    assert state.layers == experiment.model.layers
    assert state.locked == frozenset({"layers", "dataset"})
    assert at.selectbox(key=settings_key(at, "dataset")).disabled
    assert at.selectbox(key=settings_key(at, "dataset")).value == "fashion_mnist"
    assert not at.selectbox(key=settings_key(at, "optimizer")).disabled
    assert at.button(key="train-load").disabled
    # The participant's view names the locks as the form does and offers no way to lift them.
    assert any("fixed: Layers (the whole architecture), Dataset." in info.value.replace("\\", "") for info in at.info)
    assert [button for button in at.button if "nlock" in button.label] == []


def test_a_link_edited_by_hand_does_not_open(fake_canvas):
    experiment = Experiment(ModelSpec((Flatten(), Dense(24), Dense(10, "softmax")), name="tampered"),
                            TrainingConfig(epochs=2))
    params = signed_link(experiment, locked={"layers", "epochs"})
    for tampered in ({k: v for k, v in params.items() if k != "lock"}, {**params, "lock": "epochs"},
                     {k: v for k, v in params.items() if k != "sig"}, sharing.to_query_params(experiment)):
        at = AppTest.from_file(str(APP), default_timeout=120)
        at.query_params.update(tampered)
        at.run()
        at.switch_page("pages/train.py").run()
        assert not at.exception
        assert any("could not be loaded" in error.value for error in at.error)
        assert app_state(at).layers != experiment.model.layers and app_state(at).locked == frozenset()


def test_a_link_restores_exact_rates_and_batch_sizes_and_locks_restore_best(fake_canvas):
    experiment = Experiment(
        ModelSpec((Flatten(), Dense(10, "softmax")), name="exact"),
        TrainingConfig(learning_rate=0.002, batch_size=100, validation_split=0.1, restore_best=True),
    )
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params.update(signed_link(experiment, locked={"restore_best"}))
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    assert at.select_slider(key=settings_key(at, "lr")).value == 0.002
    assert at.select_slider(key=settings_key(at, "batch")).value == 100
    assert at.checkbox(key=settings_key(at, "restore")).disabled
    assert app_state(at).editor_training == experiment.training


def test_lock_options_use_the_form_labels(open_page, fake_canvas):
    at = open_page("train")
    lock = at.multiselect(key="train-share-lock")
    # AppTest gives the options as the page shows them.
    labels = set(lock.options)
    assert "Learning rate" in labels and "learning_rate" not in labels
    assert labels == set(sharing.LOCK_LABELS.values())
    widget_labels = {w.label for w in [*at.selectbox, *at.select_slider, *at.number_input, *at.checkbox, *at.slider]}
    # Every lock label but the architecture's is the label of a control on the page.
    assert set(sharing.LOCK_LABELS.values()) - {sharing.LOCK_LABELS["layers"]} <= widget_labels


def test_a_broken_link_shows_an_error_not_a_traceback(fake_canvas):
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["cfg"] = "not-a-config"
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    assert any("could not be loaded" in error.value for error in at.error)


def test_a_run_keeps_going_on_other_pages_and_lands_in_the_session(open_page):
    at = configure_small_run(open_page("train"), subset=3_000, epochs=3)
    at.button(key="train-run-start").click().run()
    job = app_state(at).training_job
    # The Train page shows the run live itself: no second indicator refreshing the same run.
    assert "Watch it on the Train page" not in [link.proto.label for link in at.sidebar.get("page_link")]
    at.switch_page("pages/home.py").run()
    assert not at.exception
    # Every other page shows the run in the sidebar (and sends the heartbeat that keeps it alive).
    links = [link.proto.label for link in at.sidebar.get("page_link")]
    assert "Watch it on the Train page" in links
    job.stop()
    run_until(at, job_ended)
    at.run()
    state = app_state(at)
    assert job.id in state.collected_jobs
    assert state.active_model in state.models
    assert plain(state.active_model) in texts(at)  # shown as plain text: Markdown characters escaped


def test_the_schedule_control_writes_the_config_and_honours_a_lock(open_page, fake_canvas):
    at = open_page("train")
    at.selectbox(key=settings_key(at, "schedule")).set_value("one_cycle").run()
    assert not at.exception
    assert app_state(at).editor_training.lr_schedule == "one_cycle"

    experiment = Experiment(
        ModelSpec((Flatten(), Dense(10, "softmax")), name="scheduled"),
        TrainingConfig(learning_rate=0.01, lr_schedule="cosine"),
    )
    linked = AppTest.from_file(str(APP), default_timeout=120)
    linked.query_params.update(signed_link(experiment, locked={"lr_schedule"}))
    linked.run()
    linked.switch_page("pages/train.py").run()
    schedule = linked.selectbox(key=settings_key(linked, "schedule"))
    assert schedule.value == "cosine" and schedule.disabled
    assert app_state(linked).editor_training.lr_schedule == "cosine"


def test_the_target_loss_control_sets_the_config_and_the_run_stops_at_it(open_page):
    at = configure_small_run(open_page("train"), epochs=10)
    control = at.number_input(key=settings_key(at, "target-loss"))
    assert control.value is None and app_state(at).editor_training.target_loss is None
    control.set_value(1.5).run()
    assert not at.exception
    assert app_state(at).editor_training.target_loss == 1.5
    at.button(key="train-run-start").click().run()
    job = app_state(at).training_job
    assert job.experiment.training.target_loss == 1.5
    run_until(at, job_ended)
    at.run()
    run = app_state(at).runs[-1]
    # The callback, not the epoch count, ended it: fewer epochs than asked, the last at or below the target.
    assert job.state == "finished" and run.stopped_reason == "loss_reached"
    assert len(run.history) < 10 and run.history[-1]["loss"] <= 1.5
    message = app_state(at).last_result_message
    assert message.startswith(f"Stopped: training loss {int(run.history[-1]['loss'] * 100) / 100:.2f} ≤ 1.50 "
                              f"at epoch {len(run.history)}.")
    assert plain(message) in texts(at)
    # Emptied, the field turns the rule off again.
    at.number_input(key=settings_key(at, "target-loss")).set_value(None).run()
    assert app_state(at).editor_training.target_loss is None


def test_a_link_locks_the_target_loss(fake_canvas):
    experiment = Experiment(ModelSpec((Flatten(), Dense(10, "softmax")), name="loss target"),
                            TrainingConfig(dataset="fashion_mnist", epochs=10, target_loss=0.4))
    linked = AppTest.from_file(str(APP), default_timeout=120)
    linked.query_params.update(signed_link(experiment, locked={"target_loss"}))
    linked.run()
    linked.switch_page("pages/train.py").run()
    control = linked.number_input(key=settings_key(linked, "target-loss"))
    assert control.value == 0.4 and control.disabled
    assert app_state(linked).editor_training.target_loss == 0.4
    assert "Stop at loss ≤" in texts(linked)
