"""The page boundary for mistakes a user can make: show the sentence, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st


@contextmanager
def shown_as_error(stop: bool = True) -> Iterator[None]:
    """Turn a ValueError from cnn_core (always written for the user) into st.error; stop the page if asked."""
    try:
        yield
    except ValueError as error:
        st.error(str(error))
        if stop:
            st.stop()
