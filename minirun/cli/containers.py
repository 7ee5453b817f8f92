"""Container commands that talk to minirund: ps, logs, start, stop, rm, exec, …"""
import json
import os
import re
import sys
import threading
import time

import click

from ..config import API_VERSION, DEFAULT_HOST
from ..humanize import ago, human_size, table
from .app import cli
from .client import DaemonError
from .report import each


def _each(ctx, refs, method, action="", **query):
    """Docker's many-container commands: one request per container, its name printed,
    failures reported, exit 1 if any."""
    client = ctx.client

    def one(ref):
        client.call(method, f"/containers/{ref}{action}", **query)
        click.echo(ref)
    each(refs, one, lambda e: "Error response from daemon" if isinstance(e, DaemonError)
         else "Error")


@cli.command("ps")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers.")
@click.option("-q", "--quiet", is_flag=True, help="Only IDs.")
@click.option("-f", "--filter", "filters", multiple=True, help="key=value (status, name, label, id).")
@click.option("--format", "fmt", help="Go-template-like: {{.ID}} {{.Names}} {{.Status}} …")
@click.option("--no-trunc", is_flag=True)
@click.pass_obj
def ps_cmd(ctx, all_, quiet, filters, fmt, no_trunc):
    """List containers."""
    f = {}
    for item in filters:
        key, _, value = item.partition("=")
        f.setdefault(key, []).append(value)
    rows = ctx.client.call("GET", "/containers/json", all=int(all_),
                             filters=json.dumps(f) if f else None)
    if quiet:
        for r in rows:
            click.echo(r["Id"] if no_trunc else r["Id"][:12])
        return
    fields = [{"ID": r["Id"] if no_trunc else r["Id"][:12], "Image": r["Image"],
               "Command": '"' + (r["Command"] if no_trunc else _trunc(r["Command"], 20)) + '"',
               "CreatedAt": ago(r["Created"]), "RunningFor": ago(r["Created"]).removesuffix(" ago"),
               "Status": r["Status"], "State": r["State"], "Ports": _ports(r["Ports"]),
               "Names": ",".join(n.lstrip("/") for n in r["Names"]),
               "Labels": ",".join(f"{k}={v}" for k, v in r["Labels"].items())} for r in rows]
    if fmt:
        template = fmt.removeprefix("table ").replace("\\t", "\t")
        for d in fields:
            click.echo(re.sub(r"{{\s*\.(\w+)\s*}}", lambda m: str(d.get(m.group(1), "")), template))
        return
    click.echo(table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
                     [(d["ID"], d["Image"], d["Command"], d["CreatedAt"], d["Status"], d["Ports"],
                       d["Names"]) for d in fields]))


def _ports(ports):
    """docker ps's PORTS: 0.0.0.0:8080->80/tcp, …"""
    return ", ".join(f"{p['IP']}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}"
                     for p in ports)


def _trunc(text, n):
    return text if len(text) <= n else text[:n - 1] + "…"


@cli.command("logs")
@click.option("-f", "--follow", is_flag=True)
@click.option("-n", "--tail", default="all")
@click.option("-t", "--timestamps", is_flag=True)
@click.option("--since", default=None, help="Unix time or seconds-ago like 10s, 5m.")
@click.argument("ref")
@click.pass_obj
def logs_cmd(ctx, follow, tail, timestamps, since, ref):
    """Show a container's output."""
    c = ctx.client
    tty = c.call("GET", f"/containers/{ref}/json")["Config"]["Tty"]
    resp = c.request("GET", f"/containers/{ref}/logs", stdout=1, stderr=1, follow=int(follow),
                     tail=tail, timestamps=int(timestamps), since=_since(since))
    from .attaching import copy_output                        # on use: not on every start
    copy_output(resp, tty)


def _since(text):
    if not text:
        return None
    m = re.fullmatch(r"(\d+)([smh])", text)
    if m:
        return str(time.time() - int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)])
    return text


@cli.command("start")
@click.option("-a", "--attach", is_flag=True, help="Attach its output and exit with its code.")
@click.option("-i", "--interactive", is_flag=True, help="Attach its stdin too.")
@click.option("--detach-keys", default=None, help="Keys that detach (default ctrl-p,ctrl-q).")
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
def start_cmd(ctx, attach, interactive, detach_keys, refs):
    """Start stopped containers."""
    if attach or interactive:
        if len(refs) > 1:
            raise click.UsageError("you cannot start and attach multiple containers at once")
        _attach(ctx.client, refs[0], stdin=interactive, keys=detach_keys, start=True)
    _each(ctx, refs, "POST", "/start")


@cli.command("attach")
@click.option("--no-stdin", is_flag=True, help="Do not attach stdin.")
@click.option("--detach-keys", default=None, help="Keys that detach (default ctrl-p,ctrl-q).")
@click.argument("ref")
@click.pass_obj
def attach_cmd(ctx, no_stdin, detach_keys, ref):
    """Attach to a running container's stdin, stdout and stderr."""
    _attach(ctx.client, ref, stdin=not no_stdin, keys=detach_keys)


def _attach(c, ref, stdin, keys, start=False):
    """``attach`` and ``start -a``: refused where Docker refuses, then cli/attaching.py."""
    from .attaching import attach                 # on use: not on every command
    info = c.call("GET", f"/containers/{ref}/json")
    if not start:
        if not info["State"]["Running"]:
            raise DaemonError(409, "You cannot attach to a stopped container, start it first")
        if info["State"]["Paused"]:
            raise DaemonError(409, "You cannot attach to a paused container, unpause it first")
    raise SystemExit(attach(c, info["Id"], info["Config"]["Tty"],
                            stdin and info["Config"]["OpenStdin"], keys, start))


@cli.command("cp")
@click.option("-a", "--archive", is_flag=True, help="Keep owners (uid:gid) as they are.")
@click.argument("src")
@click.argument("dest")
@click.pass_obj
def cp_cmd(ctx, archive, src, dest):
    """Copy between a container and the host: CONTAINER:SRC DEST or SRC CONTAINER:DEST."""
    from .copying import copy                      # on use only
    copy(ctx.client, src, dest, archive)


@cli.command("stop")
@click.option("-t", "--time", "timeout", type=int, default=None,
              help="Seconds before SIGKILL (the container's --stop-timeout, else 10).")
@click.option("-s", "--signal", "sig", default=None)
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
def stop_cmd(ctx, timeout, sig, refs):
    """Stop running containers (SIGTERM, then SIGKILL after -t seconds)."""
    _each(ctx, refs, "POST", "/stop", t=timeout, signal=sig)


@cli.command("restart")
@click.option("-t", "--time", "timeout", type=int, default=None)
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
def restart_cmd(ctx, timeout, refs):
    """Restart containers."""
    _each(ctx, refs, "POST", "/restart", t=timeout)


@cli.command("kill")
@click.option("-s", "--signal", "sig", default="KILL")
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
def kill_cmd(ctx, sig, refs):
    """Send a signal to containers (default SIGKILL)."""
    _each(ctx, refs, "POST", "/kill", signal=sig)


@cli.command("rm")
@click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
@click.option("-v", "--volumes", is_flag=True, help="Remove its anonymous volumes too.")
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
def rm_cmd(ctx, force, volumes, refs):
    """Remove containers."""
    _each(ctx, refs, "DELETE", force=int(force), v=int(volumes))


def _post_each(action, help_):
    """A command that POSTs /containers/{id}/ACTION for each container named."""
    @cli.command(action, help=help_)
    @click.argument("refs", nargs=-1, required=True)
    @click.pass_obj
    def command(ctx, refs):
        _each(ctx, refs, "POST", "/" + action)
    return command


pause_cmd = _post_each("pause", "Freeze every process of containers.")
unpause_cmd = _post_each("unpause", "Thaw paused containers.")


@cli.command("rename")
@click.argument("ref")
@click.argument("name")
@click.pass_obj
def rename_cmd(ctx, ref, name):
    """Rename a container."""
    ctx.client.call("POST", f"/containers/{ref}/rename", name=name)


@cli.command("wait")
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
def wait_cmd(ctx, refs):
    """Wait for containers to stop; print their exit codes."""
    c = ctx.client
    for ref in refs:
        click.echo(c.call("POST", f"/containers/{ref}/wait")["StatusCode"])


@cli.command("inspect")
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
def inspect_cmd(ctx, refs):
    """Show containers (or images) as JSON."""
    from .client import DaemonError                           # on use: not on every start
    c = ctx.client
    out = []
    for ref in refs:
        try:
            out.append(c.call("GET", f"/containers/{ref}/json"))
        except DaemonError as e:
            if e.status != 404:
                raise
            out.append(c.call("GET", f"/images/{ref}/json"))
    click.echo(json.dumps(out, indent=4))


@cli.command("top")
@click.argument("ref")
@click.pass_obj
def top_cmd(ctx, ref):
    """The processes of a container (host PIDs)."""
    doc = ctx.client.call("GET", f"/containers/{ref}/top")
    click.echo(table(doc["Titles"], doc["Processes"]))


@cli.command("stats")
@click.option("--no-stream", is_flag=True, help="One sample, then exit.")
@click.argument("refs", nargs=-1)
@click.pass_obj
def stats_cmd(ctx, no_stream, refs):
    """CPU, memory and PIDs of running containers."""
    from ..engine.stats import cpu_percent                    # on use: not on every start
    c = ctx.client
    refs = refs or [r["Id"] for r in c.call("GET", "/containers/json")]
    while True:
        rows = []
        for ref in refs:
            d = c.call("GET", f"/containers/{ref}/stats", stream=0)
            mem, limit = d["memory_stats"]["usage"], d["memory_stats"]["limit"]
            rows.append((d["id"][:12], d["name"].lstrip("/"), f"{cpu_percent(d):.2f}%",
                         f"{human_size(mem)} / {human_size(limit)}",
                         f"{100 * mem / limit if limit else 0:.2f}%",
                         d["pids_stats"]["current"]))
        click.echo(table(["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"],
                         rows))
        if no_stream:
            return
        time.sleep(1)


@cli.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-i", "--interactive", is_flag=True)
@click.option("-t", "--tty", is_flag=True)
@click.option("-d", "--detach", is_flag=True)
@click.option("-e", "--env", multiple=True)
@click.option("-w", "--workdir", default="")
@click.option("-u", "--user", default="")
@click.option("--trace", is_flag=True, help="Print each step of joining the container.")
@click.argument("ref")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def exec_cmd(ctx, interactive, tty, detach, env, workdir, user, trace, ref, command):
    """Run a command in a running container."""
    c = ctx.client
    body = {"Cmd": list(command), "Env": list(env), "WorkingDir": workdir, "User": user,
            "AttachStdin": interactive, "AttachStdout": True, "AttachStderr": True, "Tty": tty}
    if trace:
        body["Trace"] = True              # minirun's own field; dockerd has no such thing
    eid = c.call("POST", f"/containers/{ref}/exec", body)["Id"]
    if detach:
        c.call("POST", f"/exec/{eid}/start", {"Detach": True})
        return
    resp = c.request("POST", f"/exec/{eid}/start", {"Detach": False, "Tty": tty})
    if tty and os.isatty(1):
        size = os.get_terminal_size(1)
        c.call("POST", f"/exec/{eid}/resize", h=size.lines, w=size.columns)
    from ..runtime.attach import raw_terminal
    from .attaching import copy_output, send_stdin
    if interactive:
        threading.Thread(target=send_stdin, args=(resp.sock,), daemon=True).start()
    with raw_terminal(0 if tty and interactive else None):
        copy_output(resp, tty)
    resp.conn.close()
    for _ in range(100):
        doc = c.call("GET", f"/exec/{eid}/json")
        if not doc["Running"]:
            raise SystemExit(doc["ExitCode"] or 0)
        time.sleep(0.02)


@cli.group("container")
def container_group():
    """Manage containers."""


@container_group.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not ask (minirun never asks).")
@click.pass_obj
def container_prune(ctx, force):
    """Remove all stopped containers."""
    doc = ctx.client.call("POST", "/containers/prune")
    for cid in doc["ContainersDeleted"] or []:
        click.echo(cid)
    click.echo(f"Total reclaimed space: {human_size(doc['SpaceReclaimed'])}")


for _name, _cmd in (("ls", ps_cmd), ("logs", logs_cmd), ("start", start_cmd), ("stop", stop_cmd),
                    ("restart", restart_cmd), ("kill", kill_cmd), ("rm", rm_cmd),
                    ("inspect", inspect_cmd), ("wait", wait_cmd), ("top", top_cmd),
                    ("stats", stats_cmd), ("exec", exec_cmd), ("pause", pause_cmd),
                    ("unpause", unpause_cmd), ("rename", rename_cmd)):
    container_group.add_command(_cmd, _name)


@cli.command("version")
@click.pass_obj
def version_cmd(ctx):
    """Client and daemon versions."""
    from .. import __version__                                # on use: not on every start
    click.echo(f"Client:\n Version:    {__version__}\n API version: {API_VERSION}")
    v = ctx.client.call("GET", "/version")
    click.echo(f"\nServer:\n Version:    {v['Version']}\n API version: {v['ApiVersion']}"
               f"\n Kernel:     {v['KernelVersion']}\n OS/Arch:    {v['Os']}/{v['Arch']}")


@cli.command("info")
@click.pass_obj
def info_cmd(ctx):
    """Daemon-wide information."""
    i = ctx.client.call("GET", "/info")
    for key in ("Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped",
                "Images", "ServerVersion", "Driver", "CgroupDriver", "CgroupVersion",
                "KernelVersion", "OperatingSystem", "Architecture", "NCPU", "DockerRootDir"):
        click.echo(f"{key}: {i[key]}")
    click.echo(f"MemTotal: {human_size(i['MemTotal'])}")


@cli.command("daemon")
@click.option("-H", "--host", default=None, help=f"Socket to serve (default {DEFAULT_HOST}).")
@click.option("--log-file", default=None, help="Log here instead of stderr.")
@click.option("--root", default=None, help="State root (as minirun --root; for minirund).")
@click.option("--debug", is_flag=True, help="Log every request.")
@click.option("--userns-remap", default=None,
              help="default: every container's root is an unprivileged range of host ids.")
@click.pass_obj
def daemon_cmd(ctx, host, log_file, root, debug, userns_remap):
    """Run minirund: the Docker Engine API on a unix socket."""
    from ..api.daemon import serve                            # on use: not on every start
    raise SystemExit(serve(os.path.abspath(root) if root else ctx.root,
                           host or ctx.host or DEFAULT_HOST, log_file, debug or ctx.debug,
                           userns_remap))



@cli.command("diff")
@click.argument("ref")
@click.pass_obj
def diff_cmd(ctx, ref):
    """What a container changed in its file system: A added, C changed, D deleted."""
    for change in ctx.client.call("GET", f"/containers/{ref}/changes") or []:
        click.echo(f"{'CAD'[change['Kind']]} {change['Path']}")


@cli.command("commit")
@click.option("-a", "--author", default="")
@click.option("-m", "--message", default="")
@click.option("-c", "--change", "changes", multiple=True,
              help="A Dockerfile instruction: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, …")
@click.option("-p/--no-pause", "--pause", "pause", default=True,
              help="Pause the container while its changes are read (default).")
@click.argument("ref")
@click.argument("name", required=False)
@click.pass_obj
def commit_cmd(ctx, author, message, changes, pause, ref, name):
    """Make an image of a container's changes."""
    repo, tag = (name.rsplit(":", 1) if name and ":" in name.rsplit("/", 1)[-1]
                 else (name, None))
    image_id = ctx.client.call("POST", "/commit", container=ref, repo=repo, tag=tag,
                               author=author, comment=message, pause=int(pause),
                               changes="\n".join(changes) or None)["Id"]
    click.echo(image_id)


@cli.command("export")
@click.option("-o", "--output", default=None, help="A file (default: stdout).")
@click.argument("ref")
@click.pass_obj
def export_cmd(ctx, output, ref):
    """A container's whole file system as a tar."""
    resp = ctx.client.request("GET", f"/containers/{ref}/export")
    out = open(output, "wb") if output else sys.stdout.buffer
    try:
        while data := resp.read(1 << 20):
            out.write(data)
    finally:
        if output:
            out.close()
        resp.conn.close()


@cli.command("update")
@click.option("-m", "--memory", default=None)
@click.option("--cpus", default=None)
@click.option("-c", "--cpu-shares", type=int, default=None)
@click.option("--pids-limit", type=int, default=None)
@click.option("--cpuset-cpus", default=None)
@click.option("--blkio-weight", type=int, default=None)
@click.option("--restart", default=None)
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
def update_cmd(ctx, memory, cpus, cpu_shares, pids_limit, cpuset_cpus, blkio_weight, restart,
               refs):
    """Change the resources (and restart policy) of containers, running ones at once."""
    from ..engine.options import parse_bytes, parse_restart   # on use only
    body = {"Memory": parse_bytes(memory) if memory else 0,
            "NanoCpus": int(float(cpus) * 1e9) if cpus else 0, "CpuShares": cpu_shares or 0,
            "PidsLimit": pids_limit, "CpusetCpus": cpuset_cpus or "",
            "BlkioWeight": blkio_weight or 0}
    if restart:
        name, retries = parse_restart(restart)
        body["RestartPolicy"] = {"Name": name, "MaximumRetryCount": retries or 0}

    def one(ref):
        ctx.client.call("POST", f"/containers/{ref}/update", body)
        click.echo(ref)
    each(refs, one)


@cli.group("system")
def system_group():
    """Disk usage and clean-up."""


@system_group.command("df")
@click.pass_obj
def system_df_cmd(ctx):
    """Space used by images, containers and volumes."""
    df = ctx.client.call("GET", "/system/df")
    rows = [("Images", len(df["Images"]), sum(i["Containers"] > 0 for i in df["Images"]),
             df["LayersSize"]),
            ("Containers", len(df["Containers"]),
             sum(x["State"] == "running" for x in df["Containers"]),
             sum(x["SizeRw"] for x in df["Containers"])),
            ("Local Volumes", len(df["Volumes"]),
             sum(v["UsageData"]["RefCount"] > 0 for v in df["Volumes"]),
             sum(v["UsageData"]["Size"] for v in df["Volumes"]))]
    click.echo(table(["TYPE", "TOTAL", "ACTIVE", "SIZE"],
                     [(t, n, a, human_size(s)) for t, n, a, s in rows]))


@system_group.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Unused images too, not only dangling.")
@click.option("--volumes", is_flag=True, help="Unused anonymous volumes too.")
@click.option("-f", "--force", is_flag=True, help="Do not ask (minirun never asks).")
@click.pass_obj
def system_prune_cmd(ctx, all_, volumes, force):
    """Stopped containers, unused networks, dangling images (and with -a unused ones)."""
    c = ctx.client
    gone = c.call("POST", "/containers/prune")["ContainersDeleted"] or []
    nets = c.call("POST", "/networks/prune")["NetworksDeleted"] or []
    vols = c.call("POST", "/volumes/prune")["VolumesDeleted"] or [] if volumes else []
    images = c.call("POST", "/images/prune",
                    filters=json.dumps({"dangling": ["false" if all_ else "true"]}))
    for title, items in (("Deleted Containers", gone), ("Deleted Networks", nets),
                         ("Deleted Volumes", vols)):
        if items:
            click.echo(title + ":\n" + "\n".join(items) + "\n")
    click.echo(f"Total reclaimed space: {human_size(images['SpaceReclaimed'] or 0)}")


@cli.command("events")
@click.option("--since", default=None, help="Unix time, or how long ago (10m).")
@click.option("--until", default=None, help="Unix time, or how long ago; ends the stream.")
@click.option("-f", "--filter", "filters", multiple=True,
              help="type=, container=, image=, event=, label=, network=, volume=")
@click.option("--format", "fmt", default=None, help="json: one JSON object a line.")
@click.pass_obj
def events_cmd(ctx, since, until, filters, fmt):
    """What happens to containers, images, networks and volumes, as it happens."""
    wanted = {}
    for item in filters:
        key, _, value = item.partition("=")
        wanted.setdefault(key, []).append(value)
    resp = ctx.client.request("GET", "/events", since=since, until=until,
                              filters=json.dumps(wanted) if wanted else None)
    try:
        for line in resp:
            event = json.loads(line)
            if fmt == "json":
                click.echo(json.dumps(event))
                continue
            from ..engine.logs import timestamp               # on use only
            attrs = event["Actor"]["Attributes"]
            click.echo(f"{timestamp(event['timeNano'] / 1e9)} {event['Type']} "
                       f"{event['Action']} {event['Actor']['ID']}"
                       + (" (" + ", ".join(f"{k}={v}" for k, v in sorted(attrs.items())) + ")"
                          if attrs else ""))
    except KeyboardInterrupt:
        pass
    finally:
        resp.conn.close()
