"""More exercises from the seed notebooks' "Exploring convolutions" questions and the course's callback.

Each one is a question the notebooks leave to the learner (how many filters, how many
convolutions, which pooling, how small can the flattened layer get, when to stop training). They
share one rule: the starting setup alone never passes, so the learner has to change something and
look at what it did. Comparisons use the learner's earlier runs (`Attempt.earlier`), which the Exercises page
fills with the workspace's runs.
"""

from __future__ import annotations

from dataclasses import replace

from cnn_core.engine import specs
from cnn_core.engine.specs import Conv2D, Dense, Experiment, Flatten, ModelSpec, TrainingConfig
from cnn_core.workshop import presets
from cnn_core.workshop.exercises import (
    EXERCISES,
    Attempt,
    CheckResult,
    Exercise,
    _final,
    _kinds,
    _needs_training,
    _number,
    _Report,
)

# Small enough that a workshop of 30 gets through several runs each; big enough to compare.
SUBSET = 10_000
EPOCHS = 2
LOCKED = frozenset({"dataset", "epochs", "train_subset"})
# A change is worth comparing only when both runs trained on the same data for as long.
SAME_DATA_FIELDS = ("dataset", "epochs", "train_subset")


def _quick(experiment: Experiment, name: str) -> Experiment:
    training = replace(experiment.training, train_subset=SUBSET, epochs=EPOCHS, restore_best=False)
    return Experiment(replace(experiment.model, name=name), training)


def _convs(attempt: Attempt) -> list[Conv2D]:
    return [layer for layer in attempt.experiment.model.layers if isinstance(layer, Conv2D)]


def _comparable(attempt: Attempt) -> list[Attempt]:
    """Earlier finished runs on the same data as this one, newest first."""
    mine = attempt.experiment.training
    found = []
    for earlier in reversed(attempt.earlier):
        if earlier.experiment is None or _number(earlier.test_accuracy) is None:
            continue
        theirs = earlier.experiment.training
        if all(getattr(theirs, f) == getattr(mine, f) for f in SAME_DATA_FIELDS):
            found.append(earlier)
    return found


def _describe_run(attempt: Attempt, what: str) -> str:
    seconds = "" if attempt.seconds is None else f" in {attempt.seconds:.0f} s"
    params = "" if attempt.params is None else f", {attempt.params:,} parameters"
    return f"{what}: {attempt.test_accuracy:.2%}{seconds}{params}"


def _accuracy_floor(report: _Report, attempt: Attempt, floor: float, advice: str) -> None:
    accuracy = _number(attempt.test_accuracy)
    report.criterion(
        accuracy is not None and accuracy >= floor,
        f"Test accuracy {accuracy:.2%} (at least {floor:.0%})." if accuracy is not None else "",
        f"Test accuracy {accuracy:.2%} is below {floor:.0%}; {advice}"
        if accuracy is not None
        else "The run has no test accuracy; train to the end.",
    )


def _begin(attempt: Attempt, dataset: str) -> tuple[_Report, CheckResult | None]:
    """Every check's first steps: a finished run is needed, and on the exercise's dataset."""
    report = _Report()
    missing = _needs_training(attempt)
    if missing is None:
        _on_dataset(report, attempt, dataset)
    return report, missing


def _on_dataset(report: _Report, attempt: Attempt, dataset: str) -> None:
    used = attempt.experiment.training.dataset
    report.criterion(
        used == dataset,
        f"Trained on {dataset}.",
        f"This exercise is about {dataset}, but the run used {used}; load the exercise's setup again.",
    )


# (1) Seed 002, question 1: "Try editing the convolutions. Change the 32s to either 16 or 64."


def _first_filters(attempt: Attempt) -> int | None:
    convs = _convs(attempt)
    return convs[0].filters if convs else None


def _check_filters_compare(attempt: Attempt) -> CheckResult:
    report, missing = _begin(attempt, "fashion_mnist")
    if missing:
        return missing
    mine = _first_filters(attempt)
    report.criterion(mine is not None, "The model has convolutions.", "Keep the convolutions; change their filters.")
    others = [a for a in _comparable(attempt) if _first_filters(a) not in (None, mine)]
    report.criterion(
        bool(others),
        "You compared two filter counts on the same data.",
        f"Train the same model again with a different number of filters (this run has {mine}; try 16 or 64) "
        "and check again: the check compares your two latest runs.",
    )
    if others and mine is not None:
        other = others[0]
        report.messages.append(_describe_run(attempt, f"{mine} filters"))
        report.messages.append(_describe_run(other, f"{_first_filters(other)} filters"))
        report.messages.append(
            "More filters cost more time and weights; see whether the accuracy paid for it."
        )
    return report.result()


# (2) Seed 002, question 2: "Remove the final convolution. What impact on accuracy or training time?"


def _check_conv_count(attempt: Attempt, ok, success: str, advice: str, floor_advice: str) -> CheckResult:
    """Shared by the remove/add questions: the count of convolutions, an accuracy floor, and the
    learner's earlier run with a different count beside this one."""
    report, missing = _begin(attempt, "fashion_mnist")
    if missing:
        return missing
    count = len(_convs(attempt))
    report.criterion(ok(count), success.format(count=count), advice.format(count=count))
    _accuracy_floor(report, attempt, 0.80, floor_advice)
    other = next((a for a in _comparable(attempt) if len(_convs(a)) != count), None)
    if other is not None:
        report.messages.append(_describe_run(attempt, f"{count} convolution{'s' if count != 1 else ''}"))
        report.messages.append(_describe_run(other, f"{len(_convs(other))} convolutions"))
    return report.result()


def _check_remove_last(attempt: Attempt) -> CheckResult:
    return _check_conv_count(
        attempt, lambda count: count == 1, "One convolution left.",
        "The model has {count} convolutions; remove the last Conv2D (and its pooling) so one is left.",
        "keep a pooling layer after the convolution and the dense layer.",
    )


# (3) Seed 002, question 3: "How about adding more convolutions?"


def _check_add_convs(attempt: Attempt) -> CheckResult:
    return _check_conv_count(
        attempt, lambda count: count >= 3, "{count} convolutions.",
        "The model has {count} convolutions; add at least one more Conv2D before Flatten (use 'same' padding "
        "or fewer pools if the image gets too small).",
        "a deeper model needs its pools spaced out; try 'same' padding.",
    )


# (4) Seed 002, question 4: "Remove all convolutions but the first."

FIRST_ONLY_START = presets.get("conv32_64_64").experiment


def _check_first_only(attempt: Attempt) -> CheckResult:
    report, missing = _begin(attempt, "fashion_mnist")
    if missing:
        return missing
    convs = _convs(attempt)
    first = next(layer for layer in FIRST_ONLY_START.model.layers if isinstance(layer, Conv2D))
    report.criterion(
        len(convs) == 1,
        "Only one convolution left.",
        f"The model has {len(convs)} convolutions; delete every Conv2D but the first.",
    )
    report.criterion(
        len(convs) >= 1 and convs[0] == first,
        "It is the original first convolution.",
        f"Keep the first convolution as it was ({specs.describe(first)}); delete the others.",
    )
    _accuracy_floor(report, attempt, 0.80, "keep a pooling layer before Flatten.")
    return report.result()


# (5) Seed fashion notebook: max pooling keeps the strongest answer, average pooling the mean.


def _pool_kinds(attempt: Attempt) -> set[str]:
    return {kind for kind in _kinds(attempt.experiment.model) if kind in ("maxpool", "avgpool")}


def _check_max_vs_avg(attempt: Attempt) -> CheckResult:
    report, missing = _begin(attempt, "fashion_mnist")
    if missing:
        return missing
    mine = _pool_kinds(attempt)
    report.criterion(
        mine == {"avgpool"},
        "Every pooling layer is average pooling.",
        "Replace every MaxPool with an AvgPool of the same size, then train and check.",
    )
    with_max = [a for a in _comparable(attempt) if _pool_kinds(a) == {"maxpool"}]
    report.criterion(
        bool(with_max),
        "You trained the max-pooling version on the same data to compare.",
        "Train the starting model (max pooling) once too, so there is something to compare with.",
    )
    if mine == {"avgpool"} and with_max:
        difference = attempt.test_accuracy - with_max[0].test_accuracy
        report.messages.append(_describe_run(attempt, "average pooling"))
        report.messages.append(_describe_run(with_max[0], "max pooling"))
        report.messages.append(
            f"Average pooling is {abs(difference):.2%} {'better' if difference > 0 else 'worse'} here: max pooling "
            "keeps the strongest answer of each window, average pooling blurs it."
        )
    return report.result()


# (6) Seed 002's question about the flattened layer: how small can it get and stay as accurate?

SWEET_SPOT_START = Experiment(
    ModelSpec((Conv2D(16, 3), Flatten(), Dense(64), Dense(10, "softmax")), name="wide_flatten"),
    TrainingConfig(dataset="mnist", epochs=EPOCHS, train_subset=SUBSET, validation_split=0.0),
)
SWEET_SPOT_SHRINK = 4
SWEET_SPOT_TOLERANCE = 0.005


def flattened_size(model: ModelSpec) -> int | None:
    """How many numbers the Flatten layer hands to the dense layers (None without a Flatten)."""
    for layer, info in zip(model.layers, specs.infer_shapes(model, max_params=None), strict=True):
        if isinstance(layer, Flatten):
            return info.output_shape[-1]
    return None


START_FLATTENED = flattened_size(SWEET_SPOT_START.model)


def _check_sweet_spot(attempt: Attempt) -> CheckResult:
    report, missing = _begin(attempt, "mnist")
    if missing:
        return missing
    size = flattened_size(attempt.experiment.model)
    limit = START_FLATTENED // SWEET_SPOT_SHRINK
    report.criterion(
        size is not None and size <= limit,
        f"The flattened layer has {size:,} numbers (the start had {START_FLATTENED:,})." if size else "",
        f"The flattened layer has {size:,} numbers; get it to {limit:,} or fewer with pooling, a stride or "
        "fewer filters." if size else "Keep a Flatten layer before the dense layers.",
    )
    wide = [a for a in _comparable(attempt) if (flattened_size(a.experiment.model) or 0) > limit]
    if not wide:
        report.criterion(
            False, "", "Train the starting (wide) model once too, so the check can compare the two accuracies."
        )
        return report.result()
    reference = wide[0].test_accuracy
    accuracy = _number(attempt.test_accuracy)
    report.criterion(
        accuracy is not None and accuracy >= reference - SWEET_SPOT_TOLERANCE,
        f"As accurate: {accuracy:.2%} against the wide model's {reference:.2%}." if accuracy is not None else "",
        f"{accuracy:.2%} is more than half a point below the wide model's {reference:.2%}; shrink it less, or "
        "add a convolution before the pooling." if accuracy is not None
        else "The run has no test accuracy; train to the end.",
    )
    return report.result()


# (7) The Coursera course's callback ("myCallback"): stop once the training loss is low enough.

LOSS_GOAL = 0.4
# The course's dense model on all of Fashion-MNIST: one epoch ends near 0.5, the second near 0.37,
# so the starting single epoch cannot get there and a learner has to ask for more.
LOSS_START = Experiment(
    replace(presets.get("dense_baseline").model, name="stop_at_loss"),
    replace(presets.get("dense_baseline").training, epochs=1),
)


def _check_stop_at_loss(attempt: Attempt) -> CheckResult:
    report, missing = _begin(attempt, "fashion_mnist")
    if missing:
        return missing
    training = attempt.experiment.training
    target = _number(training.target_loss)
    report.criterion(
        target is not None and target <= LOSS_GOAL,
        f"The callback is set to stop at a training loss of {target:g}." if target is not None else "",
        f"Set 'Stop at loss ≤' to {LOSS_GOAL} so the callback ends the run by itself."
        if target is None
        else f"A target loss of {target:g} stops too easily; set it to {LOSS_GOAL} or lower, as the course does.",
    )
    # Whole epochs only: a run stopped by hand keeps a partial last epoch that the callback never judged.
    whole = [row for row in attempt.history if row.get("complete", True)]
    final = _final(whole, "loss")
    by_callback = attempt.stopped_reason == "loss_reached"
    if attempt.stopped_reason == "stopped":
        not_stopped = "You stopped the run by hand; start it again and let the callback stop it."
    elif attempt.stopped_reason == "target_reached":
        not_stopped = "The target accuracy stopped the run first; turn it off so the loss callback decides."
    elif target is None:
        not_stopped = "Without a target loss the run could only end at its last epoch."
    else:
        not_stopped = (
            f"The run used every epoch without the training loss reaching {target:g}; ask for more epochs "
            "(10 is plenty) or try a learning rate of 0.001 with adam."
        )
    report.criterion(by_callback, "The callback stopped the run.", not_stopped)
    asked = training.epochs
    report.criterion(
        len(whole) < asked,
        f"It stopped after {len(whole)} of the {asked} epochs asked for.",
        ("The run had a single epoch" if asked == 1 else f"The run used all {asked} epochs it was given")
        + "; ask for more than it needs (try 10), so that the callback, not the epoch count, is what ends it.",
    )
    if final is None:
        report.criterion(False, "", "The run recorded no training loss; train again.")
    elif target is None:
        report.criterion(False, "", f"The last epoch's training loss is {final:.3f}, but no target was set for the "
                                    "callback to compare it with.")
    else:
        report.criterion(
            final <= target,
            f"The last epoch's training loss is {final:.3f}, at or below {target:g}.",
            f"The last epoch's training loss is {final:.3f}, above {target:g}; give the run more epochs.",
        )
    return report.result()


def _two_conv64() -> Experiment:
    return _quick(presets.get("two_conv64").experiment, "two_conv64")


def _avg_start() -> Experiment:
    return _two_conv64()


SEED_EXERCISES: list[Exercise] = [
    Exercise(
        key="filters_16_32_64",
        title="16, 32 or 64 filters?",
        goal_text=(
            "The seed model uses 64 filters in each convolution. Train it, then train it again with 16 or 32, and "
            "compare accuracy, time and weights. Is the bigger model worth it?"
        ),
        hints=(
            "Change the filters of both Conv2D layers, leave everything else alone.",
            "The check compares your two latest runs on the same data.",
        ),
        starting_experiment=_two_conv64(),
        locked=LOCKED,
        check=_check_filters_compare,
        source="Seed 002 — 'Exploring convolutions', question 1 (L. Moroney).",
    ),
    Exercise(
        key="remove_last_conv",
        title="Remove the final convolution",
        goal_text="Remove the last convolution (and its pooling). What happens to accuracy and training time?",
        hints=("Delete the second Conv2D and the MaxPool after it.", "Train the original too, to compare."),
        starting_experiment=_two_conv64(),
        locked=LOCKED,
        check=_check_remove_last,
        source="Seed 002 — 'Exploring convolutions', question 2.",
    ),
    Exercise(
        key="add_convs",
        title="Add more convolutions",
        goal_text="Add convolutions until there are at least three. Does the accuracy keep rising?",
        hints=(
            "Each 3×3 'valid' convolution trims 2 pixels and each pool halves the image: 28 → 26 → 13 → 11 → 5.",
            "'same' padding keeps the size, so you can stack more.",
        ),
        starting_experiment=_two_conv64(),
        locked=LOCKED,
        check=_check_add_convs,
        source="Seed 002 — 'Exploring convolutions', question 3.",
    ),
    Exercise(
        key="first_conv_only",
        title="Keep only the first convolution",
        goal_text="Start from three convolutions and remove all but the first. How much accuracy does it cost?",
        hints=("Keep the first Conv2D and its MaxPool; delete the later Conv2D layers.",),
        starting_experiment=_quick(FIRST_ONLY_START, "conv32_64_64"),
        locked=LOCKED,
        check=_check_first_only,
        source="Seed 002 — 'Exploring convolutions', question 4; seed 003's three-convolution model.",
    ),
    Exercise(
        key="max_vs_avg_pool",
        title="Max or average pooling on Fashion-MNIST",
        goal_text="Train the model with max pooling, then with average pooling, and compare.",
        hints=("Replace each MaxPool with an AvgPool of the same size.",),
        starting_experiment=_avg_start(),
        locked=LOCKED,
        check=_check_max_vs_avg,
        source="Seed fashion notebook — pooling.",
    ),
    Exercise(
        key="flatten_sweet_spot",
        title="The sweet spot of the flattened layer",
        goal_text=(
            f"This model flattens {START_FLATTENED:,} numbers into its dense layer. Find a model whose flattened "
            f"layer is at most a quarter of that and that is as accurate (within half a point)."
        ),
        hints=(
            "A 2×2 MaxPool after the convolution divides the flattened size by four.",
            "A stride of 2 in the convolution does the same, with less work.",
            "Train the starting model once, so the check has its accuracy to compare with.",
        ),
        starting_experiment=SWEET_SPOT_START,
        locked=LOCKED,
        check=_check_sweet_spot,
        source="Seed 002 — the question of how small the flattened layer can get.",
    ),
    Exercise(
        key="stop_at_loss",
        title="Stop at a loss threshold",
        goal_text=(
            f"The course's callback: instead of guessing how many epochs are enough, let training stop by itself "
            f"once an epoch's training loss is {LOSS_GOAL} or lower. Set the target, give the run enough epochs, "
            "and check that the callback is what ended it."
        ),
        hints=(
            f"Set 'Stop at loss ≤' to {LOSS_GOAL}: after every epoch the callback compares that epoch's "
            "training loss with it.",
            "Ask for more epochs than the run needs, say 10; one epoch ends near a loss of 0.5.",
            "'Download as script' under a finished run shows the callback as plain Keras code.",
        ),
        starting_experiment=LOSS_START,
        # The accuracy target stays off, so the loss alone decides.
        locked=frozenset({"dataset", "train_subset", "target_accuracy"}),
        check=_check_stop_at_loss,
        source="Coursera 'Introduction to TensorFlow' — callbacks ('myCallback' stops at a loss of 0.4), "
        "Fashion-MNIST.",
    ),
]

EXERCISES.update({exercise.key: exercise for exercise in SEED_EXERCISES})
