"""openat2(2): path resolution the kernel keeps inside a directory.

Used by layer extraction so that no tar entry can reach outside the layer
directory, whatever symlinks earlier entries planted.
"""
import ctypes
import errno
import os

from . import check, encode, libc

SYS_openat2 = 437            # same number on every architecture (asm-generic unistd.h)

# linux/openat2.h
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_have_openat2 = None


def openat2(dirfd, path, flags, resolve, mode=0):
    how = OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    ret = libc.syscall(ctypes.c_long(SYS_openat2), ctypes.c_int(dirfd), encode(path),
                       ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    return check(ret, path)


def open_beneath(dirfd, path, flags=os.O_RDONLY | os.O_DIRECTORY):
    """Open *path* below *dirfd* following no symlink and never leaving it.

    Falls back to a component-by-component O_NOFOLLOW walk on kernels
    without openat2 (before 5.6).
    """
    global _have_openat2
    if _have_openat2 is not False:
        try:
            return openat2(dirfd, path, flags, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
        except OSError as e:
            if e.errno != errno.ENOSYS:
                raise
            _have_openat2 = False
    return _walk_nofollow(dirfd, path, flags)


def _walk_nofollow(dirfd, path, flags):
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts:
        return os.open(".", flags | os.O_CLOEXEC, dir_fd=dirfd)
    fd = os.dup(dirfd)
    try:
        for i, part in enumerate(parts):
            if part == "..":
                raise OSError(errno.EXDEV, "path escapes its root", path)
            last = i == len(parts) - 1
            f = flags if last else os.O_RDONLY | os.O_DIRECTORY
            nfd = os.open(part, f | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise
