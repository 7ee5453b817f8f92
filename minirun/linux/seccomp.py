"""seccomp: a filter compiled from rules, and seccomp(2) to load one.

A rule names a system call, and the call has a number of its own in each ABI a process
can call the kernel by (x86_64 and its x86 and x32 sub-ABIs, say). libseccomp (through
ctypes) knows those numbers. Two compilers write the program:

- ``Ranges``: minirun's own (seccomp_bpf.py), on the ABIs whose programs were checked
  against libseccomp's, call by call (tests/test_seccomp.py): x86_64, x32 and x86.
  It writes the same decisions in about a quarter of the instructions (Docker's
  profile: 337 against libseccomp's 1227).
- ``Filter``: libseccomp's, everywhere else, and for a profile that gives one call
  two different actions (libseccomp's rules for mixing them are its own).

The program is kept in a file, so a container's start only reads the file and makes
one system call (load_filter).
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


# enum scmp_compare (seccomp_bpf names its comparisons by these numbers too)
CMP = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
       "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
# <seccomp.h>: architecture tokens (AUDIT_ARCH_*)
ARCH = {"SCMP_ARCH_X86": 0x40000003, "SCMP_ARCH_X86_64": 0xC000003E,
        "SCMP_ARCH_X32": 0x4000003E, "SCMP_ARCH_ARM": 0x40000028,
        "SCMP_ARCH_AARCH64": 0xC00000B7, "SCMP_ARCH_RISCV64": 0xC00000F3,
        "SCMP_ARCH_S390": 0x16, "SCMP_ARCH_S390X": 0x80000016}
FLTATR_CTL_NNP = 3          # libseccomp sets no_new_privs on load unless told not to
# libseccomp's program shape: 2 tests the syscall number as a binary tree instead of one
# rule after another (libseccomp >= 2.5). Longer (Docker's profile: 1227 instructions
# instead of 983), but loading it is ~0.5 ms faster: the kernel runs the filter once for
# every syscall number at load, to find those it may allow without running it (seccomp's
# action cache).
FLTATR_CTL_OPTIMIZE, BINARY_TREE = 8, 2
NR_SCMP_ERROR = -1
# What the programs look like, for caches of them: change it with either compiler's output.
FORM = "ranges 1; libseccomp tree"

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
        lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
        lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
        lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p   # freed by the caller
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

    def rule(self, action, name, args=()):
        """A rule for the call *name*, in every ABI of the filter that has it."""
        nr = self.syscall(name)
        if nr is not None:
            self.add(action, nr, args)

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


class Unsupported(Exception):
    """A filter that ``Ranges`` does not write: ``Filter`` writes it instead."""


AUDIT_ARCH_X86_64, AUDIT_ARCH_I386 = 0xC000003E, 0x40000003      # <linux/audit.h>
X32_SYSCALL_BIT = 0x40000000     # x32's calls arrive as x86_64's, their numbers with this bit
# The ABIs Ranges knows: {libseccomp's token: (the AUDIT_ARCH_* their calls arrive with,
# whether an argument is compared as 64 bits)}. x32 and x86 compare the low 32 bits, as
# libseccomp does.
_ABIS = {ARCH["SCMP_ARCH_X86_64"]: (AUDIT_ARCH_X86_64, True),
         ARCH["SCMP_ARCH_X32"]: (AUDIT_ARCH_X86_64, False),
         ARCH["SCMP_ARCH_X86"]: (AUDIT_ARCH_I386, False)}
# x86 also reaches the socket calls through socketcall(2) and the SysV IPC calls through
# ipc(2), the call's number in the first argument. libseccomp names such a call -100 - n
# or -200 - n there, and a rule for it is also a rule on the multiplexer: its first
# argument the call's number, its other comparisons as they are (on the multiplexer's
# own arguments, as libseccomp has them).
_MULTIPLEXERS = {"socketcall": -100, "ipc": -200}


class Ranges:
    """A filter compiled by minirun (seccomp_bpf.py); the same interface as ``Filter``.
    A filter it does not write raises Unsupported. (seccomp_bpf is imported where a program
    is compiled or listed: a start only loads one, and pays nothing for it.)"""

    def __init__(self, default_action, arches=()):
        self.arches = list(dict.fromkeys([ARCH["SCMP_ARCH_X86_64"], *arches]))
        if os.uname().machine != "x86_64" or not all(a in _ABIS for a in self.arches):
            raise Unsupported("an ABI whose programs were not checked")
        self.lib = _libseccomp()
        self.default = default_action
        self.calls = {}      # (audit arch, nr) -> [action, [rule's comparisons ...], wide]
        self.numbers = {}    # token -> {name: number}, for the multiplexed calls

    def __enter__(self):
        return self

    def __exit__(self, *_):
        pass

    def rule(self, action, name, args=()):
        """A rule for the call *name*, in every ABI of the filter that has it (as
        libseccomp's, none when *action* is the default one)."""
        if action == self.default:
            return
        if len({index for index, *_ in args}) < len(args):
            raise Unsupported("two comparisons of one argument")     # libseccomp's to judge
        for token in self.arches:
            nr = self._resolve(token, name)
            if nr >= 0:
                self._add(token, nr, action, tuple(args))
            for mux, base in _MULTIPLEXERS.items():
                mux_nr = self._resolve(token, mux) if base - 100 < nr < base else -1
                if mux_nr >= 0:
                    self._add(token, mux_nr, action,
                              ((0, CMP["SCMP_CMP_EQ"], base - nr, 0), *(a for a in args if a[0])))
                    direct = self._numbers(token).get(name)    # since Linux 4.3 and 5.1
                    if direct is not None:
                        self._add(token, direct, action, tuple(args))

    def _resolve(self, token, name):
        """The call's number in one ABI; negative where the ABI lacks it (or multiplexes
        it, above)."""
        return self.lib.seccomp_syscall_resolve_name_arch(token, name.encode())

    def _add(self, token, nr, action, args):
        audit, wide = _ABIS[token]
        call = self.calls.setdefault((audit, nr), [action, [], wide])
        if call[0] != action:
            raise Unsupported(f"two actions for syscall {nr}")
        call[1].append(args)

    def _numbers(self, token):
        if token not in self.numbers:
            names = self.numbers[token] = {}
            for nr in range(1024):
                p = self.lib.seccomp_syscall_resolve_num_arch(token, nr)
                if p:
                    names[ctypes.string_at(p).decode()] = nr
                    libc.free(ctypes.c_void_p(p))
        return self.numbers[token]

    def program(self):
        from . import seccomp_bpf
        sections = {}
        for token in self.arches:
            sections.setdefault(_ABIS[token][0], {})
        for (audit, nr), (action, rules, wide) in self.calls.items():
            sections[audit][nr] = seccomp_bpf.ret(action) if () in rules else \
                seccomp_bpf.when(action, self.default, tuple(dict.fromkeys(rules)), wide)
        bad_arch = ACT_KILL_THREAD                # libseccomp's default for it too
        spans = {}
        if ARCH["SCMP_ARCH_X86_64"] in self.arches and ARCH["SCMP_ARCH_X32"] not in self.arches:
            # x32's numbers on x86_64 are a foreign ABI (but -1, which a tracer may set)
            spans[AUDIT_ARCH_X86_64] = [(X32_SYSCALL_BIT, 0xFFFFFFFF, seccomp_bpf.ret(bad_arch))]
        return seccomp_bpf.program(
            [(audit, seccomp_bpf.ranges(calls, seccomp_bpf.ret(self.default),
                                        spans.get(audit, ())))
             for audit, calls in sections.items()], bad_arch)

    def export(self, fd):
        program = self.program()
        while program:
            program = program[os.write(fd, program):]


def load_filter(program):
    """Install a BPF program (the bytes Ranges or Filter exported) for this thread, inherited by
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


def _action_name(k):
    names = {ACT_ALLOW: "ALLOW", ACT_KILL_THREAD: "KILL_THREAD", ACT_KILL_PROCESS: "KILL_PROCESS",
             ACT_TRAP: "TRAP", ACT_LOG: "LOG"}
    if k in names:
        return names[k]
    kind = {act_errno(0): "ERRNO", act_trace(0): "TRACE"}.get(k & 0xFFFF0000)
    return f"{kind}({k & 0xFFFF})" if kind else f"{k:#x}"


def listing(program):
    """The program as text, an instruction a line, each jump's targets by number: for a
    reader (``python -m minirun.runtime.seccomp``)."""
    from . import seccomp_bpf as b
    audit = {a: n[len("SCMP_ARCH_"):] for n, a in ARCH.items()
             if a in {arch for arch, _ in _ABIS.values()}}
    lines = []
    for pc, (code, jt, jf, k) in enumerate(instructions(program)):
        if code == b.LD_ABS:
            arg, word = divmod(k - 16, 8)              # (little-endian: x86)
            text = {b.NR: "nr", b.ARCH: "arch"}.get(k) or \
                f"arg{arg} ({'high' if word else 'low'} word)"
            text = f"ld   {text}"
        elif code == b.AND:
            text = f"and  {k:#x}"
        elif code == b.JA:
            text = f"ja   {pc + 1 + k}"
        elif code in (b.JEQ, b.JGT, b.JGE):
            op = {b.JEQ: "jeq", b.JGT: "jgt", b.JGE: "jge"}[code]
            value = f"{k:#x} ({audit[k]})" if k in audit else str(k) if k < 4096 else f"{k:#x}"
            text = f"{op}  {value} ? {pc + 1 + jt} : {pc + 1 + jf}"
        elif code == b.RET:
            text = f"ret  {_action_name(k)}"
        else:
            text = f"{code:#06x} {jt} {jf} {k:#x}"
        lines.append(f"{pc:5}  {text}")
    return "\n".join(lines)
