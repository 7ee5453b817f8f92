"""``exec``: another process in a running container, through runtime/join.py (as ``minirun
exec`` and ``docker exec`` enter one).

The process comes from ``--process FILE`` (an OCI process object, as containerd's shim
writes it) or from the container's own process with the arguments, environment, user
and capabilities the flags change (runc's way).
"""
import _socket as socket   # socket.py's C core, without its enums (docs/architecture.md)
import os

from .. import cjson
from ..runtime import join, sync
from ..runtime.container import Process
from . import bundle
from .lifecycle import OciError, driver, init_pidfd, status, write_pid_file


def process_from_flags(c, args, cwd, env, user, groups, caps, no_new_privs, tty):
    raw = dict(c.data.get("process") or {})
    raw["args"] = args
    raw["terminal"] = tty
    if cwd:
        raw["cwd"] = cwd
    raw["env"] = list(raw.get("env") or []) + list(env)
    if user:
        uid, _, gid = user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise OciError(f"--user {user!r}: uid[:gid] in numbers")
        raw["user"] = {"uid": int(uid), "gid": int(gid or 0),
                       "additionalGids": [int(g) for g in groups]}
    if caps:
        sets = {k: list(v) for k, v in (raw.get("capabilities") or {}).items()}
        for key in ("bounding", "effective", "permitted"):
            sets[key] = list(dict.fromkeys(sets.get(key, []) + list(caps)))
        raw["capabilities"] = sets
    if no_new_privs:
        raw["noNewPrivileges"] = True
    return raw


def process_from_file(path):
    try:
        with open(path, "rb") as f:
            return cjson.loads(f.read(1 << 20))
    except OSError as e:
        raise OciError(f"cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise OciError(f"{path} is not JSON: {e}") from None


def _namespaces(c):
    """The init's namespaces, under a pidfd checked to be the init's (its start time, as
    runc checks) and held across the opens (join.open_namespaces)."""
    pidfd = init_pidfd(c)
    try:
        return join.open_namespaces(c.pid, pidfd, user=c.data.get("userns", False))
    except ProcessLookupError:
        raise OciError("container is not running") from None
    finally:
        os.close(pidfd)


def run(c, raw, console_socket="", pid_file="", detach=False):
    """Start the process; without *detach* wait for it and return its exit code."""
    st = status(c)
    if st not in ("running", "created"):
        raise OciError(f"cannot exec in a {st} container")
    process, tty, _ = bundle.parse_process(raw)
    if tty and not console_socket and detach:
        raise OciError("cannot allocate tty if runc will detach without setting console "
                       "socket")
    process.seccomp = c.data.get("seccomp") or ""
    console = None
    if tty and console_socket:
        console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            console.connect(console_socket)
        except OSError as e:
            raise OciError(f"cannot connect to console socket: {e.strerror}") from None
    d, name = driver(c)
    ns_fds = _namespaces(c)
    try:
        pid, pidfd, sock = join.fork_joiner(ns_fds, d.join_files(name), process, None, c.pid)
    finally:
        for fd in ns_fds:
            os.close(fd)
    master = join.handshake(sock)
    if master is not None and console is not None:
        sync.send_fds(console, b"/dev/ptmx", [master])
        os.close(master)
        master = None
    if console is not None:
        console.close()
    if pid_file:
        write_pid_file(pid_file, pid)
    if detach:
        os.close(pidfd)
        return 0
    from ..runtime import attach       # termios, tty, selectors: a foreground exec alone
    proc = Process(pid, pidfd)
    proc.pty = master                  # -t without a console socket: this is its terminal
    with attach.forwarding_signals() as forward:
        forward(proc)
        if master is not None:
            attach.relay_pty(proc)
        return proc.wait()
