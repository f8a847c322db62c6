"""Dataset explorer: sample images with their class names, class balance, and the mean image per class."""

import numpy as np
import streamlit as st

from cnn_core.engine import registry
from ui import images, layout, loaders, own_classes
from ui.entry import start_page
from ui.text import class_label, plain

start_page()

SAMPLES = 40
# The training images samples are drawn from: about 600 per class of MNIST, 19 MB instead of the set's 188 MB.
TRAIN_POOL = 6_000
# Drawn in the browser: the server sends ten counts, not a picture.
BALANCE_CHART = {
    "height": 260,
    "layer": [
        {"mark": {"type": "bar", "color": "#4c72b0", "cornerRadiusEnd": 2},
         "encoding": {
             "x": {"field": "class", "type": "nominal", "sort": None, "title": None, "axis": {"labelAngle": -45}},
             "y": {"field": "images", "type": "quantitative", "title": "images"},
             "tooltip": [{"field": "class"}, {"field": "images", "format": ","}],
         }},
        {"mark": {"type": "rule", "color": "#e4572e", "strokeDash": [4, 3]},
         "encoding": {"y": {"aggregate": "mean", "field": "images", "type": "quantitative"}}},
    ],
}

st.title("Datasets")
facts = st.empty()

name_col, split_col, class_col = st.columns(3)
name = name_col.selectbox("Dataset", own_classes.choices(), format_func=registry.title, key="datasets-name")
split = split_col.radio("Part", ("train", "test"), horizontal=True, key="datasets-split",
                        format_func={"train": "training images", "test": "test images"}.get)
info = registry.get(name)
names = info.class_names
# Said after the choice: the learner's own classes have their own classes and sizes.
facts.caption(f"{plain(info.title)}: 28×28 grey images in {len(names)} classes, {info.train_size:,} for training and "
              f"{info.test_size:,} for testing. A model only ever learns from what is in here.")
classes = class_col.multiselect(
    "Show only these classes", range(len(names)), format_func=lambda i: class_label(names, i), key=f"datasets-{name}-classes",
    placeholder="all classes",
)
# Samples only: the server never holds a whole training set for this page (counts come from the labels alone).
data = loaders.train_images(name, TRAIN_POOL) if split == "train" else loaders.test_images(name, None)
x, y = (data.x_train, data.y_train) if split == "train" else (data.x_test, data.y_test)
every_label = loaders.labels(name, split)
part = "training" if split == "train" else "test"

chosen = np.flatnonzero(np.isin(y, classes)) if classes else np.arange(len(y))
seed = st.session_state.setdefault("datasets-seed", 0)
if st.button("Show other examples", key="datasets-shuffle"):
    seed = st.session_state["datasets-seed"] = seed + 1
picks = np.random.default_rng(seed).choice(chosen, size=min(SAMPLES, len(chosen)), replace=False)
picks.sort()
in_chosen = int(np.isin(every_label, classes).sum()) if classes else len(every_label)
pool = f" (picked among the first {len(y):,})" if len(y) < len(every_label) else ""
st.caption(f"{len(picks)} of {in_chosen:,} {part} images{pool}, each labelled with its class.")
st.image([images.enlarge(x[i], 84) for i in picks], caption=[f"{names[y[i]]}" for i in picks], width=84,
         output_format="PNG")

st.subheader("Mean image per class")
means = loaders.class_means(name, split)
shown = classes or range(len(names))
st.image([images.png(images.enlarge(means[i], 84)) for i in shown], caption=[names[i] for i in shown])
st.caption("The average of every image in a class: blurry where the class varies a lot, sharp where its members "
           "agree." + (" Only the classes chosen above; clear the choice to see all." if classes else ""))

# A wrapping row: in two fifths of an 800 px window the note was a column of two-word lines.
balance_col, note_col = layout.wrapping_row("datasets-balance", ["wide", "narrow"])
counts = np.bincount(every_label, minlength=len(names))
with balance_col:
    st.subheader("Class balance")
    st.vega_lite_chart({"class": [class_label(names, i) for i in range(len(names))], "images": counts.tolist()},
                       BALANCE_CHART, width="stretch")
    st.caption(f"{int(counts.sum()):,} {part} images; the dashed line is "
               "the mean per class.")
    if classes:
        st.caption("Every class is shown here, whatever the choice above, so the chosen ones can be compared with "
                   "the rest.")
with note_col:
    st.subheader("Why it matters")
    if counts.min() == counts.max():
        balance = f"Every class has exactly **{counts.min():,}** images: the set is perfectly balanced."
    else:
        balance = (
            f"Smallest class: **{class_label(names, int(counts.argmin()))}** ({counts.min():,} images); largest: "
            f"**{class_label(names, int(counts.argmax()))}** ({counts.max():,})."
        )
    st.markdown(
        f"{balance} Classes of about the same size mean a model cannot score well by always guessing the most "
        "common class, so accuracy is a fair summary."
    )
