"""``minirun run`` options, parsed and checked the way Docker reads them."""
import os

from .. import cjson, units
from ..errors import MinirunError
from ..linux.capability import CAPS
from ..record import Record
from ..runtime.spec import DEFAULT_CAPS, env_dict

ALL_CAPS = tuple(CAPS)


class OptionError(MinirunError):
    pass


class RunOptions(Record):
    """What the user asked ``run`` for, as the CLI (or, later, the API) parsed it."""
    FIELDS = {
        "image": "", "command": [], "name": None, "rm": False, "env": [], "env_file": [],
        "workdir": None, "user": None, "entrypoint": None, "hostname": None,
        "interactive": False, "stdin_once": False, "tty": False, "console_size": None,
        "detach_keys": None, "volumes": [], "mounts": [], "volumes_from": [], "tmpfs": [],
        "read_only": False,
        "memory": None, "cpus": None, "cpu_shares": None, "pids_limit": None,
        "cpuset_cpus": None, "blkio_weight": None, "device_read_bps": [],
        "device_write_bps": [], "cap_add": [], "cap_drop": [], "privileged": False,
        "security_opt": [], "ulimit": [], "network": "bridge", "init": False, "trace": False,
        "detach": False, "labels": {}, "restart": "no", "publish": [], "publish_all": False,
        "expose": [], "network_alias": [], "log_driver": "", "log_opt": [], "userns": "",
        "health_cmd": None, "health_interval": None, "health_timeout": None,
        "health_retries": None, "health_start_period": None, "no_healthcheck": False,
        "healthcheck": None, "stop_signal": None, "stop_timeout": None,
        "add_host": [], "links": [], "dns": [], "dns_search": [], "dns_option": [],
        "group_add": [], "ip": None, "ip6": None, "mac_address": None,
        "env_from_host": True,          # False through the API (see parse_env)
        "runtime": "", "isolation": "",  # the API's accepted names, shown back by inspect
        "image_volumes": True,          # False: a build's COPY writes below VOLUMEs too
    }


def parse_duration(text, flag):
    """Go's duration syntax (30s, 1m30s, 500ms; a bare number is seconds) → nanoseconds."""
    try:
        return units.parse_duration(text)
    except ValueError:
        raise OptionError(f"invalid argument {text!r} for {flag}: a duration like 30s or 1m30s") \
            from None


NS = units.DURATION_UNITS["s"]
HEALTH_DEFAULTS = {"Interval": 30 * NS, "Timeout": 30 * NS, "Retries": 3, "StartPeriod": 0}


def merged_healthcheck(image, own):
    """The container's healthcheck: its own fields (healthcheck_of) over the image's; None
    when there is none (or it says NONE). engine/health.py runs it."""
    check = dict(image or {})
    for key, value in (own or {}).items():
        if value not in (None, 0, [], ""):
            check[key] = value
    test = check.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] not in ("CMD", "CMD-SHELL") or len(test) < 2:
        raise OptionError(f"invalid healthcheck test {test!r}: CMD, CMD-SHELL or NONE")
    return {**HEALTH_DEFAULTS, **{k: v for k, v in check.items() if v}, "Test": test}


def healthcheck_of(opts):
    """--health-* and --no-healthcheck → Config.Healthcheck (Docker's shape), or what the
    API sent; None: the image's."""
    if opts.healthcheck is not None:
        return opts.healthcheck
    if opts.no_healthcheck:
        if opts.health_cmd:
            raise OptionError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    check = {}
    if opts.health_cmd:
        check["Test"] = ["CMD-SHELL", opts.health_cmd]
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start_period", "StartPeriod")):
        value = getattr(opts, "health_" + flag)
        if value:
            check[key] = parse_duration(value, "--health-" + flag.replace("_", "-"))
            if check[key] < 1_000_000:
                raise OptionError(f"--health-{flag.replace('_', '-')} cannot be less than 1ms")
    if opts.health_retries is not None:
        if opts.health_retries < 0:
            raise OptionError("--health-retries cannot be negative")
        check["Retries"] = opts.health_retries
    return check or None


def parse_restart(text):
    """--restart no|always|unless-stopped|on-failure[:N] → (name, max retries)."""
    name, _, count = (text or "no").partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure") or \
            (count and (name != "on-failure" or not count.isdigit())):
        raise OptionError(f"invalid restart policy {text!r}: use no, always, unless-stopped "
                          f"or on-failure[:N]")
    return name, int(count or 0)


def parse_bytes(text, flag="--memory"):
    """Docker's RAMInBytes: 64m, 1g, 512k, 1024 (binary units)."""
    try:
        n = units.parse_bytes(text)
    except ValueError:
        raise OptionError(f"invalid {flag} value {text!r}: use a number with b, k, m or g") \
            from None
    if flag == "--memory" and n < 6 * (1 << 20):
        raise OptionError("Minimum memory limit allowed is 6MB")
    return n


def parse_cpus(text):
    try:
        cpus = float(text)
    except ValueError:
        raise OptionError(f"invalid --cpus value {text!r}: use a number such as 0.5") from None
    if not 0 < cpus <= os.cpu_count() * 1.0 + 1e-9:
        raise OptionError(f"range of CPUs is from 0.01 to {os.cpu_count()}.00, "
                          f"as there are only {os.cpu_count()} CPUs available")
    return int(cpus * 100_000)


def parse_cpuset(text):
    import re                        # a flag's parser loads re only when the flag is given
    if not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", text):
        raise OptionError(f"invalid --cpuset-cpus value {text!r}: use a list such as 0-1,3")
    return text


def parse_blkio_weight(weight):
    if not 10 <= weight <= 1000:
        raise OptionError(f"invalid --blkio-weight {weight}: it is 10 to 1000")
    return weight


def split_device_rate(text, flag):
    """/dev/sda:10mb → ("/dev/sda", bytes per second)."""
    path, _, rate = text.rpartition(":")
    return path, parse_bytes(rate, flag)


def parse_device_rate(text, flag):
    """--device-read-bps /dev/sda:10mb → [major, minor, bytes per second]."""
    import stat
    path, rate = split_device_rate(text, flag)
    try:
        st = os.stat(path) if path else None
    except OSError as e:
        raise OptionError(f"invalid {flag} {text!r}: {path}: {e.strerror}") from None
    if st is None or not stat.S_ISBLK(st.st_mode):
        raise OptionError(f"invalid {flag} {text!r}: use a block device and a rate, "
                          f"e.g. /dev/sda:10mb")
    return [os.major(st.st_rdev), os.minor(st.st_rdev), rate]


def parse_ulimit(text):
    import re
    m = re.fullmatch(r"([a-z]+)=(-?\d+)(?::(-?\d+))?", text)
    from ..runtime.security import RLIMITS   # the lock-down's table: only with --ulimit
    if not m or m.group(1) not in RLIMITS:
        raise OptionError(f"invalid --ulimit {text!r}: use name=soft[:hard], e.g. nofile=1024:2048")
    soft = int(m.group(2))
    hard = int(m.group(3)) if m.group(3) is not None else soft
    if not all(-1 <= v < 1 << 63 for v in (soft, hard)):
        raise OptionError(f"invalid --ulimit {text!r}: a limit is -1 (unlimited) or 0 to 2^63-1")
    if soft > hard and hard != -1:
        raise OptionError(f"invalid --ulimit {text!r}: soft limit is above the hard limit")
    return m.group(1), soft, hard


def _cap_name(name):
    n = name.upper().removeprefix("CAP_")
    if n != "ALL" and n not in ALL_CAPS:
        raise OptionError(f"unknown capability: {name!r}")
    return n


def capabilities(opts):
    """The final capability set: default, or all with --privileged, then add/drop."""
    caps = set(ALL_CAPS if opts.privileged else DEFAULT_CAPS)
    adds = {_cap_name(c) for c in opts.cap_add}
    drops = {_cap_name(c) for c in opts.cap_drop}
    if "ALL" in drops:
        caps = set()
    caps -= drops
    caps |= set(ALL_CAPS) if "ALL" in adds else adds - {"ALL"}
    return tuple(c for c in ALL_CAPS if c in caps)


def parse_env(opts, image_env):
    """Image Env, then --env-file, then -e. A bare NAME takes the value it has where the
    command line was typed (*opts.env_from_host*); through the API it stays bare, as in
    Docker: a daemon's own environment is never a container's (the process gets no NAME)."""
    env = env_dict(image_env)
    lines = []
    for path in opts.env_file:
        try:
            with open(path) as f:
                lines += [l.rstrip("\n") for l in f if l.strip() and not l.lstrip().startswith("#")]
        except OSError as e:
            raise OptionError(f"open {path}: {e.strerror}") from None
    for item in lines + list(opts.env):
        key, eq, value = item.partition("=")
        if not key or any(c.isspace() for c in key):
            raise OptionError(f"invalid environment variable: {item!r}")
        if eq:
            env[key] = value
        elif not opts.env_from_host:
            env[key] = None
        elif key in os.environ:
            env[key] = os.environ[key]
    return [k if v is None else f"{k}={v}" for k, v in env.items()]


def _container_path(path, text):
    if not path.startswith("/") or os.path.normpath(path) == "/":
        raise OptionError(f"invalid mount {text!r}: the container path must be absolute, not /")
    return os.path.normpath(path)


def mount_of(kind, source, target, readonly=False, nocopy=False, labels=None, data=""):
    """One mount as the engine keeps it (from -v, --mount, --tmpfs or HostConfig.Mounts).
    *kind*: bind (a host path), volume (a name; "" for a new anonymous one) or tmpfs."""
    return {"type": kind, "source": source, "target": target, "readonly": readonly,
            "nocopy": nocopy, "labels": labels or {}, "data": data}


def parse_volume(text):
    """-v /host:/ctr[:opts] (a bind), -v NAME:/ctr[:opts] (a named volume), -v /ctr (an
    anonymous one); opts: ro, rw, nocopy (z and Z are accepted: minirun has no SELinux)."""
    parts = text.split(":")
    if len(parts) == 1:
        return mount_of("volume", "", _container_path(parts[0], text))
    if len(parts) > 3:
        raise OptionError(f"invalid volume specification: {text!r}")
    source, target = parts[0], _container_path(parts[1], text)
    modes = set(parts[2].split(",")) if len(parts) == 3 else set()
    if not modes <= {"ro", "rw", "nocopy", "z", "Z"} or {"ro", "rw"} <= modes:
        raise OptionError(f"invalid mode: {parts[2]} (ro, rw, nocopy)")
    if not source:
        raise OptionError(f"invalid volume specification: {text!r}")
    if source.startswith("/"):
        return mount_of("bind", os.path.normpath(source), target, "ro" in modes)
    return mount_of("volume", source, target, "ro" in modes, "nocopy" in modes)


_TRUE = ("", "1", "true")


def parse_mount(text):
    """--mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,volume-nocopy]
    [,volume-label=K=V][,tmpfs-size=…][,tmpfs-mode=…] (Docker's CSV fields)."""
    fields = {}
    labels = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        key = key.strip().lower()
        if key == "volume-label":
            labels.update([value.partition("=")[::2]])
        elif key in ("type", "source", "src", "target", "destination", "dst", "readonly", "ro",
                     "volume-nocopy", "tmpfs-size", "tmpfs-mode", "bind-propagation",
                     "volume-driver", "consistency"):
            fields[{"src": "source", "destination": "target", "dst": "target",
                    "ro": "readonly"}.get(key, key)] = value
        else:
            raise OptionError(f"invalid field '{key}' in --mount {text!r}")
    return api_mount({
        "Type": fields.get("type", "volume"), "Source": fields.get("source", ""),
        "Target": fields.get("target", ""),
        "ReadOnly": fields.get("readonly", "false").lower() in _TRUE,
        "BindOptions": {"Propagation": fields.get("bind-propagation", "")},
        "VolumeOptions": {"NoCopy": fields.get("volume-nocopy", "false").lower() in _TRUE,
                          "Labels": labels,
                          "DriverConfig": {"Name": fields.get("volume-driver", "")}},
        "TmpfsOptions": {"SizeBytes": parse_bytes(fields["tmpfs-size"], "tmpfs-size")
                         if fields.get("tmpfs-size") else 0,
                         "Mode": int(fields["tmpfs-mode"], 8) if fields.get("tmpfs-mode")
                         else 0},
    }, text)


def api_mount(m, text=None):
    """One of HostConfig.Mounts (Docker's API shape) → a mount; what minirun cannot do (a
    propagation other than private, a volume driver other than local) is refused."""
    text = text or cjson.dumps(m)
    if not isinstance(m, dict):
        raise OptionError(f"invalid mount {text}")
    kind, source = m.get("Type"), m.get("Source") or ""
    target = _container_path(m.get("Target") or "", text)
    if not isinstance(source, str) or kind not in ("bind", "volume", "tmpfs"):
        raise OptionError(f"invalid mount {text}: type must be bind, volume or tmpfs")
    propagation = ((m.get("BindOptions") or {}).get("Propagation") or "")
    if propagation not in ("", "private", "rprivate"):
        raise OptionError(f"invalid mount {text}: bind propagation {propagation!r} is not "
                          f"supported (mounts are private)")
    vol = m.get("VolumeOptions") or {}
    driver = ((vol.get("DriverConfig") or {}).get("Name") or "local")
    if driver != "local":
        raise OptionError(f"invalid mount {text}: volume driver {driver!r} (only local)")
    readonly = bool(m.get("ReadOnly"))
    if kind == "bind":
        if not source.startswith("/"):
            raise OptionError(f"invalid mount {text}: a bind needs an absolute source path")
        return mount_of("bind", os.path.normpath(source), target, readonly)
    if kind == "tmpfs":
        if source:
            raise OptionError(f"invalid mount {text}: a tmpfs has no source")
        t = m.get("TmpfsOptions") or {}
        data = ",".join(x for x in (f"size={int(t['SizeBytes'])}" if t.get("SizeBytes") else "",
                                    f"mode={int(t['Mode']):o}" if t.get("Mode") else "") if x)
        return mount_of("tmpfs", "", target, readonly, data=data)
    labels = vol.get("Labels") or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise OptionError(f"invalid mount {text}: labels are strings")
    return mount_of("volume", source, target, readonly, bool(vol.get("NoCopy")), labels)


def parse_add_host(text):
    """--add-host NAME:IP (Docker also takes NAME=IP) → (name, ip)."""
    import ipaddress                     # only --add-host needs it
    name, sep, ip = text.partition("=") if "=" in text else text.partition(":")
    try:
        ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        raise OptionError(f"invalid IP address in add-host: {ip!r}"
                          + (" (host-gateway is not supported)" if ip == "host-gateway"
                             else "")) from None
    if not name or not sep:
        raise OptionError(f"bad format for add-host: {text!r} (NAME:IP)")
    return name, ip.strip("[]")


def parse_link(text):
    """--link CONTAINER[:ALIAS] → (container, alias)."""
    name, _, alias = text.partition(":")
    if not name:
        raise OptionError(f"invalid link {text!r}: CONTAINER[:ALIAS]")
    return name.lstrip("/"), (alias or name).lstrip("/").rpartition("/")[2]


def parse_volumes_from(text):
    """--volumes-from CONTAINER[:ro|rw] → (container, "ro", "rw" or "" for as it is)."""
    ref, _, mode = text.partition(":")
    if not ref or mode not in ("", "ro", "rw"):
        raise OptionError(f"invalid --volumes-from {text!r}: CONTAINER[:ro|rw]")
    return ref, mode


def parse_tmpfs_mount(text):
    """--tmpfs /path[:options] → a mount."""
    path, _, data = text.partition(":")
    if not path.startswith("/") or os.path.normpath(path) == "/":
        raise OptionError(f"invalid --tmpfs {text!r}: the path must be absolute, not /")
    return mount_of("tmpfs", "", os.path.normpath(path), data=data)


def parse_security_opts(opts):
    """--security-opt → (no_new_privileges, seccomp option: None for the default profile,
    "unconfined", JSON text or a file). label= and apparmor= are accepted and do nothing:
    minirun has no SELinux or AppArmor support (README: what it defends against)."""
    nnp, seccomp = False, None
    for item in opts.security_opt:
        key, _, value = item.partition("=" if "=" in item else ":")
        if key == "no-new-privileges" and value in ("", "true"):
            nnp = True
        elif key == "no-new-privileges" and value == "false":
            nnp = False
        elif key == "seccomp" and value:
            seccomp = value
        elif key in ("label", "apparmor") and value:
            pass
        else:
            raise OptionError(f"unsupported --security-opt {item!r} (no-new-privileges, "
                              f"seccomp=unconfined|PROFILE.json, label=…, apparmor=… are)")
    return nnp, seccomp
