"""Starting a container's first process and waiting for it: the parent's side.

    start(spec, cgroups) ─ fork (PID 1 of a new PID namespace)
        ├─ parent: put the child in its cgroups → "go"
        ├─ child: namespaces, root file system → "ready" (and, for -t, its pty)
        ├─ parent: outside set-up (network, later) → "continue"
        └─ child: lock down, execve → the socket closes: started
"""
import json
import os
import signal
import socket

from ..errors import MinirunError
from ..linux import namespaces as ns
from . import child

EXIT_RUNTIME = child.EXIT_RUNTIME


class StartError(MinirunError):
    def __init__(self, message, code=EXIT_RUNTIME):
        super().__init__(message)
        self.exit_code = code


class Process:
    """A started container's PID 1, held by a pidfd so a recycled PID is never signalled."""

    def __init__(self, pid):
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.pty = None            # master side of the container's terminal (-t)
        self.status = None

    def signal(self, sig):
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            pass

    def wait(self):
        """Reap PID 1; return Docker's exit code (128+N for signal N)."""
        if self.status is None:
            _, status = os.waitpid(self.pid, 0)
            self.status = status
            os.close(self.pidfd)
        return exit_code(self.status)


def exit_code(status):
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _recv(sock):
    msg, fds, _, _ = socket.recv_fds(sock, 65536, 1)
    return (json.loads(msg) if msg else None), fds


def start(spec, cgroups, trace, outside=None, stdio=None):
    """Fork the container and see it through to exec; return its Process.

    *outside(process)* runs once the child's namespaces exist and before it
    locks down (the network is wired in there). *stdio*, three descriptors,
    replaces minirun's own stdin/stdout/stderr for the container (a daemon
    passes /dev/null and its log pipes). On any failure the child is killed
    and reaped, and StartError says why.
    """
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = _fork_into_new_pid_namespace(trace)
    if pid == 0:
        parent_sock.close()
        # Python's own signal choices, and signals minirun holds back, must not reach the command.
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        if stdio is not None:
            for target, fd in enumerate(stdio):
                os.dup2(fd, target)
        child.main(spec, child_sock, trace)
        os._exit(EXIT_RUNTIME)
    child_sock.close()
    proc = Process(pid)
    try:
        cgroups.add(spec.id, pid)
        parent_sock.send(b'{"type": "go"}')
        _handshake(parent_sock, proc, outside)
    except BaseException:
        proc.signal(signal.SIGKILL)
        proc.wait()
        if proc.pty is not None:
            os.close(proc.pty)
        raise
    finally:
        parent_sock.close()
    return proc


def _fork_into_new_pid_namespace(trace):
    """fork() with the child as PID 1 of a new PID namespace; the parent's is unchanged."""
    saved = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        ns.unshare(ns.CLONE_NEWPID)   # applies to children only
        trace("unshare(CLONE_NEWPID)", "the next child is PID 1 of a new PID namespace")
        pid = os.fork()
        if pid == 0:
            return 0
        ns.setns(saved, ns.CLONE_NEWPID)   # later children of minirun stay in the host's
        return pid
    finally:
        os.close(saved)


def _handshake(sock, proc, outside):
    ready = False
    while True:
        msg, fds = _recv(sock)
        if msg is None:                 # end of file: exec happened, or the child died
            if not ready:
                raise StartError("container process died while being set up "
                                 f"(exit {proc.wait()})")
            return
        kind = msg.get("type")
        if kind == "pty" and fds:
            proc.pty = fds[0]
        elif kind == "ready":
            ready = True
            if outside:
                outside(proc)
            sock.send(b'{"type": "continue"}')
        elif kind == "error":
            for fd in fds:
                os.close(fd)
            raise StartError(msg.get("message", "unknown error"), msg.get("code", EXIT_RUNTIME))
