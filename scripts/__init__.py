"""Reproducible jobs run from the command line, e.g. `python -m scripts.train_default_models`."""
