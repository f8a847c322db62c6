"""Turn a finished training job into session data: a model to use, a run to compare, once per job."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cnn_core.engine import registry, specs
from ui.state import AppState, RunRecord

if TYPE_CHECKING:
    from cnn_core.engine.training import ProgressSnapshot, TrainingResult
    from cnn_core.service.queue import TrainingJob

FINISHED_STATES = ("finished", "stopped")
# Points of the batch curve a run keeps for showing its result again after a reload.
KEPT_CURVE_POINTS = 400


def run_settings(training: specs.TrainingConfig) -> dict:
    """The settings worth a column in the comparison table."""
    return {
        "optimizer": training.optimizer,
        "learning rate": training.learning_rate,
        "batch size": training.batch_size,
        "epochs": training.epochs,
        "validation split": training.validation_split,
        "training images": training.train_subset or "all",
        "target accuracy": training.target_accuracy,
        "target loss": training.target_loss,
    }


def model_name(result: TrainingResult) -> str:
    experiment = result.experiment
    dataset = registry.title(experiment.training.dataset)
    stopped = ", stopped early" if result.stopped_reason == "stopped" else ""
    return f"{experiment.model.name} on {dataset} ({result.test_accuracy:.1%}{stopped})"


def _keep_evaluation(state: AppState, name: str, result: TrainingResult) -> None:
    """The run already predicted the whole test set; keep that, so Evaluate opens without predicting again."""
    if result.test_probabilities is None:
        return
    from cnn_core.engine import evaluation
    from ui import loaders

    dataset = result.experiment.training.dataset
    try:
        # The labels alone: a host's web server trains nothing and needs no training images in memory.
        state.evaluations[name] = evaluation.from_probabilities(
            result.test_probabilities, loaders.test_labels(dataset), registry.get(dataset).class_names
        )
    except ValueError:
        # More outputs than the dataset has classes: the Evaluate page scores such a model itself.
        return


def collect(state: AppState, job: TrainingJob) -> str | None:
    """Add a finished job's model to the session (made active) and record the run; returns the model name.

    Safe to call on every rerun: a job is collected once, later calls return None.
    """
    if job.id in state.collected_jobs or job.state not in FINISHED_STATES:
        return None
    result = job.take_result()
    state.collected_jobs.add(job.id)
    if result is None:
        return None
    from cnn_core.service.persistence import ModelBundle

    metrics = {
        "test_accuracy": result.test_accuracy,
        "test_loss": result.test_loss,
        "epochs_completed": sum(1 for row in result.history if row.get("complete", True)),
        "seconds": result.seconds,
        "stopped_reason": result.stopped_reason,
        "precision": result.precision,
    }
    # A worker's result comes as `.keras` bytes: they go to the workspace as they are, and a Keras
    # model is built only when a page asks the model cache for it.
    name = state.add_model(ModelBundle(
        model=result.model, experiment=result.experiment, metrics=metrics, name=model_name(result),
        source="trained",
    ), keras_bytes=result.model_bytes)
    _keep_evaluation(state, name, result)
    experiment = result.experiment
    state.add_run(
        RunRecord(
            name=name,
            experiment=experiment,
            dataset=experiment.training.dataset,
            architecture=" → ".join(specs.describe(layer) for layer in experiment.model.layers),
            params=result.params or specs.count_params(experiment.model, max_params=None),
            settings=run_settings(experiment.training),
            # Only whole epochs: a stopped run's partial last epoch is not comparable with the others.
            history=[dict(row) for row in result.history if row.get("complete", True)],
            test_accuracy=result.test_accuracy,
            test_loss=result.test_loss,
            seconds=result.seconds,
            stopped_reason=result.stopped_reason,
            message=result.message,
            precision=result.precision,
            curve=kept_curve(job.progress.snapshot()),
        ),
        # Stored with the run, so its filmstrip can be scrubbed again after a reload.
        filmstrip=job.filmstrip.to_bytes() if len(job.filmstrip) else None,
    )
    state.last_result_message = result.message
    return name


def kept_curve(snapshot: ProgressSnapshot) -> dict[str, list]:
    """The batch curve thinned to at most KEPT_CURVE_POINTS points (the last one kept), and the markers."""
    count = len(snapshot.batch_positions)
    picked = list(range(0, count, max(1, -(-count // KEPT_CURVE_POINTS))))
    if count and picked[-1] != count - 1:
        picked[-1] = count - 1
    return {
        "positions": [snapshot.batch_positions[i] for i in picked],
        "loss": [snapshot.batch_loss[i] for i in picked],
        "accuracy": [snapshot.batch_accuracy[i] for i in picked],
        "markers": [dict(marker) for marker in snapshot.markers],
    }


def snapshot_of(run: RunRecord) -> ProgressSnapshot:
    """A finished run's progress as the live view last drew it, from what the workspace kept."""
    from cnn_core.engine.training import ProgressSnapshot

    curve = run.curve if isinstance(run.curve, dict) else {}
    positions, loss, accuracy = (list(curve.get(part) or ()) for part in ("positions", "loss", "accuracy"))
    if not len(positions) == len(loss) == len(accuracy):
        positions = loss = accuracy = []
    return ProgressSnapshot(
        status="finished", epoch=len(run.history), epochs=run.experiment.training.epochs, step=0,
        steps_per_epoch=0, fraction=1.0, eta_seconds=None, batch_loss=loss, batch_accuracy=accuracy,
        epoch_history=[dict(row) for row in run.history], finished=None, batch_positions=positions,
        precision=run.precision, markers=[dict(marker) for marker in curve.get("markers") or ()],
    )
