"""The page boundary for errors: a user's mistake is shown as its sentence, a bug as a short apology.

Only `UserError` messages reach the screen. Anything else (Keras's or NumPy's own ValueErrors
included) is logged with its traceback under a reference that the apology shows, so a visitor
can quote it and the log finds it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from cnn_core.engine.errors import UserError, message_for
from ui import text

logger = logging.getLogger("ui")


def message(error: BaseException, what: str = "A page failed") -> str:
    """The text to show for `error` (logging it with a reference unless it is a UserError)."""
    shown = message_for(error, logger, what)
    # A user's sentence may quote a file or model name they chose: escaped and scrubbed. The apology is ours.
    return text.message(shown) if isinstance(error, UserError) else shown


@contextmanager
def shown_as_error(stop: bool = True) -> Iterator[None]:
    """Show any exception inside as st.error (see `message`); stop the page if asked.

    Streamlit's own st.stop/st.rerun pass through: they are BaseExceptions, not Exceptions.
    """
    try:
        yield
    except Exception as error:
        st.error(message(error))
        if stop:
            st.stop()
