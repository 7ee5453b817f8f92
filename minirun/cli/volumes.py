"""Volume commands: volume create/ls/inspect/rm/prune.

Like the network commands they ask minirund when one is named or serves the
state root, and otherwise answer from the state root in this process
(cli/local.py): a volume is a directory and a row.
"""
import json

import click

from ..humanize import human_size, table
from .app import cli
from .report import each


@cli.group("volume")
def volume_group():
    """Manage volumes."""


def _filters(items):
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out.setdefault(key, []).append(value)
    return json.dumps(out) if out else None


@volume_group.command("create")
@click.option("-d", "--driver", default="local", help="Only local.")
@click.option("-l", "--label", "labels", multiple=True, help="key=value")
@click.option("-o", "--opt", "opts", multiple=True, help="(the local driver takes none)")
@click.argument("name", required=False)
@click.pass_obj
def create_cmd(ctx, driver, labels, opts, name):
    """Create a volume (a random name if none is given)."""
    body = {"Name": name or "", "Driver": driver,
            "Labels": dict(l.partition("=")[::2] for l in labels),
            "DriverOpts": dict(o.partition("=")[::2] for o in opts)}
    click.echo(ctx.api.call("POST", "/volumes/create", body)["Name"])


@volume_group.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only names.")
@click.option("-f", "--filter", "filters", multiple=True,
              help="name=…, label=key[=value], dangling=true|false, driver=local")
@click.pass_obj
def ls_cmd(ctx, quiet, filters):
    """List volumes."""
    vols = ctx.api.call("GET", "/volumes", filters=_filters(filters))["Volumes"]
    if quiet:
        if vols:
            click.echo("\n".join(v["Name"] for v in vols))
        return
    click.echo(table(["DRIVER", "VOLUME NAME"], [(v["Driver"], v["Name"]) for v in vols]))


@volume_group.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def inspect_cmd(ctx, names):
    """Show volumes as JSON."""
    click.echo(json.dumps([ctx.api.call("GET", f"/volumes/{n}") for n in names], indent=4))


@volume_group.command("rm")
@click.option("-f", "--force", is_flag=True, help="No error for a volume that is not there.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def rm_cmd(ctx, force, names):
    """Remove volumes (not while a container uses one)."""
    def one(name):
        ctx.api.call("DELETE", f"/volumes/{name}", force=int(force))
        click.echo(name)
    each(names, one)


@volume_group.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Named volumes too, not only anonymous.")
@click.option("-f", "--force", is_flag=True, help="Do not ask (minirun never asks).")
@click.option("--filter", "filters", multiple=True, help="label=key[=value]")
@click.pass_obj
def prune_cmd(ctx, all_, force, filters):
    """Remove volumes no container uses."""
    items = list(filters) + (["all=true"] if all_ else [])
    done = ctx.api.call("POST", "/volumes/prune", filters=_filters(items))
    if done["VolumesDeleted"]:
        click.echo("Deleted Volumes:\n" + "\n".join(done["VolumesDeleted"]) + "\n")
    click.echo(f"Total reclaimed space: {human_size(done['SpaceReclaimed'])}")
