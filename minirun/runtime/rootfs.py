"""The container's root file system: overlay, pivot_root, /proc, /dev, /sys, masks.

Runs in the container's first process, inside its new mount namespace, so
every mount here disappears with the namespace: nothing can leak to the host.
One function per guarantee, in the order they must happen:

    make_mounts_private → mount_overlay → open_bind_sources → pivot_root
    → mount_proc → mount_dev → mount_sys → bind_mounts → mask_paths
    → readonly_paths → readonly_root

Everything after pivot_root resolves paths inside the container's own root,
so a symlink in the image cannot point a mount at the host.
"""
import errno
import os
import stat

from ..errors import MinirunError
from ..fsutil import copy_tree_at
from ..linux import mount as m
from .spec import MASKED_PATHS, READONLY_PATHS


class RootfsError(MinirunError):
    pass


def make_mounts_private(trace):
    m.mount(None, "/", None, m.MS_REC | m.MS_PRIVATE)
    trace("mount(/, MS_REC|MS_PRIVATE)", "mounts made here never propagate back to the host")


def mount_overlay(spec, trace, lower=None):
    """Stack the image's shared layers (read-only) under a per-container upper dir.
    *lower*: (directory, names) of idmapped copies of the layers (userns.idmapped_layers)."""
    # Short relative layer names keep the options within the kernel's one page.
    where, names = lower or (spec.layers_dir, spec.lower)
    os.chdir(where)
    data = (f"lowerdir={':'.join(reversed(names))},"
            f"upperdir={spec.upper},workdir={spec.work}")
    m.mount("overlay", spec.rootfs, "overlay", 0, data)
    trace(f"mount(overlay, {spec.rootfs}, lowerdir={len(spec.lower)} layers)",
          "image layers shared read-only; writes go to this container's upper dir")


def mount_readonly_view(spec):
    """The container's file system as it stands, read-only: its upper dir as the top lower
    layer (no work dir, so a running container's own overlay is not disturbed)."""
    os.chdir(spec.layers_dir)
    m.mount("overlay", spec.rootfs, "overlay", m.MS_RDONLY,
            f"lowerdir={':'.join([spec.upper, *reversed(spec.lower)])}")


def open_bind_sources(spec):
    """Detached copies (open_tree) of the host paths to bind in, taken while the host is
    still visible; after pivot_root they are attached with move_mount."""
    fds = {}
    for mnt in spec.mounts:
        if mnt.kind == "bind":
            fds[mnt.target] = _open_path(mnt.source)
    for target, source in _etc_files(spec).items():
        fds[target] = _open_path(source)
    if spec.init:
        fds["/dev/init"] = _open_path(spec.init)
    if spec.network == "host":
        fds["/sys"] = _open_path("/sys")
    return fds


def _open_path(path):
    try:
        return m.open_tree(path)
    except OSError as e:
        raise RootfsError(f"cannot bind {path}: {e.strerror}") from None


def pivot_root(spec, trace):
    """Make the overlay the root, then detach the old root entirely (never plain chroot)."""
    os.chdir(spec.rootfs)
    # pivot_root(".", ".") stacks the old root on top of the new one; unmounting
    # "." then takes it away, with no directory needed to park it in.
    m.pivot_root(".", ".")
    trace("pivot_root(., .)", "the overlay becomes /; the host's root is stacked above it")
    m.umount2(".", m.MNT_DETACH)
    trace("umount2(., MNT_DETACH)", "the host's root is gone from this mount namespace")
    os.chdir("/")


def mkdirs(path, mode=0o755):
    try:
        os.makedirs(path, mode, exist_ok=True)
    except FileExistsError:
        raise RootfsError(f"cannot create mount point {path}: a file is in the way") from None


def mkfile(path):
    mkdirs(os.path.dirname(path))
    if not os.path.exists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def mount_proc(trace):
    mkdirs("/proc")
    m.mount("proc", "/proc", "proc", m.MS_NOSUID | m.MS_NOEXEC | m.MS_NODEV)
    trace("mount(proc, /proc, MS_NOSUID|MS_NOEXEC|MS_NODEV)",
          "/proc shows only this PID namespace's processes")


DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
           ("urandom", 1, 9), ("tty", 5, 0))
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
             ("ptmx", "pts/ptmx"), ("core", "/proc/kcore"))


def host_devices():
    """The host's top-level device nodes (for --privileged), read before pivot_root."""
    out = {}
    for entry in os.scandir("/dev"):
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            out[entry.name] = (stat.S_IFMT(st.st_mode), st.st_rdev, stat.S_IMODE(st.st_mode))
    return out


def mount_dev(spec, trace, host_devices=None):
    mkdirs("/dev")
    m.mount("tmpfs", "/dev", "tmpfs", m.MS_NOSUID | m.MS_STRICTATIME, "mode=755,size=65536k")
    trace("mount(tmpfs, /dev)", "a /dev of our own, holding only the devices listed next")
    for name, major, minor in DEVICES:
        os.mknod(f"/dev/{name}", stat.S_IFCHR | 0o666, os.makedev(major, minor))
        os.chmod(f"/dev/{name}", 0o666)
    trace("mknod(/dev/null, zero, full, random, urandom, tty)", "the few devices a program expects")
    for name, target in DEV_LINKS:
        os.symlink(target, f"/dev/{name}")
    for name, (kind, rdev, mode) in (host_devices or {}).items():   # --privileged
        if not os.path.lexists(f"/dev/{name}"):
            os.mknod(f"/dev/{name}", kind | mode, rdev)
    mkdirs("/dev/pts")
    m.mount("devpts", "/dev/pts", "devpts", m.MS_NOSUID | m.MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5")
    trace("mount(devpts, /dev/pts, newinstance)", "terminals of its own, not the host's")
    mkdirs("/dev/shm")
    m.mount("shm", "/dev/shm", "tmpfs", m.MS_NOSUID | m.MS_NODEV | m.MS_NOEXEC,
            "mode=1777,size=65536k")
    mkdirs("/dev/mqueue")
    m.mount("mqueue", "/dev/mqueue", "mqueue", m.MS_NOSUID | m.MS_NODEV | m.MS_NOEXEC)
    trace("mount(tmpfs /dev/shm, mqueue /dev/mqueue)", "shared memory and message queues, private")


def mount_sys(spec, fds, trace):
    mkdirs("/sys")
    flags = m.MS_NOSUID | m.MS_NOEXEC | m.MS_NODEV
    if spec.network == "host":
        # sysfs can only be mounted by a network namespace's owner: bind the host's.
        _attach(fds.pop("/sys"), "/sys")
        if not spec.privileged:
            m.mount(None, "/sys", None, m.MS_BIND | m.MS_REMOUNT | m.MS_RDONLY | flags)
    else:
        m.mount("sysfs", "/sys", "sysfs", flags | (0 if spec.privileged else m.MS_RDONLY))
    trace("mount(sysfs, /sys" + (")" if spec.privileged else ", MS_RDONLY)"),
          "devices and kernel objects, read-only")


def _etc_files(spec):
    """/etc/hosts & co., but not where the user mounted something of their own."""
    taken = {mnt.target for mnt in spec.mounts}
    return {t: s for t, s in spec.etc_files.items() if t not in taken}


def bind_mounts(spec, fds, trace):
    """Volumes and tmpfs mounts (a parent before what is mounted inside it), then /etc/hosts
    & co. (so a volume at /etc does not hide them), then the init binary."""
    for mnt in sorted(spec.mounts, key=lambda mnt: mnt.target.count("/")):
        if mnt.kind == "tmpfs":
            mkdirs(mnt.target)
            m.mount("tmpfs", mnt.target, "tmpfs", m.MS_NOSUID | m.MS_NODEV
                    | (m.MS_RDONLY if mnt.readonly else 0), mnt.data or None)
            trace(f"mount(tmpfs, {mnt.target})", "a private in-memory directory")
            continue
        fd = fds.pop(mnt.target)
        if mnt.copy_up:
            copy_up(mnt.target, fd, trace)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            mkdirs(mnt.target)
        else:
            mkfile(mnt.target)
        _bind(fd, mnt.target, mnt.readonly)
        trace(f"mount({mnt.source}, {mnt.target}, MS_BIND{'|MS_RDONLY' if mnt.readonly else ''})",
              "a volume" if mnt.volume else "a host path shared into the container")
    etc = _etc_files(spec)
    for target in etc:
        mkfile(target)
        _bind(fds.pop(target), target, readonly=False)
    if etc:
        trace(f"mount(MS_BIND {', '.join(etc)})", "hostname and name resolution files")
    if spec.init:
        mkfile("/dev/init")
        _bind(fds.pop("/dev/init"), "/dev/init", readonly=True)


def copy_up(target, fd, trace):
    """An empty volume first gets what the image has at *target* (Docker's copy on first
    mount; ``nocopy`` turns it off). Runs after pivot_root: a symlink on the way to *target*
    resolves inside the container, and the copy follows none below it."""
    try:
        src = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return                                    # nothing there (or not a directory)
    dst = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    try:
        if os.listdir(dst):
            return                                # not empty: used before, keep it as it is
        copy_tree_at(src, dst)
        st = os.fstat(src)
        os.fchown(dst, st.st_uid, st.st_gid)
        os.fchmod(dst, st.st_mode & 0o7777)
        trace(f"copy {target} → volume", "an empty volume starts with the image's files")
    finally:
        os.close(src)
        os.close(dst)


def _attach(fd, target):
    try:
        m.move_mount(fd, target)
    finally:
        os.close(fd)


def _bind(fd, target, readonly):
    _attach(fd, target)
    if readonly:
        m.mount(None, target, None, m.MS_BIND | m.MS_REMOUNT | m.MS_RDONLY | m.MS_REC)


def _dev_null_fd():
    """/dev/null, checked to be the real 1:3 character device (CVE-2025-31133).

    Masking binds this very descriptor, so a /dev/null swapped for a symlink
    or another file between the check and the mount cannot be bound instead.
    """
    fd = os.open("/dev/null", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise RootfsError("/dev/null is not the 1:3 character device; refusing to mask with it")
    return fd


def mask_paths(trace, paths=MASKED_PATHS):
    null = _dev_null_fd()
    try:
        for path in paths:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                m.mount("tmpfs", path, "tmpfs", m.MS_RDONLY, None)
            else:
                m.mount(f"/proc/self/fd/{null}", path, None, m.MS_BIND)
    finally:
        os.close(null)
    trace("mount(/dev/null or empty tmpfs over /proc/kcore, /proc/keys, /sys/firmware, …)",
          "hide kernel memory, keys and timers from the container")


def readonly_paths(trace, paths=READONLY_PATHS):
    for path in paths:
        try:
            m.mount(path, path, None, m.MS_BIND | m.MS_REC)
        except OSError as e:
            if e.errno == errno.ENOENT:
                continue
            raise
        m.mount(None, path, None, m.MS_BIND | m.MS_REMOUNT | m.MS_RDONLY | m.MS_REC
                | m.MS_NOSUID | m.MS_NODEV | m.MS_NOEXEC)
    trace("mount(/proc/sys, /proc/sysrq-trigger, /proc/irq, …, MS_REMOUNT|MS_RDONLY)",
          "kernel tunables readable, not writable")


def readonly_root(trace):
    m.mount(None, "/", None, m.MS_BIND | m.MS_REMOUNT | m.MS_RDONLY)
    trace("mount(/, MS_BIND|MS_REMOUNT|MS_RDONLY)", "--read-only: the root file system")
