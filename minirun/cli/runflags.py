"""The flags of ``minirun run``, declared once.

The click command is built from this table, and so is a small parser that
handles ``minirun [--root DIR] [--debug] run …`` without importing click:
click alone costs more to import than a container costs to start. Anything
the small parser does not know (``--help``, a typo, a missing value) goes to
click, which then reports it the usual way.
"""
from .. import config

# (flags, destination, kind, help); kind: flag | value | int | multi
RUN_FLAGS = [
    (("--rm",), "rm", "flag", "Remove the container when it exits."),
    (("-d", "--detach"), "detach", "flag", "Run in the background, through minirund."),
    (("--restart",), "restart", "value", "no, always, unless-stopped, on-failure[:N] (with -d)."),
    (("-l", "--label"), "label", "multi", "Set a label (key=value)."),
    (("--name",), "name", "value", "Name the container."),
    (("-e", "--env"), "env", "multi", "Set an environment variable (NAME=VALUE)."),
    (("--env-file",), "env_file", "multi", "Read environment variables from a file."),
    (("-w", "--workdir"), "workdir", "value", "Working directory inside the container."),
    (("-u", "--user"), "user", "value", "uid[:gid] or name[:group]."),
    (("--entrypoint",), "entrypoint", "value", "Override the image's entrypoint."),
    (("-h", "--hostname"), "hostname", "value", "Container hostname."),
    (("-i", "--interactive"), "interactive", "flag", "Keep stdin open."),
    (("-t", "--tty"), "tty", "flag", "Allocate a pseudo-terminal."),
    (("--detach-keys",), "detach_keys", "value", "Keys that detach (default ctrl-p,ctrl-q)."),
    (("-v", "--volume"), "volumes", "multi",
     "A volume NAME:/ctr, a bind /host:/ctr, or an anonymous volume /ctr (:ro, :nocopy)."),
    (("--mount",), "mounts", "multi",
     "type=volume|bind|tmpfs,source=…,target=…[,readonly][,volume-nocopy]."),
    (("--volumes-from",), "volumes_from", "multi", "The volumes of CONTAINER[:ro|rw]."),
    (("--tmpfs",), "tmpfs", "multi", "Mount a tmpfs: /path[:options]."),
    (("--read-only",), "read_only", "flag", "Mount the root file system read-only."),
    (("--health-cmd",), "health_cmd", "value", "Command run to check health (in a shell)."),
    (("--health-interval",), "health_interval", "value", "Time between checks (30s)."),
    (("--health-timeout",), "health_timeout", "value", "Time a check may take (30s)."),
    (("--health-retries",), "health_retries", "int", "Failures in a row that mean unhealthy."),
    (("--health-start-period",), "health_start_period", "value",
     "Time to start in, whose failures do not count."),
    (("--no-healthcheck",), "no_healthcheck", "flag", "Disable the image's healthcheck."),
    (("--stop-signal",), "stop_signal", "value", "Signal that stops it (SIGTERM)."),
    (("--add-host",), "add_host", "multi", "A line in its /etc/hosts: NAME:IP."),
    (("--link",), "links", "multi", "CONTAINER[:ALIAS] in its /etc/hosts."),
    (("--dns",), "dns", "multi", "A name server for its resolv.conf."),
    (("--group-add",), "group_add", "multi", "Another group for its user (name or gid)."),
    (("--ip",), "ip", "value", "Its IPv4 address on a user network."),
    (("--ip6",), "ip6", "value", "Its IPv6 address on a user IPv6 network."),
    (("--mac-address",), "mac_address", "value", "Its MAC address."),
    (("--dns-search",), "dns_search", "multi", "A search domain for its resolv.conf."),
    (("--dns-option",), "dns_option", "multi", "An option for its resolv.conf."),
    (("--stop-timeout",), "stop_timeout", "int", "Seconds stop waits before SIGKILL (10)."),
    (("-m", "--memory"), "memory", "value", "Memory limit (e.g. 64m)."),
    (("--cpus",), "cpus", "value", "Number of CPUs (e.g. 0.5)."),
    (("-c", "--cpu-shares"), "cpu_shares", "int", "CPU shares (relative weight)."),
    (("--pids-limit",), "pids_limit", "int", "Maximum number of processes (-1: unlimited)."),
    (("--cpuset-cpus",), "cpuset_cpus", "value", "CPUs to run on (e.g. 0-1)."),
    (("--blkio-weight",), "blkio_weight", "int", "Block I/O weight, 10 to 1000."),
    (("--device-read-bps",), "device_read_bps", "multi",
     "Limit reads from a block device: /dev/sda:10mb."),
    (("--device-write-bps",), "device_write_bps", "multi",
     "Limit writes to a block device: /dev/sda:10mb."),
    (("--cap-add",), "cap_add", "multi", "Add a Linux capability."),
    (("--cap-drop",), "cap_drop", "multi", "Drop a Linux capability."),
    (("--privileged",), "privileged", "flag", "All capabilities and devices, no masks."),
    (("--security-opt",), "security_opt", "multi", "no-new-privileges."),
    (("--ulimit",), "ulimit", "multi", "name=soft[:hard], e.g. nofile=1024:2048."),
    (("--network", "--net"), "network", "value",
     "bridge (default), none, host, container:NAME, or a network made with network create."),
    (("--network-alias",), "network_alias", "multi", "Another name on a user network."),
    (("-p", "--publish"), "publish", "multi",
     "Publish a port: [ip:][hostport:]containerport[/tcp|udp]."),
    (("-P", "--publish-all"), "publish_all", "flag", "Publish every exposed port (random ports)."),
    (("--expose",), "expose", "multi", "Expose a port (published by -P)."),
    (("--init",), "init", "flag", "Run an init (tini) as PID 1 that reaps zombies."),
    (("--userns",), "userns", "value",
     "auto: root in the container is an unprivileged range of host ids; host: not."),
    (("--log-driver",), "log_driver", "value", "json-file (default) or none (with -d)."),
    (("--log-opt",), "log_opt", "multi", "max-size=20m, max-file=5 (the defaults; with -d)."),
    (("--trace",), "trace", "flag", "Print each step (syscall and why) as it happens."),
]

_BY_FLAG = {f: (dest, kind) for flags, dest, kind, _ in RUN_FLAGS for f in flags}


def parse_fast(argv, environ):
    """(config.Globals, options dict) for a plain ``run`` command line, else None."""
    root, host, debug, i = None, None, False, 0
    while i < len(argv) and argv[i] != "run":
        arg = argv[i]
        if arg == "--debug":
            debug = True
        elif arg == "--root" and i + 1 < len(argv):
            root, i = argv[i + 1], i + 1
        elif arg.startswith("--root="):
            root = arg.split("=", 1)[1]
        elif arg in ("-H", "--host") and i + 1 < len(argv):
            host, i = argv[i + 1], i + 1
        else:
            return None
        i += 1
    if i == len(argv):
        return None
    opts = _parse_run(argv[i + 1:])
    return (config.resolve(root, host, debug, environ), opts) if opts is not None else None


def _parse_run(args):
    opts = {}
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        arg = args[i]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if _short_flags(name, opts):          # -it, -ti, …
            i += 1
            continue
        if name not in _BY_FLAG:
            return None                       # typos, --help, …: click explains
        dest, kind = _BY_FLAG[name]
        if kind == "flag":
            if eq:
                return None
            opts[dest] = True
            i += 1
            continue
        if eq:
            value = inline
        elif i + 1 < len(args):
            value, i = args[i + 1], i + 1
        else:
            return None
        if kind == "int":
            try:
                value = int(value)
            except ValueError:
                return None
        if kind == "multi":
            opts.setdefault(dest, []).append(value)
        else:
            opts[dest] = value
        i += 1
    if i == len(args):
        return None                           # no image: click says so
    opts["image"], opts["command"] = args[i], args[i + 1:]
    return opts


def _short_flags(arg, opts):
    """Combined one-letter flags such as ``-it``; True if *arg* was one."""
    if arg.startswith("--") or len(arg) < 3:
        return False
    letters = [_BY_FLAG.get("-" + c) for c in arg[1:]]
    if not all(l and l[1] == "flag" for l in letters):
        return False
    for dest, _ in letters:
        opts[dest] = True
    return True
