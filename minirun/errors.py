"""Errors a user can cause: printed as one line, exit status 1, no traceback."""


class MinirunError(Exception):
    """Base of every error that is the user's input, not minirun's bug."""
    exit_code = 1


class UsageError(MinirunError):
    exit_code = 2
