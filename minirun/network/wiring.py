"""Wiring a container into its networks when it starts, and out when it stops.

    connect: per endpoint ─ the network's bridge and rules (made on first use, then kept)
                          ─ veth pair: host end on the bridge, eth0… in the container
             published ports ─ host ports chosen and recorded, DNAT elements added
             /etc/hosts of everyone on the same user networks
    disconnect: the container's veth and ports go; the bridge stays for the next one,
             as docker0 does, until ``network rm`` or ``network reset``

One lock per state root (flock) makes these steps atomic with respect to other
containers starting or stopping, in this process or another. Every step
registers its undo before the next one, so a failure half way leaves nothing.
"""
import contextlib
import fcntl
import json
import os

from ..errors import Conflict, MinirunError
from . import hosts, links, networkd, orphans
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


def _state_dir(store):
    return os.path.join(store.root, "network")


def veth_name(container_id, ifname):
    """The host end of a container's veth: "mr…" as all minirun's links (names.LINK_GLOBS)."""
    return f"mrv{container_id[:9]}{ifname[3:]}"        # eth0 → mrv0123456780


def connect(store, container_id, pid, bindings, trace=lambda *a: None, hosts_path=None,
            only=None):
    """Wire a started container (PID *pid*) into every network it has an address on
    (or only into network *only*, for ``network connect``)."""
    endpoints = store.endpoints(container_id)
    outside = gateway_endpoint(endpoints)
    if only is not None:
        endpoints = [ep for ep in endpoints if ep["network_id"] == only]
    if not endpoints:
        return
    fw = firewall(store.names, _state_dir(store))
    netns = links.open_netns(pid)
    try:
        with network_lock(store), contextlib.ExitStack() as undo:
            _renew_stale_rules(store, fw)
            undo.callback(_disconnect_locked, store, container_id, fw, only)
            for ep in endpoints:
                _ensure_network(store, fw, ep, trace)
                _plug(store, netns, container_id, ep, ep is outside, trace)
            if only is None and outside is not None:
                _publish(store, fw, container_id, outside["ip"], bindings, trace)
            _refresh_hosts(store, [ep["network_id"] for ep in endpoints], hosts_path)
            undo.pop_all()
    finally:
        os.close(netns)


def gateway_endpoint(endpoints):
    """The endpoint a container reaches the outside through: its default route, and its
    published ports, are there. The first network that is not --internal, as in Docker
    (an internal network offers no way out, so it gives no default route)."""
    return next((ep for ep in endpoints if not ep["internal"]), None)


def _renew_stale_rules(store, fw):
    """Rules an older minirun made (minirun 0.1's ip-family table) are made anew from the state
    database: every network whose bridge is up, every published port. Under the lock."""
    if not fw.stale:
        return
    up = [row for row in store.list() if links.exists(row["bridge"])]
    if up:
        fw.start(up[0])
        for row in up[1:]:
            fw.add_network(row)
        fw.add_ports(store.all_ports())
    else:
        fw.remove_all()
    fw.stale = False


def _ensure_network(store, fw, network, trace):
    """The bridge, address and rules of an endpoint's network, made the first time a container
    needs them."""
    if links.exists(network["bridge"]):
        return
    if network["subnet6"] and not fw.ipv6:
        raise MinirunError(f"network {network['network']}: IPv6 networks need the nftables "
                           f"firewall (apt-get install nftables), not {fw.name}")
    subnets = [network["subnet"]] + ([network["subnet6"]] if network["subnet6"] else [])
    reasons = [(s, clash(s)) for s in subnets]
    if any(r for _, r in reasons) and orphans.sweep():   # a root removed by hand may have
        reasons = [(s, clash(s)) for s in subnets]       # held the subnet
    for subnet, reason in reasons:
        if reason:
            raise MinirunError(f"network {network['network']}: its subnet {subnet} "
                               f"overlaps {reason}")
    first = not any(links.exists(b) for b in store.bridges())
    networkd.keep_off_our_links()
    try:              # a bridge left half-made (an address refused) would be taken as ready
        links.ensure_bridge(network, store.names.owner)
        (fw.start if first else fw.add_network)(network)
        if not network["internal"]:
            enable_forwarding(_state_dir(store))
            if network["subnet6"]:
                enable_forwarding(_state_dir(store), version=6)
    except BaseException:
        _drop_network(store, fw, network)
        raise
    trace(f"ip link add {network['bridge']} type bridge; ip addr add {network['gateway']} dev "
          f"{network['bridge']}" + (f"; ip addr add {network['gateway6']} dev "
                                    f"{network['bridge']}" if network["subnet6"] else "")
          + (f"; {fw.name}: drop what enters or leaves it" if network["internal"] else
             f"; {fw.name}: masquerade {' '.join(subnets)}"),
          "the network's bridge and " + ("walls (--internal)" if network["internal"] else "NAT")
          + ", made when its first container starts, then kept")


def _plug(store, netns, container_id, ep, default_route, trace):
    veth = veth_name(container_id, ep["ifname"])
    if links.exists(veth):
        links.remove(veth)        # the last run's, its namespace still being torn down
    store.set_veth(ep["network_id"], container_id, veth)      # recorded first: undo finds it
    links.add_veth(veth, netns, ep, default_route)
    ip6 = f"; ip addr add {ep['ip6']} dev {ep['ifname']}" if ep["ip6"] else ""
    route = f"; ip route add default via {ep['gateway']}" if default_route else ""
    if default_route and ep["ip6"]:
        route += f"; ip -6 route add default via {ep['gateway6']}"
    trace(f"ip link add {veth} type veth peer {ep['ifname']} netns <container>; "
          f"ip addr add {ep['ip']} dev {ep['ifname']}{ip6}{route}",
          f"a cable from bridge {ep['bridge']} into the container's network namespace")


def _publish(store, fw, container_id, container_ip, bindings, trace):
    if not bindings:
        return
    published = store.publish(container_id, container_ip, bindings)
    fw.add_ports(published)
    for p in published:
        trace(f"{fw.name}: dnat {p['host_ip']}:{p['host_port']}/{p['proto']} to "
              f"{container_ip}:{p['container_port']}", "a published port")


def disconnect(store, container_id, hosts_path=None, only=None, exited=False):
    """Undo connect() (safe to run twice, and after a crash). *exited*: the container's
    processes are gone, so the kernel deletes its veth pairs with its network namespace."""
    if not any(ep["veth"] for ep in store.endpoints(container_id)) \
            and not store.ports(container_id):
        return
    fw = firewall(store.names, _state_dir(store))
    with network_lock(store):
        _renew_stale_rules(store, fw)
        networks = _disconnect_locked(store, container_id, fw, only, delete_links=not exited)
        # after network disconnect, the container itself forgets that network's names too
        _refresh_hosts(store, networks, hosts_path, also=[container_id] if only else [])


def _disconnect_locked(store, container_id, fw, only=None, delete_links=True):
    if only is None:
        fw.remove_ports(store.ports(container_id))
        store.unpublish(container_id)
    touched = []
    for ep in store.endpoints(container_id):
        if only is not None and ep["network_id"] != only:
            continue
        if ep["veth"]:
            # After an exit the kernel deletes the pair with the namespace, in ~1 ms and off
            # our path (deleting it here costs ~15 ms of RCU waits). Otherwise (disconnect
            # of a running container, a failed start, a crash) it goes now.
            if delete_links:
                links.remove(ep["veth"])
            store.set_veth(ep["network_id"], container_id, None)
        touched.append(ep["network_id"])
    return touched


def _drop_network(store, fw, network):
    """A network's bridge and rules; the whole table goes with the last one."""
    links.remove(network["bridge"])
    if any(links.exists(b) for b in store.bridges() if b != network["bridge"]):
        fw.remove_network(network)
    else:
        fw.remove_all()


# -- /etc/hosts ----------------------------------------------------------------------------
def _refresh_hosts(store, network_ids, hosts_path, also=()):
    """Rewrite the peer section of /etc/hosts for everyone wired to these user networks."""
    if hosts_path is None:
        return
    user = [nid for nid in network_ids if store.get(nid)["name"] != DEFAULT_NETWORK]
    targets = {m["container_id"] for nid in user for m in store.members(nid) if m["veth"]}
    targets.update(also)
    for cid in targets:
        hosts.rewrite(hosts_path(cid), _peers(store, cid))


def _peers(store, container_id):
    peers = []
    for ep in store.endpoints(container_id):
        if ep["network"] == DEFAULT_NETWORK or not ep["veth"]:
            continue                     # no names on the default bridge (as in Docker), nor
            #                              on a network the container is not wired to now
        for m in store.members(ep["network_id"]):
            if m["container_id"] != container_id and m["veth"]:
                names = [m["name"], *json.loads(m["aliases"])]
                peers.append((m["ip"], names))
                if m["ip6"]:
                    peers.append((m["ip6"], names))
    return peers


# -- whole networks ------------------------------------------------------------------------
def remove_network(store, ref):
    """network rm: the record, its bridge and its rules."""
    with network_lock(store):
        row = store.remove(ref)
        if links.exists(row["bridge"]):
            _drop_network(store, firewall(store.names, _state_dir(store)), row)
    return row


def reset(store):
    """Remove every bridge and rule of this state root; routing back off if minirun turned it on."""
    fw = firewall(store.names, _state_dir(store))
    with network_lock(store):
        if store.wired():
            raise Conflict("containers are still running on minirun networks: stop them first")
        for bridge in store.bridges():
            links.remove(bridge)
        fw.remove_all()
        restore_forwarding(_state_dir(store))
    orphans.sweep()
    networkd.release()


def prune_networks(store):
    """network prune: the networks nobody has an address on, with their bridges and rules."""
    gone = []
    for row in store.unused():
        try:
            gone.append(remove_network(store, row["id"]))
        except Conflict:            # someone took an address meanwhile
            pass
    return gone
