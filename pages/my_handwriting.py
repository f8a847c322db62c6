"""Teach it your handwriting: draw each digit a few times, then fine-tune a model on your drawings."""

import numpy as np
import streamlit as st

from cnn_core.engine import preprocess
from ui import handwriting, images, layout, loaders
from ui import state as app_state
from ui.components import canvas, model_picker
from ui.entry import start_page
from ui.errors import shown_as_error
from ui.text import plain

TARGET = 5

start_page()

state = app_state.get()
settings = loaders.settings()
workspace = state.workspace

st.title("Teach it your handwriting")
st.caption(
    f"Draw each digit {TARGET} times. The model is tested on one drawing of each digit that it never learns "
    "from, then fine-tuned on the rest in a few seconds, and you see before → after on your drawings and "
    "on the MNIST test set (it must not forget MNIST). Your drawings stay in your workspace."
)

drawn_images, drawn_labels = handwriting.load(workspace)
counts = np.bincount(drawn_labels, minlength=10) if len(drawn_labels) else np.zeros(10, int)
suggested = int(np.argmin(counts))


def _add(image) -> None:
    with shown_as_error(stop=False):
        handwriting.add(workspace, image, int(st.session_state["hw-label"]))
        st.session_state["hw-clears"] = st.session_state.get("hw-clears", 0) + 1
        st.session_state.pop("hw-label", None)


# The canvas keeps its own fixed-width column, as on Draw: never clipped at 800 px or on a phone.
draw_col, info_col = layout.canvas_columns("hw")
with draw_col:
    st.subheader(f"Draw a {suggested}" if counts.min() < TARGET else "Draw any digit")
    rgba = canvas.show(key="hw-canvas", clears=st.session_state.get("hw-clears", 0))
    image = None if rgba is None else preprocess.canvas_to_mnist(rgba)
    st.selectbox("It is a", list(range(10)), index=suggested, key="hw-label")
    st.button("Add to my handwriting", type="primary", disabled=image is None, key="hw-add",
                   on_click=_add, args=(image,), width="stretch")

with info_col:
    st.subheader(f"Your drawings ({len(drawn_labels)})")
    # One short line: a ten-column table is cut off in a half-width column.
    st.text("  ".join(f"{d}: {int(counts[d])}" for d in range(10)))
    if len(drawn_labels):
        latest = drawn_images[-20:]
        tiles = np.concatenate([np.pad(t, 1) for t in latest], axis=1)
        st.image(images.png(images.to_uint8(np.kron(tiles, np.ones((3, 3))))),
                 caption="Your newest drawings, as the model sees them (28×28).")
        left, right = st.columns(2)
        left.download_button("Download (.npz)", handwriting.to_npz(drawn_images, drawn_labels),
                             file_name="my_handwriting.npz", mime="application/octet-stream", key="hw-download")
        if right.button("Delete the last one", key="hw-delete-last"):
            handwriting.delete(workspace, len(drawn_labels) - 1)
            st.rerun()
        if st.checkbox("I want to delete all my drawings", key="hw-delete-all-confirm") and st.button(
            "Delete all", key="hw-delete-all"
        ):
            handwriting.delete(workspace)
            st.rerun()

st.divider()
st.subheader("Teach a model")
name = model_picker.show("hw-model", dataset="mnist", allow_upload=False)
base = loaders.bundle(name)
if len(drawn_labels):
    from cnn_core.engine import finetune

    # Every stroke reruns the page: score the drawings once per (model, set of drawings), not per stroke.
    scored_for = (name, len(drawn_labels), drawn_images.sum().item())
    if st.session_state.get("hw-scored", (None, 0.0))[0] != scored_for:
        st.session_state["hw-scored"] = (scored_for, finetune.accuracy(base.model, drawn_images, drawn_labels))
    right_now = st.session_state["hw-scored"][1]
    st.text(f"{name} reads {right_now:.0%} of your {len(drawn_labels)} drawings right now.")
mode = st.radio(
    "What learns", ["head", "all"], horizontal=True, key="hw-mode",
    format_func={"head": "only the dense layers (fast; what it sees stays)",
                 "all": "every layer, gently"}.get,
    help="Measured on 5 drawings per digit: the dense layers alone generalised better to held-out drawings "
         "(BENCHMARKS.md, bench.finetune).",
)
lesson = handwriting.lesson_for(state.session_id)
running = lesson is not None and lesson.state == "running"
if st.button("Teach it my handwriting", type="primary", disabled=running or counts.min() < 2, key="hw-teach"):
    with shown_as_error(stop=False):
        handwriting.teach(state.session_id, base, name, drawn_images, drawn_labels, mode,
                          slots=settings.max_concurrent_jobs)
        st.rerun()
if counts.min() < 2:
    st.caption("Draw every digit at least twice first (one of each is kept back for the test).")


@st.fragment(run_every=1)
def lesson_view() -> None:
    lesson = handwriting.lesson_for(state.session_id)
    if lesson is None:
        return
    if lesson.state == "running":
        st.info(f"Learning your handwriting… ({lesson.mode})", icon=":material/hourglass_top:")
        return
    if lesson.state == "failed":
        st.error(lesson.error)
        return
    f = lesson.figures
    held, mnist = st.columns(2)
    held.metric("Your held-out drawings", f"{f['held-out after']:.0%}",
                delta=f"{100 * (f['held-out after'] - f['held-out before']):+.0f} points")
    mnist.metric("MNIST test", f"{f['MNIST test after']:.2%}",
                 delta=f"{100 * (f['MNIST test after'] - f['MNIST test before']):+.2f} points")
    st.caption(f"Taught with {f['taught with']} drawings in {f['seconds']:.1f} s; tested on {f['held out']} "
               "drawings it never saw.")
    if not lesson.taken:
        # Kept once, in this workspace: a model like any other from now on.
        lesson.taken = True
        lesson.kept_as = state.add_model(lesson.bundle)
        st.rerun(scope="app")
    st.success(f"Your model is ready and active on every page (Draw, Feature maps, Explain, Evaluate): "
               f"{plain(lesson.kept_as)}")


lesson_view()
