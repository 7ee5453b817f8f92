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

# With RESOLVE_IN_ROOT or RESOLVE_BENEATH the kernel fails a walk through ".." with EAGAIN
# when any rename or mount anywhere on the host happened during it (rename_lock and
# mount_lock are global), since it then cannot prove the walk stayed inside; openat2(2)
# says to retry. minirund itself renames state files all the time; under a loop of renames
# elsewhere ~6% of walks through ".." failed (tests/test_copy.py provokes it), so a retry is
# routine; running out of them means an unending storm of renames, and EAGAIN the answer.
EAGAIN_RETRIES = 64


def openat2(dirfd, path, flags, resolve, mode=0):
    how = OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    args = (ctypes.c_long(SYS_openat2), ctypes.c_int(dirfd), encode(path),
            ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    for _ in range(EAGAIN_RETRIES):
        ret = libc.syscall(*args)
        if ret >= 0 or ctypes.get_errno() != errno.EAGAIN:
            break
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


def make_in_root(root_fd, path, directory=True, _depth=0):
    """An O_PATH descriptor of *path* inside the tree *root_fd* is the root of, made when
    missing (directories on the way; the last one a directory or an empty file). Every
    step resolves as if *root_fd* were / (RESOLVE_IN_ROOT): a symlink in the tree, absolute
    or full of .., cannot lead outside it; one that dangles is followed and its target made
    (inside the tree), as runc's securejoin does. Mount onto ``/proc/self/fd/N`` of it."""
    if _depth > 40:
        raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    for n in range(1, len(parts) + 1):
        prefix, last = "/".join(parts[:n]), n == len(parts)
        try:
            fd = openat2(root_fd, prefix, os.O_PATH, RESOLVE_IN_ROOT)
        except FileNotFoundError:
            parent = openat2(root_fd, "/".join(parts[:n - 1]) or ".",
                             os.O_PATH | os.O_DIRECTORY, RESOLVE_IN_ROOT)
            try:                      # (an O_PATH descriptor serves as a dir_fd)
                try:
                    link = os.readlink(parts[n - 1], dir_fd=parent)
                except OSError:
                    link = None
                if link is not None:  # dangling: make where it points, inside the tree
                    base = link if link.startswith("/") else "/".join(parts[:n - 1] + [link])
                    return make_in_root(root_fd, "/".join([base, *parts[n:]]), directory,
                                        _depth + 1)
                if directory or not last:
                    os.mkdir(parts[n - 1], 0o755, dir_fd=parent)
                else:
                    os.close(os.open(parts[n - 1], os.O_WRONLY | os.O_CREAT | os.O_EXCL
                                     | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=parent))
            finally:
                os.close(parent)
            fd = openat2(root_fd, prefix, os.O_PATH, RESOLVE_IN_ROOT)
        if last:
            return fd
        os.close(fd)
    return os.dup(root_fd)
