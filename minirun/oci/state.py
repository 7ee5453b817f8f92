"""Where minirun-runc keeps each container between its commands.

containerd's shim, conmon and the validation suite run every command as a new
process, so nothing lives in memory: ``<root>/<id>/`` holds ``state.json`` and,
while the container is ``created``, ``exec.fifo`` (the first process waits on
it until ``start``, as runc's does). The status is never stored, always
observed:

    stopped  the first process is gone (or its PID now names another process:
             its start time, kept with the PID, tells them apart), or a zombie
    paused   its freezer cgroup is frozen
    created  exec.fifo is still there: the process waits for ``start``
    running  otherwise
"""
import fcntl
import os
import time

from .. import cjson
from ..errors import MinirunError

DEFAULT_ROOT = "/run/minirun-runc"
FIFO = "exec.fifo"
STATE = "state.json"
OCI_VERSION = "1.1.0"
ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


class StateError(MinirunError):
    pass


def check_id(cid):
    """runc's rule: letters, digits and ``_+-.``, not ``.`` or ``..`` (it names a directory)."""
    if not cid or cid in (".", "..") or len(cid) > 1024 or not set(cid) <= ID_CHARS:
        raise StateError(f"invalid container id format: {cid!r}")
    return cid


def start_time(pid):
    """The process's start time in clock ticks since boot, or None when it is gone or a
    zombie (field 22 of /proc/PID/stat, after the parenthesised command name)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
    except OSError:
        return None
    if fields[0] == b"Z":
        return None
    return int(fields[19])


class Container:
    """One container's directory. *data*: what state.json holds."""

    def __init__(self, root, cid, data=None):
        self.root = root
        self.id = cid
        self.dir = os.path.join(root, cid)
        self.data = data or {}
        self._lock = None

    @property
    def pid(self):
        return self.data.get("pid", 0)

    @property
    def fifo(self):
        return os.path.join(self.dir, FIFO)

    def alive(self):
        return bool(self.pid) and start_time(self.pid) == self.data.get("pid_start")

    def status(self, frozen=None):
        """*frozen*: a callable telling whether the container's cgroup is frozen."""
        if not self.alive():
            return "stopped"
        if frozen is not None and frozen():
            return "paused"
        return "created" if os.path.exists(self.fifo) else "running"

    def oci_state(self, status):
        """The runtime spec's state object (``state`` prints it; hooks read it on stdin)."""
        return {"ociVersion": OCI_VERSION, "id": self.id, "status": status,
                "pid": self.pid if status != "stopped" else 0,
                "bundle": self.data.get("bundle", ""),
                "annotations": self.data.get("annotations") or {}}

    def save(self):
        # 0600: it holds the process's environment, which may hold secrets
        write_whole(os.path.join(self.dir, STATE), cjson.dumps(self.data), 0o600)

    def lock(self):
        """Serialize commands on this container (a second ``delete`` waits for the first)."""
        self._lock = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        return self

    def unlock(self):
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def write_whole(path, text, mode=0o644):
    """*path* holds *text* or what it held before, never part of it: the engines read the
    files minirun-runc writes (state, --pid-file) while another command may be writing."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    with open(fd, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def make(root, cid):
    """A new container's directory; an error if the id is taken."""
    check_id(cid)
    os.makedirs(root, mode=0o711, exist_ok=True)
    c = Container(root, cid)
    try:
        os.mkdir(c.dir, 0o711)
    except FileExistsError:
        raise StateError(f"container with id exists: {cid}") from None
    return c.lock()


def load(root, cid, lock=False):
    check_id(cid)
    c = Container(root, cid)
    try:
        if lock:
            c.lock()
        with open(os.path.join(c.dir, STATE)) as f:
            c.data = cjson.loads(f.read())
    except (FileNotFoundError, NotADirectoryError):
        raise StateError(f"container does not exist: {cid}") from None
    except ValueError:
        raise StateError(f"container {cid}: its state.json is damaged") from None
    return c


def all_containers(root):
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        try:
            out.append(load(root, name))
        except MinirunError:
            continue                 # being created or deleted right now
    return out


def now():
    """RFC 3339 in UTC with nanoseconds, as runc's ``created`` (datetime costs 1.5 ms)."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"
