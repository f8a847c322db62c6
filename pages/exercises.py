"""Workshop: self-checking exercises. Read the goal, start from the given setup, run it, check it."""

import numpy as np
import streamlit as st

from cnn_core.engine import ops
from cnn_core.engine.specs import Experiment
from cnn_core.workshop import exercises
from cnn_core.workshop.exercises import EXERCISES, Attempt
from ui import classroom, images, layout, loaders
from ui import state as app_state
from ui.components import kernel_editor, layer_editor, run_panel, training_controls
from ui.entry import start_page
from ui.text import plain

start_page()

state = app_state.get()
settings = loaders.settings()

st.title("Workshop exercises")
st.caption("Each exercise checks itself: do the work, press **Check**, and read what passed and what to try next.")

classroom.handout_banner(state, "exercises")
key = st.selectbox("Exercise", list(EXERCISES), format_func=lambda k: EXERCISES[k].title, key="exercise-pick")
exercise = EXERCISES[key]

with st.container(border=True):
    st.markdown(f"**Goal.** {exercise.goal_text}")
    with st.expander("Hints"):
        for number, hint in enumerate(exercise.hints, start=1):
            st.markdown(f"{number}. {hint}")
    if exercise.source:
        st.caption(f"From {exercise.source}")


def show_check(result: exercises.CheckResult) -> None:
    if result.passed:
        st.success("Passed! " + " ".join(result.messages))
    else:
        st.error("Not yet.")
    for message in result.messages:
        st.markdown(f"- {message}")


if exercise.needs_kernel:
    # The kernel keeps the width of its nine cells; the pictures take the rest (or go below it).
    kernel_col, preview_col = layout.wrapping_row(f"exercise-{key}", [kernel_editor.EDITOR_PX, None])
    with kernel_col:
        st.markdown("**Your 3×3 kernel**")
        kernel = kernel_editor.show(f"exercise-{key}", default=kernel_editor.ZERO, allow_presets=False)
        checked = st.button("Check", key=f"exercise-{key}-check", type="primary")
    with preview_col:
        st.markdown("**What it answers** (strongest response to each test picture, and the filtered result)")
        responses = exercises.kernel_responses(kernel)
        step = np.zeros((16, 16))
        step[:, 8:] = 1.0
        pictures = {"vertical": ("vertical edge", step), "horizontal": ("horizontal edge", step.T),
                    "flat": ("flat grey", np.full((16, 16), 0.5))}
        columns = st.columns(len(pictures) + 1)
        for column, (name, (caption, picture)) in zip(columns, pictures.items(), strict=False):
            column.image(images.enlarge(picture, 120, frame=True), caption=caption, output_format="PNG")
            column.image(images.enlarge(ops.conv2d(picture, kernel), 120, signed=True, frame=True),
                         caption=f"its answer (strongest {responses[name]:.2f})", output_format="PNG")
        digit = loaders.test_images("mnist", 1).x_test[0, ..., 0]
        filtered = ops.conv2d(digit, kernel, padding="same")
        columns[-1].image(images.enlarge(digit, 120), caption="a digit", output_format="PNG")
        columns[-1].image(images.enlarge(filtered, 120, signed=True), caption="filtered", output_format="PNG")
        st.caption("Grey is zero, white is a strong positive answer, black a strong negative one.")
    if checked:
        result = exercise.check(Attempt(kernel=kernel))
        classroom.note_check(state, key, result.passed, Attempt(kernel=kernel))
        show_check(result)
else:

    def _start_exercise() -> None:
        state.load_experiment(exercise.starting_experiment, exercise.locked)
        state.exercise_key = key

    if state.exercise_key != key:
        st.button("Start from this exercise's setup", key=f"exercise-{key}-load", type="primary",
                  on_click=_start_exercise)
        st.caption("This loads the exercise's model and settings; some fields are fixed by the exercise.")
    else:
        build_col, run_col = st.columns([3, 2], gap="large")
        with build_col:
            st.subheader("Model")
            spec = layer_editor.show(
                f"exercise-{key}-layers", max_params=settings.max_params, disabled="layers" in state.locked,
            )
            st.subheader("Training settings")
            config = training_controls.show(f"exercise-{key}-settings", settings=settings, locked=state.locked)
        experiment = Experiment(spec, config) if spec is not None and config is not None else None
        with run_col:
            st.subheader("Run")
            run_panel.show(f"exercise-{key}-run", experiment)
            st.subheader("Check")
            latest = state.runs[-1] if state.runs else None
            if latest is None:
                st.caption("Train a model first; the check looks at your latest finished run.")
            else:
                st.caption(f"Checks your latest run: {plain(latest.name)}.")
            if st.button("Check", key=f"exercise-{key}-check", disabled=latest is None):

                def as_attempt(run, earlier=()) -> Attempt:
                    return Attempt(
                        experiment=run.experiment, history=run.history, test_accuracy=run.test_accuracy,
                        stopped_reason=run.stopped_reason, params=run.params, seconds=run.seconds,
                        earlier=earlier,
                    )

                # Exercises that compare look at the earlier runs too.
                attempt = as_attempt(latest, tuple(as_attempt(r) for r in state.runs[:-1]))
                result = exercise.check(attempt)
                classroom.note_check(state, key, result.passed, attempt)
                show_check(result)
