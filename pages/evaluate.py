"""Evaluate: the active model on the 10,000 test images — accuracy, per class, confusion, and its mistakes."""

import altair as alt
import numpy as np
import streamlit as st

from cnn_core.engine import evaluation
from cnn_core.engine.errors import UserError
from cnn_core.engine.model_cost import keras_model_cost
from ui import images, layout, loaders
from ui import state as app_state
from ui.components import explain_links, model_picker
from ui.entry import start_page
from ui.errors import shown_as_error
from ui.text import class_label, plain

start_page()

SHOWN = 20

state = app_state.get()

st.title("Evaluate")
st.caption("How well does the model do on test images it never saw while training, and where does it go wrong?")

name = model_picker.show("eval-model")
card = model_picker.card(name)
data = loaders.test_images(card.dataset, None)
names = data.class_names

default = app_state.default_dataset_of(name)
if default is not None:
    # The shipped models are shared, so their evaluation is computed once for everybody.
    with shown_as_error():
        state.evaluations[name] = loaders.default_evaluation(default)
elif name not in state.evaluations:
    with shown_as_error():
        predictor = loaders.predictor(name)
        total = len(data.x_test)
        bar = st.progress(0.0, text=f"Classifying the {total:,} test images…")
        counted = [0]

        def predict_batch(batch: np.ndarray) -> np.ndarray:
            probabilities = predictor.predict_batch(batch)
            counted[0] += len(batch)
            bar.progress(counted[0] / total, text=f"Classifying the test images… {counted[0]:,} of {total:,}")
            return probabilities

        try:
            flops = keras_model_cost(loaders.bundle(name).model).flops
        except UserError:  # a layer the cost model does not know: assume the worst
            flops = None
        # Small batches with pauses and a time budget: one visitor's model cannot starve the others.
        state.evaluations[name] = evaluation.evaluate(
            predict_batch, data, batch_size=evaluation.batch_size_for(flops),
            time_budget_s=loaders.settings().evaluate_budget_s, pause_fraction=0.5)
        bar.empty()
result = state.evaluations[name]
if not result.complete:
    st.info(f"This model is slow, so it was scored on the first {len(result.labels):,} of the "
            f"{result.requested:,} test images (the time this server gives one evaluation).",
            icon=":material/timer:")



def confusion_chart(confusion: np.ndarray, class_names) -> alt.Chart:
    """The confusion matrix as a clickable heat map: counts in the cells, mistakes in one colour, hits in another."""
    rows = [
        {"true": t, "predicted": p, "true class": class_label(class_names, t),
         "predicted class": class_label(class_names, p), "images": int(confusion[t, p]),
         "kind": "right" if t == p else "wrong"}
        for t in range(len(class_names)) for p in range(len(class_names))
    ]
    order = [class_label(class_names, i) for i in range(len(class_names))]
    cell = alt.selection_point(name="cell", fields=["true", "predicted"], on="click", clear=False)
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("predicted class:N", sort=order, title="predicted", axis=alt.Axis(orient="top", labelAngle=0)),
        y=alt.Y("true class:N", sort=order, title="true"),
        tooltip=["true class:N", "predicted class:N", "images:Q"],
    )
    # Mistakes are shaded on their own scale, or the big diagonal would make every mistake look white.
    heat = base.mark_rect(stroke="white").encode(
        color=alt.condition(
            alt.datum.kind == "right", alt.value("#d6e4f0"),
            alt.Color("images:Q", scale=alt.Scale(scheme="oranges", type="symlog"), legend=None),
        ),
        opacity=alt.condition(cell, alt.value(1.0), alt.value(0.55)),
    ).add_params(cell)
    counts = base.mark_text(fontSize=11).encode(text=alt.condition(alt.datum.images > 0, "images:Q", alt.value("")))
    return (heat + counts).properties(height=360)


def show_images(indices: np.ndarray) -> None:
    """Test images captioned 'true → predicted (confidence)'."""
    st.image(
        [images.enlarge(data.x_test[i], 84) for i in indices],
        caption=[f"{names[result.labels[i]]} → {names[result.predictions[i]]} ({result.confidences[i]:.0%})"
                 for i in indices],
        width=104, output_format="PNG",
    )


wrong = int(np.sum(result.predictions != result.labels))
# Wrapping rows: in thirds of an 800 px window "45 of 10,000" showed as "45 of 1…".
accuracy_col, wrong_col, worst_col = layout.wrapping_row("eval-metrics", ["narrow", "narrow", "narrow"], gap="medium")
accuracy_col.metric("Test accuracy", f"{result.accuracy:.2%}")
wrong_col.metric("Mistakes", f"{wrong:,} of {len(result.labels):,}")
worst = int(np.nanargmin(result.per_class_accuracy))
worst_col.metric("Hardest class", class_label(names, worst), f"{result.per_class_accuracy[worst]:.1%} right",
                 delta_color="off", delta_arrow="off")

off_diagonal = result.confusion.copy()
np.fill_diagonal(off_diagonal, 0)
common_true, common_predicted = np.unravel_index(int(off_diagonal.argmax()), off_diagonal.shape)
true_key, predicted_key, matrix_key = f"eval-{name}-true", f"eval-{name}-predicted", f"eval-{name}-matrix"
# The cell shown below starts at the most common mistake; a click on the matrix or the two boxes change it.
st.session_state.setdefault(true_key, int(common_true))
st.session_state.setdefault(predicted_key, int(common_predicted))


def _pick_cell() -> None:
    picked = st.session_state[matrix_key].selection.get("cell") or []
    if picked:
        st.session_state[true_key] = int(picked[0]["true"])
        st.session_state[predicted_key] = int(picked[0]["predicted"])


matrix_col, classes_col = layout.wrapping_row("eval-charts", ["wide", "narrow"])
with matrix_col:
    st.subheader("Confusion matrix")
    st.altair_chart(confusion_chart(result.confusion, names), key=matrix_key, on_select=_pick_cell,
                    selection_mode="cell", width="stretch")
    st.caption("Rows are the true class, columns the model's answer. Everything off the diagonal is a mistake. "
               "Click a cell to see its images below.")
with classes_col:
    st.subheader("Accuracy per class")
    rows = [{"class": class_label(names, i), "accuracy": float(a)} for i, a in enumerate(result.per_class_accuracy)]
    # Start the axis just below the worst class: on a 0–1 axis every bar of a good model looks the same.
    low = max(0.0, float(np.floor((np.nanmin(result.per_class_accuracy) - 0.01) * 50) / 50))
    bars = alt.Chart(alt.Data(values=rows)).encode(
        y=alt.Y("class:N", sort=None, title=None),
        x=alt.X("accuracy:Q", scale=alt.Scale(domain=[low, 1.0], clamp=True), axis=alt.Axis(format="%")),
        tooltip=["class:N", alt.Tooltip("accuracy:Q", format=".2%")],
    )
    chart = bars.mark_bar(color="#4c72b0", clip=True) + bars.mark_text(align="left", dx=3).encode(
        text=alt.Text("accuracy:Q", format=".1%")
    )
    st.altair_chart(chart, height=360)
    st.caption(f"The axis starts at {low:.0%} so the differences show.")

st.subheader("Look at one cell")
true_col, predicted_col = st.columns(2)
true_class = true_col.selectbox("True class", range(len(names)), key=true_key,
                                format_func=lambda i: class_label(names, i))
predicted_class = predicted_col.selectbox("Predicted as", range(len(names)), key=predicted_key,
                                          format_func=lambda i: class_label(names, i))
indices = evaluation.mistakes(result, int(true_class), int(predicted_class))
kind = "correct answers" if true_class == predicted_class else "mistakes"
if len(indices) == 0:
    st.info(f"No test image of {plain(names[true_class])} was classified as {plain(names[predicted_class])}.")
else:
    shown = indices[:SHOWN]
    st.caption(f"{len(indices):,} {kind}; the {len(shown)} the model was surest about:")
    show_images(shown)
    explain_links.test_images(shown, result.labels, result.predictions, names, f"eval-{name}-explain-cell")

st.subheader("The most confident mistakes")
st.caption("Wrong, and sure of it. Some are the model's fault; some test labels are arguable.")
confident = evaluation.most_confident_mistakes(result, SHOWN)
if len(confident):
    show_images(confident)
    explain_links.test_images(confident, result.labels, result.predictions, names, f"eval-{name}-explain-worst")
else:
    st.success("No mistakes at all.")
