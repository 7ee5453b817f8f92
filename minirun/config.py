"""Where minirun keeps its state and how a client finds its daemon, defined once.

The click commands, the click-free fast path of ``minirun run``, minirund and
the API client all take their defaults, and the environment variables that
override them, from here. Cheap to import: it is on the start path.
"""
import fcntl
import os

from .errors import UsageError

DEFAULT_ROOT = "/var/lib/minirun"
RUN_DIR = "/run/minirun"       # host-wide runtime state (a tmpfs: gone at boot, as cgroups are)
DEFAULT_HOST = f"unix://{RUN_DIR}/minirun.sock"
API_VERSION = "1.44"           # the Docker Engine API version minirund speaks
MIN_API_VERSION = "1.24"
ROOT_ENV = "MINIRUN_ROOT"      # --root
HOST_ENV = "MINIRUN_HOST"      # -H
DAEMON_LOCK = "daemon.lock"    # in the state root: held by its minirund, which writes its socket
IDLE_ENV = "MINIRUN_API_IDLE_TIMEOUT"   # seconds minirund waits for a request (default 30)


class Globals:
    """The global options as both command-line parsers resolve them."""

    def __init__(self, root, host, debug):
        self.root = root           # absolute
        self.host = host           # a daemon named by -H or MINIRUN_HOST, else None
        self.debug = debug

    def __eq__(self, other):
        return vars(self) == vars(other)

    def __repr__(self):
        return f"Globals({vars(self)})"


def resolve(root, host, debug, environ):
    """The options given (None where absent) and the environment → Globals. An empty
    value counts as absent, for an option as for its variable."""
    root = root or environ.get(ROOT_ENV) or DEFAULT_ROOT
    host = host or environ.get(HOST_ENV) or None
    return Globals(os.path.abspath(root), host, bool(debug))


def api_idle_timeout(environ):
    try:
        return float(environ.get(IDLE_ENV) or 30)
    except ValueError:
        raise UsageError(f"{IDLE_ENV} must be a number of seconds") from None


def socket_path(host):
    """``unix:///run/minirun/minirun.sock`` or a plain path → the path."""
    if host.startswith("unix://"):
        return host[len("unix://"):]
    if "://" in host:
        raise UsageError(f"unsupported host {host!r}: only unix:// sockets are served")
    return host


def running_daemon(root):
    """The socket of the minirund that serves *root* now, or None."""
    try:
        fd = os.open(os.path.join(root, DAEMON_LOCK), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None                                 # nobody holds it: no daemon
        except BlockingIOError:
            pass
        lines = os.read(fd, 4096).decode().splitlines()
        return "unix://" + lines[1] if len(lines) > 1 else None
    finally:
        os.close(fd)
