"""What a finished run keeps so that its result can be drawn again in a later session."""

from __future__ import annotations

from cnn_core.engine.training import ProgressSnapshot
from cnn_core.service.workspace import MemoryWorkspaceStore, Workspace, new_id
from cnn_core.workshop import presets
from ui.state import AppState, RunRecord
from ui.training_session import KEPT_CURVE_POINTS, kept_curve, snapshot_of


def snapshot(points: int, markers=()) -> ProgressSnapshot:
    return ProgressSnapshot(
        status="finished", epoch=2, epochs=2, step=0, steps_per_epoch=points // 2, fraction=1.0, eta_seconds=None,
        batch_loss=[2.0 - i / points for i in range(points)], batch_accuracy=[i / points for i in range(points)],
        epoch_history=[], finished=None, batch_positions=[2 * (i + 1) / points for i in range(points)],
        precision="bfloat16", markers=list(markers),
    )


def record(**extra) -> RunRecord:
    experiment = presets.get("dense_baseline").experiment
    history = [{"epoch": 0, "loss": 1.0, "accuracy": 0.6}, {"epoch": 1, "loss": 0.5, "accuracy": 0.8}]
    return RunRecord(name="mine", experiment=experiment, dataset="mnist", architecture="Flatten → Dense",
                     params=10, settings={}, history=history, test_accuracy=0.8, test_loss=0.5, seconds=3.0,
                     stopped_reason="finished", **extra)


def test_the_kept_curve_is_thinned_but_starts_and_ends_where_the_run_did():
    marker = {"epochs": 1.25, "label": "learning rate 0.01"}
    curve = kept_curve(snapshot(2000, [marker]))
    assert 300 <= len(curve["positions"]) <= KEPT_CURVE_POINTS
    assert len(curve["loss"]) == len(curve["accuracy"]) == len(curve["positions"])
    assert curve["positions"][0] == 2 / 2000 and curve["positions"][-1] == 2.0
    assert curve["loss"][0] == 2.0 and curve["accuracy"][-1] == 1999 / 2000
    assert curve["positions"] == sorted(curve["positions"])
    assert curve["markers"] == [marker]
    # A short run keeps every point; an empty one keeps nothing.
    assert len(kept_curve(snapshot(50))["positions"]) == 50
    assert kept_curve(snapshot(0))["positions"] == []


def test_a_reopened_workspace_gives_back_the_runs_curve_message_and_filmstrip():
    store, workspace_id = MemoryWorkspaceStore(), new_id()
    first = AppState(workspace=Workspace(store, workspace_id))
    marker = {"epochs": 1.5, "label": "paused"}
    key = first.add_run(record(message="Finished 2 epochs.", precision="bfloat16",
                               curve=kept_curve(snapshot(120, [marker]))), filmstrip=b"npz bytes")

    again = AppState(workspace=Workspace(store, workspace_id))
    (run,) = again.runs
    assert run.key == key and again.workspace.filmstrip(run.key) == b"npz bytes"
    assert run.message == "Finished 2 epochs."
    shown = snapshot_of(run)
    assert shown.precision == "bfloat16" and shown.markers == [marker]
    assert len(shown.batch_loss) == 120 and shown.batch_positions[-1] == 2.0
    assert [row["accuracy"] for row in shown.epoch_history] == [0.6, 0.8]


def test_a_run_kept_before_curves_were_kept_shows_its_epochs_alone():
    old = RunRecord.from_dict({key: value for key, value in record().to_dict().items()
                               if key not in ("curve", "message", "precision")})
    shown = snapshot_of(old)
    assert shown.batch_loss == [] and shown.batch_positions == [] and shown.markers == []
    assert len(shown.epoch_history) == 2 and shown.precision == "float32"
    # A damaged curve (lists of different lengths) is dropped rather than drawn wrong.
    broken = snapshot_of(record(curve={"positions": [0.5, 1.0], "loss": [1.0], "accuracy": [0.5, 0.6]}))
    assert broken.batch_loss == [] and len(broken.epoch_history) == 2
