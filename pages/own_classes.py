"""Your own classes: define 2–10 classes, draw or upload examples, then train a CNN on them."""

import streamlit as st

from ui import own_classes
from ui.entry import start_page

start_page()

st.title("Your own classes")
st.caption(
    "Teach a CNN something new: name two to ten classes (circle, triangle, square; letters; arrows…), draw "
    "examples or upload a .zip of one folder per class, then train. Your pictures stay in your workspace."
)
own_classes.show()
