"""seccomp: libseccomp (through ctypes) to compile a filter, seccomp(2) to load one.

libseccomp turns rules into a BPF program for each architecture a process can
call the kernel with (x86_64 and its x86 and x32 sub-ABIs, say); minirun asks it
to write the program out (seccomp_export_bpf) and keeps it, so a container's
start only reads a file and makes one system call (load_filter).
"""
import ctypes
import os
import struct

from ..errors import MinirunError
from . import check, libc

# <seccomp.h>: actions
ACT_KILL_THREAD = 0x00000000
ACT_KILL_PROCESS = 0x80000000
ACT_TRAP = 0x00030000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000


def act_errno(errno):
    return 0x00050000 | (errno & 0xFFFF)


def act_trace(msg):
    return 0x7FF00000 | (msg & 0xFFFF)


# enum scmp_compare
CMP = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
       "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
# <seccomp.h>: architecture tokens (AUDIT_ARCH_*)
ARCH = {"SCMP_ARCH_X86": 0x40000003, "SCMP_ARCH_X86_64": 0xC000003E,
        "SCMP_ARCH_X32": 0x4000003E, "SCMP_ARCH_ARM": 0x40000028,
        "SCMP_ARCH_AARCH64": 0xC00000B7, "SCMP_ARCH_RISCV64": 0xC00000F3,
        "SCMP_ARCH_S390": 0x16, "SCMP_ARCH_S390X": 0x80000016}
FLTATR_CTL_NNP = 3          # libseccomp sets no_new_privs on load unless told not to
# The program's shape: 2 tests the syscall number as a binary tree instead of one rule after
# another (libseccomp >= 2.5). Longer (Docker's profile: 1227 instructions instead of 983),
# but loading it is ~0.5 ms faster: the kernel runs the filter once for every syscall number
# at load, to find those it may allow without running it (seccomp's action cache).
FLTATR_CTL_OPTIMIZE, BINARY_TREE = 8, 2
NR_SCMP_ERROR = -1

# <linux/seccomp.h>
SECCOMP_SET_MODE_FILTER = 1
SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}.get(os.uname().machine)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_lib = None


def _libseccomp():
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError:
            raise MinirunError("seccomp profiles need libseccomp (apt-get install libseccomp2)") \
                from None
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        _lib = lib
    return _lib


class Filter:
    """A filter being built: ``with Filter(default_action, arches) as f: f.add(...)``."""

    def __init__(self, default_action, arches=()):
        self.lib = _libseccomp()
        self.ctx = self.lib.seccomp_init(default_action)
        if not self.ctx:
            raise OSError(ctypes.get_errno(), "seccomp_init failed")
        self.lib.seccomp_attr_set(self.ctx, FLTATR_CTL_NNP, 0)
        self.lib.seccomp_attr_set(self.ctx, FLTATR_CTL_OPTIMIZE, BINARY_TREE)   # older: linear
        for arch in arches:
            rc = self.lib.seccomp_arch_add(self.ctx, arch)
            if rc < 0 and -rc != 17:              # EEXIST: the native one is there already
                raise OSError(-rc, f"seccomp_arch_add({arch:#x})")

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.lib.seccomp_release(self.ctx)

    def syscall(self, name):
        """The native number of a syscall name, or None where this architecture lacks it."""
        nr = self.lib.seccomp_syscall_resolve_name(name.encode())
        return None if nr == NR_SCMP_ERROR else nr

    def add(self, action, nr, args=()):
        """A rule: *action* for syscall *nr* when every (index, op, a, b) comparison holds.
        Returns False where libseccomp refuses it for being the default action already."""
        cmps = (_ArgCmp * max(len(args), 1))(*[_ArgCmp(i, op, a, b) for i, op, a, b in args])
        rc = self.lib.seccomp_rule_add_array(self.ctx, action, nr, len(args), cmps)
        if rc == -13:                              # EACCES: the default action already
            return False
        if rc < 0:
            raise OSError(-rc, os.strerror(-rc) + f" (seccomp rule for syscall {nr})")
        return True

    def export(self, fd):
        """Write the BPF program (struct sock_filter[]) to *fd*."""
        rc = self.lib.seccomp_export_bpf(self.ctx, fd)
        if rc < 0:
            raise OSError(-rc, "seccomp_export_bpf")


def load_filter(program):
    """Install a BPF program (the bytes Filter.export wrote) for this thread, inherited by
    its children and kept across execve. Needs no_new_privs or CAP_SYS_ADMIN."""
    if len(program) % 8 or not program:
        raise ValueError("a seccomp program is a whole number of 8-byte instructions")
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _Fprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    check(libc.syscall(ctypes.c_long(SYS_SECCOMP), ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
                       ctypes.c_uint(0), ctypes.byref(prog)), "seccomp(SECCOMP_SET_MODE_FILTER)")


def instructions(program):
    """(code, jt, jf, k) of each instruction, for a reader or a test."""
    return [struct.unpack("HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
