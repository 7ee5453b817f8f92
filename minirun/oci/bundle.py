"""A bundle's config.json (OCI runtime spec 1.x), read and checked into what runtime/ takes.

Everything here is input from whoever wrote the bundle: each field is checked for
its type and range, and anything wrong ends in one BundleError line naming the
field — never a traceback. What the runtime spec leaves to the runtime is decided
as runc decides it (noted where it matters).
"""
import os

from .. import cjson
from ..errors import MinirunError
from ..linux import mount as m
from ..linux.capability import CAPS
from ..record import Record
from ..runtime.cgroups import Limits
from ..runtime.devices import DEFAULT_RULES
from ..runtime.security import RLIMITS
from ..runtime.spec import Process

NAMESPACES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")

# Mount options that are flags: name → (flags to set, flags to clear) (runc's table).
MOUNT_FLAGS = {
    "async": (0, m.MS_SYNCHRONOUS), "atime": (0, m.MS_NOATIME), "bind": (m.MS_BIND, 0),
    "defaults": (0, 0), "dev": (0, m.MS_NODEV), "diratime": (0, m.MS_NODIRATIME),
    "dirsync": (m.MS_DIRSYNC, 0), "exec": (0, m.MS_NOEXEC), "mand": (m.MS_MANDLOCK, 0),
    "noatime": (m.MS_NOATIME, 0), "nodev": (m.MS_NODEV, 0), "nodiratime": (m.MS_NODIRATIME, 0),
    "noexec": (m.MS_NOEXEC, 0), "nomand": (0, m.MS_MANDLOCK), "norelatime": (0, m.MS_RELATIME),
    "nostrictatime": (0, m.MS_STRICTATIME), "nosuid": (m.MS_NOSUID, 0),
    "rbind": (m.MS_BIND | m.MS_REC, 0), "relatime": (m.MS_RELATIME, 0),
    "remount": (m.MS_REMOUNT, 0), "ro": (m.MS_RDONLY, 0), "rw": (0, m.MS_RDONLY),
    "strictatime": (m.MS_STRICTATIME, 0), "suid": (0, m.MS_NOSUID),
    "sync": (m.MS_SYNCHRONOUS, 0),
}
PROPAGATION = {
    "private": m.MS_PRIVATE, "rprivate": m.MS_PRIVATE | m.MS_REC,
    "shared": m.MS_SHARED, "rshared": m.MS_SHARED | m.MS_REC,
    "slave": m.MS_SLAVE, "rslave": m.MS_SLAVE | m.MS_REC,
    "unbindable": m.MS_UNBINDABLE, "runbindable": m.MS_UNBINDABLE | m.MS_REC,
}
# Options that are neither flags nor file system data: what another runtime understands
# and a mount here does not need (crun's copy-up of a tmpfs; SELinux's relabelling).
IGNORED_OPTIONS = {"tmpcopyup", "z", "Z", "private-volume"}
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer",
              "poststart", "poststop")


class BundleError(MinirunError):
    pass


class Mount(Record):
    FIELDS = {
        "destination": "",
        "type": "",
        "source": "",
        "flags": 0,
        "propagation": [],        # PROPAGATION flags, applied after the mount, in order
        "data": "",
        "bind": False,
        "recursive": False,
        "idmap": None,            # ([uid maps], [gid maps]): an idmapped bind mount
    }


class Config(Record):
    """One bundle, checked: what create and its container's first process need."""
    FIELDS = {
        "bundle": "",
        "root": "",               # the root file system's absolute host path
        "readonly": False,
        "process": None,          # a runtime.spec.Process, or None (no process: create only)
        "terminal": False,
        "console_size": None,     # (rows, columns)
        "hostname": "",
        "domainname": "",
        "mounts": [],             # [Mount]
        "namespaces": [],         # [(type, path or "")]
        "uid_mappings": [],       # [(container id, host id, size)]
        "gid_mappings": [],
        "limits": None,           # runtime.cgroups.Limits
        "cgroups_path": "",
        "masked_paths": [],
        "readonly_paths": [],
        "devices": [],            # [(path, type, major, minor, mode, uid, gid)]
        "sysctl": {},
        "seccomp": None,          # the profile (Docker's and OCI's formats are one shape)
        "rootfs_propagation": 0,
        "oom_score_adj": None,
        "hooks": {},              # kind → [{path, args, env, timeout}]
        "annotations": {},
        "raw": {},                # the config as read (hooks and update read it back)
        # create's flags that change how the container is made
        "no_pivot": False,        # MS_MOVE the root onto / and chroot (a root on ramfs)
        "new_keyring": True,      # a session keyring of its own (runc's default)
    }

    def has_namespace(self, kind):
        return any(t == kind for t, _ in self.namespaces)

    def namespace_path(self, kind):
        return next((p for t, p in self.namespaces if t == kind), "")


def load(bundle):
    """The checked Config of the bundle directory *bundle*."""
    bundle = os.path.abspath(bundle)
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = cjson.loads(f.read(4 << 20))
    except FileNotFoundError:
        raise BundleError(f"cannot read {path}: no such file") from None
    except OSError as e:
        raise BundleError(f"cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise BundleError(f"config.json is not valid JSON: {e}") from None
    return parse(raw, bundle)


def parse(raw, bundle):
    _want(raw, dict, "config.json")
    version = _get(raw, "ociVersion", str, "")
    if not version.startswith("1."):
        raise BundleError(f"unsupported ociVersion {version!r} (1.x is)")
    root = _get(raw, "root", dict, None)
    if root is None:
        raise BundleError("config.json has no root")
    root_path = _get(root, "path", str, "")
    if not root_path:
        raise BundleError("root.path is empty")
    root_path = os.path.normpath(os.path.join(bundle, root_path))
    if not os.path.isdir(root_path):
        raise BundleError(f"root.path {root_path} is not a directory")
    linux = _get(raw, "linux", dict, {})
    process = _get(raw, "process", dict, None)
    cfg = Config(bundle=bundle, root=root_path, readonly=_get(root, "readonly", bool, False),
                 hostname=_get(raw, "hostname", str, ""),
                 domainname=_get(raw, "domainname", str, ""),
                 mounts=[_mount(x, bundle) for x in _get(raw, "mounts", list, [])],
                 annotations=_strings(_get(raw, "annotations", dict, {}), "annotations"),
                 hooks=_hooks(_get(raw, "hooks", dict, {})), raw=raw)
    if process is not None:
        cfg.process, cfg.terminal, cfg.console_size = parse_process(process)
        cfg.oom_score_adj = _get(process, "oomScoreAdj", int, None)
    _linux(cfg, linux)
    return cfg


def parse_process(raw):
    """(runtime Process, terminal, console size) of a config's or exec's ``process``."""
    _want(raw, dict, "process")
    args = _get(raw, "args", list, [])
    if not args or not all(isinstance(a, str) for a in args):
        raise BundleError("process.args must be a non-empty list of strings")
    cwd = _get(raw, "cwd", str, "/")
    if not cwd.startswith("/"):
        raise BundleError(f"process.cwd {cwd!r} is not an absolute path")
    user = _get(raw, "user", dict, {})
    uid, gid = _get(user, "uid", int, 0), _get(user, "gid", int, 0)
    groups = _get(user, "additionalGids", list, [])
    if not all(_is_id(x) for x in [uid, gid, *groups]):
        raise BundleError("process.user ids must be numbers from 0 to 2^32-2")
    umask = _get(user, "umask", int, None)
    env = _get(raw, "env", list, [])
    if not all(isinstance(e, str) for e in env):
        raise BundleError("process.env must be a list of strings")
    caps = _get(raw, "capabilities", dict, {})
    sets = {}
    for name in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        listed = _get(caps, name, list, [])
        sets[name] = [_cap(c) for c in listed]
        sets[name] = [c for c in sets[name] if c]
    rlimits = []
    for r in _get(raw, "rlimits", list, []):
        _want(r, dict, "process.rlimits[]")
        kind = _get(r, "type", str, "")
        name = kind.removeprefix("RLIMIT_").lower()
        if name not in RLIMITS:
            raise BundleError(f"unknown rlimit {kind!r}")
        rlimits.append((name, _get(r, "soft", int, 0), _get(r, "hard", int, 0)))
    # apparmorProfile and selinuxLabel are not applied: no LSM is driven (as runc on a host
    # without one).
    size = _get(raw, "consoleSize", dict, None)
    console = (_get(size, "height", int, 0), _get(size, "width", int, 0)) if size else None
    process = Process(args=list(args), env=list(env), cwd=cwd, ids=[uid, gid],
                      group_add=list(groups), caps=tuple(sets["bounding"]), cap_sets=sets,
                      no_new_privileges=_get(raw, "noNewPrivileges", bool, False),
                      rlimits=rlimits, umask=umask, tty=_get(raw, "terminal", bool, False))
    return process, process.tty, console


def _linux(cfg, linux):
    seen = set()
    for ns in _get(linux, "namespaces", list, []):
        _want(ns, dict, "linux.namespaces[]")
        kind = _get(ns, "type", str, "")
        if kind not in NAMESPACES:
            raise BundleError(f"unknown namespace type {kind!r}")
        if kind in seen:
            raise BundleError(f"namespace {kind} is listed twice")
        seen.add(kind)
        cfg.namespaces.append((kind, _get(ns, "path", str, "")))
    if "time" in seen:
        raise BundleError("time namespaces are not supported by minirun-runc")
    cfg.uid_mappings = _maps(linux, "uidMappings", "linux.")
    cfg.gid_mappings = _maps(linux, "gidMappings", "linux.")
    if cfg.has_namespace("user") and not cfg.namespace_path("user") \
            and not (cfg.uid_mappings and cfg.gid_mappings):
        raise BundleError("a new user namespace needs linux.uidMappings and gidMappings")
    if (cfg.uid_mappings or cfg.gid_mappings) and not cfg.has_namespace("user"):
        raise BundleError("uid and gid mappings need a user namespace")
    for mnt in cfg.mounts:              # an idmapped mount without its own: the container's
        if mnt.idmap is not None:
            uids = mnt.idmap[0] or cfg.uid_mappings
            gids = mnt.idmap[1] or cfg.gid_mappings
            if not uids or not gids:
                raise BundleError(f"idmapped mount {mnt.destination} has no uid and gid "
                                  "mappings (its own or the container's)")
            mnt.idmap = (uids, gids)
    cfg.cgroups_path = _get(linux, "cgroupsPath", str, "")
    if ".." in cfg.cgroups_path.split("/") or ":" in cfg.cgroups_path:
        raise BundleError(f"cgroupsPath {cfg.cgroups_path!r}: a path of a cgroupfs hierarchy is "
                          "needed (systemd's slice:prefix:name form is not supported)")
    cfg.limits = resources(_get(linux, "resources", dict, {}))
    cfg.masked_paths = _paths(_get(linux, "maskedPaths", list, []), "linux.maskedPaths")
    cfg.readonly_paths = _paths(_get(linux, "readonlyPaths", list, []), "linux.readonlyPaths")
    for d in _get(linux, "devices", list, []):
        _want(d, dict, "linux.devices[]")
        path, kind = _get(d, "path", str, ""), _get(d, "type", str, "")
        if not path.startswith("/dev/") or ".." in path.split("/"):
            raise BundleError(f"device path {path!r} is not under /dev")
        if kind not in ("c", "b", "u", "p"):
            raise BundleError(f"device {path}: unknown type {kind!r}")
        cfg.devices.append((path, kind, _get(d, "major", int, 0), _get(d, "minor", int, 0),
                            _get(d, "fileMode", int, 0o666), _get(d, "uid", int, 0),
                            _get(d, "gid", int, 0)))
    # As runc: the devices every container has (and mknod of any, which is not access to it)
    # come after the bundle's rules, then each node linux.devices makes.
    cfg.limits.device_rules += DEFAULT_RULES + [
        f"{'b' if kind == 'b' else 'c'} {major}:{minor} rwm"
        for _, kind, major, minor, *_ in cfg.devices if kind != "p"]
    sysctl = _strings(_get(linux, "sysctl", dict, {}), "linux.sysctl")
    for key in sysctl:
        if not key or "/" in key or ".." in key.split("."):
            raise BundleError(f"bad sysctl name {key!r}")
        kind = _sysctl_namespace(key)
        if kind is None or not cfg.has_namespace(kind):
            # /proc/sys beyond these is the host's own: a write would change the host
            raise BundleError(f"sysctl {key!r} is not in a separate kernel namespace")
    cfg.sysctl = sysctl
    prop = _get(linux, "rootfsPropagation", str, "")
    if prop and prop not in PROPAGATION:
        raise BundleError(f"unknown rootfsPropagation {prop!r}")
    cfg.rootfs_propagation = PROPAGATION.get(prop, 0)
    seccomp = _get(linux, "seccomp", dict, None)
    if seccomp is not None:
        if _get(seccomp, "listenerPath", str, ""):
            raise BundleError("seccomp notify (listenerPath) is not supported by minirun-runc")
        cfg.seccomp = seccomp
    for key in ("intelRdt", "personality"):
        if _get(linux, key, dict, None):
            raise BundleError(f"linux.{key} is not supported by minirun-runc")


IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
               "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def _sysctl_namespace(key):
    """The namespace a sysctl belongs to (as runc's list), or None: the host's alone."""
    if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
        return "ipc"
    if key.startswith("net."):
        return "network"
    if key in ("kernel.hostname", "kernel.domainname"):
        return "uts"
    return None


def resources(raw):
    """linux.resources → Limits (also ``update --resources``)."""
    _want(raw, dict, "linux.resources")
    limits = Limits(device_rules=[])
    for d in _get(raw, "devices", list, []):
        _want(d, dict, "linux.resources.devices[]")
        kind = _get(d, "type", str, "a") or "a"
        access = _get(d, "access", str, "rwm") or "rwm"
        if kind not in ("a", "b", "c") or not access or set(access) - set("rwm"):
            raise BundleError(f"bad device rule {d!r}")
        major, minor = _get(d, "major", int, None), _get(d, "minor", int, None)
        rule = f"{kind} {'*' if major is None else major}:{'*' if minor is None else minor} " \
               f"{access}"
        limits.device_rules.append(rule if _get(d, "allow", bool, False) else "!" + rule)
    mem = _get(raw, "memory", dict, {})
    limits.memory = _positive(_get(mem, "limit", int, None))
    limits.memory_reservation = _positive(_get(mem, "reservation", int, None))
    limits.memory_swap = _get(mem, "swap", int, None)
    limits.memory_swappiness = _get(mem, "swappiness", int, None)
    if limits.memory_swappiness is not None and not 0 <= limits.memory_swappiness <= 100:
        raise BundleError("memory.swappiness must be 0 to 100")
    limits.oom_kill_disable = _get(mem, "disableOOMKiller", bool, False)
    cpu = _get(raw, "cpu", dict, {})
    limits.cpu_shares = _get(cpu, "shares", int, None) or None
    limits.cpu_quota = _get(cpu, "quota", int, None) or None
    limits.cpu_period = _get(cpu, "period", int, None) or None
    limits.cpu_rt_runtime = _get(cpu, "realtimeRuntime", int, None)
    limits.cpu_rt_period = _get(cpu, "realtimePeriod", int, None)
    limits.cpuset_cpus = _get(cpu, "cpus", str, "") or None
    limits.cpuset_mems = _get(cpu, "mems", str, "") or None
    pids = _get(raw, "pids", dict, {})
    limits.pids = _get(pids, "limit", int, None)
    io = _get(raw, "blockIO", dict, {})
    limits.blkio_weight = _get(io, "weight", int, None) or None
    for key, attr in (("throttleReadBpsDevice", "device_read_bps"),
                      ("throttleWriteBpsDevice", "device_write_bps")):
        for d in _get(io, key, list, []):
            _want(d, dict, f"blockIO.{key}[]")
            setattr(limits, attr, getattr(limits, attr) + [
                [_get(d, "major", int, 0), _get(d, "minor", int, 0), _get(d, "rate", int, 0)]])
    for h in _get(raw, "hugepageLimits", list, []):
        _want(h, dict, "hugepageLimits[]")
        size = _get(h, "pageSize", str, "")
        if not size or not size[:-2].isdigit() or size[-2:] not in ("KB", "MB", "GB"):
            raise BundleError(f"bad huge page size {size!r}")
        limits.hugetlb.append([size, _get(h, "limit", int, 0)])
    return limits


def _mount(raw, bundle):
    _want(raw, dict, "mounts[]")
    dest = _get(raw, "destination", str, "")
    if not dest:
        raise BundleError("a mount has no destination")
    dest = os.path.normpath(os.path.join("/", dest))     # resolved inside the root, always
    kind, source = _get(raw, "type", str, ""), _get(raw, "source", str, "")
    mnt = Mount(destination=dest, type=kind, source=source)
    data = []
    for opt in _get(raw, "options", list, []):
        if not isinstance(opt, str):
            raise BundleError(f"mount {dest}: options must be strings")
        if opt in MOUNT_FLAGS:
            on, off = MOUNT_FLAGS[opt]
            mnt.flags = (mnt.flags | on) & ~off
        elif opt in PROPAGATION:
            mnt.propagation.append(PROPAGATION[opt])
        elif opt in ("idmap", "ridmap"):
            mnt.idmap = (_maps(raw, "uidMappings"), _maps(raw, "gidMappings"))
        elif opt not in IGNORED_OPTIONS:
            data.append(opt)
    mnt.data = ",".join(data)
    mnt.bind = kind == "bind" or bool(mnt.flags & m.MS_BIND)
    mnt.recursive = bool(mnt.flags & m.MS_REC)
    mnt.flags &= ~(m.MS_BIND | m.MS_REC)
    if mnt.idmap is not None and not mnt.bind:
        raise BundleError(f"mount {dest}: only bind mounts can be idmapped")
    if mnt.bind:
        if not source:
            raise BundleError(f"bind mount {dest} has no source")
        mnt.source = os.path.normpath(os.path.join(bundle, source))
    return mnt


def _maps(raw, key, where=""):
    """[(containerID, hostID, size)] of a mapping list (the container's or a mount's)."""
    out = []
    for mp in _get(raw, key, list, []):
        _want(mp, dict, f"{where}{key}[]")
        entry = tuple(_get(mp, k, int, -1) for k in ("containerID", "hostID", "size"))
        if min(entry) < 0:
            raise BundleError(f"{where}{key} entries need containerID, hostID and size")
        out.append(entry)
    return out


def _hooks(raw):
    out = {}
    for kind, hooks in raw.items():
        if kind not in HOOK_KINDS:
            continue                      # a kind from a later spec: not ours to run
        _want(hooks, list, f"hooks.{kind}")
        out[kind] = []
        for h in hooks:
            _want(h, dict, f"hooks.{kind}[]")
            path = _get(h, "path", str, "")
            if not path.startswith("/"):
                raise BundleError(f"hooks.{kind}: path {path!r} is not absolute")
            args = _get(h, "args", list, [])
            env = _get(h, "env", list, [])
            if not all(isinstance(x, str) for x in args + env):
                raise BundleError(f"hooks.{kind}: args and env must be strings")
            timeout = _get(h, "timeout", int, None)
            if timeout is not None and timeout <= 0:
                raise BundleError(f"hooks.{kind}: timeout must be positive")
            out[kind].append({"path": path, "args": args, "env": env, "timeout": timeout})
    return out


def _paths(paths, what):
    if not all(isinstance(p, str) and p.startswith("/") for p in paths):
        raise BundleError(f"{what} must be absolute paths")
    return paths


def _cap(name):
    if not isinstance(name, str):
        raise BundleError(f"capability {name!r} is not a string")
    short = name.removeprefix("CAP_")
    if short not in CAPS:
        return None        # unknown to this kernel's list: runc and crun only warn
    return short


def _is_id(x):
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**32 - 1


def _positive(x):
    return x if x is not None and x > 0 else None


def _strings(d, what):
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in d.items()):
        raise BundleError(f"{what} must map strings to strings")
    return dict(d)


def _want(value, kind, what):
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BundleError(f"{what} must be {_NAMES[kind]}")


def _get(d, key, kind, default):
    value = d.get(key)
    if value is None:
        return default
    _want(value, kind, key)
    return value


_NAMES = {dict: "an object", list: "a list", str: "a string", int: "a number",
          bool: "true or false"}
