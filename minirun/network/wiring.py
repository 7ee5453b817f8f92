"""Wiring a container into its networks when it starts, and out when it stops.

    connect: per endpoint ─ bridge (made on first use) + its firewall elements
                          ─ veth pair: host end on the bridge, eth0… in the container
             published ports ─ host ports chosen and recorded, DNAT elements added
             /etc/hosts of everyone on the same user networks
    disconnect: the same, undone; a bridge with no containers left goes, with its rules

One lock per state root (flock) makes these steps atomic with respect to other
containers starting or stopping, in this process or another. Every step
registers its undo before the next one, so a failure half way leaves nothing.
"""
import contextlib
import fcntl
import json
import os

from ..errors import Conflict, MinirunError
from . import hosts
from .firewall import enable_forwarding, firewall, restore_forwarding
from .store import DEFAULT_NETWORK
from .subnets import clash


@contextlib.contextmanager
def network_lock(store):
    fd = os.open(os.path.join(store.root, "network.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def veth_name(container_id, ifname):
    return f"veth{container_id[:9]}{ifname[3:]}"        # eth0 → veth0123456780


def connect(store, container_id, pid, bindings, trace=lambda *a: None, hosts_path=None,
            only=None):
    """Wire a started container (PID *pid*) into every network it has an address on
    (or only into network *only*, for ``network connect``)."""
    endpoints = store.endpoints(container_id)
    if only is not None:
        endpoints = [ep for ep in endpoints if ep["network_id"] == only]
    if not endpoints:
        return
    from . import links
    fw = firewall(store.names)
    netns = links.open_netns(pid)
    try:
        with network_lock(store), contextlib.ExitStack() as undo:
            undo.callback(_disconnect_locked, store, container_id, fw, only)
            for ep in endpoints:
                _wire(store, fw, netns, container_id, ep, default_route=(ep["ifname"] == "eth0"),
                      trace=trace)
            if only is None:
                _publish(store, fw, container_id, endpoints[0]["ip"], bindings, trace)
            _refresh_hosts(store, [ep["network_id"] for ep in endpoints], hosts_path)
            undo.pop_all()
    finally:
        os.close(netns)


def _wire(store, fw, netns, container_id, ep, default_route, trace):
    from . import links
    if not links.exists(ep["bridge"]):
        reason = clash(ep["subnet"])
        if reason:
            raise MinirunError(f"network {ep['network']}: its subnet {ep['subnet']} overlaps "
                               f"{reason}")
    if links.ensure_bridge(ep["bridge"], ep["gateway"], ep["subnet"]):
        fw.add_network(ep["bridge"], ep["subnet"])
        enable_forwarding(os.path.join(store.root, "network"))
        trace(f"ip link add {ep['bridge']} type bridge; ip addr add {ep['gateway']} dev "
              f"{ep['bridge']}; {fw.name}: masquerade {ep['subnet']}",
              "the network's bridge, made when its first container starts")
    veth = veth_name(container_id, ep["ifname"])
    store.set_veth(ep["network_id"], container_id, veth)      # recorded first: undo finds it
    links.add_veth(veth, netns, ep, default_route)
    trace(f"ip link add {veth} type veth peer {ep['ifname']} netns <container>; "
          f"ip addr add {ep['ip']} dev {ep['ifname']}" + (f"; ip route add default via "
                                                           f"{ep['gateway']}" if default_route else ""),
          f"a cable from bridge {ep['bridge']} into the container's network namespace")


def _publish(store, fw, container_id, container_ip, bindings, trace):
    if not bindings:
        return
    for p in store.publish(container_id, container_ip, bindings):
        fw.add_port(p)
        trace(f"{fw.name}: dnat {p['host_ip']}:{p['host_port']}/{p['proto']} to "
              f"{container_ip}:{p['container_port']}", "a published port")


def disconnect(store, container_id, hosts_path=None, only=None):
    """Undo connect() (safe to run twice, and after a crash)."""
    if not any(ep["veth"] for ep in store.endpoints(container_id)) \
            and not store.ports(container_id):
        return
    fw = firewall(store.names)
    with network_lock(store):
        networks = _disconnect_locked(store, container_id, fw, only)
        _refresh_hosts(store, networks, hosts_path)


def _disconnect_locked(store, container_id, fw, only=None):
    from . import links
    if only is None:
        for p in store.ports(container_id):
            fw.remove_port(p)
        store.unpublish(container_id)
    touched = []
    for ep in store.endpoints(container_id):
        if only is not None and ep["network_id"] != only:
            continue
        if ep["veth"]:
            links.remove(ep["veth"])
            store.set_veth(ep["network_id"], container_id, None)
            _drop_idle_bridge(store, fw, ep)
        touched.append(ep["network_id"])
    return touched


def _drop_idle_bridge(store, fw, ep):
    """A bridge nobody is attached to goes, with its rules; the table goes with the last one."""
    from . import links
    if links.port_count(ep["bridge"]):
        return
    links.remove(ep["bridge"])
    fw.remove_network(ep["bridge"], ep["subnet"])
    if not any(links.exists(n["bridge"]) for n in store.db.execute("SELECT bridge FROM networks")):
        fw.remove_all()


def _refresh_hosts(store, network_ids, hosts_path):
    """Rewrite the peer section of /etc/hosts for everyone wired to these user networks."""
    if hosts_path is None:
        return
    user = [nid for nid in network_ids if store.get(nid)["name"] != DEFAULT_NETWORK]
    targets = {m["container_id"] for nid in user for m in store.members(nid) if m["veth"]}
    for cid in targets:
        hosts.rewrite(hosts_path(cid), _peers(store, cid))


def _peers(store, container_id):
    peers = []
    for ep in store.endpoints(container_id):
        if ep["network"] == DEFAULT_NETWORK:
            continue                     # as in Docker: no names on the default bridge
        for m in store.members(ep["network_id"]):
            if m["container_id"] != container_id and m["veth"]:
                peers.append((m["ip"], [m["name"], *json.loads(m["aliases"])]))
    return peers


def remove_network(store, ref):
    """network rm: the record, and its bridge and rules if a crash left them."""
    with network_lock(store):
        row = store.remove(ref)
        _drop_idle_bridge(store, firewall(store.names), row)
    return row


def clean_stale(store):
    """After a crash: bridges nobody is attached to, and their rules, go (daemon start)."""
    from . import links
    fw = firewall(store.names)
    with network_lock(store):
        for n in store.db.execute("SELECT * FROM networks").fetchall():
            if links.exists(n["bridge"]):
                _drop_idle_bridge(store, fw, n)


def reset(store):
    """Remove every bridge and rule of this state root; routing back off if minirun turned it on."""
    from . import links
    fw = firewall(store.names)
    with network_lock(store):
        if store.wired():
            raise Conflict("containers are still running on minirun networks: stop them first")
        for n in store.db.execute("SELECT * FROM networks").fetchall():
            links.remove(n["bridge"])
        fw.remove_all()
        restore_forwarding(os.path.join(store.root, "network"))
