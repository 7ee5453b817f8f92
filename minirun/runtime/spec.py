"""What the runtime needs to know to run one container, and nothing about images.

The engine fills a Spec from an image and the user's flags; the runtime
turns it into an isolated process (like an OCI runtime's config.json).
"""
from dataclasses import dataclass, field

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


@dataclass
class Mount:
    target: str
    kind: str                 # "bind" or "tmpfs"
    source: str = ""
    readonly: bool = False
    data: str = ""            # tmpfs options


@dataclass
class Spec:
    id: str
    args: list
    env: list = field(default_factory=list)
    cwd: str = "/"
    user: str = ""            # "", "uid", "uid:gid", "name", "name:group"
    hostname: str = ""
    # root file system: overlay of shared layers (relative names under layers_dir)
    layers_dir: str = ""
    lower: list = field(default_factory=list)      # lowest first
    upper: str = ""
    work: str = ""
    rootfs: str = ""                               # where the overlay is mounted
    readonly_rootfs: bool = False
    mounts: list = field(default_factory=list)     # [Mount]
    etc_files: dict = field(default_factory=dict)  # "/etc/hosts" -> host file to bind
    network: str = "none"     # "none": own empty netns; "host": the host's
    tty: bool = False
    stdin: bool = False
    caps: tuple = DEFAULT_CAPS
    privileged: bool = False
    no_new_privileges: bool = False
    rlimits: list = field(default_factory=list)    # [(name, soft, hard)]
    limits: Limits = field(default_factory=Limits)
    init: str = ""            # host path of an init (tini) to run as PID 1, or ""
