"""The container's first process, from fork to exec.

It is PID 1 of a new PID namespace from birth (the parent unshared
CLONE_NEWPID before forking). It makes the other namespaces and builds the
root file system while the parent makes its cgroups, then joins them (on v1
by itself; on v2 the parent has moved it), makes its cgroup namespace,
locks itself down and execs the command. It talks to the parent over a
socket: the parent says when the cgroups are made and when the network is
ready; the child reports errors (or, for -t, hands over its terminal's
master side). Once its command is found it says EXEC, and the parent takes it
as started: the execve, in which the kernel tears down this copy of a Python
process, is no longer the parent's to wait for (as runc's start does not).

minirund's fork server forks the next container's PID 1 ahead, before anyone
asks for it (engine/forkserver.py): that child makes the namespaces that start
out empty whatever the spec (AHEAD) and waits for its spec. The mount
namespace is not one of them: it starts as a copy of the host's mounts, and a
copy made ahead would miss what the host mounted since (a volume's source).
"""
import _socket as socket   # socket.py's C core, without its enums (docs/architecture.md)
import _signal as signal   # signal.py's C core, without its enums (docs/architecture.md)
import fcntl
import os
import struct

from ..errors import MinirunError, step
from ..linux import namespaces as ns
from ..linux.process import TIOCGPTN, TIOCSCTTY, TIOCSPTLCK, set_dumpable, set_pdeathsig
from . import cgroups, lockdown, rootfs, sync, userns
from .spec import process_of, spec_from_dict

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
# The namespaces a PID 1 forked ahead makes before its spec comes: each starts out as good as
# empty (a hostname to set, no IPC objects, a network with only lo), so one made minutes
# before is as new as one made now.
AHEAD = ns.CLONE_NEWUTS | ns.CLONE_NEWIPC | ns.CLONE_NEWNET


def namespaces(spec):
    """The namespaces PID 1 makes for *spec*: all but PID (its parent's unshare made it)
    and cgroup (made last, once it is in its cgroups)."""
    flags = ns.CLONE_NEWNS | ns.CLONE_NEWUTS | ns.CLONE_NEWIPC
    if not spec.netns and spec.network != "host":
        flags |= ns.CLONE_NEWNET
    return flags


def fits_ahead(spec):
    """Whether a PID 1 forked ahead can become *spec*'s (not for --network host or
    container:NAME, which keep or join a network namespace instead of making one)."""
    return namespaces(spec) & AHEAD == AHEAD


def wait_for_spec(sock, trace):
    """PID 1 forked ahead: make AHEAD's namespaces, then wait for the spec and the three
    descriptors of its stdio, and go on as main. Never returns. At end of file (the fork
    server is gone, or drops it) it just exits: nobody is left to report to."""
    try:
        ns.unshare(AHEAD)
        loopback_up()
    except OSError:
        os._exit(lockdown.EXIT_RUNTIME)  # the fork server forks at each start instead
    msg, fds = sync.expect_with_fds(sock, sync.SPEC, size=sync.SPEC_SIZE)
    if len(fds) != 3:
        os._exit(lockdown.EXIT_RUNTIME)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)              # inheritable: the command's stdio
        os.close(fd)
    main(spec_from_dict(msg["spec"]), sock, trace, made=AHEAD)


def main(spec, sock, trace, made=0):
    """Never returns: execs the container's command or exits. *made*: the namespaces it is
    in already (forked ahead: AHEAD)."""
    started = False

    def found():                        # the command is there: the parent need wait no more
        nonlocal started
        sync.send(sock, sync.EXEC)
        started = True
    try:
        if spec.die_with_parent:
            set_pdeathsig(signal.SIGKILL)   # a foreground run must not outlive minirun
        set_dumpable(False)             # no /proc/<pid>/… access to this process (CVE-2019-5736)
        process = setup(spec, sock, trace, made)
        argv = (["/dev/init", "--"] if spec.init else []) + list(process.args)
        trace(f"execve({argv[0]!r}, …)", "the container's command replaces minirun in PID 1")
        lockdown.execute(argv, process.env, found)
    except (MinirunError, OSError) as e:
        message, code = lockdown.failure(e)
        if started:                     # nobody listens now: the container's stderr says it
            try:
                os.write(2, f"{message}\n".encode())
            finally:
                os._exit(code)
        fail(sock, message, code)
    except BaseException as e:
        import traceback          # only on a bug: it costs a few ms on every start otherwise
        fail(sock, f"internal error: {type(e).__name__}: {e}", lockdown.EXIT_RUNTIME,
             traceback.format_exc())


def fail(sock, message, code, detail=""):
    """Tell the parent why (one line; *detail*, a traceback, for its log), then exit with
    *code* (shared with exec's joining process)."""
    try:
        sync.send(sock, sync.ERROR, message=message.splitlines()[0] if message else "",
                  code=code, detail=detail)
    finally:
        os._exit(code)


def setup(spec, sock, trace, made=0):
    """Everything up to READY. What does not depend on our cgroups runs first, while the
    parent makes them (on v2 it also moves us in: that first move waits ~10 ms for an RCU
    grace period). GO brings v1's tasks files, opened by the parent (the host's /sys is out
    of our reach by then), and we join by writing 0 to them. The cgroup namespace, whose
    root is the cgroup we are in, comes last."""
    flags = namespaces(spec)
    if spec.netns:
        join_network(spec.netns, trace)
    ns.unshare(flags & ~made)
    trace(f"unshare({ns.flag_names(flags)})",
          "own mounts, hostname, IPC" + (", network" if flags & ns.CLONE_NEWNET else ""))
    trace("fork() after unshare(CLONE_NEWPID)", "this process is PID 1 of a new PID namespace")
    if spec.userns and flags & ns.CLONE_NEWNET:
        userns.open_ports_and_ping()
    if spec.hostname:
        socket.sethostname(spec.hostname)
        trace(f"sethostname({spec.hostname!r})", "the host's name is unchanged")
    process = process_of(spec)
    seccomp = lockdown.read_filter(process)      # before the host's files are out of reach
    build_rootfs(spec, trace)
    if flags & ns.CLONE_NEWNET & ~made:
        loopback_up()
        trace("ioctl(SIOCSIFFLAGS, lo, IFF_UP)", "an empty network namespace with only lo, up")
    go, tasks = sync.expect_with_fds(sock, sync.GO)   # our cgroups are made
    if "tasks" not in go or len(tasks) != len(go["tasks"]):
        raise MinirunError("the cgroups' tasks files did not all arrive")
    cgroups.join(go["tasks"], trace, fds=tasks)    # v1; on v2 we were moved already
    ns.unshare(ns.CLONE_NEWCGROUP)
    trace("unshare(CLONE_NEWCGROUP)", "its own cgroup is the root of its cgroup view")
    slave = None
    if spec.tty:
        master, slave = open_pty(trace)
        sync.send(sock, sync.PTY, [master])
        os.close(master)
    sync.send(sock, sync.READY)
    sync.expect(sock, sync.CONTINUE)      # the parent has set up what lives outside (network)
    stdio(slave, spec.stdin)
    enter = (lambda: userns.enter(sock, spec.userns[0], trace)) if spec.userns else None
    lockdown.lock_down(process, trace, create_workdir=True, seccomp=seccomp, enter_userns=enter)
    return process


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
    with step("making mounts private"):
        rootfs.make_mounts_private(trace)
    lower = None
    if spec.userns:
        with step("idmapping the image's layers"):
            lower = userns.idmapped_layers(spec, trace)
    with step(f"mounting the overlay root on {spec.rootfs}"):
        rootfs.mount_overlay(spec, trace, lower)
    with step("opening bind mount sources"):
        fds = rootfs.open_bind_sources(spec)
    devices = rootfs.host_devices() if spec.privileged else None
    with step("pivot_root into the container's root"):
        rootfs.pivot_root(spec, trace)
    with step("mounting /proc"):
        rootfs.mount_proc(trace)
    with step("mounting /dev"):
        rootfs.mount_dev(spec, trace, devices)
    with step("mounting /sys"):
        rootfs.mount_sys(spec, fds, trace)
    with step("mounting volumes"):
        rootfs.bind_mounts(spec, fds, trace)
    if not spec.privileged:
        with step("masking paths"):
            rootfs.mask_paths(trace)
        with step("making paths read-only"):
            rootfs.readonly_paths(trace)
    if spec.readonly_rootfs:
        with step("making the root read-only"):
            rootfs.readonly_root(trace)


def loopback_up():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    finally:
        s.close()


def open_pty(trace):
    """A terminal from the container's own devpts: (master for the parent, slave)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
    slave = os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NOCTTY)
    os.fchown(slave, 0, 5)
    trace(f"open(/dev/ptmx) → /dev/pts/{n}", "-t: the command's terminal; minirun relays the other end")
    return master, slave


def stdio(slave, keep_stdin):
    """A -t process's stdio is its terminal; without -i the command reads /dev/null."""
    if slave is not None:
        os.setsid()
        fcntl.ioctl(slave, TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        os.close(slave)
    elif not keep_stdin:
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
