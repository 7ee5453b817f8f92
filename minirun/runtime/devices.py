"""Which device nodes a container may use: Docker's allow-list, for v1 and v2.

v1 takes the rules as text (``devices.allow``); v2 needs them compiled into
an eBPF program attached to the container's cgroup. The rules are the same:
``TYPE MAJOR:MINOR ACCESS`` with ``*`` for any, access from r(ead) w(rite)
m(knod). CAP_MKNOD lets a container create any device node; these rules are
what stop it from opening, say, the host's disk through one.
"""
import os

from ..linux import bpf

DEFAULT_RULES = [
    "c *:* m", "b *:* m",               # mknod of any device, but no access to it
    "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",   # null zero full random urandom
    "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm",    # tty console ptmx
    "c 136:* rwm",                      # pty slaves
    "c 10:200 rwm",                     # tun
]

# struct bpf_cgroup_dev_ctx: u32 access_type (access << 16 | type), u32 major, u32 minor
DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR, "a": None}
_ACCESS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}


DENY = "!"       # a rule so marked takes access away (an OCI bundle's "allow": false)


def parse_rule(rule):
    """'c 1:3 rwm' → (type or None, major or None, minor or None, access bits)."""
    kind, numbers, access = rule.removeprefix(DENY).split()
    major, minor = numbers.split(":")
    return (_TYPES[kind], None if major == "*" else int(major),
            None if minor == "*" else int(minor), sum(_ACCESS[a] for a in access))


def program(rules):
    """eBPF instructions: the last rule that matches decides (as v1's files, written in
    order, do); no match denies."""
    R0, R1, R2, R3, R4, R5 = range(6)
    out = [
        bpf.insn(bpf.LDX_MEM_W, R2, R1, 0),          # r2 = access_type
        bpf.insn(bpf.ALU32_AND_K, R2, imm=0xFFFF),   # r2 = device type
        bpf.insn(bpf.LDX_MEM_W, R3, R1, 0),
        bpf.insn(bpf.ALU32_RSH_K, R3, imm=16),       # r3 = requested access
        bpf.insn(bpf.LDX_MEM_W, R4, R1, 4),          # r4 = major
        bpf.insn(bpf.LDX_MEM_W, R5, R1, 8),          # r5 = minor
    ]
    for rule in reversed(rules):          # the first match from the end is the last one
        kind, major, minor, access = parse_rule(rule)
        verdict = 0 if rule.startswith(DENY) else 1
        checks = []                                   # each: jump to the next rule if no match
        if kind is not None:
            checks.append([(bpf.JMP_JNE_K, R2, 0, kind)])
        # every requested access bit must be allowed: (r3 & ~allowed) == 0
        checks.append([(bpf.ALU32_MOV_X, R1, R3, None), (bpf.ALU32_AND_K, R1, 0, ~access & 7),
                       (bpf.JMP_JNE_K, R1, 0, 0)])
        if major is not None:
            checks.append([(bpf.JMP_JNE_K, R4, 0, major)])
        if minor is not None:
            checks.append([(bpf.JMP_JNE_K, R5, 0, minor)])
        block = [i for c in checks for i in c] + [(bpf.ALU64_MOV_K, R0, 0, verdict),
                                                  (bpf.JMP_EXIT, 0, 0, 0)]
        for n, (code, dst, src, imm) in enumerate(block):
            off = len(block) - n - 1 if code == bpf.JMP_JNE_K else 0   # to the next rule
            out.append(bpf.insn(code, dst, src, off, imm or 0))
    out += [bpf.insn(bpf.ALU64_MOV_K, R0, imm=0), bpf.insn(bpf.JMP_EXIT)]
    return out


def attach_allow_list(cgroup_dir, rules=DEFAULT_RULES):
    """Attach the allow-list to a v2 cgroup; it stays until the cgroup is removed."""
    prog = bpf.load_device_program(program(rules))
    try:
        dirfd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            bpf.attach_to_cgroup(prog, dirfd)
        finally:
            os.close(dirfd)
    finally:
        os.close(prog)
