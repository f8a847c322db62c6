"""Core of the CNN learning app: specs, data, models, training, inference. No Streamlit here."""
