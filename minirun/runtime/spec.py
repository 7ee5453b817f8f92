"""What the runtime needs to know to run one container, and nothing about images.

The engine fills a Spec from an image and the user's flags; the runtime
turns it into an isolated process (like an OCI runtime's config.json).
"""
from ..record import Record
from .cgroups import Limits

# Docker's default capabilities (moby/oci/caps/defaults.go): 14 of them.
DEFAULT_CAPS = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)

# Paths Docker hides from containers (moby/oci/defaults.go) ...
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
# ... and those it leaves readable but not writable.
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


class Mount(Record):
    FIELDS = {
        "target": "",
        "kind": "bind",           # "bind" or "tmpfs"
        "source": "",
        "readonly": False,
        "data": "",               # tmpfs options
        "volume": "",             # the named volume whose directory *source* is (for inspect)
        "copy_up": False,         # an empty source gets what the image has at *target* first
    }


class Process(Record):
    """What runs, and as whom: a container's PID 1, or a process exec'd into it."""
    FIELDS = {
        "args": [],
        "env": [],
        "cwd": "/",
        "user": "",               # "", "uid", "uid:gid", "name", "name:group"
        "group_add": [],          # more groups (names or gids), as --group-add / additionalGids
        "tty": False,
        "caps": DEFAULT_CAPS,
        "no_new_privileges": False,
        "rlimits": [],            # [(name, soft, hard)]
        "seccomp": "",            # a compiled BPF program (runtime/seccomp.py), "": unconfined
        "userns": [],             # [host base, count]: root is an unprivileged range; []: none
        # As an OCI bundle states a process (minirun-runc):
        "ids": [],                # [uid, gid]: exactly these (user and group_add unread)
        "cap_sets": {},           # {"bounding"|"effective"|"permitted"|"inheritable"|"ambient":
                                  #  [names]}; {}: caps is each of the first four, no ambient
        "umask": None,
        "preserve_fds": 0,        # descriptors 3…3+N-1 stay open across the exec
    }


class Spec(Record):
    FIELDS = {
        "id": "",
        "args": [],
        "env": [],
        "cwd": "/",
        "user": "",               # "", "uid", "uid:gid", "name", "name:group"
        "group_add": [],          # more groups (names or gids), as --group-add / additionalGids
        "hostname": "",
        # root file system: overlay of shared layers (relative names under layers_dir)
        "layers_dir": "",
        "lower": [],              # lowest first
        "upper": "",
        "work": "",
        "rootfs": "",             # where the overlay is mounted
        "readonly_rootfs": False,
        "mounts": [],             # [Mount]
        "etc_files": {},          # "/etc/hosts" -> host file to bind
        "network": "none",        # "host": the host's netns; else an own one (wired by the caller)
        "netns": "",              # join this netns instead (/proc/PID/ns/net: --network container:)
        "tty": False,
        "stdin": False,
        "caps": DEFAULT_CAPS,
        "privileged": False,
        "no_new_privileges": False,
        "rlimits": [],            # [(name, soft, hard)]
        "seccomp": "",            # a compiled BPF program (runtime/seccomp.py), "": unconfined
        "userns": [],             # [host base, count] (runtime/userns.py); []: the host's
        "limits": Limits(),
        "init": "",               # host path of an init (tini) to run as PID 1, or ""
        "die_with_parent": True,  # foreground: dies with minirun; detached: outlives minirund
    }


def env_dict(entries):
    """A process's environment, KEY=VALUE strings, as a dict. An entry without "=" holds no
    value getenv(3) could find, and is left out; a later KEY wins over an earlier one."""
    return dict(e.split("=", 1) for e in entries if "=" in e)


def process_of(spec):
    """The process part of a container's spec (a fresh copy: the lock-down adds HOME)."""
    return Process(**{k: _copy(getattr(spec, k)) for k in Process.FIELDS if k in Spec.FIELDS})


def _copy(value):
    return list(value) if isinstance(value, list) else value


def process_to_dict(process):
    d = process.as_dict()
    d["caps"] = list(process.caps)
    return d


def process_from_dict(d):
    d = dict(d)
    d["caps"] = tuple(d["caps"])
    d["rlimits"] = [tuple(r) for r in d["rlimits"]]
    return Process(**d)


def spec_to_dict(spec):
    """A Spec as plain JSON-able data (for the state store)."""
    d = spec.as_dict()
    d["limits"] = spec.limits.as_dict()
    d["mounts"] = [m.as_dict() for m in spec.mounts]
    d["caps"] = list(spec.caps)
    return d


def spec_from_dict(d):
    d = dict(d)
    d.pop("cgroup_files", None)   # an older minirun stored the join files here; GO brings them
    d["limits"] = Limits(**d["limits"])
    d["mounts"] = [Mount(**m) for m in d["mounts"]]
    d["caps"] = tuple(d["caps"])
    d["rlimits"] = [tuple(r) for r in d["rlimits"]]
    return Spec(**d)
