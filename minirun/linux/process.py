"""prctl(2)'s calls, keyctl(2)'s one call, and ioctl numbers for terminals.

(python-prctl did the prctl calls once: its import cost ~1.4 ms of every start, as much
as all of this module's calls together, and it needed a C compiler to install.)
"""
import ctypes
import os

from . import check, libc

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_CAP_AMBIENT_RAISE = 2

TIOCSCTTY = 0x540E
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCGWINSZ = 0x5413
TIOCSWINSZ = 0x5414


def _prctl(what, option, arg2=0, arg3=0):
    # every argument as an unsigned long: the kernel refuses unused ones that are not zero
    return check(libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                            ctypes.c_ulong(0), ctypes.c_ulong(0)), what)


def set_pdeathsig(sig):
    """Be sent *sig* when the thread that forked us ends."""
    _prctl("PR_SET_PDEATHSIG", PR_SET_PDEATHSIG, sig)


def set_dumpable(flag):
    """Not dumpable: /proc/<pid>/… of this process is root's alone, ptrace refused."""
    _prctl("PR_SET_DUMPABLE", PR_SET_DUMPABLE, int(flag))


def set_keepcaps(flag):
    """Keep the permitted capabilities across a setuid away from root."""
    _prctl("PR_SET_KEEPCAPS", PR_SET_KEEPCAPS, int(flag))


def capbset_read(cap):
    return _prctl("PR_CAPBSET_READ", PR_CAPBSET_READ, cap) == 1


def capbset_drop(cap):
    _prctl("PR_CAPBSET_DROP", PR_CAPBSET_DROP, cap)


def set_no_new_privs():
    _prctl("PR_SET_NO_NEW_PRIVS", PR_SET_NO_NEW_PRIVS, 1)


def clear_ambient_caps():
    _prctl("PR_CAP_AMBIENT_CLEAR_ALL", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


def raise_ambient_cap(cap):
    _prctl("PR_CAP_AMBIENT_RAISE", PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)


KEYCTL_JOIN_SESSION_KEYRING = 1
SYS_keyctl = {"x86_64": 250, "aarch64": 219, "riscv64": 219}[os.uname().machine]


def join_new_session_keyring():
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL): a new anonymous session keyring, so the
    keys of whoever started us (the shim's, a login's) are not the container's."""
    check(libc.syscall(ctypes.c_long(SYS_keyctl), ctypes.c_int(KEYCTL_JOIN_SESSION_KEYRING),
                       ctypes.c_void_p(None)), "keyctl(KEYCTL_JOIN_SESSION_KEYRING)")
