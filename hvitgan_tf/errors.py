"""The one exception type for mistakes a user can fix (bad path, bad option, bad file).

The CLI turns a ``UserError`` into a one-line message and exit code 2, without a traceback;
anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input, with a message that says what was expected."""

    exit_code = 2
