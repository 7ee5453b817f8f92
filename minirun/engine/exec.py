"""``exec``: Docker's exec instances, and their output and input.

The process itself is forked by the fork server into the container's
namespaces (runtime/join.py: cgroups, setns per namespace, the same lock-down
as PID 1, execve); this module keeps Docker's records of it, hands it its
stdio (pipes the request streams back, or a terminal of the container's own)
and learns its exit code from the supervisor.
"""
import fcntl
import os
import selectors
import struct
import threading
import time

from ..errors import Conflict, MinirunError, NotFound
from ..fsutil import readable
from ..linux.process import TIOCSWINSZ
from ..runtime import join
from ..runtime.spec import env_dict, process_of
from .attach import DetachScanner, parse_detach_keys
from .options import OptionError
from .supervisor import UNKNOWN_EXIT


class ExecNotFound(NotFound):
    pass


def create_exec(engine, row, cmd, env=(), workdir="", user="", tty=False, stdin=False,
                trace=False, detach_keys=None):
    """Record an exec instance (Docker's shape); it runs on start_exec. *detach_keys* (bytes;
    attach's default, ctrl-p ctrl-q, if None): typed into its input, they end the client's
    stream (the process runs on), as for attach."""
    if row["state"] != "running":
        raise Conflict(f"Container {row['id']} is not running")
    if not cmd:
        raise OptionError("No exec command specified")
    eid = os.urandom(32).hex()
    engine.execs[eid] = {
        "ID": eid, "ContainerID": row["id"], "Running": False, "ExitCode": None, "Pid": 0,
        "OpenStdin": stdin, "OpenStdout": True, "OpenStderr": True,
        "ProcessConfig": {"entrypoint": cmd[0], "arguments": cmd[1:], "tty": tty,
                          "privileged": False, "user": user},
        "Env": list(env), "WorkingDir": workdir, "CanRemove": False, "_trace": trace,
        "_keys": parse_detach_keys(None) if detach_keys is None else detach_keys,
    }
    return eid


def inspect_exec(engine, eid):
    try:
        return {k: v for k, v in engine.execs[eid].items() if not k.startswith("_")}
    except KeyError:
        raise ExecNotFound(f"No such exec instance: {eid}") from None


def start_exec(engine, eid, detach, stdin):
    """Start the exec; return its output as (stream name, bytes), or None if detached.

    *stdin*: (socket, bytes already read from it) to feed the process's stdin from.

    The process starts when the stream is first read, after the response headers
    went out: a client that takes over the raw socket once it has read the headers
    (docker-py does) would lose output that arrived together with them.
    """
    ex = inspect_exec(engine, eid)
    if ex["Running"] or ex["ExitCode"] is not None:
        raise Conflict(f"exec {eid} has already run")
    row = engine.get(ex["ContainerID"])
    if row["state"] != "running":
        raise Conflict(f"Container {row['id']} is not running")
    if detach:
        pid, out_r, err_r = _spawn_exec(engine, eid, row, stdin)
        threading.Thread(target=lambda: (_drain(out_r, err_r), _finish(engine, eid)),
                         daemon=True).start()
        return None

    def chunks():                   # runs on the first read: after the headers went out
        detached = _Signal()
        left = []
        try:
            pid, out_r, err_r = _spawn_exec(engine, eid, row, stdin, detached)
            yield from _read_both(out_r, err_r, detached.r, left)
        finally:
            detached.close()
            if left:    # detached: the process runs on, its output read and dropped, and its
                #         exit recorded when it comes
                threading.Thread(target=lambda: (_drain(*left), _finish(engine, eid)),
                                 daemon=True).start()
            else:
                _finish(engine, eid)
    return chunks()


class _Signal:
    """A pipe one thread makes readable (fire) for another's select; closed once, safely."""

    def __init__(self):
        self.r, self._w = os.pipe2(os.O_CLOEXEC)
        self._lock, self._closed = threading.Lock(), False

    def fire(self):
        with self._lock:
            if not self._closed:
                os.write(self._w, b"x")

    def close(self):
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self.r)
                os.close(self._w)


def _spawn_exec(engine, eid, row, stdin, detached=None):
    """Start the exec'd process; return (pid, stdout read end, stderr read end or None).
    *detached*: fired when the client types the detach keys."""
    ex = engine.execs[eid]
    pc = ex["ProcessConfig"]
    if pc["tty"]:
        return _spawn_tty_exec(engine, eid, row, stdin, detached)
    stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC) if ex["OpenStdin"] else (None, None)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    if stdin_r is None:
        stdin_r = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        pid = _fork(engine, eid, row, (stdin_r, out_w, err_w))[0]
    except BaseException:
        for fd in (stdin_w, out_r, err_r):
            if fd is not None:
                os.close(fd)
        raise
    finally:
        for fd in (stdin_r, out_w, err_w):
            os.close(fd)
    if stdin_w is not None:
        _start_stdin(stdin, stdin_w, ex["_keys"], detached)
    return pid, out_r, err_r


def _spawn_tty_exec(engine, eid, row, stdin, detached=None):
    """-t: the process gets a terminal of the container's own; we keep its master side."""
    ex = engine.execs[eid]
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    try:
        pid, master = _fork(engine, eid, row, (null, null, null))
    finally:
        os.close(null)
    if master is None:
        os.close(ex.pop("_pidfd"))
        raise MinirunError("exec: the process failed before its terminal was set up")
    ex["_pty"] = master
    if ex.get("_size"):
        fcntl.ioctl(master, TIOCSWINSZ, ex["_size"])
    if ex["OpenStdin"]:
        _start_stdin(stdin, master, ex["_keys"], detached, close=False)
    return pid, master, None


def _fork(engine, eid, row, stdio):
    """Have the fork server fork the process into the container; (pid, pty master or None)."""
    ex = engine.execs[eid]
    pc = ex["ProcessConfig"]
    process = process_of(engine.containers.spec(row))
    process.args = [pc["entrypoint"], *pc["arguments"]]
    process.env = merge_env(process.env, ex["Env"] + (["TERM=xterm"] if pc["tty"] else []))
    process.cwd = ex["WorkingDir"] or process.cwd
    process.user = pc["user"] or process.user
    process.tty = pc["tty"]
    ns_fds = namespaces_of(row, user=bool(process.userns))
    try:
        pid, pidfd, sock = engine.forkserver.exec(
            eid, ns_fds, engine.cgroups.join_files(row["id"]), process, stdio, row["pid"],
            ex["_trace"])
    finally:
        for fd in ns_fds:
            os.close(fd)
    with engine.changed:                  # its exit may have been heard already
        ex.update(Pid=pid, _pidfd=pidfd)
        ex["Running"] = ex["ExitCode"] is None
    return pid, join.handshake(sock)


def namespaces_of(row, user=False):
    """The namespaces of container *row*'s PID 1, opened by its PID and checked to be its:
    should PID 1 have ended since the running check, and its number gone to another process,
    that process's namespaces are refused, not joined. The pidfd held across the opens says
    the process they name lived throughout (join.open_namespaces); the cgroups it is in say
    it is the container's (a hostile container cannot leave its cgroup namespace's root,
    which is the container's cgroup)."""
    gone = Conflict(f"Container {row['id']} is not running")
    try:
        pidfd = os.pidfd_open(row["pid"])
    except ProcessLookupError:
        raise gone from None
    try:
        ns_fds = join.open_namespaces(row["pid"], pidfd, user=user)
        try:
            with open(f"/proc/{row['pid']}/cgroup") as f:
                ours = any(row["id"] in line.rstrip("\n").split(":", 2)[-1].split("/")
                           for line in f)
        except FileNotFoundError:       # it ended since
            ours = False
    except ProcessLookupError:
        raise gone from None
    finally:
        os.close(pidfd)
    if not ours:
        for fd in ns_fds:
            os.close(fd)
        raise gone
    return ns_fds


def resize_exec(engine, eid, height, width):
    ex = engine.execs.get(eid)
    if ex is None or not ex["ProcessConfig"]["tty"]:
        raise ExecNotFound(f"No such exec instance with a terminal: {eid}")
    ex["_size"] = struct.pack("HHHH", height, width, 0, 0)
    if ex.get("_pty") is not None:        # else applied when the terminal exists
        fcntl.ioctl(ex["_pty"], TIOCSWINSZ, ex["_size"])


LOST_AFTER = 10     # seconds a finished process's exit code may take to arrive


def _finish(engine, eid):
    """Wait until the supervisor has heard of the process's exit (its output has ended). Should
    that never come (its fork server died), the process's pidfd still says it ended: after
    LOST_AFTER seconds its code is recorded as unknown (255) rather than waited for ever."""
    ex = engine.execs[eid]
    gone_since = None
    with engine.changed:
        if "_pidfd" not in ex:            # it failed before its process was made
            ex["Running"] = False
            return
        while ex["ExitCode"] is None:
            engine.changed.wait(1)
            if readable(ex["_pidfd"], 0):
                gone_since = gone_since or time.monotonic()
                if time.monotonic() - gone_since > LOST_AFTER:
                    engine.log.error("exec %s: its exit code never came (255)", eid[:12])
                    ex.update(Running=False, ExitCode=UNKNOWN_EXIT)
        os.close(ex.pop("_pidfd"))


def merge_env(base, extra):
    env = env_dict(base)
    env.update(env_dict(extra))
    return [f"{k}={v}" for k, v in env.items()]


def _read_both(out_r, err_r, stop=None, left=None):
    """(stream, bytes) of the process's output until both its ends close, or until *stop* is
    readable (the client detached): then the ends still open go to *left*, not closed."""
    sel = selectors.DefaultSelector()
    sel.register(out_r, selectors.EVENT_READ, "stdout")
    if err_r is not None:
        sel.register(err_r, selectors.EVENT_READ, "stderr")
    if stop is not None:
        sel.register(stop, selectors.EVENT_READ, None)
    try:
        while any(key.data for key in sel.get_map().values()):
            for key, _ in sel.select():
                if key.data is None:              # detached
                    for other in list(sel.get_map().values()):
                        sel.unregister(other.fd)
                        if other.data:
                            left.append(other.fd)
                    return
                try:
                    data = os.read(key.fd, 65536)
                except OSError:                   # a pty whose last slave closed: EIO
                    data = b""
                if data:
                    yield key.data, data
                else:
                    sel.unregister(key.fd)
                    os.close(key.fd)
    finally:
        for key in list(sel.get_map().values()):
            if key.data:                          # (*stop* is its owner's to close)
                os.close(key.fd)
        sel.close()


def _drain(out_r, err_r=None):
    for _ in _read_both(out_r, err_r):
        pass


def _start_stdin(source, fd, keys, detached, close=True):
    """Feed the process's stdin from the hijacked connection, in a thread."""
    conn, first = source
    threading.Thread(target=_feed_stdin, args=(conn, fd, first, keys, detached, close),
                     daemon=True).start()


def _feed_stdin(conn, fd, first, keys, detached, close=True):
    """Copy the client's input to the process until it ends, or until the client types the
    detach keys: then *detached* fires and the client's stream ends (attach's rule)."""
    scanner = DetachScanner(keys)
    data = first
    try:
        while True:
            data, typed = scanner.scan(data)
            while data:
                data = data[os.write(fd, data):]
            if typed:
                if detached is not None:
                    detached.fire()
                break
            data = conn.recv(65536)
            if not data:
                break
    except OSError:
        pass
    finally:
        if close:
            os.close(fd)
