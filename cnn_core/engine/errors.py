"""The one exception type for what a user can cause and fix."""


class UserError(ValueError):
    """A problem the user caused and can fix; its message is one sentence saying what to change.

    The UI shows these messages as they are. Any other exception (Keras's and NumPy's own
    ValueErrors included) is a bug: it is logged with its traceback and the user sees a short apology.
    """
