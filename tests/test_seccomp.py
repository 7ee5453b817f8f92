"""minirun's seccomp compiler (linux/seccomp_bpf.py) decides every call as libseccomp's does.

Both programs run here in a small classic-BPF interpreter, over every syscall number of
each ABI (and numbers no ABI has), and over argument values at and around every constant
either program compares with. Then the kernel runs minirun's program for real.
"""
import ctypes
import errno
import json
import os
import random
import struct

import pytest

from minirun.linux import seccomp as sc
from minirun.linux import seccomp_bpf
from minirun.runtime import seccomp as rs
from minirun.runtime.seccomp_default import PROFILE
from minirun.runtime.spec import DEFAULT_CAPS

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64",
                                reason="minirun compiles its own programs on x86_64 only")

X86_64, I386, AARCH64 = 0xC000003E, 0x40000003, 0xC00000B7
X32 = sc.X32_SYSCALL_BIT


_decoded = {}


def run(program, arch, nr, args):
    """What *program* returns for a call, and the argument words it read: a classic BPF
    interpreter for the instructions seccomp allows."""
    data = struct.pack("<IIQ6Q", nr, arch, 0, *args)
    a, pc, read = 0, 0, set()
    code = _decoded.get(program) or _decoded.setdefault(program, sc.instructions(program))
    while True:
        op, jt, jf, k = code[pc]
        pc += 1
        if op == seccomp_bpf.LD_ABS:
            a = struct.unpack_from("<I", data, k)[0]
            if k >= 16:
                read.add((k - 16) // 8)
        elif op == seccomp_bpf.AND:
            a &= k
        elif op == seccomp_bpf.JA:
            pc += k
        elif op in (seccomp_bpf.JEQ, seccomp_bpf.JGT, seccomp_bpf.JGE, 0x45):    # 0x45: JSET
            taken = {seccomp_bpf.JEQ: a == k, seccomp_bpf.JGT: a > k,
                     seccomp_bpf.JGE: a >= k, 0x45: bool(a & k)}[op]
            pc += jt if taken else jf
        elif op == seccomp_bpf.RET:
            return k, read
        else:
            raise AssertionError(f"instruction {op:#x} at {pc - 1}")


def compiled(compiler, profile, caps=DEFAULT_CAPS):
    default = rs._action(profile.get("defaultAction"), profile.get("defaultErrnoRet"))
    r, w = os.pipe()
    try:
        rs._compile(compiler, default, profile, sorted("CAP_" + c for c in caps), w)
        os.close(w)
        w = None
        return b"".join(iter(lambda: os.read(r, 65536), b""))
    finally:
        os.close(r)
        if w is not None:
            os.close(w)


def constants(program):
    return {k for op, _, _, k in sc.instructions(program)
            if op in (seccomp_bpf.JEQ, seccomp_bpf.JGT, seccomp_bpf.JGE, seccomp_bpf.AND)}


def differences(ours, theirs, samples=200):
    """The calls on which the two programs decide differently (at most five)."""
    numbers = [*range(1100), *(X32 + n for n in range(1100)),
               0x3FFFFFFF, 0x7FFFFFFF, 0x80000000, 0xBFFFFFFF, 0x41000000, 0xFFFFFFFE,
               0xFFFFFFFF]
    words = set()
    for k in constants(ours) | constants(theirs):
        words |= {k, (k - 1) & 0xFFFFFFFF, (k + 1) & 0xFFFFFFFF}
    words = sorted(words | {0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF})
    rng = random.Random(1)
    out = []

    def check(arch, nr, args):
        """Both programs on one call; the arguments either read."""
        (a, read_a), (b, read_b) = run(ours, arch, nr, args), run(theirs, arch, nr, args)
        if a != b:
            out.append((hex(arch), hex(nr), [hex(x) for x in args], hex(a), hex(b)))
        return read_a | read_b

    for arch in (X86_64, I386, AARCH64, 0x4000003E):
        for nr in numbers:
            # Each argument a program reads, swept alone over every word (high and low),
            # from a base that reaches it: all zeros first, then each set of arguments
            # that gets read once an earlier comparison holds (a rule's second argument).
            read = check(arch, nr, [0] * 6)
            bases, seen = [([0] * 6, frozenset(read))], {frozenset(read)}
            while bases and len(out) < 5:
                base, reads = bases.pop()
                for i in sorted(reads):
                    for w in words:
                        for high in (0, w):
                            args = list(base)
                            args[i] = high << 32 | w
                            more = check(arch, nr, args)
                            if frozenset(more) not in seen:
                                seen.add(frozenset(more))
                                bases.append((args, more))
                                read |= more
            for _ in range(samples if read else 0):          # and all of them at once
                check(arch, nr, [rng.choice(words) << 32 * rng.randrange(2) |
                                 rng.choice(words) if j in read else 0 for j in range(6)])
            if len(out) >= 5:
                return out[:5]
    return out


def oci(caps, architectures):
    profile = rs.as_oci(PROFILE, caps)
    profile["architectures"] = architectures
    return json.loads(json.dumps(profile))


ALL_CAPS = DEFAULT_CAPS + ("SYS_ADMIN", "SYS_PTRACE", "SYS_MODULE", "SYS_TIME", "BPF",
                           "SYS_NICE", "DAC_READ_SEARCH", "SYS_BOOT", "SYS_RAWIO", "SYSLOG")

OWN = [
    # a deny-list with every kind of action
    {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["ptrace"], "action": "SCMP_ACT_TRAP"},
        {"names": ["uname"], "action": "SCMP_ACT_LOG"},
        {"names": ["getpid"], "action": "SCMP_ACT_TRACE", "errnoRet": 5},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}]}]},
    # every comparison, 64-bit values, two arguments at once, rules in turn
    {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0x100000028, "op": "SCMP_CMP_LT"}]},
        {"names": ["setpriority"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 1, "value": 0x200000005, "op": "SCMP_CMP_GT"}]},
        {"names": ["getpriority"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 7, "op": "SCMP_CMP_LE"}]},
        {"names": ["ioprio_set"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 2, "value": 0xFFFFFFFF00000003, "op": "SCMP_CMP_GE"}]},
        {"names": ["mmap"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 2, "value": 0x4, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"},
                  {"index": 3, "value": 0xFF000000FF, "valueTwo": 0x2200000022,
                   "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["munmap"], "action": "SCMP_ACT_ALLOW",     # bits outside the mask
         "args": [{"index": 1, "value": 0xFF000000FF, "valueTwo": 0x1200000100,
                   "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["mprotect"], "action": "SCMP_ACT_ALLOW",   # no mask at all
         "args": [{"index": 2, "value": 0, "valueTwo": 5, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["prctl"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 15, "op": "SCMP_CMP_EQ"}]},
        {"names": ["prctl"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
                  {"index": 1, "value": 0, "op": "SCMP_CMP_NE"}]},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]},
    # x86's multiplexed calls: socket and IPC calls named one by one
    {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
     "syscalls": [
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
        {"names": ["accept4", "recv", "semget", "shmctl", "msgsnd"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["semop"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_NE"}]},
        {"names": ["getsockopt", "semctl"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"},
                  {"index": 2, "value": 9, "op": "SCMP_CMP_GT"}]}]},
]


def random_profile(seed):
    """A profile of random calls, comparisons and values (two actions: one call never gets
    two, which libseccomp's program decides in its own way)."""
    from minirun.runtime.seccomp_default import ALWAYS, WITH_CAP
    rng = random.Random(seed)
    names = sorted({*ALWAYS, *" ".join(WITH_CAP.values()).split()})
    allow = rng.random() < 0.5
    action = {"action": "SCMP_ACT_ERRNO", "errnoRet": rng.randrange(1, 100)} if allow else \
        {"action": rng.choice(["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRAP"])}
    rules = []
    for name in rng.sample(names, rng.randrange(20, 120)) + rng.sample(names, 20):  # some twice
        args = []
        for index in rng.sample(range(6), rng.choice([0, 0, 0, 1, 1, 2, 3])):
            value = rng.choice([0, 1, 40, 0xFFFFFFFF, 0x100000000, rng.getrandbits(64),
                                rng.getrandbits(8)])
            args.append({"index": index, "op": rng.choice(list(sc.CMP)), "value": value,
                         "valueTwo": rng.choice([value & rng.getrandbits(64),
                                                 rng.getrandbits(64), 0x100])})
        rules.append({"names": [name], **action, "args": args})
    return {"defaultAction": "SCMP_ACT_ALLOW" if allow else "SCMP_ACT_ERRNO",
            "architectures": rng.choice([["SCMP_ARCH_X86"], [], ["SCMP_ARCH_X32"],
                                         ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]]),
            "syscalls": rules}


@pytest.mark.parametrize("name,profile,caps", [
    ("docker", PROFILE, DEFAULT_CAPS),
    ("docker with CAP_SYS_ADMIN", PROFILE, DEFAULT_CAPS + ("SYS_ADMIN",)),
    ("docker with many capabilities", PROFILE, ALL_CAPS),
    ("docker, x86_64 alone", oci(DEFAULT_CAPS, ["SCMP_ARCH_X86_64"]), DEFAULT_CAPS),
    ("docker, no x32", oci(DEFAULT_CAPS, ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]), DEFAULT_CAPS),
    ("docker, no x86", oci(DEFAULT_CAPS, ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"]), DEFAULT_CAPS),
    *[(f"own profile {i}", p, DEFAULT_CAPS) for i, p in enumerate(OWN)],
    *[(f"random profile {seed}", random_profile(seed), DEFAULT_CAPS) for seed in range(6)],
])
def test_minirun_decides_every_call_as_libseccomp_does(name, profile, caps):
    ours, theirs = compiled(sc.Ranges, profile, caps), compiled(sc.Filter, profile, caps)
    assert ours != theirs
    assert differences(ours, theirs) == []


def test_a_wrong_program_is_caught_by_the_comparison():
    """The comparison can fail: a boundary of the search, or one comparison's value, moved
    by one is found."""
    ours, theirs = compiled(sc.Ranges, PROFILE), compiled(sc.Filter, PROFILE)
    code = sc.instructions(ours)
    for i, (op, jt, jf, k) in enumerate(code):
        if op == seccomp_bpf.JGE and 100 < k < 200:       # a boundary of the search moved
            broken = ours[:8 * i] + struct.pack("HBBI", op, jt, jf, k + 1) + ours[8 * i + 8:]
            assert differences(broken, theirs)
            break
    else:
        raise AssertionError("no boundary between 100 and 200")
    at = next(i for i, (op, _, _, k) in enumerate(code) if op == seccomp_bpf.JEQ and k == 40)
    op, jt, jf, k = code[at]                                # socket's AF_VSOCK
    broken = ours[:8 * at] + struct.pack("HBBI", op, jt, jf, 41) + ours[8 * at + 8:]
    assert differences(broken, theirs, samples=0)
    # A rule's second comparison, which a program reads only once the first one holds
    # (getsockopt and semctl: argument 0 is 3 and argument 2 above 9).
    ours, theirs = compiled(sc.Ranges, OWN[2]), compiled(sc.Filter, OWN[2])
    code = sc.instructions(ours)
    for at in [i for i, (op, _, _, k) in enumerate(code) if op == seccomp_bpf.JGT and k == 9]:
        op, jt, jf, k = code[at]
        broken = ours[:8 * at] + struct.pack("HBBI", op, jt, jf, 10) + ours[8 * at + 8:]
        assert differences(broken, theirs, samples=0), at


def test_a_profile_giving_one_call_two_actions_is_libseccomps_program(tmp_path):
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_LOG"}]}
    with pytest.raises(sc.Unsupported):
        compiled(sc.Ranges, profile)
    path = rs.compile_profile(profile, DEFAULT_CAPS, str(tmp_path))
    assert open(path, "rb").read() == compiled(sc.Filter, profile)
    assert os.listdir(tmp_path) == [os.path.basename(path)]     # no half-written file


def test_far_jumps_get_a_ja_and_the_program_stays_within_the_kernels_limit():
    """A section of ranges longer than a conditional jump reaches (255 instructions): every
    call still lands where it should."""
    calls = {n: seccomp_bpf.ret(sc.act_errno(n % 7 + 1)) for n in range(0, 1200, 2)}
    prog = seccomp_bpf.program([(X86_64, seccomp_bpf.ranges(calls, seccomp_bpf.ret(0)))], 0)
    assert any(op == seccomp_bpf.JA for op, *_ in sc.instructions(prog))
    for nr in range(1210):
        want = sc.act_errno(nr % 7 + 1) if nr % 2 == 0 and nr < 1200 else 0
        assert run(prog, X86_64, nr, [0] * 6)[0] == want, nr
    too_many = {n: seccomp_bpf.ret(n) for n in range(0, 8000, 2)}
    with pytest.raises(ValueError, match="4096 at most"):
        seccomp_bpf.program([(X86_64, seccomp_bpf.ranges(too_many, seccomp_bpf.ret(0)))], 0)


@pytest.mark.root
def test_the_kernel_runs_miniruns_program_of_dockers_profile():
    """Loaded for real in a child: what a container may and may not call."""
    program = compiled(sc.Ranges, PROFILE)
    assert len(program) // 8 < 500            # libseccomp's tree: 1227
    libc = ctypes.CDLL(None, use_errno=True)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            libc.prctl(38, 1, 0, 0, 0)                         # PR_SET_NO_NEW_PRIVS
            sc.load_filter(program)
            results = []
            for call, args in [(272, (0x10000000,)),          # unshare(CLONE_NEWUSER)
                               (135, (0xFFFFFFFF,)),          # personality(query)
                               (135, (1,)),                   # personality(1)
                               (41, (40, 1, 0)),              # socket(AF_VSOCK)
                               (41, (1, 1, 0)),               # socket(AF_UNIX)
                               (435, (0, 0)),                 # clone3
                               (39, ()),                      # getpid
                               (165, (0, 0, 0, 0, 0))]:       # mount
                rc = libc.syscall(ctypes.c_long(call), *[ctypes.c_long(a) for a in args])
                results.append(ctypes.get_errno() if rc < 0 else 0)
            os.write(w, json.dumps(results).encode())
        finally:
            os._exit(0)
    os.close(w)
    results = json.loads(os.read(r, 1000))
    os.close(r)
    os.waitpid(pid, 0)
    assert results == [errno.EPERM, 0, errno.EPERM, errno.EPERM, 0, errno.ENOSYS, 0,
                       errno.EPERM]
