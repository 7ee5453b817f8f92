"""Bridges and veth pairs: rtnetlink requests, plus sysfs to look at what is there."""
import errno
import ipaddress
import os
import threading

from ..linux import namespaces as ns
from ..linux.rtnetlink import Netlink


def exists(name):
    return os.path.exists(f"/sys/class/net/{name}")


def ensure_bridge(network, owner):
    """A network's bridge, with the gateway address(es), up (made if missing), its alias
    *owner* (the state root that made it: network/orphans.py finds bridges whose root is gone
    by it)."""
    name = network["bridge"]
    with Netlink() as nl:
        if not exists(name):
            nl.add_bridge(name)
        with open(f"/sys/class/net/{name}/ifalias", "w") as f:
            f.write(owner)
        if network["subnet6"]:
            _enable_ipv6(name)
        for gateway, subnet in _addresses(network, "gateway"):
            try:
                nl.add_address(name, gateway, ipaddress.ip_network(subnet).prefixlen)
            except FileExistsError:
                pass
        nl.set_link(name, up=True)
    # Published ports on 127.0.0.1 are DNATed into the bridge: let 127/8 be routed there.
    with open(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "w") as f:
        f.write("1")


def remove(name):
    """Delete a link if it is there (safe to run twice)."""
    with Netlink() as nl:
        try:
            nl.delete_link(name)
        except OSError as e:
            if e.errno != errno.ENODEV:
                raise


def add_veth(host_name, netns_fd, endpoint, default_route):
    """A veth pair: *host_name* on the endpoint's bridge, its peer configured in the netns."""
    with Netlink() as nl:
        nl.add_veth(host_name, endpoint["ifname"], netns_fd)
        nl.set_link(host_name, up=True, master=endpoint["bridge"])
    _inside(netns_fd, _configure_peer, endpoint, default_route)


def _addresses(row, kind):
    """(address, subnet) of a network or endpoint row: IPv4, and IPv6 where it has one."""
    v4, v6 = ("gateway", "gateway6") if kind == "gateway" else ("ip", "ip6")
    return [(row[v4], row["subnet"])] + ([(row[v6], row["subnet6"])] if row["subnet6"] else [])


def _enable_ipv6(ifname):
    """IPv6 on a link of ours, where the host made new links without it (disable_ipv6 in
    net.ipv6.conf.default): writes the sysctl of the calling thread's network namespace."""
    path = f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"
    with open(path) as f:
        if f.read().strip() == "0":
            return
    with open(path, "w") as f:
        f.write("0")


def _configure_peer(endpoint, default_route):
    with Netlink() as nl:
        nl.set_link(endpoint["ifname"], up=False, mac=endpoint["mac"])
        if endpoint["subnet6"]:
            _enable_ipv6(endpoint["ifname"])
        for address, subnet in _addresses(endpoint, "ip"):
            nl.add_address(endpoint["ifname"], address, ipaddress.ip_network(subnet).prefixlen)
        nl.set_link(endpoint["ifname"], up=True)
        if default_route:
            nl.add_default_route(endpoint["gateway"])
            if endpoint["subnet6"]:
                nl.add_default_route(endpoint["gateway6"])


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


def alias(name):
    try:
        with open(f"/sys/class/net/{name}/ifalias") as f:
            return f.read().strip()
    except OSError:
        return ""


def names():
    return os.listdir("/sys/class/net")


def open_netns(pid):
    return os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
