"""Network commands: network create/ls/inspect/rm/connect/disconnect/prune/reset, and port.

They work on the state root directly (like the image commands), so they need
no daemon: networks, addresses and ports are rows, and wiring a running
container is done by whichever process asks, under the network lock.
"""
import json

import click

from ..errors import MinirunError
from ..humanize import table
from .app import cli
from .report import each


def _networking(ctx):
    from ..engine.containers import ContainerStore
    from ..engine.networking import Networking
    return Networking(ctx.root, ContainerStore(ctx.root))


def _labels(items):
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out


@cli.group("network")
def network_group():
    """Manage networks."""


@network_group.command("create")
@click.option("--subnet", help="CIDR, e.g. 10.90.0.0/24 (default: a free one).")
@click.option("--gateway", help="The bridge's address (default: the subnet's first).")
@click.option("-d", "--driver", default="bridge", help="Only bridge.")
@click.option("-l", "--label", "labels", multiple=True, help="key=value")
@click.argument("name")
@click.pass_obj
def create_cmd(ctx, subnet, gateway, driver, labels, name):
    """Create a network (its bridge is made when a container first uses it)."""
    if driver != "bridge":
        raise MinirunError(f"plugin \"{driver}\" not found: only the bridge driver is available")
    row = _networking(ctx).store.create(name, subnet, gateway, _labels(labels))
    click.echo(row["id"])


@network_group.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only IDs.")
@click.pass_obj
def ls_cmd(ctx, quiet):
    """List networks."""
    from ..network.inspect import all_networks
    nets = all_networks(_networking(ctx).store)
    if quiet:
        click.echo("\n".join(n["Id"][:12] for n in nets))
        return
    click.echo(table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
                     [(n["Id"][:12], n["Name"], n["Driver"], n["Scope"]) for n in nets]))


@network_group.command("inspect")
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
def inspect_cmd(ctx, refs):
    """Details of networks, as JSON."""
    from ..network.inspect import one
    store = _networking(ctx).store
    click.echo(json.dumps([one(store, r) for r in refs], indent=4))


@network_group.command("rm")
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
def rm_cmd(ctx, refs):
    """Remove networks (none of their containers may still hold an address)."""
    from ..network.wiring import remove_network
    store = _networking(ctx).store

    def one(ref):
        remove_network(store, ref)
        click.echo(ref)
    each(refs, one)


@network_group.command("connect")
@click.option("--alias", "aliases", multiple=True, help="Another name on this network.")
@click.argument("network")
@click.argument("container")
@click.pass_obj
def connect_cmd(ctx, aliases, network, container):
    """Connect a container to a network (wired at once if it runs)."""
    _networking(ctx).connect_network(network, container, aliases)


@network_group.command("disconnect")
@click.argument("network")
@click.argument("container")
@click.pass_obj
def disconnect_cmd(ctx, network, container):
    """Disconnect a container from a network."""
    _networking(ctx).disconnect_network(network, container)


@network_group.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not ask (minirun never asks).")
@click.pass_obj
def prune_cmd(ctx, force):
    """Remove user networks no container has an address on."""
    for row in _networking(ctx).store.prune():
        click.echo(row["name"])


@network_group.command("reset")
@click.pass_obj
def reset_cmd(ctx):
    """Remove minirun's bridges and firewall rules from the host (no container may run)."""
    from ..network.wiring import reset
    reset(_networking(ctx).store)


@cli.command("port")
@click.argument("container")
@click.argument("private", required=False)
@click.pass_obj
def port_cmd(ctx, container, private):
    """List a container's published ports: 80/tcp -> 0.0.0.0:8080."""
    net = _networking(ctx)
    row = net.containers.get(container)
    want = private if private is None or "/" in private else f"{private}/tcp"
    lines = [(f"{p['container_port']}/{p['proto']}", f"{p['host_ip']}:{p['host_port']}")
             for p in net.store.ports(row["id"])]
    lines = [(k, v) for k, v in lines if want in (None, k)]
    if want and not lines:
        raise MinirunError(f"No public port '{want}' published for {row['name']}")
    for key, hostport in lines:
        click.echo(hostport if want else f"{key} -> {hostport}")
