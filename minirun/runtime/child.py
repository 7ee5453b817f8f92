"""The container's first process, from fork to exec.

It is PID 1 of a new PID namespace from birth (the parent unshared
CLONE_NEWPID before forking). It then makes the other namespaces, builds
the root file system, locks itself down and execs the command. It talks to
the parent over a socket: the parent says when the cgroup is joined and
when the network is ready; the child reports errors (or, for -t, hands over
its terminal's master side). The socket is close-on-exec, so a successful
exec shows up in the parent as end-of-file.
"""
import errno
import fcntl
import json
import os
import signal
import socket
import struct

import prctl

from ..errors import MinirunError
from ..linux import namespaces as ns
from ..linux.process import TIOCGPTN, TIOCSCTTY, TIOCSPTLCK
from . import rootfs, security

EXIT_RUNTIME = 125        # minirun failed
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


class ExecError(Exception):
    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


def send(sock, msg, fds=()):
    data = json.dumps(msg).encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def expect(sock, kind):
    msg = sock.recv(65536)
    if not msg or json.loads(msg).get("type") != kind:
        os._exit(EXIT_RUNTIME)        # the parent went away or gave up: nothing to report to


def main(spec, sock, trace):
    """Never returns: execs the container's command or exits."""
    try:
        if spec.die_with_parent:
            prctl.set_pdeathsig(signal.SIGKILL)   # a foreground run must not outlive minirun
        prctl.set_dumpable(False)             # no /proc/<pid>/… access to this process (CVE-2019-5736)
        expect(sock, "go")                    # the parent has put us in our cgroups
        setup(spec, sock, trace)
        argv = (["/dev/init", "--"] if spec.init else []) + list(spec.args)
        trace(f"execve({argv[0]!r}, …)", "the container's command replaces minirun in PID 1")
        execute(argv, spec.env)
    except ExecError as e:
        _fail(sock, str(e), e.code)
    except (MinirunError, rootfs.RootfsError) as e:
        _fail(sock, str(e), EXIT_RUNTIME)
    except OSError as e:
        _fail(sock, f"{e.strerror}: {e.filename}" if e.filename else str(e), EXIT_RUNTIME)
    except BaseException:
        import traceback
        _fail(sock, traceback.format_exc(), EXIT_RUNTIME)


def _fail(sock, message, code):
    try:
        send(sock, {"type": "error", "message": message, "code": code})
    finally:
        os._exit(code)


def setup(spec, sock, trace):
    flags = ns.CLONE_NEWNS | ns.CLONE_NEWUTS | ns.CLONE_NEWIPC | ns.CLONE_NEWCGROUP
    if spec.netns:
        join_network(spec.netns, trace)
    elif spec.network != "host":
        flags |= ns.CLONE_NEWNET
    ns.unshare(flags)
    trace(f"unshare({ns.flag_names(flags)})",
          "own mounts, hostname, IPC, cgroup view" + (", network" if flags & ns.CLONE_NEWNET else ""))
    trace("fork() after unshare(CLONE_NEWPID)", "this process is PID 1 of a new PID namespace")
    if spec.hostname:
        socket.sethostname(spec.hostname)
        trace(f"sethostname({spec.hostname!r})", "the host's name is unchanged")
    build_rootfs(spec, trace)
    if flags & ns.CLONE_NEWNET:
        loopback_up()
        trace("ioctl(SIOCSIFFLAGS, lo, IFF_UP)", "an empty network namespace with only lo, up")
    slave = None
    if spec.tty:
        master, slave = open_pty(trace)
        send(sock, {"type": "pty"}, [master])
        os.close(master)
    send(sock, {"type": "ready"})
    expect(sock, "continue")              # the parent has set up what lives outside (network)
    stdio(spec, slave)
    lock_down(spec, trace)


def join_network(path, trace):
    """--network container:NAME: share another container's network namespace."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        ns.setns(fd, ns.CLONE_NEWNET)
    finally:
        os.close(fd)
    trace(f"setns({path}, CLONE_NEWNET)", "the same interfaces, addresses and ports as the "
          "container it joins")


def build_rootfs(spec, trace):
    rootfs.make_mounts_private(trace)
    rootfs.mount_overlay(spec, trace)
    fds = rootfs.open_bind_sources(spec)
    devices = rootfs.host_devices() if spec.privileged else None
    rootfs.pivot_root(spec, trace)
    rootfs.mount_proc(trace)
    rootfs.mount_dev(spec, trace, devices)
    rootfs.mount_sys(spec, fds, trace)
    rootfs.bind_mounts(spec, fds, trace)
    if not spec.privileged:
        rootfs.mask_paths(trace)
        rootfs.readonly_paths(trace)
    if spec.readonly_rootfs:
        rootfs.readonly_root(trace)


def loopback_up():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def open_pty(trace):
    """A terminal from the container's own devpts: (master for the parent, slave)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
    slave = os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NOCTTY)
    os.fchown(slave, 0, 5)
    trace(f"open(/dev/ptmx) → /dev/pts/{n}", "-t: the command's terminal; minirun relays the other end")
    return master, slave


def stdio(spec, slave):
    if slave is not None:
        os.setsid()
        fcntl.ioctl(slave, TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        os.close(slave)
    elif not spec.stdin:
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)


def lock_down(spec, trace):
    uid, gid, groups, home = security.resolve_user(spec.user)
    if not any(e.startswith("HOME=") for e in spec.env):
        spec.env.append(f"HOME={home}")
    security.set_rlimits(spec.rlimits, trace)
    enter_workdir(spec.cwd, trace)
    security.drop_bounding_caps(spec.caps, trace)
    security.switch_user(uid, gid, groups, trace)
    security.set_caps(spec.caps, uid, trace)
    if spec.no_new_privileges:
        security.no_new_privs(trace)
    close_inherited_fds()


def enter_workdir(cwd, trace):
    try:
        os.makedirs(cwd, 0o755, exist_ok=True)   # Docker creates a missing WorkingDir
    except OSError:
        pass
    os.chdir(cwd)
    # A descriptor leaked from the host could leave the working directory outside
    # the container's root (CVE-2024-21626): the kernel then reports it unreachable.
    here = os.getcwd()
    if not here.startswith("/") or here.startswith("(unreachable)"):
        raise ExecError(f"working directory {cwd} is outside the container", EXIT_RUNTIME)
    trace(f"chdir({cwd!r})", "checked to be inside the container (CVE-2024-21626)")


def close_inherited_fds():
    """Every descriptor but stdio is close-on-exec: nothing of the host leaks in."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass


def execute(argv, env):
    """execve with a PATH search, telling 'not found' (127) from 'not executable' (126)."""
    envd = dict(e.split("=", 1) for e in env if "=" in e)
    cmd = argv[0]
    if "/" in cmd:
        candidates = [cmd]
    else:
        path = envd.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        candidates = [os.path.join(d or ".", cmd) for d in path.split(":")]
    denied = None
    for c in candidates:
        try:
            os.execve(c, argv, envd)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.ENOEXEC, errno.EISDIR, errno.EPERM):
                denied = denied or e
            elif e.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise ExecError(f"exec {cmd}: {e.strerror}", EXIT_NOT_EXECUTABLE) from None
    if denied is not None:
        raise ExecError(f'exec: "{cmd}": {denied.strerror}', EXIT_NOT_EXECUTABLE)
    if "/" in cmd:
        raise ExecError(f'exec: "{cmd}": stat {cmd}: no such file or directory', EXIT_NOT_FOUND)
    raise ExecError(f'exec: "{cmd}": executable file not found in $PATH', EXIT_NOT_FOUND)
