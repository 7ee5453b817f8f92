"""Bridges and veth pairs, through rtnetlink (pyroute2).

pyroute2 costs a quarter of a second to import, so only the code paths that
wire a container to a bridge import this module.
"""
import ipaddress
import os
import threading

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..linux import namespaces as ns

ENODEV, EEXIST = 19, 17


def exists(name):
    with IPRoute() as ip:
        return bool(ip.link_lookup(ifname=name))


def ensure_bridge(name, gateway, subnet):
    """Make bridge *name* with the gateway address, up; True if it was made now."""
    prefix = ipaddress.IPv4Network(subnet).prefixlen
    with IPRoute() as ip:
        made = not ip.link_lookup(ifname=name)
        if made:
            ip.link("add", ifname=name, kind="bridge")
        index = ip.link_lookup(ifname=name)[0]
        if not ip.get_addr(index=index, address=gateway):
            ip.addr("add", index=index, address=gateway, prefixlen=prefix)
        ip.link("set", index=index, state="up")
    # Published ports on 127.0.0.1 are DNATed into the bridge: let 127/8 be routed there.
    with open(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "w") as f:
        f.write("1")
    return made


def remove(name):
    """Delete a link if it is there (safe to run twice)."""
    with IPRoute() as ip:
        try:
            ip.link("del", ifname=name)
        except NetlinkError as e:
            if e.code != ENODEV:
                raise


def port_count(bridge):
    """How many links are attached to *bridge* (0 if it is gone)."""
    with IPRoute() as ip:
        index = ip.link_lookup(ifname=bridge)
        return len(ip.get_links(master=index[0])) if index else 0


def add_veth(host_name, netns_fd, endpoint, default_route):
    """A veth pair: *host_name* on the endpoint's bridge, its peer configured in the netns."""
    with IPRoute() as ip:
        ip.link("add", ifname=host_name, kind="veth",
                peer={"ifname": endpoint["ifname"], "net_ns_fd": netns_fd})
        bridge = ip.link_lookup(ifname=endpoint["bridge"])[0]
        ip.link("set", ifname=host_name, master=bridge, state="up")
    _inside(netns_fd, _configure_peer, endpoint, default_route)


def _configure_peer(endpoint, default_route):
    prefix = ipaddress.IPv4Network(endpoint["subnet"]).prefixlen
    with IPRoute() as ip:
        index = ip.link_lookup(ifname=endpoint["ifname"])[0]
        ip.link("set", index=index, address=endpoint["mac"])
        ip.addr("add", index=index, address=endpoint["ip"], prefixlen=prefix)
        ip.link("set", index=index, state="up")
        if default_route:
            ip.route("add", dst="default", gateway=endpoint["gateway"])


def remove_peer(netns_fd, ifname):
    """Delete a container-side interface (disconnect of a running container)."""
    def delete():
        with IPRoute() as ip:
            if ip.link_lookup(ifname=ifname):
                ip.link("del", ifname=ifname)
    _inside(netns_fd, delete)


def _inside(netns_fd, fn, *args):
    """Run *fn* in a thread that has joined the network namespace.

    setns(CLONE_NEWNET) changes only the calling thread, and netlink sockets
    belong to the namespace they were made in, so a short-lived thread is the
    cheapest way to talk to a container's kernel network stack."""
    failure = []

    def run():
        try:
            ns.setns(netns_fd, ns.CLONE_NEWNET)
            fn(*args)
        except BaseException as e:
            failure.append(e)
    t = threading.Thread(target=run, name="netns")
    t.start()
    t.join()
    if failure:
        raise failure[0]


def open_netns(pid):
    return os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
