"""Entry point: builds the navigation over pages/ and runs the chosen page. Nothing else lives here."""

import streamlit as st

from ui.entry import refuse_bad_settings
from ui.errors import shown_as_error
from ui.images import app_icon
from ui.page_slots import slot

# A local picture: ":material/…" and emoji icons are fetched from a CDN, and the app must work offline.
st.set_page_config(page_title="How CNNs see", page_icon=app_icon(), layout="wide")
refuse_bad_settings()

navigation = st.navigation(
    {
        "Start": [st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)],
        "See": [
            st.Page("pages/draw.py", title="Draw a digit", icon=":material/draw:"),
            st.Page("pages/my_handwriting.py", title="My handwriting", icon=":material/edit_note:"),
            st.Page("pages/feature_maps.py", title="Feature maps", icon=":material/layers:"),
            st.Page("pages/explain.py", title="Explain a prediction", icon=":material/psychology:"),
        ],
        "Train": [
            st.Page("pages/train.py", title="Train a CNN", icon=":material/model_training:"),
            st.Page("pages/own_classes.py", title="Your own classes", icon=":material/category:"),
            st.Page("pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
            st.Page("pages/runs.py", title="Compare runs", icon=":material/stacked_line_chart:"),
        ],
        "Explore": [
            st.Page("pages/playground.py", title="Convolution playground", icon=":material/tune:"),
            st.Page("pages/datasets.py", title="Datasets", icon=":material/dataset:"),
        ],
        "Workshop": [
            st.Page("pages/exercises.py", title="Exercises", icon=":material/school:"),
            st.Page("pages/classroom.py", title="Class", icon=":material/groups:"),
        ],
    }
)
# A bug anywhere in a page is logged with a reference and shown as a short apology, never raw.
# Pages take turns (ui/page_slots.py), so a crowd on one page does not slow everyone's strokes.
with shown_as_error(stop=False), slot(navigation.url_path):
    navigation.run()
