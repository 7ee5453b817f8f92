"""A container's networks as the engine sees them: chosen at create, wired at start.

--network bridge (the default) or NAME: the container gets an address on that
network when it is created (kept until it is removed) and is wired to it each
time it starts; -p/-P ports are published while it runs. none and host need
nothing from here; container:NAME joins another container's namespace.
"""

from .. import cjson
from ..errors import MinirunError
from .options import OptionError

DEFAULT_NETWORK = "bridge"         # network.store's, without importing it for none/host
OWN_NAMESPACE = ("none", "host")


def mode(network):
    """The --network value, Docker's "default" read as "bridge"."""
    return DEFAULT_NETWORK if network in (None, "", "default") else network


def wired(network):
    """Does this --network value need wiring (a bridge), or is it none/host/container:?"""
    net = mode(network)
    return net not in OWN_NAMESPACE and not net.startswith("container:")


class Networking:
    """The network layer, imported only when a container has (or may have) a bridge:
    --network none and host stay as fast as they were."""

    def __init__(self, root, containers, db=None):
        self.root, self.containers, self._db = root, containers, db or containers.db
        self._store = None

    @property
    def store(self):
        if self._store is None:
            from ..network.store import NetworkStore   # only with a network (see class)
            self._store = NetworkStore(self.root, db=self._db)
        return self._store

    def hosts_path(self, cid):
        return self.containers.path(cid, "hosts")

    # -- create -------------------------------------------------------------------
    def plan(self, opts, cid, exposed):
        """Check --network, -p and -P; take the container's address. Returns what the
        container's config keeps: the ports to publish, and the hosts file's own line."""
        from ..network import ports as portspec   # only with a network (see class)
        net = mode(opts.network)
        bindings = portspec.bindings(opts.publish, opts.publish_all, list(exposed) + opts.expose)
        if not wired(net):
            if net.startswith("container:"):
                if bindings:
                    raise OptionError("conflicting options: port publishing and the container "
                                      "type network mode")
                self.containers.get(net.split(":", 1)[1])        # it must exist
            if opts.network_alias:
                raise OptionError("network-scoped aliases are only supported for user-defined "
                                  "networks")
            return [], None
        from ..network.store import NetworkNotFound   # only with a network (see class)
        try:
            network = self.store.get(net)
        except NetworkNotFound:
            raise OptionError(f"network {net} not found") from None
        if opts.network_alias and network["name"] == DEFAULT_NETWORK:
            raise OptionError("network-scoped aliases are only supported for user-defined "
                              "networks")
        if (opts.ip or opts.ip6) and network["name"] == DEFAULT_NETWORK:
            raise OptionError("user specified IP address is supported on user defined networks "
                              "only")
        ep = self.store.allocate(network, cid, opts.network_alias, opts.ip or None,
                                 o_mac(opts.mac_address), opts.ip6 or None)
        return bindings, ep["ip"]

    # -- start and stop -----------------------------------------------------------
    def join_target(self, spec, options):
        """container:NAME: the netns of that (running) container, for the runtime to join."""
        net = options.get("network") or ""
        if not net.startswith("container:"):
            return
        target = self.containers.get(net.split(":", 1)[1])
        if target["state"] != "running" or not target["pid"]:
            raise MinirunError(f"cannot join network of a non running container: "
                               f"{target['name']}")
        spec.netns = f"/proc/{target['pid']}/ns/net"

    def connect(self, cid, pid, ports, trace=lambda *a: None):
        """Wire a started container; *ports*: the bindings its config recorded at create."""
        from ..network import wiring   # only with a network (see class)
        wiring.connect(self.store, cid, pid, [tuple(b) for b in ports], trace, self.hosts_path)

    def disconnect(self, cid, exited=False):
        """*exited*: PID 1 was reaped (its namespace, and so its veths, are going away)."""
        from ..network import wiring   # only with a network (see class)
        wiring.disconnect(self.store, cid, self.hosts_path, exited=exited)

    # -- network connect / disconnect of a container ----------------------------------
    def connect_network(self, network_ref, container_ref, aliases=(), ip=None, ip6=None,
                        mac=None):
        from ..network import wiring   # only with a network (see class)
        network, row = self.store.get(network_ref), self.containers.get(container_ref)
        if not wired(self.containers.options(row).get("network") or ""):
            raise MinirunError(f"container {row['name']} has no network of its own to connect")
        if self.store.endpoint(network["id"], row["id"]):
            raise MinirunError(f"endpoint with name {row['name']} already exists in network "
                               f"{network['name']}")
        self.store.allocate(network, row["id"], aliases, ip, o_mac(mac), ip6)
        if row["state"] == "running":
            try:
                wiring.connect(self.store, row["id"], row["pid"], [], hosts_path=self.hosts_path,
                               only=network["id"])
            except BaseException:
                self.store.release(network["id"], row["id"])
                raise

    def disconnect_network(self, network_ref, container_ref):
        from ..network import wiring   # only with a network (see class)
        network, row = self.store.get(network_ref), self.containers.get(container_ref)
        if not self.store.endpoint(network["id"], row["id"]):
            raise MinirunError(f"container {row['name']} is not connected to network "
                               f"{network['name']}")
        wiring.disconnect(self.store, row["id"], self.hosts_path, only=network["id"])
        self.store.release(network["id"], row["id"])

    # -- networks themselves (network create/ls/inspect/rm/prune) -----------------------
    def create_network(self, name, subnet=None, gateway=None, labels=None, internal=False,
                       ipv6=False, subnet6=None, gateway6=None, ranges=None):
        return self.store.create(name, subnet, gateway, labels, internal, ipv6, subnet6,
                                 gateway6, ranges)

    def networks(self):
        from ..network.inspect import all_networks   # only with a network (see class)
        return all_networks(self.store)

    def network(self, ref):
        from ..network.inspect import one   # only with a network (see class)
        return one(self.store, ref)

    def remove_network(self, ref):
        from ..network import wiring   # only with a network (see class)
        return wiring.remove_network(self.store, ref)

    def prune_networks(self):
        from ..network import wiring   # only with a network (see class)
        return wiring.prune_networks(self.store)

    # -- what inspect and ps show ---------------------------------------------------
    def settings(self, cid):
        """Docker's NetworkSettings: addresses per network and published ports."""
        networks = {}
        for ep in self.store.endpoints(cid):
            networks[ep["network"]] = {
                "NetworkID": ep["network_id"], "EndpointID": "", "Gateway": ep["gateway"],
                "IPAddress": ep["ip"], "IPPrefixLen": int(ep["subnet"].split("/")[1]),
                "MacAddress": ep["mac"], "Aliases": cjson.loads(ep["aliases"]) or None,
                "IPv6Gateway": ep["gateway6"] or "", "GlobalIPv6Address": ep["ip6"] or "",
                "GlobalIPv6PrefixLen": int(ep["subnet6"].split("/")[1]) if ep["subnet6"] else 0,
                "IPAMConfig": cjson.loads(ep["ipam_config"] or "{}") or None, "Links": None,
                "DriverOpts": None}
        return networks, self.store.ports(cid)


def o_mac(text):
    """--mac-address: a unicast MAC, or None."""
    import re                                # only --mac-address needs it
    if not text:
        return None
    if not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", text) or int(text[:2], 16) & 1:
        raise OptionError(f"invalid MAC address {text!r} (a unicast xx:xx:xx:xx:xx:xx)")
    return text.lower()
