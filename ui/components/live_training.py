"""The live view of a training job: progress, ETA, loss and accuracy curves, and a Stop button.

The job trains in a background thread owned by the job queue; this view only reads its
`ProgressRecorder` snapshot, once a second, from a fragment. Leaving the page or rerunning it
does not touch the job, and the curves come back because the recorder keeps them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import altair as alt
import streamlit as st

if TYPE_CHECKING:
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


def curve_rows(snapshot: ProgressSnapshot, metric: str) -> list[dict]:
    """Long-form rows (epochs, value, curve) for one metric: the batch curve plus epoch points."""
    batch_values = snapshot.batch_loss if metric == "loss" else snapshot.batch_accuracy
    rows = [
        {"epochs": position, metric: value, "curve": "training (running average)"}
        for position, value in zip(snapshot.batch_positions, batch_values, strict=False)
    ]
    for row in snapshot.epoch_history:
        if not row.get("complete", True):
            # A stopped run's last, partial epoch is not an end-of-epoch point.
            continue
        rows.append({"epochs": row["epoch"] + 1, metric: row[metric], "curve": "training (end of epoch)"})
        if row.get(f"val_{metric}") is not None:
            rows.append({"epochs": row["epoch"] + 1, metric: row[f"val_{metric}"], "curve": "validation"})
    return rows


CURVES = {
    "training (running average)": "#9ecae1",
    "training (end of epoch)": "#4c72b0",
    "validation": "#e4572e",
}


def curve_chart(rows: list[dict], metric: str):
    """Batch curve as a thin line, epoch values as lines with points, one colour per curve."""
    colour = alt.Color("curve:N", scale=alt.Scale(domain=list(CURVES), range=list(CURVES.values())),
                       legend=alt.Legend(orient="bottom", direction="vertical", title=None, labelLimit=400))
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("epochs:Q", title="epochs"),
        y=alt.Y(f"{metric}:Q", title=metric, scale=alt.Scale(zero=False)),
        color=colour,
        tooltip=["curve:N", alt.Tooltip("epochs:Q", format=".2f"), alt.Tooltip(f"{metric}:Q", format=".4f")],
    )
    batches = base.transform_filter(alt.datum.curve == "training (running average)").mark_line(strokeWidth=1.5)
    epochs = base.transform_filter(alt.datum.curve != "training (running average)").mark_line(point=True)
    return batches + epochs


def show_curves(snapshot: ProgressSnapshot) -> None:
    loss_col, accuracy_col = st.columns(2)
    for column, metric in ((loss_col, "loss"), (accuracy_col, "accuracy")):
        rows = curve_rows(snapshot, metric)
        with column:
            st.markdown(f"**{metric.capitalize()}**")
            if rows:
                st.altair_chart(curve_chart(rows, metric), height=300)
            else:
                st.caption("The curve appears after the first batch.")


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
    st.progress(snapshot.fraction, text=text)
    if snapshot.batch_loss:
        loss_col, accuracy_col, _ = st.columns(3)
        loss_col.metric("Loss (running average)", f"{snapshot.batch_loss[-1]:.4f}")
        accuracy_col.metric("Training accuracy", f"{snapshot.batch_accuracy[-1]:.2%}")


def show(job: TrainingJob, *, key: str) -> None:
    """Draw the job's live view; when the job ends, rerun the whole page so it can show the result."""

    @st.fragment(run_every=1)
    def live() -> None:
        if job.state not in ACTIVE_STATES:
            st.rerun()
        # The heartbeat tells the queue someone is still watching; abandoned jobs get stopped.
        job.heartbeat()
        snapshot = job.progress.snapshot()
        _progress(job, snapshot)
        st.button("Stop training", key=f"{key}-stop", on_click=job.stop, type="primary",
                  help="Stops after the current batch; the model keeps what it learned so far.")
        show_curves(snapshot)

    live()
