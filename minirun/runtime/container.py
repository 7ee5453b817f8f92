"""Starting a container's first process and waiting for it: the parent's side.

    fork_container(spec) ─ fork (PID 1 of a new PID namespace)
    fork_ahead() ─ the same before a spec is known (minirund's fork server keeps one);
                   hand_over(spec) makes it that spec's
    start(spec, cgroups):
        ├─ parent: put the child in its cgroups → GO
        ├─ child, meanwhile: namespaces, root file system; after GO its cgroup namespace
        │    → READY (and, for -t, its PTY)
        ├─ parent: outside set-up (network) → CONTINUE
        └─ child: lock down, find the command → EXEC: started; then its execve
    (runtime/sync.py draws the whole exchange)

The fork and the handshake are two steps so that the fork can happen in
another process: the foreground ``minirun run`` forks the container itself,
minirund has its single-threaded fork server fork it (engine/forkserver.py)
and runs the handshake from the socket end the fork server hands back.
"""
import _socket as socket   # socket.py's C core, without its enums (docs/architecture.md)
import _signal as signal   # signal.py's C core, without its enums (docs/architecture.md)
import os

from ..errors import MinirunError
from ..fsutil import readable
from ..linux import namespaces as ns
from . import child, sync, userns
from .cgroups import open_join_files
from .lockdown import EXIT_RUNTIME, exit_code, keep_only, reset_signals


class StartError(MinirunError):
    """The container did not start; *detail*: the set-up's traceback, for a log, when the
    cause was a bug rather than the user's input."""

    def __init__(self, message, code=EXIT_RUNTIME, detail=""):
        super().__init__(message)
        self.exit_code = code
        self.detail = detail


class Process:
    """A started process, held by a pidfd so a recycled PID is never signalled.

    *reaps*: this process is its parent and reaps it; otherwise (a fork server's
    child) its exit is only seen through the pidfd and its status is not ours."""

    def __init__(self, pid, pidfd, reaps=True):
        self.pid = pid
        self.pidfd = pidfd
        self.reaps = reaps
        self.pty = None            # master side of the container's terminal (-t)
        self.status = None

    def signal(self, sig):
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            pass

    def wait(self):
        """Wait for the process to end; Docker's exit code (128+N for signal N), or None when
        another process reaps it."""
        if self.status is None:
            if self.reaps:
                _, self.status = os.waitpid(self.pid, 0)
            else:
                readable(self.pidfd)
                self.status = -1
            os.close(self.pidfd)
        return exit_code(self.status) if self.reaps else None


def fork_container(spec, trace, stdio=None):
    """Fork the container's PID 1, waiting for GO; return (pid, pidfd, parent's socket).

    *stdio*, three descriptors, replaces this process's stdin/stdout/stderr for the
    container (a daemon passes /dev/null and its log pipes). The child keeps nothing
    else of ours: every other descriptor is closed right after the fork."""
    return _fork_pid1(stdio, lambda sock: child.main(spec, sock, trace), trace)


def fork_ahead(trace):
    """Fork a container's PID 1 before its spec is known; return what fork_container does.
    It makes the namespaces child.AHEAD names and waits: ``hand_over`` makes it the
    container of a spec that ``child.fits_ahead``. minirund's fork server keeps one so that
    a start finds the fork and those namespaces done (~0.6–1.2 ms of ~9)."""
    return _fork_pid1(None, lambda sock: child.wait_for_spec(sock, trace), trace)


def _fork_pid1(stdio, then, trace):
    """Fork PID 1 of a new PID namespace, which puts *stdio* on 0-2 (None: keeps ours),
    closes every other descriptor but its socket and runs *then(socket)*, never to return."""
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = fork_in_pid_namespace(None, trace)
    if pid == 0:
        try:
            reset_signals()
            [sock] = keep_only(stdio, [child_sock.fileno()])
            then(socket.socket(fileno=sock))
        finally:
            os._exit(EXIT_RUNTIME)
    child_sock.close()
    return pid, os.pidfd_open(pid), parent_sock


def hand_over(sock, spec_dict, stdio):
    """Give a PID 1 forked ahead its spec (as spec_to_dict makes it) and its three stdio
    descriptors; from here on its socket carries start's handshake. OSError: it is gone."""
    sync.send(sock, sync.SPEC, stdio, spec=spec_dict)


def start(spec, cgroups, trace, outside=None, stdio=None, spawn=None, owner=""):
    """Fork the container, make its cgroups and see it through to exec; return its Process.

    The child makes its namespaces and root file system while this process makes its
    cgroups (a directory in each v1 hierarchy and the device rules: ~1.5 ms that need not
    wait for each other on two CPUs); GO then tells it which files to join them by (v1), or
    comes once this process has moved it (v2). *owner*: the cgroups' owner record
    (cgroups.create). *outside(process)* runs once the child's namespaces exist and before
    it locks down (the network is wired in there). *spawn(spec, trace, stdio)* forks it
    elsewhere (a fork server) and returns what fork_container does. On any failure the
    child is killed and StartError says why; the caller removes the cgroups.
    """
    pid, pidfd, sock = (spawn or fork_container)(spec, trace, stdio)
    proc = Process(pid, pidfd, reaps=spawn is None)
    try:
        trace(f"cgroup v{cgroups.version}: mkdir {cgroups.parent}/{spec.id[:12]}",
              "a cgroup of its own in each hierarchy it is limited by")
        cgroups.create(spec.id, spec.limits, owner=owner)
        files = cgroups.first_process_files(spec.id)
        if not files:
            cgroups.add(spec.id, pid)
        fds = open_join_files(files)
        try:                              # (by now the child may have left the host's /sys)
            sync.send_go(sock, fds, tasks=files)
        finally:
            for fd in fds:
                os.close(fd)
        _handshake(sock, proc, outside, spec)
    except BaseException:
        proc.signal(signal.SIGKILL)
        proc.wait()
        if proc.pty is not None:
            os.close(proc.pty)
        raise
    finally:
        sock.close()
    return proc


def fork_in_pid_namespace(pidns_fd, trace):
    """fork() with the child in a PID namespace: a new one (PID 1 there) when *pidns_fd* is
    None, else the one it names (exec joins a container's so). Ours is unchanged."""
    saved = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    pid = -1
    try:
        if pidns_fd is None:
            ns.unshare(ns.CLONE_NEWPID)       # applies to children only
            trace("unshare(CLONE_NEWPID)", "the next child is PID 1 of a new PID namespace")
        else:
            ns.setns(pidns_fd, ns.CLONE_NEWPID)
        pid = os.fork()
    finally:
        if pid != 0:
            ns.setns(saved, ns.CLONE_NEWPID)   # later children stay in our own
        os.close(saved)
    return pid


def _handshake(sock, proc, outside, spec):
    ready = False
    while True:
        kind, msg, fds = sync.recv(sock)
        if kind is None:                # end of file: the child died (or exec'd unannounced)
            if not ready:
                code = proc.wait()
                raise StartError("container process died while being set up"
                                 + (f" (exit {code})" if code is not None else ""))
            return
        if kind == sync.PTY and fds:
            proc.pty = fds[0]
        elif kind == sync.EXEC and ready:
            return
        elif kind == sync.READY:
            ready = True
            if outside:
                outside(proc)
            sync.send(sock, sync.CONTINUE)
        elif kind == sync.USERNS and spec.userns:
            userns.write_maps(proc.pid, *spec.userns)
            sync.send(sock, sync.MAPPED)
        elif kind == sync.ERROR:
            for fd in fds:
                os.close(fd)
            raise StartError(msg.get("message", "unknown error"), msg.get("code", EXIT_RUNTIME),
                             msg.get("detail", ""))
