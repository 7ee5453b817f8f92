"""prctl(2) calls python-prctl lacks, and ioctl numbers for terminals."""
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
