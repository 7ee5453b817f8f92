"""Errors a user can cause: printed as one line, exit status 1, no traceback."""


class MinirunError(Exception):
    """Base of every error that is the user's input, not minirun's bug."""
    exit_code = 1


class UsageError(MinirunError):
    exit_code = 2


class NotFound(MinirunError):
    """Names something that does not exist (the API answers 404)."""


class Conflict(MinirunError):
    """Clashes with the current state: a name in use, a running container (409)."""


class NotModified(MinirunError):
    """Asks for what already is: start a started container (304)."""
