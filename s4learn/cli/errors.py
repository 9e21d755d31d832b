"""The error that the ``s4learn`` command reports as one line."""


class UsageError(Exception):
    """Bad input from the user: reported as one line on stderr, exit status 2."""
