"""The last steps before execve, the same for a container's PID 1 and for an exec'd process.

runc calls one function (finalizeNamespace) from both its standard and its
setns init; this is minirun's. Whoever enters a container — ``run``'s set-up
child or ``exec``'s joining process — ends here: its working directory
checked to be inside the container, the container's rlimits, capabilities cut
to the container's, the user switched, no_new_privs, every descriptor but
stdio close-on-exec, then execve with Docker's exit codes for a command that
is missing (127) or not executable (126).
"""
import _signal as signal   # signal.py's C core, without its enums (docs/architecture.md)
import errno
import fcntl
import os
import stat

from ..errors import EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_RUNTIME, MinirunError
from ..linux.seccomp import load_filter
from . import security
from .spec import env_dict

# Python's own signal choices, and the signals a parent holds back while starting a
# container, must not reach the command.
RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM)


class ExecError(MinirunError):
    """The container's process could not be started; *code* is the exit status to report."""

    def __init__(self, message, code=EXIT_RUNTIME):
        super().__init__(message)
        self.code = code


def failure(e):
    """(one line, exit code) for why entering a container failed: what its caller reports
    (run's PID 1, exec's joining process and minirun-runc's init alike)."""
    if isinstance(e, ExecError):
        return str(e), e.code
    if isinstance(e, MinirunError):
        return str(e), EXIT_RUNTIME
    if isinstance(e, OSError):
        return (f"{e.strerror}: {e.filename}" if e.filename else str(e)), EXIT_RUNTIME
    return f"internal error: {type(e).__name__}: {e}", EXIT_RUNTIME


def exit_code(status):
    """A wait status as Docker reports it: the exit code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def reset_signals():
    for sig in RESET_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def read_filter(process):
    """The process's seccomp program, read while the host's files are still in reach (the
    set-up does it before pivot_root, exec's joining process before setns)."""
    if not process.seccomp:
        return b""
    with open(process.seccomp, "rb") as f:
        return f.read()


def lock_down(process, trace, create_workdir, seccomp=b"", enter_userns=None):
    """From inside the container's namespaces and root: become *process* (a spec.Process).

    *create_workdir*: Docker creates a missing WorkingDir for a container's PID 1,
    but an exec into a missing directory fails. *seccomp*: read_filter's program.
    *enter_userns*: with --userns, enters the container's user namespace — after what
    only the host's root may do (rlimits above the hard limit), before the filter."""
    if process.ids:              # an OCI process: numbers, and only the groups it lists
        (uid, gid), groups = process.ids, sorted(set(process.group_add))
        home = security.home_of(uid)
    else:
        uid, gid, groups, home = security.resolve_user(process.user)
        groups = sorted(set(groups) | set(security.resolve_groups(process.group_add)))
    if not any(e.startswith("HOME=") for e in process.env):
        process.env.append(f"HOME={home}")
    if process.umask is not None:
        os.umask(process.umask)
    security.set_rlimits(process.rlimits, trace)
    enter_workdir(process.cwd, trace, create_workdir)
    if enter_userns is not None:
        enter_userns()
    if seccomp:
        # While still privileged: without no_new_privs, loading a filter takes CAP_SYS_ADMIN.
        # Everything after it (capset, setuid, prctl, execve) the profile allows.
        load_filter(seccomp)
        trace(f"seccomp(SECCOMP_SET_MODE_FILTER, {len(seccomp) // 8} BPF instructions)",
              "system calls outside the profile fail with EPERM from now on")
    sets = process.cap_sets
    security.drop_bounding_caps(sets.get("bounding", process.caps), trace)
    if sets:
        security.keep_caps_across_setuid()
    security.switch_user(uid, gid, groups, trace)
    if sets:
        security.set_cap_sets(sets, trace)
    else:
        security.set_caps(process.caps, uid, trace)
    if process.no_new_privileges:
        security.no_new_privs(trace)
    close_inherited_fds(3 + process.preserve_fds)


def enter_workdir(cwd, trace, create):
    if create:
        try:
            os.makedirs(cwd, 0o755, exist_ok=True)
        except OSError:
            pass
    try:
        os.chdir(cwd)
    except OSError as e:
        raise ExecError(f"chdir to cwd ({cwd!r}) set in config.json failed: "
                        f"{e.strerror.lower()}") from None
    # A descriptor leaked from the host could leave the working directory outside
    # the container's root (CVE-2024-21626): the kernel then reports it unreachable.
    here = os.getcwd()
    if not here.startswith("/") or here.startswith("(unreachable)"):
        raise ExecError(f"working directory {cwd} is outside the container")
    trace(f"chdir({cwd!r})", "checked to be inside the container (CVE-2024-21626)")


def close_inherited_fds(first=3):
    """Every descriptor but stdio (and those an OCI caller asked to preserve, below *first*)
    is close-on-exec: nothing of the host leaks in."""
    for fd in range(3, first):
        os.set_inheritable(fd, True)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= first:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass


def execute(argv, env, found=None):
    """execve with a PATH search, telling 'not found' (127) from 'not executable' (126).

    The search picks the first candidate that is a regular file this process may execute,
    as Go's exec.LookPath does for runc. *found()*, if given, is called then, just before
    the execve: a container's start need not wait for the execve itself, in which the
    kernel tears down the old process's memory (~0.7 ms of a Python process), as runc's
    start does not. What the execve still refuses (a file the kernel cannot run, ENOEXEC)
    raises ExecError after it."""
    envd = env_dict(env)
    cmd = argv[0]
    if "/" in cmd:
        candidates = [cmd]
    else:
        path = envd.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        candidates = [os.path.join(d or ".", cmd) for d in path.split(":")]
    program, denied = _look_up(candidates)
    if program is None:
        if denied is not None:
            raise ExecError(f'exec: "{cmd}": {go_strerror(denied)}', EXIT_NOT_EXECUTABLE)
        if "/" in cmd:
            raise ExecError(f'exec: "{cmd}": stat {cmd}: no such file or directory',
                            EXIT_NOT_FOUND)
        raise ExecError(f'exec: "{cmd}": executable file not found in $PATH', EXIT_NOT_FOUND)
    if found is not None:
        found()
    try:
        os.execve(program, argv, envd)
    except OSError as e:
        code = EXIT_NOT_FOUND if e.errno == errno.ENOENT else EXIT_NOT_EXECUTABLE
        raise ExecError(f'exec: "{cmd}": {go_strerror(e.errno)}', code) from None


def go_strerror(number):
    """The kernel's reason as Go (runc) words it: "permission denied", not C's "Permission
    denied". The docker CLI reads the exit code of a run that failed to start from the
    daemon's message, case-sensitively ("permission denied" or "is a directory": 126)."""
    text = os.strerror(number)
    return text[:1].lower() + text[1:]


def _look_up(candidates):
    """(the first of *candidates* that execve would run, or None; the errno of the first
    that exists but may not be run, or None)."""
    denied = None
    for c in candidates:
        try:
            st = os.stat(c)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                denied = denied or e.errno      # (a directory on the way we may not search)
            continue
        if stat.S_ISREG(st.st_mode) and os.access(c, os.X_OK):   # (and not on a noexec mount)
            return c, denied
        # A directory too, as runc's Go said it before 1.22: an older docker CLI (Debian 12's
        # 20.10) maps "permission denied" to 126, but "is a directory" to 125.
        denied = denied or errno.EACCES
    return None, denied


def keep_only(stdio, keep):
    """Right after a fork: *stdio* (three fds, or None to keep 0-2) on 0-2, the fds of
    *keep* on 3, 4, … (close-on-exec), every other descriptor closed (close_range). A child
    of a busy process must carry none of its parent's files into a container. Returns the
    new numbers of *keep*."""
    wanted = list(stdio) if stdio is not None else []
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64) for fd in [*wanted, *keep]]
    for target, fd in enumerate(high[:len(wanted)]):
        os.dup2(fd, target)                 # inheritable: the command's stdio
    kept = []
    for n, fd in enumerate(high[len(wanted):], start=3):
        os.dup2(fd, n, inheritable=False)
        kept.append(n)
    os.closerange(3 + len(kept), 1 << 20)   # close_range(2): the high copies go too
    return kept
