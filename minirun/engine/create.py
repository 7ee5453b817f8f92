"""Creating a container: image + options → a checked Spec and a record on disk.

Every option is checked before anything is made; what is made (the record,
its directory, /etc files) is removed again if a later step fails. The Spec
is stored with the record, so a daemon can start (and restart) it later.
"""
import os

from ..errors import MinirunError
from ..network.hosts import base as hosts_file
from ..runtime import cgroups as cg
from ..runtime import seccomp
from ..runtime.spec import Mount, Spec
from . import idranges, logs
from . import options as o

INIT_BINARIES = ("/usr/bin/tini-static", "/usr/bin/docker-init")


def create(store, containers, opts, networking, die_with_parent=True, userns_default=""):
    """Record a container for *opts*; return (id, name, spec, the volumes made for it).
    *userns_default*: the daemon's --userns-remap ("remap"), for containers that do not
    choose."""
    image_id = store.resolve(opts.image)
    cid, name = containers.create(image_id, opts.image, {"options": recorded(opts)}, opts.name)
    made = []
    try:
        image_config = store.config(image_id).get("config") or {}
        spec = build_spec(opts, store, image_id, image_config, cid, containers)
        spec.die_with_parent = die_with_parent
        ports, ip = networking.plan(opts, cid, (image_config.get("ExposedPorts") or {}).keys())
        write_etc_files(spec, containers, opts, ip, networking)
        attach_volumes(spec, containers, made, volume_labels(opts))
        create_volume_dirs(spec)
        mode = user_namespace(opts.userns, userns_default)
        if mode:
            spec.userns = idranges.allocate(containers.db, cid, mode)
            give_to_container_root(spec)
        check = o.merged_healthcheck(image_config.get("Healthcheck"), o.healthcheck_of(opts))
        containers.save_spec(cid, spec, ports=ports, health=check)
    except BaseException:
        containers.remove(cid)          # its addresses and volume uses go with the record
        if made:
            from .volumes import VolumeStore
            volumes = VolumeStore(containers.root, db=containers.db)
            for name in made:
                volumes.remove(name, force=True)
        raise
    return cid, name, spec, made


def recorded(opts):
    """The options as stored with the container (for inspect and restarts)."""
    return {k: v for k, v in opts.as_dict().items() if k != "trace"}


def command_line(opts, image_config):
    """Entrypoint + Cmd as Docker combines them."""
    if opts.entrypoint is not None:     # a string from the CLI, a list from the API
        entry = opts.entrypoint if isinstance(opts.entrypoint, list) else \
            [opts.entrypoint] if opts.entrypoint else []
        cmd = list(opts.command)            # --entrypoint drops the image's Cmd
    else:
        entry = list(image_config.get("Entrypoint") or [])
        cmd = list(opts.command) or list(image_config.get("Cmd") or [])
    args = entry + cmd
    if not args:
        raise o.OptionError("no command specified")
    return args


def limits(opts):
    return cg.Limits(
        memory=o.parse_bytes(opts.memory) if opts.memory else None,
        cpu_quota=o.parse_cpus(opts.cpus) if opts.cpus else None,
        cpu_shares=opts.cpu_shares or None,
        pids=opts.pids_limit,
        cpuset_cpus=o.parse_cpuset(opts.cpuset_cpus) if opts.cpuset_cpus else None,
        allow_all_devices=opts.privileged,
        blkio_weight=o.parse_blkio_weight(opts.blkio_weight) if opts.blkio_weight else None,
        device_read_bps=[o.parse_device_rate(d, "--device-read-bps") for d in opts.device_read_bps],
        device_write_bps=[o.parse_device_rate(d, "--device-write-bps")
                          for d in opts.device_write_bps],
    )


def mounts(opts, image_config, containers):
    """Every mount of the container, checked, in Docker's order of precedence: -v and --mount
    first, then --volumes-from, then the image's VOLUMEs (each target once). A volume's
    *source* is filled in by attach_volumes once every option is known to be valid."""
    wanted = [o.parse_volume(v) for v in opts.volumes]
    wanted += [o.parse_mount(m) if isinstance(m, str) else o.api_mount(m) for m in opts.mounts]
    wanted += [o.parse_tmpfs_mount(t) for t in opts.tmpfs]
    out, targets = [], set()
    for m in wanted:
        if m["target"] in targets:
            raise o.OptionError(f"Duplicate mount point: {m['target']}")
        targets.add(m["target"])
        out.append(Mount(target=m["target"], kind="tmpfs" if m["type"] == "tmpfs" else "bind",
                         source=m["source"] if m["type"] == "bind" else "",
                         readonly=m["readonly"], data=m["data"],
                         volume=(m["source"] or ANONYMOUS) if m["type"] == "volume" else "",
                         copy_up=m["type"] == "volume" and not m["nocopy"]))
    for ref, mode in map(o.parse_volumes_from, opts.volumes_from):
        source = containers.config(containers.get(ref)).get("spec", {})
        for m in source.get("mounts", []):
            if m["target"] not in targets and m["kind"] == "bind":
                targets.add(m["target"])
                out.append(Mount(target=m["target"], kind="bind", source=m["source"],
                                 volume=m.get("volume", ""),
                                 readonly=m["readonly"] if not mode else mode == "ro"))
    for target in (image_config.get("Volumes") or {}) if opts.image_volumes else ():
        target = os.path.normpath(target)
        if target not in targets and target.startswith("/") and target != "/":
            targets.add(target)
            out.append(Mount(target=target, kind="bind", volume=ANONYMOUS, copy_up=True))
    return out


ANONYMOUS = "<anonymous>"       # a volume to be made for this container alone


def volume_labels(opts):
    """--mount volume-label=… (VolumeOptions.Labels): labels of volumes made for them."""
    out = {}
    for m in opts.mounts:
        m = o.parse_mount(m) if isinstance(m, str) else o.api_mount(m)
        if m["type"] == "volume" and m["labels"]:
            out[m["target"]] = m["labels"]
    return out


def attach_volumes(spec, containers, made, labels=None):
    """Give each volume mount its directory: named volumes are made on first use (with
    *labels*, {target: labels}), anonymous ones for this container; each use is recorded.
    *made* gets the volumes made here (a create that fails later removes them)."""
    if not any(m.volume for m in spec.mounts):
        return
    from .volumes import VolumeStore     # only containers with volumes need the store
    volumes = VolumeStore(containers.root, db=containers.db)
    for m in spec.mounts:
        if not m.volume:
            continue
        if m.volume == ANONYMOUS:
            row, new = volumes.create(anonymous=True)
        else:
            row, new = volumes.create(m.volume, (labels or {}).get(m.target))
        if new:
            made.append(row["name"])
        m.volume, m.source = row["name"], volumes.path(row["name"])
        volumes.use(m.volume, spec.id)


def init_binary():
    for path in INIT_BINARIES:
        if os.path.exists(path):
            return path
    raise MinirunError("--init needs tini (apt-get install tini)")


def resolv_conf():
    """The host's resolv.conf without loopback name servers (unreachable from a netns)."""
    try:
        with open("/etc/resolv.conf") as f:
            lines = [l for l in f if not (l.startswith("nameserver")
                                          and l.split()[1:2] and l.split()[1].startswith("127."))]
    except OSError:
        lines = []
    return "".join(lines)


def build_spec(opts, store, image_id, image_config, cid, containers):
    """Everything the runtime needs; checks every option before anything is made."""
    o.parse_restart(opts.restart)
    log_options(opts.log_driver, opts.log_opt)
    nnp, seccomp_option = o.parse_security_opts(opts)
    caps = o.capabilities(opts)
    spec = Spec(
        id=cid,
        args=command_line(opts, image_config),
        env=o.parse_env(opts, image_config.get("Env") or []),
        cwd=opts.workdir or image_config.get("WorkingDir") or "/",
        user=opts.user if opts.user is not None else image_config.get("User") or "",
        group_add=[str(g) for g in opts.group_add],
        hostname=opts.hostname or cid[:12],
        layers_dir=store.layers.dir,
        lower=store.layer_links(image_id),
        upper=containers.path(cid, "upper"),
        work=containers.path(cid, "work"),
        rootfs=containers.path(cid, "rootfs"),
        readonly_rootfs=opts.read_only,
        mounts=mounts(opts, image_config, containers),
        network=opts.network,
        tty=opts.tty,
        stdin=opts.interactive,
        caps=caps,
        privileged=opts.privileged,
        no_new_privileges=nnp,
        seccomp=seccomp_filter(seccomp_option, opts.privileged, caps, containers.root),
        rlimits=[o.parse_ulimit(u) for u in opts.ulimit],
        limits=limits(opts),
        init=init_binary() if opts.init else "",
    )
    if not spec.cwd.startswith("/"):
        raise o.OptionError(f"the working directory '{spec.cwd}' is invalid, it needs to be an "
                            f"absolute path")
    if opts.tty and not any(e.startswith("TERM=") for e in spec.env):
        spec.env.append("TERM=xterm")             # as Docker does for -t
    if opts.network == "host":
        spec.hostname = opts.hostname or os.uname().nodename
    return spec


def log_options(driver, items):
    """(driver, max-size, max-file), checked: --log-driver and --log-opt KEY=VALUE."""
    opts = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise o.OptionError(f"invalid log opt {item!r}: use KEY=VALUE")
        opts[key] = value
    return logs.parse_options(driver, opts)


def seccomp_filter(option, privileged, caps, root):
    """The compiled filter of the container's profile (Docker's default unless
    --security-opt seccomp=…), or "" for none (unconfined, or --privileged as in Docker)."""
    if privileged and option is None:
        return ""
    return seccomp.filter_for(option, caps, os.path.join(root, "seccomp"))


def user_namespace(option, default):
    """--userns: "auto", "host" or "" (the daemon's default) → "auto", "remap" or "" (none)."""
    option = option or ""
    if option not in ("", "auto", "host"):
        raise o.OptionError(f"invalid --userns {option!r}: auto or host")
    if option == "host":
        return ""
    return option or default


def give_to_container_root(spec):
    """With a user namespace, the container's root owns its writable layer and the /etc files
    bound in (the image's layers it sees as its own through idmapped mounts)."""
    base = spec.userns[0]
    for path in (spec.upper, *spec.etc_files.values()):
        os.chown(path, base, base)


def create_volume_dirs(spec):
    """Docker creates a missing host directory of a -v; done once every option is valid."""
    for m in spec.mounts:
        if m.kind == "bind" and not m.volume and not os.path.exists(m.source):
            os.makedirs(m.source)


def write_etc_files(spec, containers, opts, ip, networking):
    """/etc/hostname, hosts and resolv.conf, bound into the container from its directory.
    --add-host and --link add lines to its hosts; --dns, --dns-search, --dns-option make its
    resolv.conf."""
    network = opts.network
    files = {"/etc/hostname": spec.hostname + "\n",
             "/etc/hosts": hosts_file(spec.hostname, ip) + _extra_hosts(opts, containers,
                                                                        networking),
             "/etc/resolv.conf": _resolv_conf(opts)}
    if network == "host":
        files["/etc/hosts"] = _read("/etc/hosts")
    elif network.startswith("container:"):            # the joined container's, as Docker does
        target = containers.get(network.split(":", 1)[1])["id"]
        files["/etc/hosts"] = _read(containers.path(target, "hosts"))
        files["/etc/resolv.conf"] = _read(containers.path(target, "resolv.conf"))
    for target, content in files.items():
        path = containers.path(spec.id, os.path.basename(target))
        with open(path, "w") as f:
            f.write(content)
        spec.etc_files[target] = path


def _extra_hosts(opts, containers, networking):
    lines = [f"{ip}\t{name}\n" for name, ip in map(o.parse_add_host, opts.add_host)]
    for ref, alias in map(o.parse_link, opts.links):
        row = containers.get(ref)
        networks, _ = networking.settings(row["id"])
        here = networks.get(opts.network) or {}
        if not here.get("IPAddress"):
            raise o.OptionError(f"cannot link to {ref}: it is not on network {opts.network}")
        names = dict.fromkeys([alias, row["name"], row["id"][:12]])
        lines.append(f"{here['IPAddress']}\t{' '.join(names)}\n")
    return "".join(lines)


def _resolv_conf(opts):
    if not (opts.dns or opts.dns_search or opts.dns_option):
        return resolv_conf()
    import ipaddress                     # only --dns needs it
    for server in opts.dns:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise o.OptionError(f"{server} is not an ip address") from None
    kept = [l for l in resolv_conf().splitlines(True)
            if not (opts.dns and l.startswith("nameserver"))
            and not (opts.dns_search and l.startswith(("search", "domain")))
            and not (opts.dns_option and l.startswith("options"))]
    return "".join(kept + [f"nameserver {s}\n" for s in opts.dns]
                   + ([f"search {' '.join(opts.dns_search)}\n"] if opts.dns_search else [])
                   + ([f"options {' '.join(opts.dns_option)}\n"] if opts.dns_option else []))


def _read(path):
    with open(path) as f:
        return f.read()
