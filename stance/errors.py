"""The one exception type the command line turns into a clear message instead of a traceback."""


class StanceError(Exception):
    """An error a user can act on; the message names the file, line or row and what is wrong."""

    exit_code = 2


class SettingError(StanceError, ValueError):
    """A model or training setting out of range (a ValueError to Python callers)."""
