"""prctl(2) calls python-prctl lacks, keyctl(2)'s one call, and ioctl numbers for terminals."""
import ctypes
import os

from . import check, libc

PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_CAP_AMBIENT_RAISE = 2

TIOCSCTTY = 0x540E
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCGWINSZ = 0x5413
TIOCSWINSZ = 0x5414


def clear_ambient_caps():
    check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "PR_CAP_AMBIENT")


def raise_ambient_cap(cap):
    check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0), "PR_CAP_AMBIENT_RAISE")


KEYCTL_JOIN_SESSION_KEYRING = 1
SYS_keyctl = {"x86_64": 250, "aarch64": 219, "riscv64": 219}[os.uname().machine]


def join_new_session_keyring():
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL): a new anonymous session keyring, so the
    keys of whoever started us (the shim's, a login's) are not the container's."""
    check(libc.syscall(ctypes.c_long(SYS_keyctl), ctypes.c_int(KEYCTL_JOIN_SESSION_KEYRING),
                       ctypes.c_void_p(None)), "keyctl(KEYCTL_JOIN_SESSION_KEYRING)")
