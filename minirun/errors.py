"""Errors a user can cause: printed as one line, exit status 1, no traceback."""

# A run's exit codes when its command never ran (Docker's): the runtime failed, the
# command is not executable, the command is not found.
EXIT_RUNTIME = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


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


class StepError(MinirunError):
    """A system call failed during a named step (see ``step``)."""


class step:
    """``with step("mounting /sys"):`` turns an OSError into "mounting /sys: Operation not
    permitted" — the step first, then the kernel's reason (crun and runc word them so)."""

    def __init__(self, what):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, error, _traceback):
        if isinstance(error, OSError):
            raise StepError(f"{self.what}: {error.strerror or error}") from error
        return False
