"""mount(2), umount2(2) and pivot_root(2), with the MS_* flags of linux/mount.h."""
import ctypes
import os

from . import check, encode, libc

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

MNT_DETACH = 2

# x86_64 has its own syscall table; arm64 and riscv64 use asm-generic's.
SYS_pivot_root = {"x86_64": 155, "aarch64": 41, "riscv64": 41}[os.uname().machine]

_NAMES = [(MS_RDONLY, "MS_RDONLY"), (MS_NOSUID, "MS_NOSUID"), (MS_NODEV, "MS_NODEV"),
          (MS_NOEXEC, "MS_NOEXEC"), (MS_REMOUNT, "MS_REMOUNT"), (MS_BIND, "MS_BIND"),
          (MS_MOVE, "MS_MOVE"), (MS_REC, "MS_REC"), (MS_PRIVATE, "MS_PRIVATE"),
          (MS_SLAVE, "MS_SLAVE"), (MS_STRICTATIME, "MS_STRICTATIME")]


def flag_names(flags):
    return "|".join(n for f, n in _NAMES if flags & f) or "0"


def mount(source, target, fstype=None, flags=0, data=None):
    check(libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags),
                     encode(data)), target)


def umount2(target, flags=0):
    check(libc.umount2(encode(target), ctypes.c_int(flags)), target)


def pivot_root(new_root, put_old):
    check(libc.syscall(ctypes.c_long(SYS_pivot_root), encode(new_root), encode(put_old)),
          new_root)


# The new mount API (Linux 5.2+): same numbers on every architecture.
SYS_open_tree = 428
SYS_move_mount = 429
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
AT_FDCWD = -100
MOVE_MOUNT_F_EMPTY_PATH = 0x00000004
MOVE_MOUNT_T_EMPTY_PATH = 0x00000040


def open_tree(path, flags=OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE):
    """A detached copy of the mount at *path*, as a descriptor (for a later move_mount)."""
    return check(libc.syscall(ctypes.c_long(SYS_open_tree), ctypes.c_int(AT_FDCWD),
                              encode(path), ctypes.c_uint(flags)), path)


def move_mount(fd, target):
    """Attach the detached mount *fd* at *target* (a path, or a descriptor of the place)."""
    if isinstance(target, int):
        where, path, flags = target, b"", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
    else:
        where, path, flags = AT_FDCWD, encode(target), MOVE_MOUNT_F_EMPTY_PATH
    check(libc.syscall(ctypes.c_long(SYS_move_mount), ctypes.c_int(fd), b"",
                       ctypes.c_int(where), path, ctypes.c_uint(flags)), str(target))


SYS_mount_setattr = 442
MOUNT_ATTR_IDMAP = 0x00100000


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def idmap(fd, userns_fd):
    """Make the detached mount *fd* an idmapped mount (Linux 5.12+): its files' owners are
    seen through the uid/gid maps of the user namespace *userns_fd*."""
    attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    check(libc.syscall(ctypes.c_long(SYS_mount_setattr), ctypes.c_int(fd), b"",
                       ctypes.c_uint(AT_EMPTY_PATH | AT_RECURSIVE), ctypes.byref(attr),
                       ctypes.c_size_t(ctypes.sizeof(attr))), "mount_setattr(MOUNT_ATTR_IDMAP)")
