"""Docker Engine API bodies ↔ minirun's records: checked field by field.

A request body is untrusted: every field is type-checked, and a wrong type
or an absurd value is a 400 with the field's name, never a crash.
"""
import json
import os
import signal as _signal
import time

from ..engine.options import RunOptions
from ..image.inspect import ZERO_TIME       # Go's zero time: what "never" is in the API
from .server import ApiError


def _get(doc, key):
    """doc[key] as dockerd reads it: Go's JSON decoder matches a field's name exactly, else
    case-insensitively (docker-py sends exec's "detachKeys")."""
    if key in doc:
        return doc[key]
    folded = key.casefold()
    return next((v for k, v in doc.items() if isinstance(k, str) and k.casefold() == folded),
                None)


def field(doc, key, kind, default=None, where=""):
    value = _get(doc, key)
    if value is None:
        return default
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise ApiError(400, f"invalid type for {where}{key}: {type(value).__name__}")
    return value


def str_list(doc, key, where=""):
    value = _get(doc, key)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, f"invalid type for {where}{key}: expected a list of strings")
    return value


# What a create body may carry that minirun does not do, with the values that mean "nothing
# asked" (what the docker CLI, docker-py and compose send by default). Anything else is
# refused in one line rather than dropped: a container must not silently run without a
# limit, a device or a namespace setting its user asked for.
UNSUPPORTED_HOST = {
    "VolumeDriver": ("", "local"), "Annotations": (None, {}), "CgroupnsMode": ("", "private"),
 "IpcMode": ("", "private", "shareable"),
    "Cgroup": ("",), "OomScoreAdj": (0,), "PidMode": ("",),
    "StorageOpt": (None, {}), "UTSMode": ("",), "ShmSize": (0, 67108864), "Sysctls": (None, {}),
    "Runtime": ("", "minirun", "runc"), "Isolation": ("", "default"), "CgroupParent": ("",),
    "BlkioWeightDevice": (None, []), "BlkioDeviceReadIOps": (None, []),
    "BlkioDeviceWriteIOps": (None, []), "CpuPeriod": (0,), "CpuQuota": (0,),
    "CpuRealtimePeriod": (0,), "CpuRealtimeRuntime": (0,), "CpusetMems": ("",),
    "Devices": (None, []), "DeviceCgroupRules": (None, []), "DeviceRequests": (None, []),
    "KernelMemory": (0,), "KernelMemoryTCP": (0,), "MemoryReservation": (0,),
    "MemorySwap": (0, -1), "MemorySwappiness": (None, -1), "OomKillDisable": (None, False),
    "CpuCount": (0,), "CpuPercent": (0,), "IOMaximumIOps": (0,), "IOMaximumBandwidth": (0,),
    "MaskedPaths": (None,), "ReadonlyPaths": (None,)}
UNSUPPORTED_CONFIG = {"Domainname": ("",), "NetworkDisabled": (None, False),
                      "Shell": (None, []), "OnBuild": (None, [])}
UNSUPPORTED_ENDPOINT = {"DriverOpts": (None, {})}


def _refuse(doc, table, where):
    """A 400 naming the first field of *doc* in *table* set to what minirun cannot do."""
    for key, defaults in table.items():
        value = _get(doc, key)              # (matched as field() matches: a refusal too)
        if value is not None and not any(value == d and type(value) is type(d)
                                         for d in defaults if d is not None):
            if isinstance(value, dict) and not any(value.values()) and {} in defaults:
                continue                       # {"IPv4Address": ""}: nothing asked
            raise ApiError(400, f"{where}{key} {json.dumps(value)} is not supported by "
                                f"minirun")


def refuse_unsupported(body, host):
    """A 400 naming the first field that asks for what minirun cannot do."""
    _refuse(host, UNSUPPORTED_HOST, "HostConfig.")
    _refuse(body, UNSUPPORTED_CONFIG, "")
    endpoints = ((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
    for name, endpoint in endpoints.items() if isinstance(endpoints, dict) else ():
        if isinstance(endpoint, dict):
            refuse_unsupported_endpoint(endpoint, f"NetworkingConfig.EndpointsConfig.{name}.")


def refuse_unsupported_endpoint(endpoint, where):
    """The same for an endpoint's settings (create's, or network connect's)."""
    _refuse(endpoint, UNSUPPORTED_ENDPOINT, where)


def update_options(body):
    """A /containers/{id}/update body → (run options changed, runtime Limits changed)."""
    from ..engine import options as o      # lazy: `run -d` imports this module
    from ..runtime.cgroups import Limits
    refuse_unsupported({}, body)
    options, limits = {}, Limits()
    memory = field(body, "Memory", int, 0)
    nano = field(body, "NanoCpus", int, 0)
    shares = field(body, "CpuShares", int, 0)
    pids = field(body, "PidsLimit", int, None)
    cpuset = field(body, "CpusetCpus", str, "")
    weight = field(body, "BlkioWeight", int, 0)
    if min(memory, nano, shares, weight) < 0:
        raise ApiError(400, "resources must not be negative")
    if memory:
        options["memory"], limits.memory = str(memory), memory
    if nano:
        options["cpus"] = str(nano / 1e9)
        limits.cpu_quota = o.parse_cpus(options["cpus"])
    if shares:
        options["cpu_shares"] = limits.cpu_shares = shares
    if pids:
        options["pids_limit"] = limits.pids = pids
    if cpuset:
        options["cpuset_cpus"], limits.cpuset_cpus = cpuset, o.parse_cpuset(cpuset)
    if weight:
        options["blkio_weight"] = limits.blkio_weight = o.parse_blkio_weight(weight)
    policy = field(body, "RestartPolicy", dict, None)
    if policy and policy.get("Name"):
        restart = field(policy, "Name", str, "no")
        retries = field(policy, "MaximumRetryCount", int, 0)
        options["restart"] = f"{restart}:{retries}" if restart == "on-failure" and retries \
            else restart
        o.parse_restart(options["restart"])
    return options, limits


def run_options(body, name=None):
    """A /containers/create body → RunOptions."""
    image = field(body, "Image", str)
    if not image:
        raise ApiError(400, "Config.Image is required")
    host = field(body, "HostConfig", dict, {})
    refuse_unsupported(body, host or {})
    h = "HostConfig."
    labels = field(body, "Labels", dict, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise ApiError(400, "invalid type for Labels: expected strings")
    memory = field(host, "Memory", int, 0, h)
    nano = field(host, "NanoCpus", int, 0, h)
    shares = field(host, "CpuShares", int, 0, h)
    pids = field(host, "PidsLimit", int, None, h)
    if memory < 0 or nano < 0 or shares < 0 or memory > 1 << 50 or nano > 1 << 50:
        raise ApiError(400, "HostConfig: Memory, NanoCpus and CpuShares must be positive")
    policy = field(host, "RestartPolicy", dict, {}, h)
    restart = field(policy, "Name", str, "", h + "RestartPolicy.") or "no"
    retries = field(policy, "MaximumRetryCount", int, 0, h + "RestartPolicy.")
    if restart == "on-failure" and retries:
        restart = f"on-failure:{retries}"
    network = field(host, "NetworkMode", str, "default", h)
    log = field(host, "LogConfig", dict, {}, h) or {}
    log_config = field(log, "Config", dict, {}, "HostConfig.LogConfig.") or {}
    if not all(isinstance(v, str) for v in log_config.values()):
        raise ApiError(400, "invalid type for HostConfig.LogConfig.Config: expected strings")
    publish = _publish(field(host, "PortBindings", dict, {}, h) or {})
    exposed = list(field(body, "ExposedPorts", dict, {}) or {})
    ulimits = field(host, "Ulimits", list, [], h)
    tmpfs = field(host, "Tmpfs", dict, {}, h)
    entrypoint = str_list(body, "Entrypoint")
    binds = str_list(host, "Binds", h) or []
    endpoint = _endpoint(body, network)
    mounts = field(host, "Mounts", list, [], h) or []
    return RunOptions(
        image=image, name=name,
        command=str_list(body, "Cmd") or [],
        entrypoint=entrypoint,
        env=str_list(body, "Env") or [],
        env_from_host=False,
        runtime=field(host, "Runtime", str, "", h),          # (refuse_unsupported checked
        isolation=field(host, "Isolation", str, "", h),      # both are names minirun is)
        workdir=field(body, "WorkingDir", str) or None,
        user=field(body, "User", str) or None,
        hostname=field(body, "Hostname", str) or None,
        tty=field(body, "Tty", bool, False),
        interactive=field(body, "OpenStdin", bool, False),
        stdin_once=field(body, "StdinOnce", bool, False),
        console_size=_console_size(host),
        healthcheck=_healthcheck(body),
        stop_signal=_stop_signal(body),
        add_host=str_list(host, "ExtraHosts", h) or [],
        links=(str_list(host, "Links", h) or []) + _endpoint_links(body),
        dns=str_list(host, "Dns", h) or [],
        dns_search=str_list(host, "DnsSearch", h) or [],
        dns_option=str_list(host, "DnsOptions", h) or [],
        group_add=str_list(host, "GroupAdd", h) or [],
        ip=endpoint["ip"],
        ip6=endpoint["ip6"],
        mac_address=endpoint["mac"] or field(body, "MacAddress", str, "") or None,
        stop_timeout=field(body, "StopTimeout", int, None),
        labels=labels,
        memory=str(memory) if memory else None,
        cpus=str(nano / 1e9) if nano else None,
        cpu_shares=shares or None,
        pids_limit=pids if pids and pids > 0 else None,
        cpuset_cpus=field(host, "CpusetCpus", str, None, h) or None,
        blkio_weight=field(host, "BlkioWeight", int, 0, h) or None,
        device_read_bps=_device_rates(host, "BlkioDeviceReadBps"),
        device_write_bps=_device_rates(host, "BlkioDeviceWriteBps"),
        volumes=binds + _anonymous(field(body, "Volumes", dict, {}) or {}, binds, mounts),
        mounts=mounts,
        volumes_from=str_list(host, "VolumesFrom", h) or [],
        tmpfs=[f"{k}:{v}" if v else k for k, v in tmpfs.items()],
        rm=field(host, "AutoRemove", bool, False, h),
        network="bridge" if network in ("default", "") else network,
        publish=publish, expose=exposed,
        publish_all=field(host, "PublishAllPorts", bool, False, h),
        network_alias=_aliases(body, network),
        restart=restart,
        cap_add=str_list(host, "CapAdd", h) or [],
        cap_drop=str_list(host, "CapDrop", h) or [],
        privileged=field(host, "Privileged", bool, False, h),
        read_only=field(host, "ReadonlyRootfs", bool, False, h),
        security_opt=str_list(host, "SecurityOpt", h) or [],
        ulimit=[_ulimit(u) for u in ulimits],
        init=field(host, "Init", bool, False, h),
        userns=field(host, "UsernsMode", str, "", h),
        log_driver=field(log, "Type", str, "", "HostConfig.LogConfig."),
        log_opt=[f"{k}={v}" for k, v in log_config.items()],
        detach=True,
    )


def _anonymous(declared, binds, mounts):
    """Config.Volumes: mount points (-v /path: an anonymous volume each), unless a bind or
    mount has the path (docker-py declares its binds' targets here too). A bind "/path" alone
    is an anonymous volume too, as dockerd reads it."""
    taken = {os.path.normpath((b.split(":") + [b])[1]) for b in binds} | \
        {os.path.normpath(m.get("Target") or "") for m in mounts if isinstance(m, dict)}
    return [path for path in declared if os.path.normpath(path) not in taken]


def _stop_signal(body):
    text = field(body, "StopSignal", str, "") or None
    if text:
        parse_signal(text, None)            # a 400 now, not at the stop
    return text


def _healthcheck(body):
    """Config.Healthcheck, checked: {Test, Interval, Timeout, Retries, StartPeriod}."""
    check = field(body, "Healthcheck", dict, None)
    if check is None:
        return None
    test = str_list(check, "Test", "Healthcheck.") or []
    out = {"Test": test} if test else {}
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
        value = field(check, key, int, 0, "Healthcheck.")
        if value < 0 or (key != "Retries" and 0 < value < 1_000_000):
            raise ApiError(400, f"Healthcheck.{key}: a duration of at least 1ms, in ns")
        if value:
            out[key] = value
    return out


def _console_size(host):
    """HostConfig.ConsoleSize [height, width]: a -t container's first terminal size (the
    docker CLI sends it, so that the first program sees its size before any resize)."""
    size = field(host, "ConsoleSize", list, None, "HostConfig.")
    if not size or size == [0, 0]:
        return None
    if len(size) != 2 or not all(isinstance(n, int) and 0 <= n < 65536 for n in size):
        raise ApiError(400, "HostConfig.ConsoleSize: [height, width] in 0…65535")
    return size


def _publish(bindings):
    """HostConfig.PortBindings {"80/tcp": [{"HostIp", "HostPort"}]} → -p values."""
    out = []
    for key, hosts in bindings.items():
        if not isinstance(hosts, (list, type(None))):
            raise ApiError(400, "invalid type for HostConfig.PortBindings: a list per port")
        for b in hosts or [{}]:
            ip, port = (b.get("HostIp") or "", b.get("HostPort") or "") \
                if isinstance(b, dict) else (None, None)
            if not isinstance(ip, str) or not isinstance(port, str):
                raise ApiError(400, "invalid type for HostConfig.PortBindings entry")
            out.append(f"{ip}:{port}:{key}" if ip else f"{port}:{key}" if port else key)
    return out


def _aliases(body, network):
    """NetworkingConfig.EndpointsConfig[network].Aliases (what docker run --network-alias sends)."""
    config = field(field(body, "NetworkingConfig", dict, {}) or {}, "EndpointsConfig", dict, {})
    for endpoint in (config or {}).values():
        aliases = endpoint.get("Aliases") or [] if isinstance(endpoint, dict) else None
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise ApiError(400, "invalid type for NetworkingConfig.EndpointsConfig: an object "
                                "whose Aliases are strings")
    endpoint = (config or {}).get(network) or {}
    return endpoint.get("Aliases") or []


def _endpoint(body, network):
    """--ip, --ip6 and --mac-address, as NetworkingConfig.EndpointsConfig[network] carries
    them (link-local addresses are refused)."""
    config = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    endpoint = config.get(network) or config.get("default" if network == "bridge" else "") \
        or {}
    if not isinstance(endpoint, dict):
        return {"ip": None, "ip6": None, "mac": None}
    return endpoint_addresses(endpoint, "EndpointsConfig.")


def endpoint_addresses(endpoint, where):
    """{ip, ip6, mac} an endpoint's settings ask for (create's, or network connect's);
    link-local addresses are refused."""
    ipam = field(endpoint, "IPAMConfig", dict, None, where) or {}
    if _get(ipam, "LinkLocalIPs"):
        raise ApiError(400, "link-local addresses (--link-local-ip) are not supported by minirun")
    return {"ip": field(ipam, "IPv4Address", str, "", "IPAMConfig.") or None,
            "ip6": field(ipam, "IPv6Address", str, "", "IPAMConfig.") or None,
            "mac": field(endpoint, "MacAddress", str, "", where) or None}


def _endpoint_links(body):
    """Links the docker CLI puts on the network's endpoint (a user network's --link)."""
    config = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    out = []
    for endpoint in config.values() if isinstance(config, dict) else ():
        if isinstance(endpoint, dict):
            out += str_list(endpoint, "Links", "NetworkingConfig.EndpointsConfig.") or []
    return out


def _device_rates(host, name):
    """HostConfig.BlkioDeviceReadBps [{"Path": "/dev/sda", "Rate": 1048576}] → path:rate."""
    out = []
    for d in field(host, name, list, [], "HostConfig.") or []:
        if not isinstance(d, dict):
            raise ApiError(400, f"invalid type for HostConfig.{name} entry: an object")
        out.append(f"{field(d, 'Path', str, '')}:{field(d, 'Rate', int, 0)}")
    return out


def _device_rate_bodies(values):
    from ..engine.options import split_device_rate     # lazy: `run -d` imports this module
    return [dict(zip(("Path", "Rate"), split_device_rate(v, "--device-*-bps"))) for v in values]


def _ulimit(u):
    if not isinstance(u, dict):
        raise ApiError(400, "invalid type for HostConfig.Ulimits entry")
    return f"{field(u, 'Name', str, '')}={field(u, 'Soft', int, 0)}:{field(u, 'Hard', int, 0)}"


def parse_signal(text, default):
    """'SIGKILL', 'KILL', '9' → a signal number."""
    if text in (None, ""):
        return default
    if text.isdigit():
        n = int(text)
        if 0 < n < 65:
            return n
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if hasattr(_signal.Signals, name):
            return _signal.Signals[name].value
    raise ApiError(400, f"invalid signal: {text}")


def rfc3339(t):
    if not t:
        return ZERO_TIME
    from ..engine.logs import timestamp   # lazy: `run -d` imports this module
    return timestamp(t)


def _health(engine, row, config):
    """State.Health of a container with a healthcheck (its last, once it stopped)."""
    if not config.get("health"):
        return {}
    state = engine.health.state(row["id"]) if hasattr(engine, "health") else None
    return {"Health": state or {"Status": "starting" if row["state"] == "running"
                                else "unhealthy", "FailingStreak": 0, "Log": []}}


def health_status(engine, row):
    """healthy, unhealthy, starting, or none."""
    config = engine.containers.config(row)
    return _health(engine, row, config).get("Health", {}).get("Status", "none")


def human_status(row, health="none"):
    """``Up 5 seconds (healthy)``, ``Exited (0) 3 minutes ago``, like ``docker ps``."""
    from ..humanize import human_duration   # lazy: `run -d` imports this module
    if row["state"] == "running":
        s = "Up " + human_duration(time.time() - (row["started"] or time.time()))
        if row["paused"]:
            return s + " (Paused)"
        return s + {"healthy": " (healthy)", "unhealthy": " (unhealthy)",
                    "starting": " (health: starting)"}.get(health, "")
    if row["state"] == "exited":
        return f"Exited ({row['exit_code']}) {human_duration(time.time() - row['finished'])} ago"
    return "Created"


def state_name(row):
    if row["state"] == "running" and row["paused"]:
        return "paused"
    return row["state"]


def arch():
    from ..image.manifest import host_platform   # lazy: `run -d` imports this module
    return host_platform()[1]


def created_unix(text):
    from ..humanize import parse_time   # lazy: `run -d` imports this module
    return parse_time(text) or 0


def _command(spec):
    return " ".join(spec["args"])


def summary(engine, row):
    """One entry of GET /containers/json."""
    config = engine.containers.config(row)
    spec, options = config.get("spec", {}), config["options"]
    networks, published = engine.networking.settings(row["id"])
    return {"Id": row["id"], "Names": ["/" + row["name"]], "Image": row["image"],
            "ImageID": row["image_id"], "Command": _command(spec) if spec else "",
            "Created": int(row["created"]), "State": state_name(row),
            "Status": human_status(row, health_status(engine, row)), "Ports": [
                {"IP": p["host_ip"], "PrivatePort": p["container_port"],
                 "PublicPort": p["host_port"], "Type": p["proto"]} for p in published],
            "Labels": options.get("labels") or {},
            "SizeRw": 0, "HostConfig": {"NetworkMode": options.get("network", "none")},
            "NetworkSettings": {"Networks": networks}, "Mounts": _mounts(spec)}


def _mounts(spec):
    """Docker's MountPoint list: binds, volumes (with Name and Driver) and tmpfs mounts."""
    out = []
    for m in spec.get("mounts", []):
        point = {"Type": "volume" if m.get("volume") else m["kind"], "Source": m["source"],
                 "Destination": m["target"], "Mode": "ro" if m["readonly"] else "rw",
                 "RW": not m["readonly"], "Propagation": "" if m.get("volume") else "rprivate"}
        if m.get("volume"):
            point.update(Name=m["volume"], Driver="local",
                         Mode="" if not m["readonly"] else "ro")
        out.append(point)
    return out


def inspect(engine, row):
    """GET /containers/{id}/json: Docker's ContainerJSON shape."""
    config = engine.containers.config(row)
    spec, options = config.get("spec", {}), config["options"]
    path = engine.containers.path
    policy, retries = (options.get("restart") or "no").partition(":")[::2]
    running = row["state"] == "running"
    restarting = row["id"] in engine.restarting
    limits = spec.get("limits", {})
    return {
        "Id": row["id"], "Created": rfc3339(row["created"]),
        "Path": spec["args"][0] if spec.get("args") else "", "Args": spec.get("args", [])[1:],
        "State": {"Status": "restarting" if restarting else state_name(row),
                  "Running": running, "Paused": bool(row["paused"]),
                  "Restarting": restarting, "OOMKilled": bool(row["oom_killed"]), "Dead": False,
                  "Pid": row["pid"] or 0, "ExitCode": row["exit_code"] or 0, "Error": "",
                  "StartedAt": rfc3339(row["started"]), "FinishedAt": rfc3339(row["finished"]),
                  **_health(engine, row, config)},
        "Image": row["image_id"], "Name": "/" + row["name"],
        "RestartCount": row["restart_count"], "Driver": "overlay", "Platform": "linux",
        "ResolvConfPath": path(row["id"], "resolv.conf"),
        "HostnamePath": path(row["id"], "hostname"), "HostsPath": path(row["id"], "hosts"),
        "LogPath": path(row["id"], "json.log"),
        "HostConfig": {
            "Binds": options.get("volumes") or [], "NetworkMode": options.get("network"),
            # every field dockerd's inspect carries: what minirun does not do, at the value
            # that means "nothing asked" (create refuses any other, refuse_unsupported)
            **{key: defaults[-1] for key, defaults in UNSUPPORTED_HOST.items()},
            "Runtime": options.get("runtime") or "minirun", "IpcMode": "private",
            "Isolation": options.get("isolation") or "", "VolumeDriver": "",
            "ExtraHosts": options.get("add_host") or None,
            "Links": options.get("links") or None, "Dns": options.get("dns") or [],
            "DnsSearch": options.get("dns_search") or [],
            "DnsOptions": options.get("dns_option") or [],
            "GroupAdd": options.get("group_add") or None,
            "VolumesFrom": options.get("volumes_from") or None,
            "Tmpfs": dict(t.partition(":")[::2] for t in options.get("tmpfs") or []) or None,
            "RestartPolicy": {"Name": policy or "no", "MaximumRetryCount": int(retries or 0)},
            "AutoRemove": bool(options.get("rm")), "CapAdd": options.get("cap_add") or [],
            "CapDrop": options.get("cap_drop") or [], "Privileged": bool(options.get("privileged")),
            "ReadonlyRootfs": bool(options.get("read_only")),
            "SecurityOpt": options.get("security_opt") or None,
            "UsernsMode": options.get("userns") or "",
            "Memory": limits.get("memory") or 0,
            "NanoCpus": (limits.get("cpu_quota") or 0) * 10_000,
            "CpuShares": limits.get("cpu_shares") or 0, "PidsLimit": limits.get("pids"),
            "CpusetCpus": limits.get("cpuset_cpus") or "", "Init": bool(options.get("init")),
            "BlkioWeight": limits.get("blkio_weight") or 0,
            "BlkioDeviceReadBps": _device_rate_bodies(options.get("device_read_bps") or []),
            "BlkioDeviceWriteBps": _device_rate_bodies(options.get("device_write_bps") or []),
            "LogConfig": log_config(options.get("log_driver") or "json-file",
                                    options.get("log_opt") or []),
            "PortBindings": _port_bindings(options.get("publish") or []),
            "PublishAllPorts": bool(options.get("publish_all")),
        },
        "Config": {
            "Hostname": spec.get("hostname", ""), "User": spec.get("user", ""),
            "Tty": spec.get("tty", False), "OpenStdin": spec.get("stdin", False),
            "StdinOnce": bool(options.get("stdin_once")), "AttachStdin": False,
            "Healthcheck": config.get("health"),
            "MacAddress": options.get("mac_address") or "",
            "StopSignal": options.get("stop_signal") or None,
            "StopTimeout": options.get("stop_timeout"),
            "AttachStdout": not options.get("detach"), "AttachStderr": not options.get("detach"),
            "Env": spec.get("env", []), "Cmd": options.get("command") or None,
            "Image": row["image"], "WorkingDir": spec.get("cwd", "/"),
            "Entrypoint": options.get("entrypoint"), "Labels": options.get("labels") or {},
            "ExposedPorts": {k: {} for k in _exposed(options)} or None,
        },
        "Mounts": _mounts(spec),
        "NetworkSettings": network_settings(engine, row),
    }


def network_settings(engine, row):
    """Addresses per network and published ports; the top-level address is the default
    bridge's, as in Docker."""
    networks, published = engine.networking.settings(row["id"])
    ports = {}
    for p in published:
        ports.setdefault(f"{p['container_port']}/{p['proto']}", []).append(
            {"HostIp": p["host_ip"], "HostPort": str(p["host_port"])})
    main = networks.get("bridge", {})
    return {"Networks": networks, "Ports": ports, "IPAddress": main.get("IPAddress", ""),
            "IPPrefixLen": main.get("IPPrefixLen", 0), "Gateway": main.get("Gateway", ""),
            "MacAddress": main.get("MacAddress", ""), "SandboxKey": "",
            "GlobalIPv6Address": main.get("GlobalIPv6Address", ""),
            "GlobalIPv6PrefixLen": main.get("GlobalIPv6PrefixLen", 0),
            "IPv6Gateway": main.get("IPv6Gateway", ""), "Bridge": "", "HairpinMode": False}


def _port_bindings(publish):
    from ..network.ports import key, parse_publish   # lazy: `run -d` imports this module
    out = {}
    for spec in publish:
        proto, ip, port, container_port = parse_publish(spec)
        out.setdefault(key(proto, container_port), []).append(
            {"HostIp": "" if ip == "0.0.0.0" else ip, "HostPort": str(port) if port else ""})
    return out


def _exposed(options):
    from ..network.ports import key, parse_exposed, parse_publish   # lazy: `run -d` needs
    #                                                                  this module, not these
    keys = [key(*parse_exposed(e)[::-1]) for e in options.get("expose") or []]
    return keys + [key(p[0], p[3]) for p in map(parse_publish, options.get("publish") or [])]


def _mount_body(text):
    """--mount CSV → one of HostConfig.Mounts, as the docker CLI sends it."""
    from ..engine.options import parse_mount     # lazy: as create_body's
    m = parse_mount(text)
    body = {"Type": m["type"], "Source": m["source"], "Target": m["target"],
            "ReadOnly": m["readonly"]}
    if m["type"] == "volume":
        body["VolumeOptions"] = {"NoCopy": m["nocopy"], "Labels": m["labels"]}
    if m["type"] == "tmpfs" and m["data"]:
        opts = dict(o.split("=", 1) for o in m["data"].split(","))
        body["TmpfsOptions"] = {"SizeBytes": int(opts.get("size", 0)),
                                "Mode": int(opts.get("mode", "0"), 8)}
    return body


def create_body(opts):
    """RunOptions → a /containers/create body (what ``minirun run -d`` sends)."""
    from ..engine.options import (healthcheck_of, parse_bytes,   # lazy: `run -d` imports
                                  parse_restart)                  # this module
    policy, retries = parse_restart(opts.restart)
    entry = opts.entrypoint
    host = {
        "Binds": [v for v in opts.volumes if ":" in v], "AutoRemove": opts.rm,
        "ConsoleSize": opts.console_size, "ExtraHosts": opts.add_host, "Links": opts.links,
        "Dns": opts.dns, "DnsSearch": opts.dns_search, "DnsOptions": opts.dns_option,
        "GroupAdd": opts.group_add,
        "NetworkMode": opts.network, "VolumesFrom": opts.volumes_from,
        "Mounts": [_mount_body(m) for m in opts.mounts],
        "RestartPolicy": {"Name": "" if policy == "no" else policy, "MaximumRetryCount": retries},
        "CapAdd": opts.cap_add, "CapDrop": opts.cap_drop, "Privileged": opts.privileged,
        "ReadonlyRootfs": opts.read_only, "SecurityOpt": _security_opts(opts.security_opt),
        "Init": opts.init, "UsernsMode": opts.userns or "",
        "Memory": parse_bytes(opts.memory) if opts.memory else 0,
        "NanoCpus": int(float(opts.cpus) * 1e9) if opts.cpus else 0,
        "CpuShares": opts.cpu_shares or 0, "PidsLimit": opts.pids_limit,
        "CpusetCpus": opts.cpuset_cpus or "", "BlkioWeight": opts.blkio_weight or 0,
        "BlkioDeviceReadBps": _device_rate_bodies(opts.device_read_bps),
        "BlkioDeviceWriteBps": _device_rate_bodies(opts.device_write_bps),
        "Tmpfs": dict(t.partition(":")[::2] for t in opts.tmpfs),
        "Ulimits": [_ulimit_body(u) for u in opts.ulimit],
        "PortBindings": _port_bindings(opts.publish), "PublishAllPorts": opts.publish_all,
        "LogConfig": log_config(opts.log_driver or "", opts.log_opt),
    }
    return {"Image": opts.image, "Cmd": opts.command or None,
            "Entrypoint": ([entry] if entry else []) if isinstance(entry, str) else entry,
            "Env": _resolved_env(opts), "WorkingDir": opts.workdir or "", "User": opts.user or "",
            "Hostname": opts.hostname or "", "Tty": opts.tty, "OpenStdin": opts.interactive,
            "StdinOnce": opts.stdin_once, "AttachStdin": opts.interactive and not opts.detach,
            "Labels": opts.labels, "HostConfig": host,
            "Volumes": {v: {} for v in opts.volumes if ":" not in v},
            "Healthcheck": healthcheck_of(opts),
            "StopSignal": opts.stop_signal or "", "StopTimeout": opts.stop_timeout,
            "ExposedPorts": {k: {} for k in _exposed(opts.as_dict())},
            "NetworkingConfig": {"EndpointsConfig": {opts.network: {
                "Aliases": opts.network_alias, "MacAddress": opts.mac_address or "",
                "IPAMConfig": {k: v for k, v in (("IPv4Address", opts.ip),
                                                 ("IPv6Address", opts.ip6)) if v} or None}}}}


def log_config(driver, opts):
    """HostConfig.LogConfig from --log-driver and --log-opt KEY=VALUE items."""
    return {"Type": driver, "Config": dict(o.partition("=")[::2] for o in opts)}


def _security_opts(items):
    """As the docker CLI: a seccomp profile file is read here and sent as its JSON text."""
    out = []
    for item in items:
        key, eq, value = item.partition("=")
        if key == "seccomp" and eq and value not in ("unconfined", "default", "builtin") \
                and not value.lstrip().startswith("{"):
            from ..runtime.seccomp import read_profile   # lazy: `run -d` imports this module
            value = json.dumps(read_profile(value))
        out.append(f"{key}={value}" if eq else item)
    return out


def _resolved_env(opts):
    """-e NAME and --env-file are read here, on the client, as Docker does."""
    from ..engine.options import parse_env   # lazy: `run -d` imports this module
    return parse_env(opts, [])


def _ulimit_body(text):
    from ..engine.options import parse_ulimit   # lazy: `run -d` imports this module
    name, soft, hard = parse_ulimit(text)
    return {"Name": name, "Soft": soft, "Hard": hard}
