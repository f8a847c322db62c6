"""Self-checking workshop exercises taken from the seed notebooks.

Each exercise states a goal, gives hints, may start the learner from an experiment with some
fields locked, and checks an `Attempt`: plain data about what the learner did (the experiment,
its per-epoch history, test accuracy, why training stopped, parameter count, or a 3×3 kernel).
A check never trains anything itself, so it is instant and testable without TensorFlow; it
returns every criterion it looked at, passed or not, with what to try next.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cnn_core.engine import ops, registry, specs
from cnn_core.engine.errors import UserError
from cnn_core.engine.specs import Dense, Experiment, Flatten, ModelSpec, TrainingConfig
from cnn_core.workshop import presets

PASS_MARK = "✓"
FAIL_MARK = "✗"
POOLING_KINDS = ("maxpool", "avgpool", "global_avgpool")

DENSE_BASELINE_PARAMS = presets.get("dense_baseline").expected_params


def dense_baseline_accuracy(dataset: str) -> float | None:
    """The dense_baseline preset's test accuracy on `dataset` (kept in the dataset registry), if known."""
    try:
        return registry.get(dataset).baselines.get("dense_baseline")
    except UserError:
        return None


@dataclass(frozen=True)
class Attempt:
    """What the learner did, as plain data; build one from a training result with `from_result`."""

    experiment: Experiment | None = None
    # One dict per completed epoch with at least "accuracy"; "loss", "val_accuracy"… when known.
    history: Sequence[Mapping[str, float]] = ()
    test_accuracy: float | None = None
    stopped_reason: str | None = None
    params: int | None = None
    kernel: Any = None
    # The accuracy to beat, when the app measured the baseline itself; None uses the stored value.
    reference_accuracy: float | None = None
    # Training time of the run, and the learner's earlier runs (oldest first) for exercises that compare.
    seconds: float | None = None
    earlier: Sequence[Attempt] = ()

    @classmethod
    def from_result(cls, result: Any, reference_accuracy: float | None = None) -> Attempt:
        """An attempt from a `training.TrainingResult` (anything with the same attributes)."""
        experiment = result.experiment
        return cls(
            experiment=experiment,
            history=history_rows(result.history),
            test_accuracy=result.test_accuracy,
            stopped_reason=result.stopped_reason,
            params=getattr(result, "params", None) or specs.count_params(experiment.model, max_params=None),
            reference_accuracy=reference_accuracy,
            seconds=getattr(result, "seconds", None),
        )


def history_rows(history: Any) -> list[dict[str, float]]:
    """Per-epoch rows from either a list of dicts or a Keras-style dict of per-metric lists."""
    if history is None:
        return []
    if isinstance(history, Mapping):
        length = max((len(values) for values in history.values()), default=0)
        return [
            {key: float(values[i]) for key, values in history.items() if i < len(values)} for i in range(length)
        ]
    return [dict(row) for row in history]


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    messages: list[str]


@dataclass(frozen=True)
class Exercise:
    key: str
    title: str
    goal_text: str
    hints: tuple[str, ...]
    # None for exercises that are not a training run (the kernel exercise).
    starting_experiment: Experiment | None
    locked: frozenset[str]
    check: Callable[[Attempt], CheckResult]
    source: str = ""

    @property
    def needs_kernel(self) -> bool:
        return self.starting_experiment is None


@dataclass
class _Report:
    """Collects criteria; the attempt passes only if every one does."""

    messages: list[str] = field(default_factory=list)
    passed: bool = True

    def criterion(self, ok: bool, success: str, advice: str) -> bool:
        self.messages.append(f"{PASS_MARK} {success}" if ok else f"{FAIL_MARK} {advice}")
        self.passed = self.passed and ok
        return ok

    def result(self) -> CheckResult:
        return CheckResult(self.passed, list(self.messages))


def _needs_training(attempt: Attempt) -> CheckResult | None:
    if attempt.experiment is None or not attempt.history:
        return CheckResult(False, [f"{FAIL_MARK} Train the model first; the check looks at the finished run."])
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _final(history: Sequence[Mapping[str, float]], key: str) -> float | None:
    return _number(history[-1].get(key)) if history else None


def _kinds(model: ModelSpec) -> list[str]:
    return [layer.kind for layer in model.layers]


def _params(attempt: Attempt) -> int:
    if attempt.params is not None:
        return attempt.params
    return specs.count_params(attempt.experiment.model, max_params=None)


# (a) Seed 002: the Coursera exercise with a callback that stops at 99.8% training accuracy.

SINGLE_CONV_TARGET = 0.998
SINGLE_CONV_MAX_EPOCHS = 20


def _check_single_conv(attempt: Attempt) -> CheckResult:
    missing = _needs_training(attempt)
    if missing:
        return missing
    model, training = attempt.experiment.model, attempt.experiment.training
    kinds = _kinds(model)
    report = _Report()
    conv_count = kinds.count("conv2d")
    report.criterion(
        conv_count == 1,
        "Exactly one convolution layer.",
        f"The model has {conv_count} convolution layers; use exactly one Conv2D.",
    )
    pool_count = sum(kinds.count(kind) for kind in POOLING_KINDS)
    report.criterion(
        pool_count == 1,
        "Exactly one pooling layer.",
        f"The model has {pool_count} pooling layers; use exactly one (MaxPool works well).",
    )
    report.criterion(
        training.dataset == "mnist",
        "Trained on MNIST digits.",
        f"This exercise is about MNIST digits, but the run used {training.dataset}; switch the dataset to mnist.",
    )
    report.criterion(
        training.train_subset is None,
        "Trained on all training images.",
        f"The run used only {training.train_subset} images, which makes 99.8% too easy; clear the subset.",
    )
    target = _number(training.target_accuracy)
    report.criterion(
        target is not None and target >= SINGLE_CONV_TARGET,
        f"Automatic stop set at {target:.1%} training accuracy." if target else "",
        f"Set the target accuracy to {SINGLE_CONV_TARGET} so training stops by itself when it gets there.",
    )
    accuracy = _final(attempt.history, "accuracy")
    report.criterion(
        accuracy is not None and accuracy >= SINGLE_CONV_TARGET,
        f"Training accuracy reached {accuracy:.2%}." if accuracy is not None else "",
        f"Training accuracy ended at {accuracy:.2%}, below {SINGLE_CONV_TARGET:.1%}; try more filters, a bigger "
        "dense layer or a slightly higher learning rate."
        if accuracy is not None
        else "The run recorded no training accuracy; train again.",
    )
    epochs = len(attempt.history)
    report.criterion(
        epochs < SINGLE_CONV_MAX_EPOCHS,
        f"Done in {epochs} epochs (under {SINGLE_CONV_MAX_EPOCHS}).",
        f"The run took {epochs} epochs; it has to get there in fewer than {SINGLE_CONV_MAX_EPOCHS}.",
    )
    report.criterion(
        attempt.stopped_reason == "target_reached",
        "Training stopped by itself at the target.",
        "Training did not stop at the target by itself; set the target accuracy and let the run end on its own.",
    )
    return report.result()


# (b) Seeds 001 and 002: the convnet should beat the dense baseline, and with fewer weights.


def _check_beat_dense(attempt: Attempt) -> CheckResult:
    missing = _needs_training(attempt)
    if missing:
        return missing
    training = attempt.experiment.training
    report = _Report()
    kinds = _kinds(attempt.experiment.model)
    report.criterion(
        "conv2d" in kinds,
        "The model uses convolutions.",
        "The model has no Conv2D layer; the point is to beat the dense baseline with a convnet.",
    )
    reference = attempt.reference_accuracy
    if reference is None:
        reference = dense_baseline_accuracy(training.dataset)
    if reference is None:
        return CheckResult(False, [f"{FAIL_MARK} There is no dense baseline for {training.dataset!r}."])
    params = _params(attempt)
    report.criterion(
        params < DENSE_BASELINE_PARAMS,
        f"{params:,} parameters, fewer than the baseline's {DENSE_BASELINE_PARAMS:,}.",
        f"The model has {params:,} parameters, not fewer than the baseline's {DENSE_BASELINE_PARAMS:,}; "
        "add a pooling layer before Flatten or use fewer filters or dense units.",
    )
    accuracy = _number(attempt.test_accuracy)
    report.criterion(
        accuracy is not None and accuracy > reference,
        f"Test accuracy {accuracy:.2%} beats the baseline's {reference:.2%}." if accuracy is not None else "",
        f"Test accuracy {accuracy:.2%} does not beat the baseline's {reference:.2%}; try a second Conv2D, or more "
        "filters in the first one." if accuracy is not None else "The run has no test accuracy; train to the end.",
    )
    return report.result()


# (c) Seed 002's convolution walk-through: a hand-made filter that finds vertical lines.

KERNEL_SIZE = 16
# A good vertical-edge detector answers horizontal edges and flat areas with at most this share
# of its answer to a vertical edge.
KERNEL_MAX_RATIO = 0.2


def _edge_images(size: int = KERNEL_SIZE) -> dict[str, np.ndarray]:
    """A vertical step edge, a horizontal step edge and a flat grey square, values in [0, 1]."""
    vertical = np.zeros((size, size))
    vertical[:, size // 2 :] = 1.0
    flat = np.full((size, size), 0.5)
    return {"vertical": vertical, "horizontal": vertical.T.copy(), "flat": flat}


def kernel_responses(kernel: Any) -> dict[str, float]:
    """The strongest absolute response of a kernel to each test image (UserError for a bad kernel)."""
    values = np.asarray(kernel, dtype=object)
    if values.shape != (3, 3):
        raise UserError(f"The kernel must be 3×3, got shape {values.shape}; fill in all nine numbers.")
    if any(_number(v) is None for v in values.ravel()):
        raise UserError("Every kernel entry must be a finite number; fill in all nine numbers.")
    kernel = values.astype(np.float64)
    return {
        name: float(np.abs(ops.conv2d(image, kernel, padding="valid")).max())
        for name, image in _edge_images().items()
    }


def _check_vertical_kernel(attempt: Attempt) -> CheckResult:
    try:
        responses = kernel_responses(attempt.kernel)
    except UserError as exc:
        return CheckResult(False, [f"{FAIL_MARK} {exc}"])
    vertical, horizontal, flat = responses["vertical"], responses["horizontal"], responses["flat"]
    report = _Report()
    strong = report.criterion(
        vertical > 1e-6,
        f"The kernel responds to the vertical edge (strength {vertical:.2f}).",
        "The kernel gives no response to a vertical edge; make the left column negative and the right "
        "column positive so it measures the change from left to right.",
    )
    # Without a vertical answer, "weak" means zero: each criterion then judges only its own picture.
    limit = KERNEL_MAX_RATIO * vertical if strong else 1e-6
    if horizontal > limit and not strong:
        horizontal_advice = (
            f"Horizontal edges give {horizontal:.2f}: this kernel finds horizontal edges (it compares the top "
            "row with the bottom one); turn it a quarter turn, so the columns differ and each row is the same."
        )
    else:
        horizontal_advice = (
            f"Horizontal edges give {horizontal:.2f}, too close to the vertical edge's {vertical:.2f}; keep each "
            "row the same so changes from top to bottom cancel out."
        )
    report.criterion(horizontal <= limit, f"Horizontal edges give a weak response ({horizontal:.2f}).",
                     horizontal_advice)
    total = float(np.sum(np.asarray(attempt.kernel, dtype=np.float64)))
    report.criterion(
        flat <= limit,
        f"Flat areas give almost nothing ({flat:.2f}).",
        f"A flat grey area gives {flat:.2f}: the nine numbers add up to {total:g}; make them add up to zero so "
        "plain brightness cancels out.",
    )
    return report.result()


# (d) The seed Fashion-MNIST notebook reached 91.7% in ten epochs; get past 90% in half of that.

FASHION_TARGET = 0.90
FASHION_MAX_EPOCHS = 5


def _check_fashion_fast(attempt: Attempt) -> CheckResult:
    missing = _needs_training(attempt)
    if missing:
        return missing
    training = attempt.experiment.training
    report = _Report()
    report.criterion(
        training.dataset == "fashion_mnist",
        "Trained on Fashion-MNIST.",
        f"This exercise is about Fashion-MNIST, but the run used {training.dataset}; switch the dataset.",
    )
    epochs = len(attempt.history)
    report.criterion(
        epochs <= FASHION_MAX_EPOCHS,
        f"Trained for {epochs} epochs (at most {FASHION_MAX_EPOCHS}).",
        f"The run took {epochs} epochs; stay within {FASHION_MAX_EPOCHS}.",
    )
    accuracy = _number(attempt.test_accuracy)
    report.criterion(
        accuracy is not None and accuracy >= FASHION_TARGET,
        f"Test accuracy {accuracy:.2%} reaches {FASHION_TARGET:.0%}." if accuracy is not None else "",
        f"Test accuracy {accuracy:.2%} is below {FASHION_TARGET:.0%}; try two Conv2D + MaxPool blocks, 'same' "
        "padding, or dropout before the dense layer." if accuracy is not None
        else "The run has no test accuracy; train to the end.",
    )
    return report.result()


def _fashion_start() -> Experiment:
    seed = presets.get("fashion_conv_dropout").experiment
    return replace(seed, training=replace(seed.training, epochs=FASHION_MAX_EPOCHS))


EXERCISES: dict[str, Exercise] = {
    exercise.key: exercise
    for exercise in [
        Exercise(
            key="single_conv_998",
            title="99.8% with one convolution",
            goal_text=(
                "The setup is the dense model of the previous lesson, run for 15 epochs. Turn it into a convnet "
                "that reaches at least 99.8% training accuracy on MNIST with a single Conv2D and a single "
                "pooling layer, in fewer than 20 epochs, with training stopping by itself when it gets there."
            ),
            hints=(
                "Add a Conv2D and a MaxPool: 'Add' puts them before Flatten, where they can see the image.",
                "Set the target accuracy to 0.998: training stops at the end of the first epoch that reaches it.",
                "32 or 64 filters in the convolution are plenty; a 128-unit dense layer after Flatten helps.",
                "If accuracy stalls around 99.5%, a learning rate of 0.001 with adam usually gets there in under ten epochs.",
            ),
            # Unchanged, this setup fails three criteria: no convolution, no pooling, no automatic stop.
            starting_experiment=Experiment(
                ModelSpec((Flatten(), Dense(128), Dense(10, "softmax")), name="single_conv"),
                TrainingConfig(dataset="mnist", epochs=15, validation_split=0.0),
            ),
            locked=frozenset({"dataset", "train_subset"}),
            check=_check_single_conv,
            source="Seed 002 — 'Improving Computer Vision Accuracy using Convolutions' exercise (L. Moroney).",
        ),
        Exercise(
            key="beat_dense_baseline",
            title="Beat the dense baseline with fewer weights",
            goal_text=(
                f"The dense baseline (Flatten → Dense 128 → Dense 10) has {DENSE_BASELINE_PARAMS:,} parameters and "
                f"reaches about {dense_baseline_accuracy('fashion_mnist'):.1%} test accuracy on Fashion-MNIST in 5 "
                "epochs. Build a convnet with fewer parameters that does better in the same 5 epochs."
            ),
            hints=(
                "Most of the baseline's weights sit in the first dense layer: 784 × 128 of them.",
                "A pooling layer before Flatten divides the number of inputs to the dense layer by four.",
                "Conv2D 16 → MaxPool → Conv2D 32 → MaxPool → Flatten → Dense 10 has about 13,000 parameters.",
            ),
            starting_experiment=presets.get("dense_baseline").experiment,
            locked=frozenset({"dataset", "epochs"}),
            check=_check_beat_dense,
            source="Seeds 001 and 002 — TensorFlow 'Basic classification' baseline vs. the convolution lesson.",
        ),
        Exercise(
            key="vertical_edge_kernel",
            title="A kernel that sees vertical edges",
            goal_text=(
                "Fill in a 3×3 kernel that responds strongly to a vertical edge (dark on one side, bright on "
                "the other) but hardly at all to a horizontal edge or a flat area."
            ),
            hints=(
                "The kernel is slid over the image; each output is the sum of kernel × pixels under it.",
                "Compare the left column of pixels with the right column: give them opposite signs.",
                "If the numbers add up to zero, flat areas give zero.",
            ),
            starting_experiment=None,
            locked=frozenset(),
            check=_check_vertical_kernel,
            source="Seed 002 — the hand-made filters of 'Exploring Convolutions' (L. Moroney).",
        ),
        Exercise(
            key="fashion_90_in_5",
            title="90% on Fashion-MNIST in five epochs",
            goal_text=(
                "The seed Fashion-MNIST notebook reaches 91.7% test accuracy in ten epochs. Reach at least "
                "90% test accuracy in at most five."
            ),
            hints=(
                "Two Conv2D + MaxPool blocks learn more useful features than one.",
                "Dropout between Flatten and the dense layer keeps the model from memorising the training set.",
                "A batch size of 64 gives more weight updates per epoch than 128.",
            ),
            starting_experiment=_fashion_start(),
            locked=frozenset({"dataset", "epochs"}),
            check=_check_fashion_fast,
            source="Seed Fashion-MNIST notebook — Keras CNN tutorial (conv32, pool, dropout, dense128).",
        ),
    ]
}


def get(key: str) -> Exercise:
    if key not in EXERCISES:
        raise UserError(f"Unknown exercise {key!r}; choose one of {', '.join(EXERCISES)}.")
    return EXERCISES[key]
