"""Compare runs: this workspace's training runs side by side — curves overlaid, settings and accuracy in a table."""

import altair as alt
import streamlit as st

from cnn_core.engine import registry
from ui import state as app_state
from ui.entry import start_page

start_page()

state = app_state.get()

st.title("Compare runs")
st.caption(
    "Every run you finish lands here (and stays after a reload), so you can see what a change of layer or "
    "setting did. Only you see your runs."
)

if not state.runs:
    st.info("No runs yet. Train a model on the **Train a CNN** page and come back.")
    st.page_link("pages/train.py", label="Train a CNN", icon=":material/model_training:")
    st.stop()

names = [run.name for run in state.runs]
chosen = st.multiselect("Runs to compare", names, default=names[-5:], key="runs-chosen")
runs = [run for run in state.runs if run.name in chosen]

def one_type_per_column(rows: list[dict]) -> list[dict]:
    """Columns that mix text with numbers ("all" beside 5000 images) as text, so Arrow can convert the table."""
    for column in {key for row in rows for key in row}:
        kinds = {type(row.get(column)) for row in rows if row.get(column) is not None}
        if str in kinds and len(kinds) > 1:
            for row in rows:
                value = row.get(column)
                row[column] = "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)
    return rows


st.dataframe(
    one_type_per_column([
        {
            "run": run.name,
            "dataset": registry.title(run.dataset),
            "test accuracy": run.test_accuracy,
            "parameters": run.params,
            "epochs run": len(run.history),
            "seconds": round(run.seconds, 1),
            "ended": run.stopped_reason.replace("_", " "),
            **run.settings,
            "layers": run.architecture,
        }
        for run in runs
    ]),
    hide_index=True, width="stretch",
    column_config={"test accuracy": st.column_config.ProgressColumn("test accuracy", format="percent",
                                                                    min_value=0.0, max_value=1.0)},
)

metric = st.segmented_control(
    "Curve", ("val_accuracy", "accuracy", "val_loss", "loss"), default="accuracy", required=True, key="runs-metric",
    format_func={"val_accuracy": "validation accuracy", "accuracy": "training accuracy",
                 "val_loss": "validation loss", "loss": "training loss"}.get,
)
rows = [
    {"epoch": row["epoch"] + 1, metric: row[metric], "run": run.name}
    for run in runs
    for row in run.history
    if row.get(metric) is not None
]
if rows:
    chart = alt.Chart(alt.Data(values=rows)).mark_line(point=True).encode(
        x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1)), y=alt.Y(f"{metric}:Q", scale=alt.Scale(zero=False)),
        color=alt.Color("run:N", legend=alt.Legend(orient="bottom", columns=1, labelLimit=600)),
        tooltip=["run:N", "epoch:Q", f"{metric}:Q"],
    )
    st.altair_chart(chart, height=380)
    st.caption("One point per epoch.")
else:
    st.info("None of the chosen runs recorded this curve (validation curves need a validation split above 0).")
