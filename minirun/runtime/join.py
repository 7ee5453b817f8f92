"""A process joining a running container (``exec``): runc's setns init.

    fork_joiner ─ setns(the container's PID namespace) for our next child, fork
      child: keep only its handshake socket, stdio and namespace fds (close_range)
             join the container's cgroups, setns into ipc, uts, net, cgroup, mnt
             (-t: a terminal from the container's devpts → PTY to the parent)
             the same lock-down as PID 1 (lockdown.py), execve
    the parent sees end of file on exec, or ERROR (also written to the process's stderr)

The joining process is not dumpable from birth — it inherits that from its parent,
which makes itself so — and holds nothing of its parent's past the first step:
while it is still a host program in the container's PID namespace, nothing in
the container can open its /proc/<pid>/exe or /proc/<pid>/fd (CVE-2019-5736), and
its working directory can only come from inside the container (CVE-2024-21626).
"""
import _socket as socket   # socket.py's C core, without its enums (docs/architecture.md)
import functools
import os

from ..fsutil import readable
from ..linux import namespaces as ns
from ..linux.process import set_dumpable
from . import cgroups, lockdown, sync, userns
from .child import fail, open_pty, stdio
from .container import fork_in_pid_namespace
from .trace import Tracer, quiet

# Joined in this order after the PID namespace (which the fork itself enters): the
# cgroup namespace before the mount namespace, whose /sys/fs/cgroup is the container's.
NAMESPACES = (("ipc", ns.CLONE_NEWIPC), ("uts", ns.CLONE_NEWUTS), ("net", ns.CLONE_NEWNET),
              ("cgroup", ns.CLONE_NEWCGROUP), ("mnt", ns.CLONE_NEWNS))
WHY = {"ipc": "its System V IPC and message queues", "uts": "its hostname",
       "net": "its interfaces, addresses and ports", "cgroup": "its view of /sys/fs/cgroup",
       "mnt": "its root file system: / and the working directory are the container's now"}


def open_namespaces(pid, pidfd, user=False):
    """The container's namespaces, PID first (its user namespace last, with --userns), as
    fork_joiner takes them: opened by *pid*, under *pidfd* (the caller's, checked to be the
    container's process) held across the opens, and returned only if that process lived
    throughout. Should it have ended, its number perhaps gone to another process, nothing
    is left open and ProcessLookupError says so."""
    names = ("pid", *(n for n, _ in NAMESPACES), *(("user",) if user else ()))
    fds = []
    try:
        for name in names:
            fds.append(os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC))
        if readable(pidfd, 0):
            raise ProcessLookupError(pid)
    except BaseException as e:
        for fd in fds:
            os.close(fd)
        if isinstance(e, FileNotFoundError):          # it ended midway
            raise ProcessLookupError(pid) from None
        raise
    return fds


def fork_joiner(ns_fds, cgroup_files, process, stdio, target, trace=False):
    """Fork *process* (a spec.Process) into the container whose namespaces *ns_fds* are.

    *stdio*: three fds for a process without a terminal; with ``process.tty`` they are
    replaced by a terminal the child makes. *target*: the container's PID (for --trace).
    Returns (pid, pidfd, the parent's end of the handshake socket)."""
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = fork_in_pid_namespace(ns_fds[0], quiet)
    if pid == 0:
        try:
            lockdown.reset_signals()
            sock, *fds = lockdown.keep_only(stdio, [child_sock.fileno(), *ns_fds[1:]])
            # (with --userns the last one is the container's user namespace: joined last)
            _join(socket.socket(fileno=sock), fds, cgroup_files, process, target, trace)
        finally:
            os._exit(lockdown.EXIT_RUNTIME)
    child_sock.close()
    return pid, os.pidfd_open(pid), parent_sock


def _join(sock, ns_fds, cgroup_files, process, target, trace_on):
    """In the child: never returns."""
    trace = Tracer(fd=None if process.tty else 2) if trace_on else quiet
    try:
        set_dumpable(False)          # inherited already; said again where it matters
        seccomp = lockdown.read_filter(process)
        trace(f"fork() after setns(/proc/{target}/ns/pid)",
              "born in the container's PID namespace, not dumpable")
        cgroups.join(cgroup_files, trace)
        for (name, flag), fd in zip(NAMESPACES, ns_fds):
            ns.setns(fd, flag)
            os.close(fd)
            trace(f"setns(/proc/{target}/ns/{name}, {ns.flag_names(flag)})", WHY[name])
        enter = None
        if process.userns:
            user_fd = ns_fds[len(NAMESPACES)]
            enter = functools.partial(userns.join, user_fd, process.userns[0], trace)
        if process.tty:
            master, slave = open_pty(trace)
            sync.send(sock, sync.PTY, [master])
            os.close(master)
            stdio(slave, keep_stdin=True)
            if trace is not quiet:
                trace.release(2)
        lockdown.lock_down(process, trace, create_workdir=False, seccomp=seccomp,
                           enter_userns=enter)
        trace(f"execve({process.args[0]!r}, …)", "the command replaces minirun's process")
        lockdown.execute(process.args, process.env)
    except BaseException as e:
        _report(sock, *lockdown.failure(e))


def _report(sock, message, code):
    """The exec's client reads why on the process's stderr, as docker exec prints it."""
    try:
        os.write(2, f"minirun exec failed: {message}\n".encode())
    except OSError:
        pass
    fail(sock, message, code)


def handshake(sock):
    """The parent's side: the terminal's master (or None) once the process has exec'd or
    failed (a failure is the process's exit code, and its stderr says why)."""
    pty = None
    try:
        while True:
            kind, _, fds = sync.recv(sock)
            if kind == sync.PTY and fds:
                pty = fds[0]
            else:
                for fd in fds:
                    os.close(fd)
                if kind in (None, sync.ERROR):
                    return pty
    finally:
        sock.close()
