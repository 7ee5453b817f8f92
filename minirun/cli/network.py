"""Network commands: network create/ls/inspect/rm/connect/disconnect/prune/reset, and port.

They ask minirund when one is named or serves the state root, and otherwise
answer from the state root in this process (cli/local.py): networks, addresses
and ports are rows, and wiring a running container is done by whichever
process asks, under the network lock. ``network reset`` always works on the
state root itself.
"""
import json

import click

from ..errors import MinirunError
from ..humanize import table
from .app import cli
from .report import each


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
@click.option("--subnet", "subnets", multiple=True,
              help="CIDR, e.g. 10.90.0.0/24 (default: a free one); again for IPv6.")
@click.option("--gateway", "gateways", multiple=True,
              help="The bridge's address (default: the subnet's first); one per subnet.")
@click.option("--ip-range", "ranges", multiple=True,
              help="Where in its subnet addresses are given out; one per subnet.")
@click.option("--aux-address", "aux", multiple=True,
              help="NAME=IP: an address never given out.")
@click.option("--internal", is_flag=True, help="No way out: no default route, NAT or ports.")
@click.option("--ipv6", is_flag=True, help="IPv6 too (a /64 of a unique local prefix "
                                           "unless --subnet gives one).")
@click.option("-d", "--driver", default="bridge", help="Only bridge.")
@click.option("-l", "--label", "labels", multiple=True, help="key=value")
@click.argument("name")
@click.pass_obj
def create_cmd(ctx, subnets, gateways, ranges, aux, internal, ipv6, driver, labels, name):
    """Create a network (its bridge is made when a container first uses it)."""
    if len(gateways) > len(subnets) or len(ranges) > len(subnets):
        raise MinirunError("every --gateway and --ip-range needs a --subnet (in the same order)")
    pad = [""] * len(subnets)
    ipam = {"Config": [{"Subnet": s, "Gateway": g, "IPRange": r} for s, g, r in
                       zip(subnets, list(gateways) + pad, list(ranges) + pad)]}
    import ipaddress                                   # (here: network create only)
    for key, address in _labels(aux).items():        # to the subnet it is in, as Docker's CLI
        try:
            entry = next(e for e in ipam["Config"] if ipaddress.ip_address(address)
                         in ipaddress.ip_network(e["Subnet"], strict=False))
        except (ValueError, StopIteration):
            raise MinirunError(f"--aux-address {key}={address}: in none of the --subnet "
                               f"networks") from None
        entry.setdefault("AuxiliaryAddresses", {})[key] = address
    click.echo(ctx.api.call("POST", "/networks/create", {
        "Name": name, "Driver": driver, "IPAM": ipam, "Labels": _labels(labels),
        "Internal": internal, "EnableIPv6": ipv6})["Id"])


@network_group.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only IDs.")
@click.pass_obj
def ls_cmd(ctx, quiet):
    """List networks."""
    nets = ctx.api.call("GET", "/networks")
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
    api = ctx.api
    click.echo(json.dumps([api.call("GET", f"/networks/{r}") for r in refs], indent=4))


@network_group.command("rm")
@click.argument("refs", nargs=-1, required=True)
@click.pass_obj
def rm_cmd(ctx, refs):
    """Remove networks (none of their containers may still hold an address)."""
    api = ctx.api

    def one(ref):
        api.call("DELETE", f"/networks/{ref}")
        click.echo(ref)
    each(refs, one)


@network_group.command("connect")
@click.option("--alias", "aliases", multiple=True, help="Another name on this network.")
@click.option("--ip", help="Its IPv4 address there.")
@click.option("--ip6", help="Its IPv6 address there.")
@click.argument("network")
@click.argument("container")
@click.pass_obj
def connect_cmd(ctx, aliases, ip, ip6, network, container):
    """Connect a container to a network (wired at once if it runs)."""
    ipam = {k: v for k, v in (("IPv4Address", ip), ("IPv6Address", ip6)) if v}
    ctx.api.call("POST", f"/networks/{network}/connect", {
        "Container": container, "EndpointConfig": {"Aliases": list(aliases),
                                                   "IPAMConfig": ipam or None}})


@network_group.command("disconnect")
@click.argument("network")
@click.argument("container")
@click.pass_obj
def disconnect_cmd(ctx, network, container):
    """Disconnect a container from a network."""
    ctx.api.call("POST", f"/networks/{network}/disconnect", {"Container": container})


@network_group.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not ask (minirun never asks).")
@click.pass_obj
def prune_cmd(ctx, force):
    """Remove user networks no container has an address on."""
    for name in ctx.api.call("POST", "/networks/prune")["NetworksDeleted"] or []:
        click.echo(name)


@network_group.command("reset")
@click.pass_obj
def reset_cmd(ctx):
    """Remove minirun's bridges and firewall rules from the host (no container may run)."""
    from ..engine.containers import ContainerStore            # on use: not on every start
    from ..engine.networking import Networking
    from ..network.wiring import reset
    ctx.local_only("network reset")
    reset(Networking(ctx.root, ContainerStore(ctx.root)).store)


@cli.command("port")
@click.argument("container")
@click.argument("private", required=False)
@click.pass_obj
def port_cmd(ctx, container, private):
    """List a container's published ports: 80/tcp -> 0.0.0.0:8080."""
    doc = ctx.api.call("GET", f"/containers/{container}/json")
    want = private if private is None or "/" in private else f"{private}/tcp"
    lines = [(key, f"{b['HostIp']}:{b['HostPort']}")
             for key, bindings in (doc["NetworkSettings"]["Ports"] or {}).items()
             for b in bindings or []]
    lines = [(k, v) for k, v in lines if want in (None, k)]
    if want and not lines:
        raise MinirunError(f"No public port '{want}' published for {doc['Name'].lstrip('/')}")
    for key, hostport in lines:
        click.echo(hostport if want else f"{key} -> {hostport}")
