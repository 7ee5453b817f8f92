"""Seccomp: which system calls a container may make, from a profile in Docker's JSON format.

    profile (Docker's JSON) + the container's capabilities + this machine's architecture
        ─ compile (minirun's own compiler, or libseccomp's where it does not apply; once:
          the BPF program is cached by all three) → a .bpf file
    the container's set-up reads the file before it leaves the host's root,
        and loads it in the lock-down, before it drops the capabilities (lockdown.py)

Every container gets Docker's default profile (seccomp_default.py) unless
``--security-opt seccomp=unconfined`` or ``--privileged``;
``--security-opt seccomp=FILE.json`` takes another. A process exec'd into the
container gets the same filter.
"""
import os
import zlib

from .. import cjson
from ..errors import MinirunError
from ..linux import seccomp as sc

NATIVE = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64",
          "s390x": "SCMP_ARCH_S390X", "riscv64": "SCMP_ARCH_RISCV64"}
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "s390x": "s390x", "riscv64": "riscv64"}


class ProfileError(MinirunError):
    def __init__(self, message):
        super().__init__(f"seccomp profile: {message}")


def _action(name, errno_ret):
    if not isinstance(errno_ret, (int, type(None))) or isinstance(errno_ret, bool):
        raise ProfileError(f"errnoRet must be a number, not {errno_ret!r}")
    actions = {"SCMP_ACT_ALLOW": sc.ACT_ALLOW, "SCMP_ACT_KILL": sc.ACT_KILL_THREAD,
               "SCMP_ACT_KILL_THREAD": sc.ACT_KILL_THREAD,
               "SCMP_ACT_KILL_PROCESS": sc.ACT_KILL_PROCESS, "SCMP_ACT_TRAP": sc.ACT_TRAP,
               "SCMP_ACT_LOG": sc.ACT_LOG,
               "SCMP_ACT_ERRNO": sc.act_errno(1 if errno_ret is None else errno_ret),
               "SCMP_ACT_TRACE": sc.act_trace(1 if errno_ret is None else errno_ret)}
    if name not in actions:
        raise ProfileError(f"unknown or unsupported action {name!r}")
    return actions[name]


def _kernel():
    return tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])


def _applies(rule, caps):
    """Docker's includes/excludes: by capability, architecture and kernel version."""
    arch = GOARCH.get(os.uname().machine, os.uname().machine)
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if not isinstance(inc, dict) or not isinstance(exc, dict):
        raise ProfileError("includes and excludes must be objects")
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if inc.get("caps") and not all(c in caps for c in inc["caps"]):
        return False
    if inc.get("minKernel"):
        try:
            want = tuple(int(x) for x in str(inc["minKernel"]).split(".")[:2])
        except ValueError:
            raise ProfileError(f"bad minKernel {inc['minKernel']!r}") from None
        if _kernel() < want:
            return False
    if exc.get("arches") and arch in exc["arches"]:
        return False
    if exc.get("caps") and any(c in caps for c in exc["caps"]):
        return False
    return True


def _args(rule):
    out = []
    for a in rule.get("args") or []:
        if not isinstance(a, dict) or a.get("op") not in sc.CMP:
            raise ProfileError(f"bad argument condition {a!r}")
        index, value, two = a.get("index"), a.get("value", 0), a.get("valueTwo", 0)
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (index, value, two)) \
                or not 0 <= index <= 5 or value < 0 or two < 0:
            raise ProfileError(f"bad argument condition {a!r}")
        out.append((index, sc.CMP[a["op"]], value, two))
    return out


def _arches(profile):
    native = NATIVE.get(os.uname().machine)
    if native is None:
        raise ProfileError(f"no seccomp support for {os.uname().machine} in minirun")
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == native:
            return [sc.ARCH[a] for a in [native, *(entry.get("subArchitectures") or [])]
                    if a in sc.ARCH]
    listed = profile.get("architectures") or []      # an OCI bundle's form
    if not isinstance(listed, list) or not all(isinstance(a, str) for a in listed):
        raise ProfileError("architectures must be a list of names")
    return [sc.ARCH[a] for a in dict.fromkeys([native, *listed]) if a in sc.ARCH]


def _rules(profile, caps):
    """(rule, its syscall names) of the rules that apply to a container with *caps*
    (CAP_ names); every rule checked first, applying or not."""
    out = []
    for rule in profile.get("syscalls") or []:
        if not isinstance(rule, dict):
            raise ProfileError(f"bad rule {rule!r}")
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ProfileError(f"bad names in rule {rule!r}")
        _action(rule.get("action"), rule.get("errnoRet"))
        _args(rule)
        if _applies(rule, caps):
            out.append((rule, names))
    return out


def as_oci(profile, caps):
    """*profile* as it applies to a container with *caps* (minirun's names), in the OCI
    runtime spec's form (no includes or excludes): what a bundle's ``linux.seccomp`` holds
    for runc or crun to load the same filter (scripts/bench/density)."""
    caps = sorted("CAP_" + c for c in caps)
    native = NATIVE.get(os.uname().machine)
    arches = next(([e["architecture"], *(e.get("subArchitectures") or [])]
                   for e in profile.get("archMap") or [] if e.get("architecture") == native),
                  profile.get("architectures") or [native])
    out = {"defaultAction": profile.get("defaultAction"), "architectures": arches,
           "syscalls": [dict({k: v for k, v in rule.items() if k not in ("includes",
                                                                          "excludes")},
                             names=names) for rule, names in _rules(profile, caps)]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    return out


def compile_profile(profile, caps, cache_dir):
    """The path of the BPF program for *profile* (a dict in Docker's format) as it applies to
    a container with *caps* (minirun's names, without CAP_), compiled once and cached."""
    if not isinstance(profile, dict) or not isinstance(profile.get("syscalls", []), list):
        raise ProfileError("not a profile: an object with defaultAction and syscalls")
    caps = sorted("CAP_" + c for c in caps)
    # The cache key: two checksums of all the filter depends on, the program's shape too
    # (zlib is on the start path already; hashlib would load OpenSSL, ~10 ms on every start).
    text = cjson.dumps([profile, caps, os.uname().machine, _kernel(), sc.FORM],
                       sort_keys=True).encode()
    path = os.path.join(cache_dir, f"{zlib.crc32(text):08x}{zlib.adler32(text):08x}"
                                   f"{len(text):x}.bpf")
    if os.path.exists(path):
        return path
    default = _action(profile.get("defaultAction"), profile.get("defaultErrnoRet"))
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.urandom(6).hex()}.tmp"      # threads of one daemon compile at once too
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        try:
            _compile(sc.Ranges, default, profile, caps, fd)
        except sc.Unsupported:                   # (raised before a byte is written)
            _compile(sc.Filter, default, profile, caps, fd)
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    return path


def _compile(compiler, default, profile, caps, fd):
    """Write the program for *profile* to *fd* with *compiler* (linux/seccomp.py's Ranges
    or Filter). Names a kernel lacks on an ABI are skipped there."""
    with compiler(default, _arches(profile)) as f:
        for rule, names in _rules(profile, caps):
            action = _action(rule.get("action"), rule.get("errnoRet"))
            args = _args(rule)
            for name in names:
                f.rule(action, name, args)
        f.export(fd)


DEFAULT_NAMES = (None, "", "default", "builtin")     # --security-opt seccomp= for Docker's


def filter_for(option, caps, cache_dir):
    """The compiled filter for a --security-opt seccomp= value (Docker's default profile, a
    profile as JSON text as the docker CLI sends it, or a file's path) as it applies to a
    container with *caps*, or "" for unconfined."""
    if option in DEFAULT_NAMES:
        return default_filter(caps, cache_dir)
    if option == "unconfined":
        return ""
    if option.lstrip().startswith("{"):
        try:
            profile = cjson.loads(option)
        except ValueError as e:
            raise ProfileError(f"not JSON: {e}") from None
    else:
        profile = read_profile(option)
    return compile_profile(profile, caps, cache_dir)


_DEFAULT_PATHS = {}     # (caps, cache_dir) -> the default profile's compiled filter


def default_filter(caps, cache_dir):
    """``compile_profile`` of Docker's default profile, whose cache key is made once per
    process: the profile is a constant, and its key (a JSON dump of ~30 kB) costs minirund
    ~0.15 ms of every create."""
    key = (tuple(sorted(caps)), cache_dir)
    path = _DEFAULT_PATHS.get(key)
    if path is None or not os.path.exists(path):          # (or the cache was cleared)
        from .seccomp_default import PROFILE              # a big literal: only when used
        path = _DEFAULT_PATHS[key] = compile_profile(PROFILE, caps, cache_dir)
    return path


def read_profile(path):
    """``--security-opt seccomp=FILE``: the profile, checked to be JSON."""
    try:
        with open(path) as f:
            return cjson.loads(f.read())
    except OSError as e:
        raise ProfileError(f"opening {path}: {e.strerror}") from None
    except ValueError as e:
        raise ProfileError(f"{path} is not JSON: {e}") from None


if __name__ == "__main__":
    # python -m minirun.runtime.seccomp [CAP ...]: the program of Docker's default profile
    # for a container with the default capabilities (and CAP ...), one instruction a line.
    import sys
    import tempfile
    from .spec import DEFAULT_CAPS
    with tempfile.TemporaryDirectory() as cache:
        with open(default_filter(DEFAULT_CAPS + tuple(sys.argv[1:]), cache), "rb") as f:
            print(sc.listing(f.read()))
