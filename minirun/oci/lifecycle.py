"""create, start, kill, delete, pause: a container's life as runc's commands drive it.

    create  reads the bundle, makes the state directory, exec.fifo and the cgroups, forks
            the first process (init.py) and sees it through its set-up; returns once it
            waits on exec.fifo ("created"), having written --pid-file. The process is not
            create's to wait for: the caller (containerd's shim, conmon) is a subreaper and
            inherits it when create exits.
    start   reads exec.fifo: the process goes on to exec ("running"); poststart hooks
    kill    a signal to the first process (or, --all, to every process in its cgroups)
    delete  a stopped container's cgroups and directory go; poststop hooks
"""
import _socket as socket   # socket.py's C core, without its enums (docs/architecture.md)
import _signal as signal   # signal.py's C core, without its enums (docs/architecture.md)
import os
import select

from ..errors import MinirunError
from ..fsutil import readable
from ..linux import mount as m
from ..runtime import cgroups as cg
from ..runtime import lockdown, sync, userns
from ..runtime.container import fork_in_pid_namespace
from . import hooks, init, state
from .bundle import BundleError


class OciError(MinirunError):
    pass


DEFAULT_PARENT = "minirun-runc"


def cgroup_of(cgroups_path, cid):
    """(parent, name) of a container's cgroup: cgroupsPath's, else minirun-runc/<id>."""
    path = cgroups_path.strip("/")
    if not path:
        return DEFAULT_PARENT, cid
    parent, _, name = path.rpartition("/")
    return parent, name


def driver(c):
    """(cgroup driver, the container's cgroup name) for a container's cgroups."""
    parent, name = c.data["cgroup"]
    return _driver(parent), name


# One mountinfo read per command (list asks for every container's; most ask twice). A dict,
# not functools.lru_cache: docs/architecture.md, "What a start imports".
_drivers = {}


def _driver(parent):
    if parent not in _drivers:
        _drivers[parent] = cg.detect(parent=parent, shared_parent=parent == DEFAULT_PARENT)
    return _drivers[parent]


def frozen_check(c):
    def frozen():
        try:
            d, name = driver(c)
        except MinirunError:
            return False
        return d.is_frozen(name)
    return frozen


def status(c):
    return c.status(frozen_check(c))


def create(cfg, root, cid, pid_file="", console_socket="", preserve_fds=0, trace=None):
    """Create the container; return its state.Container (its first process waits on
    exec.fifo)."""
    if cfg.process is None:
        raise BundleError("config.json has no process to run")
    if cfg.terminal and not console_socket:
        raise OciError("cannot allocate tty if runc will detach without setting console "
                       "socket")
    trace = trace or (lambda *a: None)
    c = state.make(root, cid)
    d = name = pid = None
    console = None
    try:
        os.mkfifo(c.fifo, 0o622)
        os.chmod(c.fifo, 0o622)          # whatever the umask: any user the process becomes
        fifo_fd = os.open(c.fifo, os.O_PATH | os.O_CLOEXEC)
        if cfg.seccomp is not None:
            from ..runtime.seccomp import compile_profile     # libseccomp: only when asked
            cfg.process.seccomp = compile_profile(cfg.seccomp, cfg.process.caps, c.dir)
        cfg.process.preserve_fds = preserve_fds
        parent, name = cgroup_of(cfg.cgroups_path, cid)
        c.data = {"id": cid, "pid": 0, "pid_start": None, "bundle": cfg.bundle,
                  "rootfs": cfg.root, "created": state.now(), "owner": "",
                  "annotations": cfg.annotations, "cgroup": [parent, name],
                  "hooks": cfg.hooks, "process": cfg.raw.get("process"),
                  "seccomp": cfg.process.seccomp, "userns": cfg.has_namespace("user"),
                  "host_mounts": not cfg.has_namespace("mount")}
        d = cg.detect(trace, parent=parent, shared_parent=parent == DEFAULT_PARENT)
        d.create(name, cfg.limits)
        c.data["cgroup_made"] = d.made
        if console_socket:
            console = _connect(console_socket)
        joins = d.first_process_files(name)
        pid, pidfd, sock = _fork(cfg, fifo_fd, preserve_fds, joins, trace)
        os.close(fifo_fd)
        c.data.update(pid=pid, pid_start=state.start_time(pid))
        c.save()
        if not joins:
            d.add(name, pid)
        sync.send_go(sock, state=c.oci_state("creating"))
        master = _handshake(sock, pidfd, cfg, c)
        if master is not None:             # (a terminal always has a console socket)
            sync.send_fds(console, b"/dev/ptmx", [master])
            os.close(master)
        if pid_file:
            write_pid_file(pid_file, pid)
        return c
    except BaseException:
        if pid:
            _kill(pid)
        if d is not None:
            d.kill_all(name)
            d.remove(name, d.made)
        if not cfg.has_namespace("mount"):
            unmount_under(cfg.root)       # what its set-up mounted in our namespace
        _remove_dir(c)
        raise
    finally:
        if console is not None:
            console.close()


def _fork(cfg, fifo_fd, preserve_fds, cgroup_files, trace):
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid_path = cfg.namespace_path("pid")
    pidns = os.open(pid_path, os.O_RDONLY | os.O_CLOEXEC) if pid_path else None
    pid = None
    try:
        if cfg.has_namespace("pid"):
            pid = fork_in_pid_namespace(pidns, trace)
        else:
            pid = os.fork()
    finally:
        if pidns is not None and pid != 0:
            os.close(pidns)
    if pid == 0:
        try:
            lockdown.reset_signals()
            keep = list(range(3, 3 + preserve_fds)) + [child_sock.fileno(), fifo_fd]
            *_, sock, fifo = lockdown.keep_only(None, keep)
            init.main(cfg, socket.socket(fileno=sock), fifo, cgroup_files, trace)
        finally:
            os._exit(lockdown.EXIT_RUNTIME)
    child_sock.close()
    return pid, os.pidfd_open(pid), parent_sock


def _handshake(sock, pidfd, cfg, c):
    """The parent's side of init.py's set-up; the terminal's master (or None)."""
    master = None
    try:
        while True:
            kind, msg, fds = sync.recv(sock)
            if kind is None:
                raise OciError("container init died while being set up")
            if kind == sync.PTY and fds:
                master = fds[0]
            elif kind == init.HOOKS:
                st = c.oci_state("created")
                hooks.run(cfg.hooks, "prestart", st)
                hooks.run(cfg.hooks, "createRuntime", st)
                sync.send(sock, init.DONE)
            elif kind == sync.USERNS:
                userns.write_id_maps(c.pid, cfg.uid_mappings, cfg.gid_mappings)
                sync.send(sock, sync.MAPPED)
            elif kind == sync.READY:
                return master
            elif kind == sync.ERROR:
                for fd in fds:
                    os.close(fd)
                raise OciError(msg.get("message") or "container init failed")
    except BaseException:
        if master is not None:
            os.close(master)
        raise
    finally:
        sock.close()
        os.close(pidfd)


def write_pid_file(path, pid):
    """Whole or absent: containerd reads it as soon as create returns."""
    state.write_whole(path, str(pid))


def _connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise OciError(f"cannot connect to console socket {path}: {e.strerror}") from None
    return s


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _remove_dir(c):
    for name in os.listdir(c.dir) if os.path.isdir(c.dir) else ():
        os.unlink(os.path.join(c.dir, name))
    try:
        os.rmdir(c.dir)
    except FileNotFoundError:
        pass


def start(c):
    """Let a created container's process go on to exec."""
    st = status(c)
    if st != "created":
        raise OciError(f"cannot start a container that is {st}" if st != "running"
                       else "cannot start an already running container")
    pidfd = init_pidfd(c)
    fd = os.open(c.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        started = False
        poller = select.poll()        # (as fsutil.readable: never select())
        for f in (fd, pidfd):
            poller.register(f, select.POLLIN)
        while True:                   # "0", then the end: the process has exec'd (or died)
            ready = {f for f, _ in poller.poll()}
            if fd in ready:
                data = os.read(fd, 16)
                started = started or bool(data)
                if not data and started:
                    break
            if pidfd in ready and not started:
                raise OciError("container process exited before start")
            if pidfd in ready:
                break
    finally:
        os.close(fd)
        os.close(pidfd)
    os.unlink(c.fifo)
    hooks.run_warning(c.data.get("hooks") or {}, "poststart", c.oci_state("running"), _warn)


def init_pidfd(c):
    """A pidfd of the container's first process, checked to be that process still."""
    try:
        pidfd = os.pidfd_open(c.pid)
    except ProcessLookupError:
        raise OciError("container is not running") from None
    if not c.alive():
        os.close(pidfd)
        raise OciError("container is not running")
    return pidfd


def kill(c, sig, every=False):
    st = status(c)
    if st == "stopped":
        raise OciError("container not running")
    if every:
        d, name = driver(c)
        if sig == signal.SIGKILL:
            d.kill_all(name)
            return
        for pid in _pids(d, name):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return
    pidfd = init_pidfd(c)
    try:
        signal.pidfd_send_signal(pidfd, sig)
    finally:
        os.close(pidfd)


def _pids(d, name):
    try:
        with open(d.procs_file(name)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def pids(c):
    d, name = driver(c)
    return _pids(d, name)


def delete(c, force=False):
    st = status(c)
    if st in ("running", "paused") and not force:
        raise OciError(f"cannot delete container {c.id} that is not stopped: {st}")
    d, name = driver(c)
    if st != "stopped":
        try:
            pidfd = os.pidfd_open(c.pid)
        except ProcessLookupError:
            pidfd = None
        d.kill_all(name)
        if pidfd is not None:
            _kill(c.pid)              # outside the cgroup too (a joined PID namespace)
            readable(pidfd, 10)
            os.close(pidfd)
    else:
        d.kill_all(name)              # what the first process left behind
    d.remove(name, c.data.get("cgroup_made") or [])
    if c.data.get("host_mounts"):
        unmount_under(c.data["rootfs"])
    hooks.run_warning(c.data.get("hooks") or {}, "poststop", c.oci_state("stopped"), _warn)
    _remove_dir(c)


def unmount_under(root):
    """What a container without a mount namespace mounted under its root, deepest first."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == root or point.startswith(root.rstrip("/") + "/"):
                points.append(point)
    for point in sorted(points, key=len, reverse=True):
        try:
            m.umount2(point, m.MNT_DETACH)
        except OSError:
            pass


def pause(c, frozen):
    st = status(c)
    if frozen and st != "running":
        raise OciError(f"container not running: {st}")
    if not frozen and st != "paused":
        raise OciError("container not paused")
    d, name = driver(c)
    d.freeze(name, frozen)


_warnings = []


def _warn(message):
    _warnings.append(message)


def warnings():
    return list(_warnings)
