"""A bundle's first process, from fork to exec: runc's "standard init".

    (lifecycle.py forked it: PID 1 of a new PID namespace, or in the one config.json names)
    joins its cgroups (on v1 by itself), the namespaces given by path, unshares the new
    ones (but cgroup's),
    root: the host's mounts made slave (or what rootfsPropagation says), the bundle's
         root bound onto itself, config.json's mounts in order — up to the first cgroup
         one: GO (in its cgroups now), the cgroup namespace, the rest — HOOKS: the parent runs
         prestart and createRuntime hooks; createContainer hooks run here — pivot_root,
         devices, sysctls, masked and read-only paths
    (-t: a terminal from the container's devpts → PTY) READY: create returns
    waits on exec.fifo until ``start`` reads it, startContainer hooks,
    the lock-down runtime/ shares with ``minirun run`` and exec, execve

Every path config.json names inside the container is resolved inside the
container's root: the mounts' destinations through openat2(RESOLVE_IN_ROOT)
before pivot_root, devices and masks after it. A symlink in the root file system
cannot point a mount or a device node at the host.
"""
import _socket as socket   # socket.py's C core, without its enums (docs/architecture.md)
import _signal as signal   # signal.py's C core, without its enums (docs/architecture.md)
import fcntl
import os
import stat
import struct

from ..errors import MinirunError, step
from ..linux import libc, check
from ..linux import mount as m
from ..linux import namespaces as ns
from ..linux.fs import make_in_root
from ..linux.process import TIOCSWINSZ, join_new_session_keyring, set_dumpable
from ..runtime import child, lockdown, rootfs, sync, userns
from ..runtime import cgroups
from . import hooks

NS_FLAGS = {"network": ns.CLONE_NEWNET, "mount": ns.CLONE_NEWNS, "ipc": ns.CLONE_NEWIPC,
            "uts": ns.CLONE_NEWUTS, "cgroup": ns.CLONE_NEWCGROUP, "user": ns.CLONE_NEWUSER}
HOOKS = "hooks"           # child → parent: namespaces made; run prestart/createRuntime hooks
DONE = "done"             # parent → child: they ran
# runc's default devices, which are minirun's: made in every container unless config.json
# binds its own /dev
DEFAULT_DEVICES = tuple((f"/dev/{name}", major, minor) for name, major, minor in rootfs.DEVICES)


def main(cfg, sock, fifo_fd, cgroup_files, trace):
    """Never returns: execs the bundle's process or exits. *cgroup_files*: the cgroups to
    join by ourselves (cgroup v1, runtime/cgroups.py), first, while the host's paths hold."""
    try:
        cgroups.join(cgroup_files, trace)
        set_dumpable(False)                 # no /proc/<pid>/… access to us (CVE-2019-5736)
        if cfg.new_keyring:
            join_new_session_keyring()
        if cfg.oom_score_adj is not None:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(cfg.oom_score_adj))
        process = cfg.process
        seccomp = lockdown.read_filter(process)
        state = setup(cfg, sock, trace)
        sync.send(sock, sync.READY)
        sock.close()                        # create returns: the container is "created"
        wait_for_start(fifo_fd)               # its write end stays open until the exec
        state["status"] = "running"
        hooks.run(cfg.hooks, "startContainer", state)
        lockdown.lock_down(process, trace, create_workdir=True, seccomp=seccomp)
        lockdown.execute(process.args, process.env)
    except BaseException as e:
        _fail(sock, *lockdown.failure(e))


def _fail(sock, message, code):
    """Before READY the parent reports it; after, nobody waits on the socket: the process's
    stderr is where the caller (the shim, conmon) looks, as with runc."""
    if sock.fileno() < 0:
        try:
            os.write(2, f"minirun-runc: {message}\n".encode())
        except OSError:
            pass
        os._exit(code)
    child.fail(sock, message, code)


def setup(cfg, sock, trace):
    """Everything up to READY; returns the state GO brought (for the hooks).

    On cgroup v2 the parent moves us into our cgroups meanwhile (the move waits for an
    RCU grace period, ~10 ms; on v1 we joined by ourselves, without the wait), so the
    set-up that does not depend on the cgroups — namespaces, the root, the mounts before
    the first ``cgroup`` one — runs while it does. A new cgroup namespace must be made
    after the move (its root is the cgroup we are in then), and a ``cgroup`` mount after
    that."""
    joined, flags = [], 0
    for kind, path in cfg.namespaces:
        if kind in ("pid", "user"):
            continue                        # pid: the fork did it; user: last, below
        if path:
            joined.append((kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
        else:
            flags |= NS_FLAGS[kind]
    for kind, fd in joined:
        ns.setns(fd, NS_FLAGS[kind])
        os.close(fd)
        trace(f"setns({kind})", "a namespace config.json names by path")
    early = flags & ~ns.CLONE_NEWCGROUP
    ns.unshare(early)
    trace(f"unshare({ns.flag_names(early)})", "the namespaces config.json asks for")
    if cfg.hostname:
        socket.sethostname(cfg.hostname)
    if cfg.domainname:
        name = cfg.domainname.encode()
        check(libc.setdomainname(name, len(name)), "setdomainname")
    with step("preparing the root file system"):
        prepare_root(cfg, trace)
    root_fd = os.open(cfg.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    host_cgroups = cgroups.hierarchies() if any(x.type == "cgroup" for x in cfg.mounts) else []
    first_cgroup = next((n for n, x in enumerate(cfg.mounts) if x.type == "cgroup"),
                        len(cfg.mounts))
    for mnt in cfg.mounts[:first_cgroup]:
        with step(f"mounting {mnt.destination}"):
            mount_one(mnt, root_fd, host_cgroups)
    kind, msg, _ = sync.recv(sock)          # GO: we are in our cgroups
    if kind != sync.GO:
        os._exit(lockdown.EXIT_RUNTIME)
    if flags & ns.CLONE_NEWCGROUP:
        ns.unshare(ns.CLONE_NEWCGROUP)
        trace("unshare(CLONE_NEWCGROUP)", "its own cgroup is the root of its view")
    for mnt in cfg.mounts[first_cgroup:]:
        with step(f"mounting {mnt.destination}"):
            mount_one(mnt, root_fd, host_cgroups)
    os.close(root_fd)
    trace(f"{len(cfg.mounts)} mounts of config.json", "in order, each resolved inside the root")
    state = msg["state"]
    if cfg.hooks.get("prestart") or cfg.hooks.get("createRuntime"):
        sync.send(sock, HOOKS)
        sync.expect(sock, DONE)
    hooks.run(cfg.hooks, "createContainer", state)
    with step("pivot_root into the bundle's root"):
        enter_root(cfg, trace)
    with step("making devices"):
        make_devices(cfg)
    for key, value in cfg.sysctl.items():
        with step(f"setting sysctl {key}"):
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)
    if cfg.rootfs_propagation:
        m.mount(None, "/", None, cfg.rootfs_propagation)
    with step("masking paths"):
        rootfs.mask_paths(trace, cfg.masked_paths)
    with step("making paths read-only"):
        rootfs.readonly_paths(trace, cfg.readonly_paths)
    if cfg.readonly:
        rootfs.readonly_root(trace)
    if cfg.terminal:
        master, slave = child.open_pty(trace)
        if cfg.console_size:
            fcntl.ioctl(master, TIOCSWINSZ, struct.pack("HHHH", *cfg.console_size, 0, 0))
        sync.send(sock, sync.PTY, [master])
        os.close(master)
        child.stdio(slave, keep_stdin=True)
    if cfg.has_namespace("user"):
        path = cfg.namespace_path("user")
        if path:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            ns.setns(fd, ns.CLONE_NEWUSER)
            os.close(fd)
            userns.become_root()
        else:
            userns.enter(sock, cfg.uid_mappings[0][1], trace)
    return state


def prepare_root(cfg, trace):
    """Before the mounts: propagation, and the root a mount point (pivot_root needs one)."""
    if cfg.has_namespace("mount"):
        private = cfg.rootfs_propagation & m.MS_PRIVATE
        m.mount(None, "/", None, m.MS_REC | (m.MS_PRIVATE if private else m.MS_SLAVE))
        trace("mount(/, MS_REC|MS_SLAVE)", "our mounts never propagate back to the host")
        m.mount(cfg.root, cfg.root, None, m.MS_BIND | m.MS_REC)


def enter_root(cfg, trace):
    if cfg.no_pivot and cfg.has_namespace("mount"):
        # --no-pivot (a root on ramfs, where pivot_root fails): move it over / and chroot.
        # The host's root stays under it in this mount namespace: pivot_root's way is safer.
        os.chdir(cfg.root)
        m.mount(cfg.root, "/", None, m.MS_MOVE)
        os.chroot(".")
        os.chdir("/")
        trace("mount(root, /, MS_MOVE); chroot(.)", "--no-pivot")
        return
    if not cfg.has_namespace("mount"):
        # The caller's own mount namespace (config.json asked for none): pivot_root would
        # move the root of every process in it. chroot, as runc does; the mounts below
        # land in the caller's namespace under the root, and delete takes them away.
        os.chdir(cfg.root)
        os.chroot(".")
        os.chdir("/")
        trace("chroot(.)", "no mount namespace: the caller's mounts, our root")
        return
    os.chdir(cfg.root)
    m.pivot_root(".", ".")
    m.umount2(".", m.MNT_DETACH)
    os.chdir("/")
    trace("pivot_root(., .); umount2(., MNT_DETACH)", "the bundle's root is /, the host's gone")


def mount_one(mnt, root_fd, host_cgroups):
    """One mount of config.json, made before pivot_root (in order: mountinfo lists mounts as
    they were made). Its destination is resolved inside the root (make_in_root) and mounted
    on through /proc/self/fd, so no symlink in the root file system can redirect it."""
    if mnt.bind:
        try:
            is_dir = stat.S_ISDIR(os.stat(mnt.source).st_mode)
        except OSError as e:
            raise MinirunError(f"bind mount source {mnt.source}: {e.strerror}") from None
        place = _in_root(root_fd, mnt.destination, is_dir)
        with place as target:
            if mnt.idmap:
                idmapped_bind(mnt, place.fd)
            else:
                m.mount(mnt.source, target, None,
                        m.MS_BIND | (m.MS_REC if mnt.recursive else 0))
        if mnt.flags:
            with _in_root(root_fd, mnt.destination, is_dir) as target:   # the new mount
                m.mount(None, target, None, m.MS_BIND | m.MS_REMOUNT | mnt.flags
                        | (m.MS_REC if mnt.recursive else 0))
    elif mnt.type == "cgroup":
        mount_cgroups(root_fd, mnt.destination, mnt.flags, host_cgroups)
    else:
        with _in_root(root_fd, mnt.destination) as target:
            m.mount(mnt.source or mnt.type, target, mnt.type, mnt.flags, mnt.data or None)
    for flag in mnt.propagation:
        with _in_root(root_fd, mnt.destination) as target:
            m.mount(None, target, None, flag)


def idmapped_bind(mnt, target_fd):
    """A bind mount whose files' owners are seen through the mount's uid/gid maps (Linux
    5.12+: mount_setattr(MOUNT_ATTR_IDMAP) on a detached copy, then attached)."""
    flags = m.OPEN_TREE_CLONE | m.OPEN_TREE_CLOEXEC | (m.AT_RECURSIVE if mnt.recursive else 0)
    fd = m.open_tree(mnt.source, flags)
    userns_fd = userns.mapping_namespace(0, maps=mnt.idmap)
    try:
        try:
            m.idmap(fd, userns_fd)
        except OSError as e:
            raise MinirunError(f"idmapped mount of {mnt.source}: {e.strerror} (its file "
                               "system may not take idmapped mounts: Linux 5.12+, tmpfs 6.3+)") \
                from None
        m.move_mount(fd, target_fd)
    finally:
        os.close(userns_fd)
        os.close(fd)


class _in_root:
    """``with _in_root(root_fd, path) as target``: a /proc/self/fd path naming *path* in
    the root, made when missing."""

    def __init__(self, root_fd, path, directory=True):
        self.fd = make_in_root(root_fd, path, directory)

    def __enter__(self):
        return f"/proc/self/fd/{self.fd}"

    def __exit__(self, *_):
        os.close(self.fd)


def mount_cgroups(root_fd, dest, flags, host):
    """config.json's ``cgroup`` mount: the host's kind of hierarchy. On a v1 (or hybrid) host,
    a tmpfs holding one mount per v1 hierarchy, as runc makes it; in a cgroup namespace each
    shows the container's own cgroup as its root."""
    v1 = [(point, opts) for point, fstype, opts in host if fstype == "cgroup"]
    if not v1:
        with _in_root(root_fd, dest) as target:
            m.mount("cgroup2", target, "cgroup2", flags)
        return
    with _in_root(root_fd, dest) as target:
        m.mount("tmpfs", target, "tmpfs", flags & ~m.MS_RDONLY, "mode=755")
    for point, opts in v1:
        name = os.path.basename(point)
        wanted = sorted(o for o in opts if o not in ("rw", "ro") and "=" not in o
                        or o.startswith("name="))
        with _in_root(root_fd, f"{dest}/{name}") as target:
            m.mount("cgroup", target, "cgroup", flags, ",".join(wanted))
        with _in_root(root_fd, dest) as target:
            for part in name.split(","):
                if part != name and not os.path.lexists(f"{target}/{part}"):
                    os.symlink(name, f"{target}/{part}")
    if flags & m.MS_RDONLY:
        with _in_root(root_fd, dest) as target:
            m.mount(None, target, None, m.MS_REMOUNT | m.MS_BIND | flags)


def make_devices(cfg):
    own_dev = any(x.destination == "/dev" and x.bind for x in cfg.mounts)
    listed = {d[0] for d in cfg.devices}
    devices = list(cfg.devices)
    if not own_dev:
        devices += [(path, "c", major, minor, 0o666, 0, 0)
                    for path, major, minor in DEFAULT_DEVICES if path not in listed]
    for path, kind, major, minor, mode, uid, gid in devices:
        rootfs.mkdirs(os.path.dirname(path))
        if os.path.lexists(path):
            if os.path.isdir(path) and not os.path.islink(path):
                raise MinirunError(f"device {path}: a directory is in the way")
            os.unlink(path)
        if kind == "p":
            os.mkfifo(path, mode & 0o777)
        else:
            node = stat.S_IFBLK if kind == "b" else stat.S_IFCHR
            os.mknod(path, node | (mode & 0o7777), os.makedev(major, minor))
        os.chmod(path, mode & 0o7777)
        os.chown(path, uid, gid)
    if not own_dev:
        for name, target in rootfs.DEV_LINKS:
            path = f"/dev/{name}"
            if not os.path.lexists(path) and (name != "core" or os.path.exists("/proc/kcore")):
                os.symlink(target, path)


def wait_for_start(fifo_fd):
    """Block until ``start`` opens exec.fifo to read, then tell it we go on (runc's way:
    opening a FIFO to write waits for a reader). The descriptor is an O_PATH one taken on
    the host; /proc/self/fd reopens it from inside the container. The write end stays open
    (close-on-exec): ``start`` reads to its end, so it returns once the process has exec'd
    (or died), and poststart hooks run after the user's program has begun, as the spec says."""
    fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(fd, b"0")
    os.close(fifo_fd)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    return fd
