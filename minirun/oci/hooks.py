"""A bundle's hooks: programs the runtime runs at points of a container's life.

    prestart, createRuntime   create, once the namespaces exist    runtime's namespaces
    createContainer           create, in the container's mount ns  (init.py runs them)
    startContainer            start, just before the user's process (init.py)
    poststart                 start, once the process runs         runtime's namespaces
    poststop                  delete                               runtime's namespaces

Each gets the container's state (the runtime spec's JSON) on its stdin. A
failing hook before the start fails the create or start; a failing poststart
or poststop only warns (the spec's rule: the container is already running, or
already gone).
"""
import _signal as signal   # signal.py's C core, without its enums (docs/architecture.md)

from .. import cjson
from ..errors import MinirunError
from ..runtime.spec import env_dict


class HookError(MinirunError):
    pass


def run(hooks, kind, state):
    """Run every hook of *kind*, in order; a failure raises HookError."""
    for hook in hooks.get(kind, ()):
        run_one(hook, kind, state)


def run_one(hook, kind, state):
    import subprocess       # 4 ms; most bundles have no hooks
    args = hook["args"] or [hook["path"]]
    # A hook may exit without reading its stdin: that must be an EPIPE here, not a SIGPIPE
    # that kills the runtime halfway through create (leaving the container half made).
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        proc = subprocess.Popen(args, executable=hook["path"], env=env_dict(hook["env"]),
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, close_fds=True)
    except OSError as e:
        raise HookError(f"{kind} hook {hook['path']}: {e.strerror}") from None
    try:
        _, err = proc.communicate(cjson.dumps(state).encode(), timeout=hook["timeout"])
    except BrokenPipeError:               # a hook that exits without reading its stdin
        err = proc.stderr.read() if proc.stderr else b""
        proc.wait()
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise HookError(f"{kind} hook {hook['path']} timed out after {hook['timeout']} s") \
            from None
    if proc.returncode != 0:
        why = err.decode(errors="replace").strip().splitlines()
        raise HookError(f"{kind} hook {hook['path']} exited with {proc.returncode}"
                        + (f": {why[-1]}" if why else ""))


def run_warning(hooks, kind, state, warn):
    """poststart and poststop: every hook runs; a failure is a warning."""
    for hook in hooks.get(kind, ()):
        try:
            run_one(hook, kind, state)
        except HookError as e:
            warn(str(e))
