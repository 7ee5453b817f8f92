"""Capability numbers, from linux/capability.h, and capget/capset(2)."""
import ctypes

from . import check, libc

CAPS = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5,
    "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10,
    "NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15,
    "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18, "SYS_PTRACE": 19, "SYS_PACCT": 20,
    "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23, "SYS_RESOURCE": 24, "SYS_TIME": 25,
    "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30,
    "SETFCAP": 31, "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35,
    "BLOCK_SUSPEND": 36, "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}


def last_cap():
    """The highest capability this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return max(CAPS.values())



_VERSION_3 = 0x20080522      # _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capget():
    """capget(2): this thread's (effective, permitted, inheritable) sets of numbers."""
    data = (_Data * 2)()
    check(libc.capget(ctypes.byref(_Header(_VERSION_3, 0)), data), "capget")
    return tuple({32 * word + bit for word in range(2) for bit in range(32)
                  if getattr(data[word], field) >> bit & 1}
                 for field in ("effective", "permitted", "inheritable"))


def capset(effective, permitted, inheritable):
    """capset(2): this thread's three sets, exactly (capability numbers, any of them)."""
    data = (_Data * 2)()
    for word in range(2):
        for field, caps in (("effective", effective), ("permitted", permitted),
                            ("inheritable", inheritable)):
            setattr(data[word], field,
                    sum(1 << (c - 32 * word) for c in caps if 32 * word <= c < 32 * word + 32))
    check(libc.capset(ctypes.byref(_Header(_VERSION_3, 0)), data), "capset")
