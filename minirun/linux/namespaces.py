"""unshare(2) and setns(2), and the CLONE_* flags that name namespaces (linux/sched.h)."""
import ctypes

from . import check, libc

CLONE_NEWNS = 0x00020000       # mount table
CLONE_NEWCGROUP = 0x02000000   # cgroup root view
CLONE_NEWUTS = 0x04000000      # hostname, domain name
CLONE_NEWIPC = 0x08000000      # System V IPC, POSIX message queues
CLONE_NEWUSER = 0x10000000     # user and group IDs
CLONE_NEWPID = 0x20000000      # process IDs (for children of the caller)
CLONE_NEWNET = 0x40000000      # network devices, addresses, routes, ports

NAMES = {CLONE_NEWNS: "mnt", CLONE_NEWCGROUP: "cgroup", CLONE_NEWUTS: "uts",
         CLONE_NEWIPC: "ipc", CLONE_NEWUSER: "user", CLONE_NEWPID: "pid",
         CLONE_NEWNET: "net"}


def flag_names(flags):
    return "|".join(f"CLONE_NEW{NAMES[f].upper()}" if f != CLONE_NEWNS else "CLONE_NEWNS"
                    for f in NAMES if flags & f)


def unshare(flags):
    check(libc.unshare(ctypes.c_int(flags)), f"unshare({flag_names(flags)})")


def setns(fd, nstype=0):
    check(libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), f"setns({NAMES.get(nstype, nstype)})")
