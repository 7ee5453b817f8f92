"""Thin ctypes wrappers for the syscalls Python's standard library lacks.

Every wrapper raises ``OSError(errno, strerror, path)`` on failure, like the
``os`` module does; nothing else in minirun calls libc directly.
"""
import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)


def check(ret, what=None):
    """Turn a libc ``-1`` return into an OSError naming *what*."""
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), what)
    return ret


def encode(path):
    return os.fsencode(path) if path is not None else None
