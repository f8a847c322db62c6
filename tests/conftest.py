"""Shared test set-up: quiet TensorFlow start-up and the repository root for tests that need paths."""

import os
from pathlib import Path

# Set before anything imports TensorFlow, so its C++ start-up chatter stays out of test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parent.parent
