"""The one exception type for what a user can cause and fix, and the message for everything else."""

from __future__ import annotations

import logging
import secrets


class UserError(ValueError):
    """A problem the user caused and can fix; its message is one sentence saying what to change.

    The UI shows these messages as they are. Any other exception (Keras's and NumPy's own
    ValueErrors included) is a bug: it is logged with its traceback and the user sees a short apology.
    """


def new_reference() -> str:
    """A short id that ties an apology on screen to its traceback in the log."""
    return secrets.token_hex(4).upper()


def apology(reference: str) -> str:
    return f"Something went wrong on our side (reference {reference}). Please try again."


def report(error: BaseException, logger: logging.Logger, what: str = "Unexpected error") -> str:
    """Log `error` with its traceback under a new reference and return the apology to show for it."""
    reference = new_reference()
    logger.error("%s (reference %s)", what, reference, exc_info=error)
    return apology(reference)


def message_for(error: BaseException, logger: logging.Logger, what: str = "Unexpected error") -> str:
    """What a user may read about `error`: a UserError's own sentence, else a logged apology."""
    if isinstance(error, UserError):
        return str(error)
    return report(error, logger, what)
