"""The live view of a training job: progress, ETA, loss and accuracy curves, and a Stop button.

The job trains in a background thread owned by the job queue; this view only reads its
`ProgressRecorder` snapshot, once a second, from a fragment. Leaving the page or rerunning it
does not touch the job, and the curves come back because the recorder keeps them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import altair as alt
import streamlit as st

from ui import charts, page_slots, timing

if TYPE_CHECKING:
    from cnn_core.engine.filmstrip import Filmstrip
    from cnn_core.engine.training import ProgressSnapshot
    from cnn_core.service.queue import TrainingJob

ACTIVE_STATES = ("queued", "running")


def precision_label(precision: str) -> str:
    """What the run's label says about its number format; empty for plain float32."""
    return "bfloat16" if precision == "bfloat16" else ""


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "estimating…"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"


# Curve names short enough that the legend is whole in a 230 px chart (800 px wide, sidebar open).
TRAINING_RUNNING = "training (running avg)"
TRAINING_EPOCH = "training (epoch end)"


def curve_rows(snapshot: ProgressSnapshot, metric: str) -> list[dict]:
    """Long-form rows (epochs, value, curve) for one metric: the batch curve plus epoch points."""
    batch_values = snapshot.batch_loss if metric == "loss" else snapshot.batch_accuracy
    rows = [
        {"epochs": position, metric: value, "curve": TRAINING_RUNNING}
        for position, value in zip(snapshot.batch_positions, batch_values, strict=False)
    ]
    for row in snapshot.epoch_history:
        if not row.get("complete", True):
            # A stopped run's last, partial epoch is not an end-of-epoch point.
            continue
        rows.append({"epochs": row["epoch"] + 1, metric: row[metric], "curve": TRAINING_EPOCH})
        if row.get(f"val_{metric}") is not None:
            rows.append({"epochs": row["epoch"] + 1, metric: row[f"val_{metric}"], "curve": "validation"})
    return rows


CURVES = {
    TRAINING_RUNNING: "#9ecae1",
    TRAINING_EPOCH: "#4c72b0",
    "validation": "#e4572e",
}
# A label this far along the x axis goes on the rule's left, or the chart's edge would cut it.
RIGHT_SIDE_FROM = 0.6


def curve_chart(rows: list[dict], metric: str, *, position: float | None = None, markers=(),
                overfitting: int | None = None, overfitting_side: str = "right"):
    """Batch curve as a thin line, epoch values as lines with points, one colour per curve.

    `position` (epochs) draws the filmstrip slider's place as a vertical rule; `markers`
    (learning-rate changes, pauses) and `overfitting` (an epoch) are labelled rules, a label on
    the rule's right unless its `side` is "left".
    """
    colour = alt.Color("curve:N", scale=alt.Scale(domain=list(CURVES), range=list(CURVES.values())),
                       legend=alt.Legend(orient="bottom", direction="vertical", title=None, labelLimit=400))
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("epochs:Q", title="epochs"),
        # No y title (the column's heading names the metric) and three significant digits (one point alone
        # was labelled "2.314608"): the legend starts where the plot does and was pushed off the edge.
        y=alt.Y(f"{metric}:Q", title=None, scale=alt.Scale(zero=False), axis=alt.Axis(format=".3~g")),
        color=colour,
        tooltip=["curve:N", alt.Tooltip("epochs:Q", format=".2f"), alt.Tooltip(f"{metric}:Q", format=".4f")],
    )
    batches = base.transform_filter(alt.datum.curve == "training (running average)").mark_line(strokeWidth=1.5)
    epochs = base.transform_filter(alt.datum.curve != "training (running average)").mark_line(point=True)
    chart = batches + epochs
    # Markers come as dicts or, from `show_curves` (whose chart shapes are cached), as tuples of items.
    rules = [dict(marker, kind="marker") for marker in markers]
    if overfitting is not None:
        rules.append({"epochs": overfitting, "label": f"overfitting from epoch {overfitting}", "kind": "overfitting",
                      "side": overfitting_side})
    if rules:
        marks = alt.Chart(alt.Data(values=rules)).encode(x="epochs:Q")
        colour = alt.condition(alt.datum.kind == "overfitting", alt.value("#b2182b"), alt.value("#777777"))
        chart += marks.mark_rule(strokeDash=[4, 3]).encode(color=colour, tooltip=["label:N"])
        for side, align, dx in (("right", "left", 3), ("left", "right", -3)):
            on_side = alt.datum.side == "left" if side == "left" else alt.datum.side != "left"
            chart += marks.transform_filter(on_side).mark_text(
                align=align, dx=dx, dy=-4, angle=0, fontSize=11, baseline="top").encode(
                text="label:N", color=colour, y=alt.value(2))
    if position is not None:
        chart += alt.Chart(alt.Data(values=[{"epochs": position}])).mark_rule(color="#222222", strokeWidth=2).encode(
            x="epochs:Q", tooltip=[alt.Tooltip("epochs:Q", title="filmstrip at epoch", format=".2f")])
    # Room on the right for the last tick's label ("2.0" was cut at the chart's edge).
    return chart.properties(padding={"left": 5, "top": 5, "right": 14, "bottom": 5})


def label_side(position: float, end: float) -> str:
    """Which side of its rule a label at `position` goes, on an x axis that ends at `end` (epochs)."""
    return "left" if end > 0 and position > RIGHT_SIDE_FROM * end else "right"


def show_curves(snapshot: ProgressSnapshot, position: float | None = None) -> None:
    """Loss and accuracy side by side; `position` marks the filmstrip's frame, overfitting is named."""
    from cnn_core.engine import health

    overfitting = health.overfitting_epoch(snapshot.epoch_history)
    end = max(snapshot.batch_positions[-1:] + [row["epoch"] + 1 for row in snapshot.epoch_history[-1:]], default=0)
    markers = tuple(tuple(sorted(dict(marker, side=label_side(marker["epochs"], end)).items()))
                    for marker in snapshot.markers)
    side = label_side(overfitting, end) if overfitting is not None else "right"
    loss_col, accuracy_col = st.columns(2)
    for column, metric in ((loss_col, "loss"), (accuracy_col, "accuracy")):
        rows = curve_rows(snapshot, metric)
        with column:
            st.markdown(f"**{metric.capitalize()}**")
            if rows:
                st.vega_lite_chart(charts.spec(curve_chart, rows, metric=metric, position=position, markers=markers,
                                               overfitting=overfitting, overfitting_side=side), height=300)
            else:
                st.caption("The curve appears after the first batch.")
    if overfitting is not None:
        st.warning(health.overfitting_sentence(overfitting))


def show_filmstrip_and_curves(strip: Filmstrip | None, snapshot: ProgressSnapshot, key: str) -> None:
    """The filmstrip's slider, the curves marked at its frame, then the frame's filters and feature maps."""
    from ui.components import filmstrip_view

    frame = None if strip is None else filmstrip_view.choose(strip, key)
    show_curves(snapshot, None if frame is None else frame.epochs)
    if frame is not None:
        filmstrip_view.show_frame(strip, frame)


def _set_learning_rate(job: TrainingJob, key: str) -> None:
    try:
        job.set_learning_rate(st.session_state[f"{key}-lr"])
    except ValueError as error:
        st.session_state[f"{key}-lr-error"] = str(error)


STEERING_BUTTONS = ("stop", "resume", "pause", "lr-apply")


def clicked(key: str) -> bool:
    """Whether this run follows a click on one of the live view's buttons (a button is True for one run)."""
    return any(st.session_state.get(f"{key}-{button}") for button in STEERING_BUTTONS)


def steering(job: TrainingJob, key: str) -> None:
    """Stop, pause or resume, and a new learning rate from the next batch on."""
    # One row that wraps where it runs out of room: in four equal columns, 800 px cut the labels short
    # ("Change lea…", then "Stop trai…").
    row = st.container(horizontal=True, vertical_alignment="bottom")
    row.button("Stop training", key=f"{key}-stop", on_click=job.stop, type="primary",
               help="Stops after the current batch; the model keeps what it learned so far.")
    if not job.steerable or job.state == "queued":
        # Nothing trains yet: pausing or a new learning rate would change nothing.
        return
    if job.paused:
        row.button("Resume", key=f"{key}-resume", on_click=job.resume,
                   help="Goes on with exactly the steps that were left.")
    else:
        row.button("Pause", key=f"{key}-pause", on_click=job.pause,
                   help="Holds training after the current batch; look around, then resume.")
    row.number_input("Learning rate", min_value=1e-6, max_value=10.0, value=job.experiment.training.learning_rate,
                     step=None, format="%g", key=f"{key}-lr", width=170)
    row.button("Change learning rate", key=f"{key}-lr-apply", on_click=_set_learning_rate, args=(job, key),
               help="Takes effect at the next batch and replaces any schedule; the curves mark the change.")
    error = st.session_state.pop(f"{key}-lr-error", None)
    if error:
        st.error(error)


def _progress(job: TrainingJob, snapshot: ProgressSnapshot) -> None:
    if job.service_unavailable:
        # Redis runner only: the last known progress stays on screen and comes back by itself.
        st.warning("The training service is unavailable right now; reconnecting…", icon=":material/cloud_off:")
    if job.state == "queued":
        position = job.queue_position
        st.info(
            f"Waiting for a free training slot (you are number {position} in the queue). "
            "Other runs are training right now; yours starts as soon as one finishes."
            if position else "Starting…"
        )
        return
    if snapshot.status == "waiting":
        st.progress(0.0, text="Preparing the data and building the model…")
        return
    text = (
        f"Epoch {min(snapshot.epoch + 1, snapshot.epochs)} of {snapshot.epochs} · "
        f"step {snapshot.step} of {snapshot.steps_per_epoch} · "
        f"about {format_seconds(snapshot.eta_seconds)} left"
    )
    label = precision_label(snapshot.precision)
    if label:
        # Mixed precision on a CPU with bfloat16 instructions: say so, it explains the speed.
        text = f"{text} · {label}"
    if snapshot.status == "running" and snapshot.fraction >= 1.0:
        # The last batch is done; the estimate still counts the test evaluation that follows.
        text = f"Measuring test accuracy… about {format_seconds(snapshot.eta_seconds)} left"
    if snapshot.status == "finished":
        text = "Measuring test accuracy…"
    elif snapshot.paused:
        text = f"Paused at epoch {min(snapshot.epoch + 1, snapshot.epochs)}, step {snapshot.step}: press Resume to go on"
    st.progress(snapshot.fraction, text=text)
    if snapshot.batch_loss:
        loss_col, accuracy_col, _ = st.columns(3)
        loss_col.metric("Loss (running average)", f"{snapshot.batch_loss[-1]:.4f}")
        accuracy_col.metric("Training accuracy", f"{snapshot.batch_accuracy[-1]:.2%}")


# The live view's refresh period, and a faster one while a started run has drawn no point yet, so the
# first point shows at most a quarter second after it exists instead of up to a second.
REFRESH_S = 1.0
FIRST_POINT_REFRESH_S = 0.25


def _awaiting_first_point(job: TrainingJob, snapshot: ProgressSnapshot) -> bool:
    return job.state == "running" and not snapshot.batch_loss


def needs_full_rerun(job: TrainingJob, snapshot: ProgressSnapshot, fast: bool) -> bool:
    """Whether the live view must rerun the whole page: the run ended, or its first point came.

    Only a run that was already training when the page was drawn refreshes fast. A run that waited
    in the queue and then started keeps the 1 s period: switching would cost two full Train page
    runs (into the fast period, then out of it), and in a workshop's drain, 28 of 30 runs start
    that way while the server is busiest. Its first point shows at most a second late.
    """
    return job.state not in ACTIVE_STATES or (fast and not _awaiting_first_point(job, snapshot))


def show(job: TrainingJob, *, key: str) -> None:
    """Draw the job's live view; when the job ends, rerun the whole page so it can show the result."""
    fast = _awaiting_first_point(job, job.progress.snapshot())

    @st.fragment(run_every=FIRST_POINT_REFRESH_S if fast else REFRESH_S)
    def live() -> None:
        started = timing.start()
        # A timed refresh takes its turn with the page runs (ui/page_slots.py); inside the page's own run it
        # has one, and one that carries a click (its callback already ran) shows its effect at once.
        with page_slots.slot("live view", urgent=clicked(key)):
            _live(started)

    def _live(started: float) -> None:
        snapshot = job.progress.snapshot()
        if needs_full_rerun(job, snapshot, fast):
            # Ended, or the fast refresh is no longer needed: a full rerun shows the result or sets the period.
            st.rerun()
        # The heartbeat tells the queue someone is still watching; abandoned jobs get stopped.
        job.heartbeat()
        _progress(job, snapshot)
        steering(job, key)
        if job.state != "queued":
            # A queued run has no curve or frame yet; in a workshop most watchers wait in the queue, and
            # each of their refreshes then sends 12 messages instead of 22.
            show_filmstrip_and_curves(job.filmstrip, snapshot, key)
        timing.record("live view", started)

    live()
