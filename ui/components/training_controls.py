"""Hyper-parameter controls: dataset, optimiser, learning rate and its schedule, batch size, epochs and stopping rules.

Values start from the session's `editor_training` (a preset, a shared link or an exercise) and are
written back on every run, so leaving the page and coming back keeps them. Fields named in
`locked` are shown but disabled.
"""

from __future__ import annotations

import dataclasses

import streamlit as st

from cnn_core.engine import registry, specs
from cnn_core.engine.specs import LR_SCHEDULES, OPTIMIZERS, TrainingConfig
from cnn_core.service.settings import Settings
from ui import errors, layout, own_classes
from ui import state as app_state

LEARNING_RATES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
SCHEDULE_LABELS = {
    "constant": "Constant",
    "cosine": "Cosine decay to 0",
    "one_cycle": "One cycle: warm up, then cosine to 0",
}


BATCH_SIZES = (16, 32, 64, 128, 256, 512)


def _stops(key: str, options: tuple, value) -> tuple:
    """The slider's usual stops plus `value`, so a preset's or a shared link's exact value is kept, not snapped.

    Fixed once per widget key (a new config brings a new key): stops that followed every move
    would make a new widget on each change.
    """
    stops_key = f"{key}-stops"
    if stops_key not in st.session_state:
        st.session_state[stops_key] = tuple(sorted({*options, value}))
    stops = st.session_state[stops_key]
    return stops if value in stops else tuple(sorted({*stops, value}))


def show(key: str, *, settings: Settings, locked: frozenset[str] = frozenset()) -> TrainingConfig | None:
    """Render the controls; return a validated config, or show what to fix and return None."""
    state = app_state.get()
    current = state.editor_training
    # Keys carry a generation so a preset, link or exercise that replaces the config resets the widgets.
    prefix = f"{key}-{state.training_generation}"

    def is_locked(name: str) -> bool:
        return name in locked

    # Wrapping, not st.columns(3): at 800 px a third of the width cut the checkboxes' labels ("Stop at a target ac…");
    # the checkbox column moves below the other two instead.
    left, middle, right = layout.wrapping_row(f"{key}-settings", ["narrow", "narrow", None], gap="medium")
    # Another learner's own classes are never offered; a deleted set of one's own falls back to the first.
    names = own_classes.choices()
    dataset = left.selectbox(
        "Dataset", names, names.index(current.dataset) if current.dataset in names else 0, format_func=registry.title,
        key=f"{prefix}-dataset", disabled=is_locked("dataset"),
    )
    optimizer = left.selectbox(
        "Optimizer", OPTIMIZERS, OPTIMIZERS.index(current.optimizer), key=f"{prefix}-optimizer",
        disabled=is_locked("optimizer"),
        help="adam adapts the step size per weight and is the usual first choice.",
    )
    learning_rate = left.select_slider(
        "Learning rate", _stops(f"{prefix}-lr", LEARNING_RATES, float(current.learning_rate)), float(current.learning_rate),
        key=f"{prefix}-lr",
        format_func=lambda rate: f"{rate:g}", disabled=is_locked("learning_rate"),
        help="How big each weight update is. Too high: the loss jumps around. Too low: it barely moves.",
    )
    lr_schedule = left.selectbox(
        "Learning-rate schedule", LR_SCHEDULES, LR_SCHEDULES.index(current.lr_schedule)
        if current.lr_schedule in LR_SCHEDULES else 0, format_func=SCHEDULE_LABELS.get,
        key=f"{prefix}-schedule", disabled=is_locked("lr_schedule"),
        help="Decaying the rate to 0 by the last step lets a short run settle into a good minimum; "
        "the learning rate above is the peak.",
    )
    epochs = middle.number_input(
        "Epochs", 1, settings.max_epochs, min(current.epochs, settings.max_epochs), key=f"{prefix}-epochs",
        disabled=is_locked("epochs"), help=f"Passes over the training images (at most {settings.max_epochs} here).",
    )
    batch_size = middle.select_slider(
        "Batch size", _stops(f"{prefix}-batch", BATCH_SIZES, int(current.batch_size)), int(current.batch_size),
        key=f"{prefix}-batch", disabled=is_locked("batch_size"),
        help="Images per weight update.",
    )
    validation_split = middle.slider(
        "Validation split", 0.0, 0.5, float(current.validation_split), step=0.05, key=f"{prefix}-val",
        disabled=is_locked("validation_split"),
        help="The share of training images held back to watch for overfitting.",
    )
    use_subset = right.checkbox(
        "Train on a subset", current.train_subset is not None, key=f"{prefix}-use-subset",
        disabled=is_locked("train_subset"), help="A few thousand images train in seconds: good for trying ideas.",
    )
    train_subset = None
    if use_subset:
        subset_default = min(current.train_subset or 5_000, settings.max_train_size)
        train_subset = int(right.number_input(
            "Training images", 100, settings.max_train_size, subset_default, step=500, key=f"{prefix}-subset",
            disabled=is_locked("train_subset"),
        ))
    use_target = right.checkbox(
        "Stop at a target accuracy", current.target_accuracy is not None, key=f"{prefix}-use-target",
        disabled=is_locked("target_accuracy"),
    )
    target_accuracy = None
    if use_target:
        target_accuracy = float(right.number_input(
            "Target training accuracy", 0.5, 1.0, float(current.target_accuracy or 0.99), step=0.005,
            format="%.3f", key=f"{prefix}-target", disabled=is_locked("target_accuracy"),
        ))
    # One compact field, empty for "off": the course's myCallback stops at a loss rather than an accuracy.
    # Streamlit answers an emptied field with the widget's default, so the default is None and the
    # starting value goes in through the session state, once per key; otherwise emptying could not turn it off.
    loss_key = f"{prefix}-target-loss"
    if loss_key not in st.session_state and current.target_loss is not None:
        st.session_state[loss_key] = float(current.target_loss)
    target_loss = right.number_input(
        "Stop at loss ≤", specs.MIN_TARGET_LOSS, specs.MAX_TARGET_LOSS, None, step=0.05, format="%.3f",
        placeholder="off", key=loss_key, disabled=is_locked("target_loss"),
        help="Like the course's callback: training stops at the end of the first epoch whose training loss is at "
        "or below this (0.4 on Fashion-MNIST takes a few epochs). Leave it empty to train every epoch.",
    )
    restore_best = right.checkbox(
        "Keep the best validation epoch", current.restore_best, key=f"{prefix}-restore",
        disabled=is_locked("restore_best"),
    )
    config = dataclasses.replace(
        current, dataset=dataset, optimizer=optimizer, learning_rate=float(learning_rate), lr_schedule=lr_schedule,
        epochs=int(epochs),
        batch_size=int(batch_size), validation_split=round(float(validation_split), 2), train_subset=train_subset,
        target_accuracy=target_accuracy, restore_best=restore_best,
        target_loss=None if target_loss is None else float(target_loss),
    )
    state.editor_training = config
    try:
        specs.validate_training(config, max_epochs=settings.max_epochs, max_train_size=settings.max_train_size)
    except Exception as error:
        st.error(errors.message(error))
        return None
    return config
