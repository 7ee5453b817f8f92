"""A seccomp filter as a classic BPF program that searches ranges of syscall numbers.

A seccomp filter is a classic BPF program. The kernel runs it on every system call, over
``struct seccomp_data`` (nr, arch, instruction pointer, six arguments), and does what it
returns. Docker's profile allows most calls, and the allowed numbers come in long runs
(on x86_64: 0 to 40, 42 to 55, 57 to 102, ...; 41 is socket(2), whose first argument
decides). So instead of one test per number, this program searches the *ranges* where
the outcome stays the same, as a binary search over their first numbers:

    ld  arch                    ; which ABI the call came in by (AUDIT_ARCH_*)
    jeq X86_64, s1              ; one test per section
    jeq I386, s2
    ret KILL_THREAD             ; an ABI the filter does not know
s1: ld  nr
    jge 169, hi                 ; the binary search over the ranges' first numbers ...
    jge 59, ...
    ret ALLOW                   ; ... down to one range's outcome: an action, or
    ld  arg0 (high word)        ; the argument conditions of one syscall,
    jeq 0, ...                  ; then its action or the default one
    ret ERRNO(EPERM)

Why minirun writes it and not libseccomp (linux/seccomp.py, which still resolves the names):
the kernel keeps each container's program (twice: a vmalloc'd, translated copy and the
original, kept for checkpoint/restore) and runs it for every syscall number when it is
loaded, to fill its cache of always-allowed calls. libseccomp writes Docker's profile as
1227 instructions (a binary tree of single numbers); the ranges need 337. Loaded in 300
processes, that is 22 kB less vmalloc and 15 kB less slab per process, and 0.28 ms to load
instead of 0.41 (this VM, Linux 6.18).

The program is written backwards, from its last instruction to its first: classic BPF
jumps only forward, so every jump's target is placed before the jump is written. A
conditional jump reaches 255 instructions; a farther target gets a ``ja`` next to it.
"""
import struct

from .seccomp import CMP

# <linux/bpf_common.h>, <linux/filter.h>: the instructions the program uses
LD_ABS = 0x20           # BPF_LD | BPF_W | BPF_ABS: A = 32-bit word of seccomp_data
AND = 0x54              # BPF_ALU | BPF_AND | BPF_K: A &= k
JA, JEQ, JGT, JGE = 0x05, 0x15, 0x25, 0x35      # BPF_JMP | BPF_JA / JEQ / JGT / JGE, | BPF_K
RET = 0x06              # BPF_RET | BPF_K: return k
MAX_INSNS = 4096        # BPF_MAXINSNS: the kernel refuses longer programs
# <linux/seccomp.h>: where struct seccomp_data keeps what the program reads
NR, ARCH = 0, 4


def arg_offset(index):
    return 16 + 8 * index       # args[6], 64 bits each


_LE = 0x40000000        # <linux/audit.h> __AUDIT_ARCH_LE: the ABI is little-endian
WORD = 0xFFFFFFFF

# Comparisons of an argument with a value, by libseccomp's numbers (enum scmp_compare, in
# linux/seccomp.py's one table of their names), which both compilers take.
NE, LT, LE, EQ, GE, GT, MASKED_EQ = (CMP["SCMP_CMP_" + n] for n in
                                     ("NE", "LT", "LE", "EQ", "GE", "GT", "MASKED_EQ"))


def ret(action):
    """The outcome of a range that needs no argument: return *action*."""
    return ("ret", action)


def when(action, default, rules, wide):
    """The outcome of a syscall with argument conditions: *action* when every comparison of
    one of *rules* holds, else *default*. *rules* is a tuple of rules, each a tuple of
    (index, op, value, value_two); *wide*: the ABI's arguments are 64 bits (a 32-bit ABI's
    are compared by their low words, as libseccomp does)."""
    return ("when", action, default, rules, wide)


def ranges(outcomes, default, spans=()):
    """The ranges, [(first number, outcome)], that cover every number 0 .. 2**32-1 of one
    ABI: *outcomes* {nr: outcome}, each (lo, hi, outcome) of *spans* for lo <= nr < hi
    where *outcomes* names none, *default* elsewhere. Neighbours that share an outcome
    are one range."""
    def at(n):
        if n in outcomes:
            return outcomes[n]
        return next((o for lo, hi, o in spans if lo <= n < hi), default)
    starts = {0, *outcomes, *(n + 1 for n in outcomes), *(e for s in spans for e in s[:2])}
    out = []
    for n in sorted(s for s in starts if s <= WORD):
        if not out or out[-1][1] != at(n):
            out.append((n, at(n)))
    return out


def program(sections, bad_arch):
    """The filter: *sections* is [(AUDIT_ARCH_*, ranges)], one for each ABI it knows;
    a call by any other ABI gets *bad_arch*. Returns the program's bytes
    (struct sock_filter[])."""
    w = _Writer()
    bad = w.ret(bad_arch)
    starts = []
    for arch, spans in sections:
        w.search(spans, little_endian=bool(arch & _LE))
        starts.append(w.put(LD_ABS, k=NR))
    chain = bad
    for (arch, _), start in reversed(list(zip(sections, starts))):
        chain = w.jump(JEQ, arch, start, chain)
    w.put(LD_ABS, k=ARCH)
    if len(w.code) > MAX_INSNS:
        raise ValueError(f"a seccomp program of {len(w.code)} instructions: the kernel "
                         f"takes {MAX_INSNS} at most")
    return b"".join(reversed(w.code))


class _Writer:
    """A program written backwards. An instruction's label is its index in ``code``, the
    program reversed: a jump at label r to label t skips r - t - 1 instructions."""

    def __init__(self):
        self.code = []
        self.rets = {}          # action -> the label of a `ret` of it, which jumps share

    def put(self, code, jt=0, jf=0, k=0):
        self.code.append(struct.pack("HBBI", code, jt, jf, k))
        return len(self.code) - 1

    def _gap(self, target):
        return len(self.code) - target - 1      # what a jump written next would skip

    def jump(self, op, k, t, f):
        """`op k`, to *t* when it holds and to *f* when not."""
        while max(self._gap(t), self._gap(f)) > 255:
            if self._gap(t) > 255:
                t = self.put(JA, k=self._gap(t))
            if self._gap(f) > 255:
                f = self.put(JA, k=self._gap(f))
        return self.put(op, self._gap(t), self._gap(f), k)

    def ret(self, action):
        """A `ret` of *action*: one already written, while a jump could still reach it."""
        if action not in self.rets or self._gap(self.rets[action]) > 255:
            self.rets[action] = self.put(RET, k=action)
        return self.rets[action]

    def search(self, spans, little_endian):
        """The binary search of *spans* ([(first number, outcome)]), with the syscall
        number in A."""
        if len(spans) == 1:
            return self.outcome(spans[0][1], little_endian)
        mid = len(spans) // 2
        high = self.search(spans[mid:], little_endian)
        low = self.search(spans[:mid], little_endian)
        return self.jump(JGE, spans[mid][0], high, low)

    def outcome(self, outcome, little_endian):
        if outcome[0] == "ret":
            return self.ret(outcome[1])
        _, action, default, rules, wide = outcome
        ok, otherwise = self.ret(action), self.ret(default)
        following = otherwise                   # the rules are tried in turn (OR) ...
        for rule in reversed(rules):
            at = ok
            for cond in reversed(rule):         # ... each comparison of one rule (AND)
                at = self.compare(cond, at, following, wide, little_endian)
            following = at
        return following

    def compare(self, cond, t, f, wide, little_endian):
        """One comparison of a 64-bit argument, a 32-bit word at a time: the high word
        decides unless it is equal to the value's."""
        index, op, value, two = cond
        low_at, high_at = arg_offset(index), arg_offset(index) + 4
        if not little_endian:
            low_at, high_at = high_at, low_at
        if op == NE:
            op, t, f = EQ, f, t
        if op == MASKED_EQ:              # (arg & value) == (two & value), as libseccomp has it
            two &= value
            low = self.masked(low_at, value & WORD, two & WORD, t, f)
            return self.masked(high_at, value >> 32, two >> 32, low, f) if wide else low
        # LT and LE are GE and GT with their targets swapped.
        test = {EQ: JEQ, GT: JGT, GE: JGE, LT: JGE, LE: JGT}[op]
        yes, no = (f, t) if op in (LT, LE) else (t, f)
        self.jump(test, value & WORD, yes, no)
        low = self.put(LD_ABS, k=low_at)
        if not wide:
            return low
        equal = self.jump(JEQ, value >> 32, low, f)
        if op == GT or op == GE:
            self.jump(JGT, value >> 32, t, equal)
        elif op == LT or op == LE:
            self.jump(JGE, value >> 32, equal, t)
        return self.put(LD_ABS, k=high_at)

    def masked(self, at, mask, value, t, f):
        if mask == 0:                    # nothing to load: always or never
            return t if value == 0 else f
        self.jump(JEQ, value, t, f)
        if mask != WORD:
            self.put(AND, k=mask)
        return self.put(LD_ABS, k=at)
