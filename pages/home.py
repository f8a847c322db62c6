"""Home: what the app is, where to start, and which model the other pages use."""

import streamlit as st

from ui import layout
from ui import state as app_state
from ui.components import model_picker
from ui.entry import start_page
from ui.text import plain

start_page()

state = app_state.get()

st.title("How a convolutional network sees")
st.markdown(
    "A convolutional neural network (CNN) reads an image through small filters that slide over it, "
    "keeps the strongest answers, and repeats — edges become strokes, strokes become digits. "
    "This app lets you **watch every step** on handwritten digits (MNIST) and clothing (Fashion-MNIST)."
)

card = model_picker.card(state.active_model)
with st.container(border=True):
    st.markdown("**Active model** — the one the Draw, Feature maps and Evaluate pages use")
    # A wrapping row of parts as wide as their text: in quarter-width columns at 800 px the metrics read "MNI…".
    with st.container(horizontal=True, wrap=True, gap="large", vertical_alignment="center", key="home-model"):
        st.subheader(plain(card.name), anchor=False, width="content")
        st.metric("Dataset", card.dataset_title, width="content")
        st.metric("Test accuracy", card.accuracy_text, width="content")
    st.caption(
        "Change it with the model picker on the Draw, Feature maps or Evaluate page; a model you train "
        "on the Train page becomes the active model when it finishes."
    )

st.subheader("Where to start")
# Wrapping, not three thirds: at 800 px the links were cut ("Compare rur").
left, middle, right = layout.wrapping_row("home-start", ["narrow", "narrow", "narrow"], gap="medium")
with left, st.container(border=True, height="stretch"):
    st.markdown("**1 · See**")
    st.markdown("Draw a digit and watch the model's guess change with every stroke, then look inside it.")
    st.page_link("pages/draw.py", label="Draw a digit", icon=":material/draw:")
    st.page_link("pages/feature_maps.py", label="Feature maps", icon=":material/layers:")
with middle, st.container(border=True, height="stretch"):
    st.markdown("**2 · Train**")
    st.markdown("Build a small CNN layer by layer, train it with live curves, and check where it fails.")
    st.page_link("pages/train.py", label="Train a CNN", icon=":material/model_training:")
    st.page_link("pages/evaluate.py", label="Evaluate", icon=":material/analytics:")
    st.page_link("pages/runs.py", label="Compare runs", icon=":material/stacked_line_chart:")
with right, st.container(border=True, height="stretch"):
    st.markdown("**3 · Explore**")
    st.markdown("Slide a 3×3 filter over an image by hand, and browse the two datasets.")
    st.page_link("pages/playground.py", label="Convolution playground", icon=":material/tune:")
    st.page_link("pages/datasets.py", label="Datasets", icon=":material/dataset:")

with st.container(border=True):
    st.markdown("**Workshop** — self-checking exercises from the classic Keras tutorials.")
    st.page_link("pages/exercises.py", label="Exercises", icon=":material/school:")

with st.container(border=True):
    st.markdown("**Your workspace**")
    st.caption(
        f"{len(state.models)} models of your own, {len(state.runs)} training runs. What you make is kept on the "
        "server under this page's address (the `ws=` part): bookmark it to come back later, or open it in "
        "another tab. Anyone you give the address to sees your work."
    )
    if state.models:
        st.text(f"Your models: {', '.join(state.models)}.")
    with st.popover("Start over", icon=":material/restart_alt:"):
        st.text("Delete all your models, runs and drawings and start with an empty workspace? This cannot be undone.")
        st.button("Yes, start over", key="home-start-over", type="primary", on_click=app_state.start_over)
