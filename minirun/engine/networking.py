"""A container's networks as the engine sees them: chosen at create, wired at start.

--network bridge (the default) or NAME: the container gets an address on that
network when it is created (kept until it is removed) and is wired to it each
time it starts; -p/-P ports are published while it runs. none and host need
nothing from here; container:NAME joins another container's namespace.
"""
import json

from ..errors import MinirunError
from ..network import ports as portspec
from ..network import wiring
from ..network.hosts import base as hosts_base
from ..network.store import DEFAULT_NETWORK, NetworkStore
from .options import OptionError

OWN_NAMESPACE = ("none", "host")


def mode(opts):
    """The --network value, Docker's "default" read as "bridge"."""
    return DEFAULT_NETWORK if opts.network in (None, "", "default") else opts.network


class Networking:
    def __init__(self, root, containers, db=None):
        self.containers = containers
        self.store = NetworkStore(root, db=db or containers.db)

    def hosts_path(self, cid):
        return self.containers.path(cid, "hosts")

    # -- create -------------------------------------------------------------------
    def plan(self, opts, cid, exposed):
        """Check --network, -p and -P; take the container's address. Returns what the
        container's config keeps: the ports to publish, and the hosts file's own line."""
        net = mode(opts)
        bindings = portspec.bindings(opts.publish, opts.publish_all, list(exposed) + opts.expose)
        if net in OWN_NAMESPACE or net.startswith("container:"):
            if net.startswith("container:"):
                if bindings:
                    raise OptionError("conflicting options: port publishing and the container "
                                      "type network mode")
                self.containers.get(net.split(":", 1)[1])        # it must exist
            if opts.network_alias:
                raise OptionError("network-scoped aliases are only supported for user-defined "
                                  "networks")
            return [], None
        try:
            network = self.store.get(net)
        except MinirunError:
            raise OptionError(f"network {net} not found") from None
        if opts.network_alias and network["name"] == DEFAULT_NETWORK:
            raise OptionError("network-scoped aliases are only supported for user-defined "
                              "networks")
        ep = self.store.allocate(network, cid, opts.network_alias)
        return bindings, ep["ip"]

    @staticmethod
    def hosts_file(hostname, ip):
        return hosts_base(hostname, ip)

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

    def connect(self, cid, pid, trace=lambda *a: None):
        row = self.containers.get(cid)
        bindings = [tuple(b) for b in json.loads(row["config"]).get("ports", [])]
        wiring.connect(self.store, cid, pid, bindings, trace, self.hosts_path)

    def disconnect(self, cid):
        wiring.disconnect(self.store, cid, self.hosts_path)

    def clean_stale(self):
        """Bridges and rules a crash left with no container attached (daemon start)."""
        if self.store.db.execute("SELECT 1 FROM networks LIMIT 1").fetchone():
            wiring.clean_stale(self.store)

    # -- network connect / disconnect of a container ----------------------------------
    def connect_network(self, network_ref, container_ref, aliases=()):
        network, row = self.store.get(network_ref), self.containers.get(container_ref)
        if json.loads(row["config"])["options"].get("network") in ("host", "none") or \
                (json.loads(row["config"])["options"].get("network") or "").startswith("container:"):
            raise MinirunError(f"container {row['name']} has no network of its own to connect")
        if self.store.endpoint(network["id"], row["id"]):
            raise MinirunError(f"endpoint with name {row['name']} already exists in network "
                               f"{network['name']}")
        self.store.allocate(network, row["id"], aliases)
        if row["state"] == "running":
            try:
                wiring.connect(self.store, row["id"], row["pid"], [], hosts_path=self.hosts_path,
                               only=network["id"])
            except BaseException:
                self.store.release(network["id"], row["id"])
                raise

    def disconnect_network(self, network_ref, container_ref):
        network, row = self.store.get(network_ref), self.containers.get(container_ref)
        if not self.store.endpoint(network["id"], row["id"]):
            raise MinirunError(f"container {row['name']} is not connected to network "
                               f"{network['name']}")
        wiring.disconnect(self.store, row["id"], self.hosts_path, only=network["id"])
        self.store.release(network["id"], row["id"])

    # -- what inspect and ps show ---------------------------------------------------
    def settings(self, cid):
        """Docker's NetworkSettings: addresses per network and published ports."""
        networks = {}
        for ep in self.store.endpoints(cid):
            networks[ep["network"]] = {
                "NetworkID": ep["network_id"], "EndpointID": "", "Gateway": ep["gateway"],
                "IPAddress": ep["ip"], "IPPrefixLen": int(ep["subnet"].split("/")[1]),
                "MacAddress": ep["mac"], "Aliases": json.loads(ep["aliases"]) or None,
                "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0}
        return networks, self.store.ports(cid)
