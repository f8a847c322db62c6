"""Train an Experiment with Keras and report progress as plain-data events.

`train` runs `model.fit` with one internal callback. That callback turns Keras' per-batch and
per-epoch logs into small frozen dataclasses, hands them to listeners, and checks a
`threading.Event` after every batch so a Stop button takes effect within one batch. Nothing
Keras-specific leaves this module except the trained model itself, so the UI, the job queue
and the tests can all consume the same events.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from cnn_core.engine import datasets, executions, filmstrip, specs
from cnn_core.engine.errors import UserError
from cnn_core.engine.models import build_model, to_float32
from cnn_core.engine.specs import CheckedExperiment, Experiment

if TYPE_CHECKING:
    import keras

    from cnn_core.engine.datasets import Dataset

logger = logging.getLogger(__name__)

StopReason = Literal["completed", "stopped", "target_reached", "loss_reached"]
# Test evaluation does not depend on the batch size, so use one that is quick without using much memory.
EVALUATION_BATCH_SIZE = 256


@dataclass(frozen=True)
class TrainStarted:
    epochs: int
    steps_per_epoch: int
    train_size: int
    val_size: int
    params: int
    # "bfloat16" when the layers compute in Keras' mixed_bfloat16 (see precision.py), else "float32".
    precision: str = "float32"
    # The images of the final evaluation, so a time estimate can include it.
    test_size: int = 0


@dataclass(frozen=True)
class BatchEnded:
    """One optimisation step. `epoch` counts from 0, `step` from 1 to `steps_per_epoch`.

    `loss` and `accuracy` are Keras' running averages over the epoch so far, not the values of
    this batch alone, which is why the curves they draw are smooth.
    """

    epoch: int
    step: int
    steps_per_epoch: int
    loss: float
    accuracy: float


@dataclass(frozen=True)
class EpochEnded:
    """The end of an epoch (0-based). `complete` is False for the last, partial epoch of a stopped run."""

    epoch: int
    loss: float
    accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float
    complete: bool = True


@dataclass(frozen=True)
class TrainFinished:
    reason: StopReason
    message: str
    epochs_completed: int
    test_loss: float
    test_accuracy: float
    seconds: float


@dataclass(frozen=True)
class LearningRateChanged:
    """The learning rate was changed mid-run; it applies from the step after `epochs` (a position in epochs)."""

    epochs: float
    learning_rate: float


@dataclass(frozen=True)
class Paused:
    epochs: float


@dataclass(frozen=True)
class Resumed:
    epochs: float
    paused_seconds: float


Event = (
    TrainStarted | BatchEnded | EpochEnded | TrainFinished | LearningRateChanged | Paused | Resumed
    | filmstrip.FilmstripStarted | filmstrip.Frame
)
Listener = Callable[[Event], Any]


class TrainingControl:
    """Pause, resume and learning-rate changes for a running `train`; call its methods from any thread.

    The training callback reads one attribute per execution (`pending`; see engine.executions) and
    does the rest only when a command is waiting, so an untouched control costs nothing measurable.
    A pause holds training after the current execution and before the next, so a paused and resumed
    run takes exactly the steps of an uninterrupted one. A learning-rate change is written into the
    running model at once (the compiled step reads it from a variable), so it applies from the next
    batch on even in the middle of an execution; its event follows at the end of that execution.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._running.set()
        self._learning_rate: float | None = None
        self._apply: Callable[[float], None] | None = None
        self.pending = False

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        with self._lock:
            self._running.clear()
            self.pending = True

    def resume(self) -> None:
        with self._lock:
            self._running.set()

    def set_learning_rate(self, learning_rate: float) -> None:
        """Ask for a new learning rate from the next batch on; it replaces any schedule for the rest of the run."""
        value = float(learning_rate)
        if not math.isfinite(value) or not 0 < value <= 10:
            raise UserError("The learning rate must be a number above 0 and at most 10, e.g. 0.001.")
        with self._lock:
            self._learning_rate = value
            self.pending = True
            apply = self._apply
        if apply is not None:
            apply(value)

    def attach(self, apply: Callable[[float], None] | None) -> None:
        """Let learning-rate changes reach a running model at once (`None` detaches); one set earlier applies now."""
        with self._lock:
            self._apply = apply
            value = self._learning_rate
        if apply is not None and value is not None:
            apply(value)

    def take_learning_rate(self) -> float | None:
        with self._lock:
            value, self._learning_rate = self._learning_rate, None
            self.pending = self.paused
            return value

    def wait_while_paused(self, stop_event: threading.Event | None, poll: float = 0.05) -> None:
        """Block while paused; a stop request ends the wait too, so Stop works on a paused run."""
        while not self._running.wait(poll):
            if stop_event is not None and stop_event.is_set():
                return
        with self._lock:
            self.pending = self._learning_rate is not None


def _overridable(schedule):
    """Wrap a Keras LearningRateSchedule so a learning rate set mid-run can replace it.

    The compiled training step reads the override variable, so a change needs no retracing; a
    negative override means "follow the schedule".
    """
    import keras
    import tensorflow as tf

    class OverridableSchedule(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self, base):
            self.base = base
            self.override = tf.Variable(-1.0, trainable=False, dtype=tf.float32)

        def __call__(self, step):
            value = tf.cast(self.base(step), tf.float32)
            return tf.where(self.override > 0, self.override, value)

        def get_config(self):
            return self.base.get_config()

    return OverridableSchedule(schedule)


def set_learning_rate(optimizer, value: float) -> None:
    """Set an optimizer's learning rate now, whether it holds a float variable or an overridable schedule."""
    rate = optimizer._learning_rate  # Keras keeps the schedule object here; the public getter evaluates it.
    if hasattr(rate, "override"):
        rate.override.assign(value)
    else:
        optimizer.learning_rate = value


@dataclass(frozen=True)
class TrainingResult:
    """What a run produced: the trained model, its per-epoch history and its test-set score.

    A result that came over the wire (an RQ worker's) has `model` None and the `.keras` bytes in
    `model_bytes`: a web server builds no Keras model until a page needs one (`keras_model()`).
    """

    model: keras.Model | None
    experiment: Experiment
    history: list[dict[str, Any]]
    test_loss: float
    test_accuracy: float
    stopped_reason: StopReason
    message: str
    seconds: float
    # What training computed in; the model handed over always predicts in float32.
    precision: str = "float32"
    # The model's class probabilities for every test image (N, classes), float32, from the test
    # evaluation: the Evaluate page shows them without predicting the 10,000 images again.
    test_probabilities: np.ndarray | None = field(default=None, repr=False)
    # The model's parameter count, as `specs.check_experiment` found it.
    params: int | None = None
    model_bytes: bytes | None = field(default=None, repr=False)

    def keras_model(self) -> keras.Model:
        """The trained model: `model`, or built from `model_bytes` (the safe `.keras` path) on each call."""
        if self.model is not None:
            return self.model
        from cnn_core.engine.models import model_from_bytes

        return model_from_bytes(self.model_bytes)


class TrainingDiverged(UserError):
    """The loss stopped being a number: the weights blew up and the model is useless."""


def diverged_message(loss: float, epoch: int, step: int, learning_rate: float) -> str:
    return (
        f"The run diverged: the loss became {loss} at epoch {epoch + 1}, step {step}, so training stopped; "
        f"lower the learning rate (try {learning_rate / 10:g} instead of {learning_rate:g}) or use a bounded "
        "activation such as 'relu' with BatchNorm, then train again."
    )


def target_message(target_accuracy: float) -> str:
    """The message of seed 002's callback, e.g. 'Reached 99.8% accuracy so cancelling training!'."""
    return f"Reached {target_accuracy * 100:g}% accuracy so cancelling training!"


def loss_message(loss: float, target_loss: float, epoch: int) -> str:
    """Why a run stopped at its target loss, e.g. 'Stopped: training loss 0.38 ≤ 0.40 at epoch 3.'.

    The loss is rounded down, at least to the target's own decimals, so it never reads as above the target.
    """
    decimals = next((d for d in range(2, 7) if round(target_loss, d) == target_loss), 6)
    # The small nudge keeps 0.29 from flooring to 0.28 through 0.29 * 100 = 28.999999999999996.
    shown = math.floor(loss * 10**decimals + 1e-9) / 10**decimals
    return f"Stopped: training loss {shown:.{decimals}f} ≤ {target_loss:.{decimals}f} at epoch {epoch + 1}."


@dataclass(frozen=True)
class TrainingData:
    """The arrays one run uses after `train_subset` and `validation_split` have been applied."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray


def split_data(experiment: Experiment, dataset: Dataset) -> TrainingData:
    """Apply `train_subset` (the first N images) and `validation_split` (the last fraction, as Keras does).

    The experiment's fit with the dataset (shape, classes, sizes) was checked by `specs.check_experiment`.
    """
    config = experiment.training
    x, y = dataset.x_train, dataset.y_train
    if config.train_subset is not None:
        x, y = x[: config.train_subset], y[: config.train_subset]
    # Keras' own rule for validation_split: the last fraction of the arrays, before any shuffling.
    split_at = int(math.ceil(len(x) * (1.0 - config.validation_split)))
    if split_at < 1:
        raise UserError("No training images are left after the validation split; use a smaller validation_split.")
    x_val = y_val = None
    if split_at < len(x):
        x_val, y_val = x[split_at:], y[split_at:]
    return TrainingData(x[:split_at], y[:split_at], x_val, y_val, dataset.x_test, dataset.y_test)


def shuffled_batches(x: np.ndarray, y: np.ndarray, batch_size: int, epochs: int, seed: int):
    """A tf.data pipeline of `epochs` shuffled passes over (x, y), one permutation per epoch.

    The order comes from stateless random ops keyed by (seed, epoch), so it is the same on every
    run with that seed, whatever other threads do to TensorFlow's global seed meanwhile. Batches
    are gathered from whole-array tensors by index, the way Keras feeds NumPy arrays itself.
    """
    import tensorflow as tf

    count = len(x)
    full_batches, remainder = divmod(count, batch_size)
    images = tf.convert_to_tensor(x)
    labels = tf.convert_to_tensor(y)

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
        )
        batches = tf.data.Dataset.from_tensor_slices(
            tf.reshape(order[: full_batches * batch_size], [full_batches, batch_size])
        )
        if remainder:
            batches = batches.concatenate(tf.data.Dataset.from_tensors(order[full_batches * batch_size:]))
        return batches

    indices = tf.data.Dataset.range(epochs).flat_map(epoch_batches)
    batches = indices.map(
        lambda index: (tf.gather(images, index), tf.gather(labels, index)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    options = tf.data.Options()
    # Graph rewrites only add start-up time for a pipeline this simple.
    options.experimental_optimization.apply_default_optimizations = False
    return batches.with_options(options).prefetch(tf.data.AUTOTUNE)


class _Dispatcher:
    """Calls every listener with an event; a listener that raises is logged, and training goes on."""

    def __init__(self, listeners: Iterable[Listener]):
        self.listeners = tuple(listeners)
        self._failed: set[int] = set()

    def __call__(self, event: Event) -> None:
        for position, listener in enumerate(self.listeners):
            try:
                listener(event)
            except Exception:
                # Log the traceback once per listener; a broken chart must not flood the log every batch.
                if position not in self._failed:
                    self._failed.add(position)
                    logger.exception("Training listener %r failed on %s; training continues.", listener, event)


def _forwarding_callback(
    dispatch: _Dispatcher,
    steps_per_epoch: int,
    stop_event: threading.Event | None,
    target_accuracy: float | None,
    keep_best: bool,
    target_loss: float | None = None,
    control: TrainingControl | None = None,
    probe: np.ndarray | None = None,
    frame_steps: tuple[int, ...] = (),
    runner: executions.StepRunner | None = None,
):
    import keras

    class ForwardingCallback(keras.callbacks.Callback):
        """Forwards Keras logs as events, honours the stop event and the stopping rules."""

        def __init__(self):
            super().__init__()
            self.epoch = 0
            self.steps_done = 0
            self.epoch_started = 0.0
            self.history: list[dict[str, Any]] = []
            self.epochs_completed = 0
            self.stopped_by_request = False
            self.target_reached = False
            # (training loss, epoch) of the epoch that met target_loss.
            self.loss_reached: tuple[float, int] | None = None
            self.best_val_accuracy = -math.inf
            self.best_epoch: int | None = None
            self.best_weights: list | None = None
            self.diverged_at: tuple[float, int, int] | None = None
            self.camera: filmstrip.Camera | None = None
            self.frame_steps: frozenset[int] = frozenset()

        def on_train_begin(self, logs=None):
            if probe is None:
                return
            self.frame_steps = frozenset(frame_steps)
            self.camera = filmstrip.Camera(self.model, probe, steps_per_epoch)
            dispatch(filmstrip.FilmstripStarted(np.asarray(probe, dtype=np.float16), frame_steps, steps_per_epoch))
            dispatch(self.camera.frame(0))

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.steps_done = 0
            self.epoch_started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            # This runs once per batch: keep it to a few attribute reads. Keras has already turned
            # the logs into Python floats because this callback overrides this method.
            self.steps_done = batch + 1
            loss = logs["loss"]
            if not math.isfinite(loss):
                # Every later step would be NaN too; stop now and let train() say what to change.
                self.model.stop_training = True
                self.diverged_at = (loss, self.epoch, batch + 1)
                return
            if dispatch.listeners:
                dispatch(BatchEnded(self.epoch, batch + 1, steps_per_epoch, logs["loss"], logs["accuracy"]))
            if runner is not None and not runner.at_boundary:
                # The batches after this one have run already: Stop and pause act where the weights are
                # the reported batch's, at the end of this execution (a frame step always ends one).
                return
            # Checked after the listeners so a stop requested while they ran takes effect now, not a batch later.
            if stop_event is not None and stop_event.is_set():
                self.model.stop_training = True
                self.stopped_by_request = True
            if self.camera is not None and self.epoch * steps_per_epoch + batch + 1 in self.frame_steps:
                dispatch(self.camera.frame(self.epoch * steps_per_epoch + batch + 1))
            if control is not None and control.pending:
                self._steer(batch)

        def _steer(self, batch):
            position = self.epoch + (batch + 1) / steps_per_epoch
            if control.paused and not self.model.stop_training:
                dispatch(Paused(position))
                paused_at = time.perf_counter()
                control.wait_while_paused(stop_event)
                if stop_event is not None and stop_event.is_set():
                    self.model.stop_training = True
                    self.stopped_by_request = True
                dispatch(Resumed(position, time.perf_counter() - paused_at))
            rate = control.take_learning_rate()
            if rate is not None:
                set_learning_rate(self.model.optimizer, rate)
                dispatch(LearningRateChanged(position, rate))

        def on_epoch_end(self, epoch, logs=None):
            complete = self.steps_done >= steps_per_epoch
            val_loss = logs.get("val_loss")
            val_accuracy = logs.get("val_accuracy")
            event = EpochEnded(
                epoch=epoch,
                loss=float(logs["loss"]),
                accuracy=float(logs["accuracy"]),
                val_loss=None if val_loss is None else float(val_loss),
                val_accuracy=None if val_accuracy is None else float(val_accuracy),
                seconds=time.perf_counter() - self.epoch_started,
                complete=complete,
            )
            if complete:
                self.epochs_completed += 1
            # A partial epoch still has a genuine validation score for its weights, so it may be the best.
            if keep_best and event.val_accuracy is not None and event.val_accuracy > self.best_val_accuracy:
                self.best_val_accuracy = event.val_accuracy
                self.best_epoch = epoch
                self.best_weights = self.model.get_weights()
            if complete and target_accuracy is not None and event.accuracy >= target_accuracy:
                self.model.stop_training = True
                self.target_reached = True
            # The tutorial's myCallback rule on the epoch's training loss (Keras' mean over its batches),
            # "at or below" like target_accuracy's "at or above", and only on a whole epoch: a partial
            # epoch's mean covers fewer batches and is not the figure the learner set a target for.
            if complete and target_loss is not None and event.loss <= target_loss:
                self.model.stop_training = True
                self.loss_reached = (event.loss, epoch)
            if (stop_event is not None and stop_event.is_set() and not self.target_reached
                    and self.loss_reached is None):
                self.model.stop_training = True
                self.stopped_by_request = True
            self.history.append(dataclasses.asdict(event))
            dispatch(event)

    return ForwardingCallback()


def train(
    checked: CheckedExperiment | Experiment,
    *,
    stop_event: threading.Event | None = None,
    listeners: Iterable[Listener] = (),
    dataset: Dataset | None = None,
    precision: str = "float32",
    control: TrainingControl | None = None,
    record_filmstrip: bool = False,
    probe: np.ndarray | None = None,
    initial_weights: list[np.ndarray] | None = None,
) -> TrainingResult:
    """Build, train and test the experiment's model; safe to call from a background thread.

    `checked` comes from `specs.check_experiment`, which validated it against the caller's limits,
    and is not checked again. A plain Experiment (a script, a benchmark) is checked here first,
    against the default limits.

    Listeners receive TrainStarted, then BatchEnded/EpochEnded as training goes, then
    TrainFinished after the test-set evaluation, which runs even when training was stopped.
    Setting `stop_event` stops training after the current batch and keeps the weights so far.
    A run that raises (for example out of memory) sends no TrainFinished; the caller sees the error.
    `precision="bfloat16"` trains in mixed bfloat16 (`precision.resolve` says where that pays); the
    returned model is a float32 copy, which is what predicts fastest for one image and saves portably.
    A run whose loss stops being finite stops at that batch and raises TrainingDiverged saying
    what to change; its NaN weights are never handed out.

    `control` pauses, resumes and changes the learning rate mid-run (see TrainingControl).
    `record_filmstrip` sends FilmstripStarted and Frame events (engine.filmstrip) of `probe`, an
    (H, W) image, by default the first test image. `initial_weights` (a model's `get_weights()`)
    continues training a finished model of the same spec instead of starting from random weights.
    """
    started = time.perf_counter()
    if not isinstance(checked, CheckedExperiment):
        checked = specs.check_experiment(checked)
    experiment = checked.experiment
    config = experiment.training
    if dataset is None:
        dataset = datasets.load(config.dataset)
    data = split_data(experiment, dataset)
    steps_per_epoch = math.ceil(len(data.x_train) / config.batch_size)
    model = build_model(checked, steps_per_epoch=steps_per_epoch, precision=precision)
    if initial_weights is not None:
        try:
            model.set_weights(initial_weights)
        except ValueError as error:
            raise UserError("These weights belong to a different model; continue training the model they came from.") from error
    schedule = model.optimizer._learning_rate  # the schedule object itself (the public getter evaluates it)
    steerable = control is not None and not hasattr(schedule, "assign")
    if steerable:
        # A schedule cannot be assigned a value; swap in one that can be overridden, for this run only.
        model.optimizer.learning_rate = _overridable(schedule)
    if record_filmstrip and probe is None:
        probe = data.x_test[0]
    frame_steps = filmstrip.schedule(steps_per_epoch, config.epochs) if record_filmstrip else ()
    runner = executions.StepRunner(model, steps_per_epoch, must_end_at=frame_steps,
                                   sample=(data.x_train[:1], data.y_train[:1]))
    # Keras' fit calls this instead of compiling its own one-step function (see engine.executions).
    model.train_function = runner

    dispatch = _Dispatcher(listeners)
    callback = _forwarding_callback(
        dispatch, steps_per_epoch, stop_event, config.target_accuracy, config.restore_best,
        target_loss=config.target_loss, control=control, probe=probe if record_filmstrip else None,
        frame_steps=frame_steps, runner=runner,
    )
    dispatch(
        TrainStarted(
            epochs=config.epochs,
            steps_per_epoch=steps_per_epoch,
            train_size=len(data.x_train),
            val_size=0 if data.x_val is None else len(data.x_val),
            params=model.count_params(),
            precision=precision,
            test_size=len(data.x_test),
        )
    )
    if control is not None:
        control.attach(lambda value: set_learning_rate(model.optimizer, value))
    try:
        model.fit(
            shuffled_batches(data.x_train, data.y_train, config.batch_size, config.epochs, config.seed),
            epochs=config.epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=None if data.x_val is None else (data.x_val, data.y_val),
            validation_batch_size=max(config.batch_size, EVALUATION_BATCH_SIZE),
            callbacks=[callback],
            shuffle=False,  # The pipeline above already shuffles, deterministically.
            verbose=0,
        )
    finally:
        if control is not None:
            control.attach(None)
    if steerable:
        # The saved model names the run's own schedule, which plain Keras can load again.
        model.optimizer.learning_rate = schedule

    if callback.diverged_at is not None:
        raise TrainingDiverged(diverged_message(*callback.diverged_at, config.learning_rate))
    restored = ""
    if callback.best_weights is not None and callback.best_epoch != callback.history[-1]["epoch"]:
        model.set_weights(callback.best_weights)
        restored = (
            f" Restored the weights of epoch {callback.best_epoch + 1}, "
            f"the best validation accuracy ({callback.best_val_accuracy:.2%})."
        )
    model = to_float32(model, config)
    from cnn_core.engine.inference import Predictor

    test_probabilities = Predictor(model).predict_batch(data.x_test)
    test_loss, test_accuracy = classifier_score(test_probabilities, data.y_test)

    reason: StopReason
    loss_note = "" if callback.loss_reached is None else loss_message(
        callback.loss_reached[0], config.target_loss, callback.loss_reached[1])
    if callback.target_reached:
        # Both targets met in the same epoch: the accuracy one (older, seed 002's) names the reason.
        reason, message = "target_reached", f"{target_message(config.target_accuracy)} {loss_note}".rstrip()
    elif loss_note:
        reason, message = "loss_reached", loss_note
    elif callback.stopped_by_request and callback.epochs_completed < config.epochs:
        last = callback.history[-1] if callback.history else None
        where = (
            f"during epoch {last['epoch'] + 1} of {config.epochs} (step {callback.steps_done} of {steps_per_epoch})"
            if last is not None and not last["complete"]
            else f"after epoch {callback.epochs_completed} of {config.epochs}"
        )
        reason, message = "stopped", f"Stopped {where}; the model keeps the weights learned so far."
    else:
        reason, message = "completed", (
            "Finished the 1 epoch." if config.epochs == 1 else f"Finished all {config.epochs} epochs."
        )
    message = f"{message}{restored} Test accuracy {test_accuracy:.2%}."
    if callback.history:
        note = gap_note(experiment, callback.history[-1]["accuracy"], test_accuracy, len(data.x_train))
        message = f"{message} {note}" if note else message
    seconds = time.perf_counter() - started
    dispatch(
        TrainFinished(
            reason=reason,
            message=message,
            epochs_completed=callback.epochs_completed,
            test_loss=test_loss,
            test_accuracy=test_accuracy,
            seconds=seconds,
        )
    )
    return TrainingResult(
        model=model,
        experiment=experiment,
        history=callback.history,
        test_loss=test_loss,
        test_accuracy=test_accuracy,
        stopped_reason=reason,
        message=message,
        seconds=seconds,
        precision=precision,
        test_probabilities=test_probabilities,
        params=checked.param_count,
    )


def classifier_score(probabilities: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(cross-entropy loss, accuracy) of class probabilities against labels, as Keras' evaluate computes them.

    The probabilities come from a `Predictor` (one traced function, big batches) rather than
    `model.evaluate`, which builds a data pipeline on every call; they are kept for the Evaluate page.
    """
    import numpy as np

    labels = np.asarray(y, dtype=np.int64)
    picked = probabilities[np.arange(len(labels)), labels]
    # Keras clips probabilities to [epsilon, 1 - epsilon] before the logarithm; so do we.
    epsilon = 1e-7
    loss = float(-np.mean(np.log(np.clip(picked, epsilon, 1 - epsilon))))
    accuracy = float(np.mean(probabilities.argmax(axis=1) == labels))
    return loss, accuracy


# Test accuracy this far below the last epoch's training accuracy is worth a sentence.
GAP_NOTE_AT = 0.05
SMALL_TRAINING_SET = 10_000


def gap_note(experiment: Experiment, train_accuracy: float, test_accuracy: float, train_size: int) -> str:
    """One sentence on why test accuracy ended far below training accuracy, or "" when it did not."""
    gap = train_accuracy - test_accuracy
    if gap < GAP_NOTE_AT:
        return ""
    head = (f"Test accuracy is {gap:.0%} below the last epoch's training accuracy ({train_accuracy:.1%}), "
            "most likely because ")
    if any(layer.kind == "batchnorm" for layer in experiment.model.layers):
        return head + ("BatchNorm's running averages, which a test uses instead of each batch's own statistics, "
                       "had too few steps to settle: train longer or on more images, or remove BatchNorm.")
    if train_size < SMALL_TRAINING_SET:
        return head + (f"{train_size:,} training images are too few to generalise from and the model memorised "
                       "them: train on more images or add Dropout.")
    return head + "the model overfits (memorises its training images): add Dropout, train fewer epochs or use more images."


# Evaluating an image costs about this share of training on it (a forward pass, no gradients).
EVALUATION_COST = 1 / 3
# A steadily falling estimate jumps up again only for a real slowdown (this factor above it).
ETA_RISE = 1.3


@dataclass(frozen=True)
class ProgressSnapshot:
    """A consistent copy of a run's progress for the UI to draw; `batch_*` lists are downsampled.

    `batch_positions` holds, for each point of `batch_loss`/`batch_accuracy`, how many epochs had
    passed (1.5 = halfway through the second epoch), so batch curves line up with epoch points.
    """

    status: Literal["waiting", "running", "finished"]
    epoch: int
    epochs: int
    step: int
    steps_per_epoch: int
    fraction: float
    eta_seconds: float | None
    batch_loss: list[float]
    batch_accuracy: list[float]
    epoch_history: list[dict[str, Any]]
    finished: TrainFinished | None
    batch_positions: list[float] = field(default_factory=list)
    precision: str = "float32"
    # Learning-rate changes and pauses as {"epochs": position, "label": text}, for the chart to mark.
    markers: list[dict[str, Any]] = field(default_factory=list)
    paused: bool = False


class ProgressRecorder:
    """A thread-safe listener that remembers a run's progress; read it any time with `snapshot()`.

    Per-batch points are kept at most `max_points` at a time: when the list is full every other
    point is dropped and from then on only every second batch is recorded (then every fourth…),
    so a long run uses constant memory and the curve keeps its shape.
    """

    def __init__(self, max_points: int = 2000, clock: Callable[[], float] = time.monotonic):
        if max_points < 2:
            raise ValueError("max_points must be at least 2 to draw a curve.")
        self._max_points = max_points
        self._clock = clock
        self._lock = threading.Lock()
        self._status: Literal["waiting", "running", "finished"] = "waiting"
        self._epoch = 0
        self._epochs = 0
        self._step = 0
        self._steps_per_epoch = 0
        self._started_at: float | None = None
        self._stride = 1
        self._batches_seen = 0
        self._positions: list[float] = []
        self._losses: list[float] = []
        self._accuracies: list[float] = []
        self._epoch_history: list[dict[str, Any]] = []
        self._finished: TrainFinished | None = None
        self._precision = "float32"
        self._test_size = 0
        self._val_size = 0
        self._batch_size = 1.0
        # The first batch includes tracing the model, so the step rate is measured from its end.
        self._first_batch: tuple[float, int] | None = None
        self._shown_eta: tuple[float, float] | None = None
        self._markers: list[dict[str, Any]] = []
        self._paused_since: float | None = None
        self._paused_total = 0.0

    def __call__(self, event: Event) -> None:
        with self._lock:
            match event:
                case BatchEnded():
                    self._epoch, self._step = event.epoch, event.step
                    if self._first_batch is None:
                        self._first_batch = (self._clock(), event.epoch * event.steps_per_epoch + event.step)
                    if self._batches_seen % self._stride == 0:
                        self._positions.append(event.epoch + event.step / event.steps_per_epoch)
                        self._losses.append(event.loss)
                        self._accuracies.append(event.accuracy)
                        if len(self._losses) > self._max_points:
                            self._positions = self._positions[::2]
                            self._losses = self._losses[::2]
                            self._accuracies = self._accuracies[::2]
                            self._stride *= 2
                    self._batches_seen += 1
                case EpochEnded():
                    self._epoch_history.append(dataclasses.asdict(event))
                case TrainStarted():
                    self._status = "running"
                    self._epochs, self._steps_per_epoch = event.epochs, event.steps_per_epoch
                    self._started_at = self._clock()
                    self._test_size = event.test_size
                    self._val_size = event.val_size
                    self._batch_size = max(1.0, event.train_size / max(1, event.steps_per_epoch))
                    self._precision = event.precision
                case TrainFinished():
                    self._status = "finished"
                    self._finished = event
                case LearningRateChanged():
                    self._markers.append({"epochs": event.epochs, "label": f"learning rate → {event.learning_rate:g}"})
                case Paused():
                    self._paused_since = self._clock()
                    self._markers.append({"epochs": event.epochs, "label": "paused"})
                case Resumed():
                    if self._paused_since is not None:
                        paused = self._clock() - self._paused_since
                        self._paused_total += paused
                        if self._shown_eta is not None:
                            # The countdown resumes where it stood when the run was paused.
                            self._shown_eta = (self._shown_eta[0], self._shown_eta[1] + paused)
                    self._paused_since = None

    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            total_steps = self._epochs * self._steps_per_epoch
            done = self._epoch * self._steps_per_epoch + self._step
            fraction = min(1.0, done / total_steps) if total_steps else 0.0
            eta = self._eta(done, total_steps) if self._status == "running" else None
            return ProgressSnapshot(
                status=self._status,
                epoch=self._epoch,
                epochs=self._epochs,
                step=self._step,
                steps_per_epoch=self._steps_per_epoch,
                fraction=fraction,
                eta_seconds=eta,
                batch_loss=list(self._losses),
                batch_accuracy=list(self._accuracies),
                epoch_history=[dict(row) for row in self._epoch_history],
                finished=self._finished,
                batch_positions=list(self._positions),
                precision=self._precision,
                markers=[dict(marker) for marker in self._markers],
                paused=self._paused_since is not None,
            )

    def _eta(self, done: int, total_steps: int) -> float | None:
        """Seconds left: the remaining steps at the rate since the first batch, plus the validation passes
        still to come and the test evaluation.

        Between estimates it falls with the clock and it rises only for a real slowdown, so the learner
        sees a countdown rather than a number that wobbles with every epoch's validation pass.
        """
        if self._first_batch is None:
            return None
        if self._paused_since is not None:
            # A paused run's estimate stands still.
            return None if self._shown_eta is None else self._shown_eta[0]
        now = self._clock()
        since, first_done = self._first_batch
        # Time spent paused is not training time, so it must not slow the measured rate.
        now_training = now - self._paused_total
        if done <= first_done or now_training <= since:
            return None
        seconds_per_step = (now_training - since) / (done - first_done)
        validations = max(0, self._epochs - len(self._epoch_history)) * self._val_size
        evaluation = (self._test_size + validations) / self._batch_size * seconds_per_step * EVALUATION_COST
        estimate = max(0, total_steps - done) * seconds_per_step + evaluation
        if self._shown_eta is not None:
            shown, at = self._shown_eta
            falling = shown - (now - at)
            if falling < estimate <= max(falling, 1.0) * ETA_RISE:
                estimate = falling
        estimate = max(1.0, estimate)
        self._shown_eta = (estimate, now)
        return estimate
