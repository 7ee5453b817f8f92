"""Networks, addresses and published ports, as rows in the state database.

IP address management (IPAM) is a transaction: read the addresses taken on
a network, insert the lowest free one. BEGIN IMMEDIATE serialises concurrent
starts, and UNIQUE (network, ip) would refuse a duplicate even so. Addresses
belong to the container record (ON DELETE CASCADE): kept across stops and
daemon restarts, released when the container is removed.
"""
import ipaddress
import json
import os
import re
import socket
import time

from .. import statedb
from ..errors import Conflict, MinirunError, NotFound
from . import orphans, subnets
from .names import HostNames

DEFAULT_NETWORK = "bridge"
PREDEFINED = ("bridge", "host", "none")
NAME_RE = re.compile(r"[^\x00-\x1f\x7f]{1,255}")    # Docker takes any name (spaces too)
EPHEMERAL = (32768, 60999)          # where a -p without a host port gets one (Linux's range)


class NetworkNotFound(NotFound):
    pass


def user_bridge(network_id):
    return "mr-" + network_id[:12]          # 15 characters: the kernel's limit


def mac_for(ip):
    """Docker's scheme: 02:42 then the IPv4 address, so MACs are unique where IPs are."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


# An endpoint with what wiring needs of its network.
ENDPOINTS = ("SELECT e.*, n.name AS network, n.bridge, n.subnet, n.gateway, n.subnet6, "
             "n.gateway6, n.internal FROM endpoints e JOIN networks n ON n.id = e.network_id ")


class NetworkStore:
    def __init__(self, root, db=None):
        self.root = root
        self.db = db or statedb.open_db(root)
        self.names = HostNames(root)

    # -- networks -------------------------------------------------------------------
    def get(self, ref):
        """A network by name, full ID or unique ID prefix ("bridge" is made on first use)."""
        if ref == DEFAULT_NETWORK:
            return self.default()
        row = self.db.execute("SELECT * FROM networks WHERE name = ? OR id = ?",
                              (ref, ref)).fetchone()
        if row is None and re.fullmatch(r"[0-9a-f]{1,64}", ref):
            rows = self.db.execute("SELECT * FROM networks WHERE id LIKE ?", (ref + "%",)).fetchall()
            row = rows[0] if len(rows) == 1 else None
        if row is None:
            raise NetworkNotFound(f"network {ref} not found")
        return row

    def list(self):
        self.default()
        return self.db.execute("SELECT * FROM networks ORDER BY created").fetchall()

    def default(self):
        row = self.db.execute("SELECT * FROM networks WHERE name = ?", (DEFAULT_NETWORK,)).fetchone()
        if row is not None:
            return row
        orphans.sweep()        # a root deleted by hand may hold the subnet this one would take
        subnet = os.environ.get("MINIRUN_BRIDGE_SUBNET") or \
            subnets.pick(subnets.DEFAULT_POOL, [r[0] for r in self.db.execute(
                "SELECT subnet FROM networks")]) or subnets.DEFAULT_POOL[0]
        try:
            return self.create(DEFAULT_NETWORK, subnet=subnet, _bridge=self.names.default_bridge)
        except Conflict:
            row = self.db.execute("SELECT * FROM networks WHERE name = ?",
                                  (DEFAULT_NETWORK,)).fetchone()
            if row is None:         # not made by another process meanwhile: a real clash
                raise
            return row

    def create(self, name, subnet=None, gateway=None, labels=None, internal=False, ipv6=False,
               subnet6=None, gateway6=None, ranges=None, _bridge=None):
        """A network record (its bridge is made when a container first needs it). *internal*:
        no way out (network/wiring.py, firewall.py); *ipv6*: an IPv6 subnet beside the IPv4
        one (*subnet6*, or a /64 of this root's unique local prefix); *ranges*: {4|6:
        {IPRange, AuxiliaryAddresses}}, where in a subnet addresses are given out and
        which never are (--ip-range, --aux-address)."""
        if not NAME_RE.fullmatch(name or ""):
            raise MinirunError(f"invalid network name {name!r}: 1 to 255 characters, none a "
                               f"control character")
        if name in PREDEFINED and _bridge is None:
            raise Conflict(f"network with name {name} already exists")
        if (subnet6 or gateway6 or (ranges or {}).get(6)) and not ipv6:
            raise MinirunError("an IPv6 subnet needs an IPv6 network (--ipv6)")
        nid = os.urandom(32).hex()
        try:
            with statedb.transaction(self.db) as db:
                if db.execute("SELECT 1 FROM networks WHERE name = ?", (name,)).fetchone():
                    raise Conflict(f"network with name {name} already exists")
                taken = [r["subnet"] for r in db.execute("SELECT subnet FROM networks")]
                subnet, gateway = self._addressing(subnet, gateway, taken, subnets.USER_POOL)
                if ipv6:
                    taken6 = [r[0] for r in db.execute(
                        "SELECT subnet6 FROM networks WHERE subnet6 IS NOT NULL")]
                    subnet6, gateway6 = self._addressing(
                        subnet6, gateway6, taken6, subnets.ula_pool(self.names.owner), 6)
                ipam = {str(v): _ranges((ranges or {}).get(v) or {}, s, g)
                        for v, s, g in ((4, subnet, gateway), (6, subnet6, gateway6)) if s}
                db.execute("INSERT INTO networks (id, name, bridge, subnet, gateway, created, "
                           "labels, internal, subnet6, gateway6, ipam) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (nid, name, _bridge or user_bridge(nid), subnet, gateway,
                            time.time(), json.dumps(labels or {}), int(bool(internal)),
                            subnet6 if ipv6 else None, gateway6 if ipv6 else None,
                            json.dumps({k: v for k, v in ipam.items() if v})))
        except statedb.IntegrityError:
            raise Conflict(f"network with name {name} already exists") from None
        return self.get(nid)

    @staticmethod
    def _addressing(subnet, gateway, taken, pool, version=4):
        if subnet is None:
            subnet = subnets.pick(pool, taken)
            if subnet is None:
                raise MinirunError("all predefined address pools have been fully subnetted")
        else:
            try:
                subnet = subnets.parse(subnet, version)
            except ValueError as e:
                raise MinirunError(str(e)) from None
            reason = subnets.clash(subnet, taken)
            if reason:
                raise Conflict(f"subnet {subnet} overlaps {reason}")
        net = ipaddress.ip_network(subnet)
        gateway = gateway or str(net.network_address + 1)
        try:
            address = ipaddress.ip_address(gateway)
        except ValueError:
            raise MinirunError(f"invalid gateway {gateway!r}") from None
        if address.version != version or address not in net or address in (
                net.network_address, net.broadcast_address):
            raise MinirunError(f"gateway {gateway} is not a host address of {subnet}")
        return subnet, str(address)

    def remove(self, ref):
        row = self.get(ref)
        if row["name"] == DEFAULT_NETWORK:
            raise Conflict(f"{DEFAULT_NETWORK} is a pre-defined network and cannot be removed")
        users = self.db.execute("SELECT container_id FROM endpoints WHERE network_id = ?",
                                (row["id"],)).fetchall()
        if users:
            raise Conflict(f"error while removing network: network {row['name']} id {row['id']} "
                           f"has active endpoints ({len(users)} container(s))")
        with statedb.transaction(self.db) as db:
            db.execute("DELETE FROM networks WHERE id = ?", (row["id"],))
        return row

    def bridges(self):
        """The bridge device of every network of this root."""
        return [r[0] for r in self.db.execute("SELECT bridge FROM networks")]

    def unused(self):
        """User networks nobody has an address on (network prune's; wiring removes them with
        their bridges)."""
        return self.db.execute("SELECT * FROM networks WHERE name != ? AND id NOT IN "
                               "(SELECT network_id FROM endpoints)", (DEFAULT_NETWORK,)).fetchall()

    # -- addresses (IPAM) -----------------------------------------------------------
    def allocate(self, network, container_id, aliases=(), ip=None, mac=None, ip6=None):
        """Give *container_id* the lowest free address on *network* (or its existing one; or
        *ip*, if free — --ip), and *mac* (--mac-address) or one made of the address; on an
        IPv6 network an IPv6 address likewise (*ip6*: --ip6)."""
        if ip6 and not network["subnet6"]:
            raise MinirunError(f"network {network['name']} has no IPv6 subnet for --ip6 {ip6}")
        with statedb.transaction(self.db) as db:
            have = db.execute("SELECT * FROM endpoints WHERE network_id = ? AND container_id = ?",
                              (network["id"], container_id)).fetchone()
            if have:
                return have
            rows = db.execute("SELECT ip, ip6 FROM endpoints WHERE network_id = ?",
                              (network["id"],)).fetchall()
            ranges = json.loads(network["ipam"] or "{}")
            asked = {k: v for k, v in (("IPv4Address", ip), ("IPv6Address", ip6)) if v}
            ip = _address(network, network["subnet"], network["gateway"], ip,
                          {r["ip"] for r in rows}, ranges.get("4"))
            if network["subnet6"]:
                ip6 = _address(network, network["subnet6"], network["gateway6"], ip6,
                               {r["ip6"] for r in rows}, ranges.get("6"))
            count = db.execute("SELECT COUNT(*) FROM endpoints WHERE container_id = ?",
                               (container_id,)).fetchone()[0]
            db.execute("INSERT INTO endpoints (network_id, container_id, ip, ip6, mac, ifname, "
                       "aliases, ipam_config) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (network["id"], container_id, ip, ip6, mac or mac_for(ip),
                        self._free_ifname(db, container_id, count), json.dumps(list(aliases)),
                        json.dumps(asked)))
        return self.endpoint(network["id"], container_id)

    @staticmethod
    def _free_ifname(db, container_id, count):
        taken = {r[0] for r in db.execute("SELECT ifname FROM endpoints WHERE container_id = ?",
                                          (container_id,))}
        return next(f"eth{n}" for n in range(count + 1) if f"eth{n}" not in taken)

    def release(self, network_id, container_id):
        with statedb.transaction(self.db) as db:
            db.execute("DELETE FROM endpoints WHERE network_id = ? AND container_id = ?",
                       (network_id, container_id))

    def endpoint(self, network_id, container_id):
        return self.db.execute(
            ENDPOINTS + "WHERE e.network_id = ? AND e.container_id = ?",
            (network_id, container_id)).fetchone()

    def endpoints(self, container_id):
        """A container's addresses, eth0 first, with their networks' details."""
        return self.db.execute(
            ENDPOINTS + "WHERE e.container_id = ? ORDER BY length(e.ifname), e.ifname",
            (container_id,)).fetchall()

    def members(self, network_id):
        """Everyone with an address on a network, with their container names."""
        return self.db.execute(
            "SELECT e.*, c.name, c.config FROM endpoints e JOIN containers c "
            "ON c.id = e.container_id WHERE e.network_id = ?", (network_id,)).fetchall()

    def set_veth(self, network_id, container_id, veth):
        with statedb.transaction(self.db) as db:
            db.execute("UPDATE endpoints SET veth = ? WHERE network_id = ? AND container_id = ?",
                       (veth, network_id, container_id))

    def wired(self):
        """Endpoints whose host end is (or may still be) in place."""
        return self.db.execute("SELECT * FROM endpoints WHERE veth IS NOT NULL").fetchall()

    # -- published ports ------------------------------------------------------------
    def publish(self, container_id, container_ip, bindings):
        """Record *bindings* ((proto, host_ip, host_port, container_port), host_port 0 = any)."""
        with statedb.transaction(self.db) as db:
            for proto, host_ip, host_port, container_port in bindings:
                if host_port == 0:
                    host_port = self._free_port(db, proto, host_ip)
                else:
                    self._check_free(db, proto, host_ip, host_port)
                db.execute("INSERT INTO ports (container_id, proto, host_ip, host_port, "
                           "container_ip, container_port) VALUES (?, ?, ?, ?, ?, ?)",
                           (container_id, proto, host_ip, host_port, container_ip,
                            container_port))
        return self.ports(container_id)

    def ports(self, container_id):
        return self.db.execute("SELECT * FROM ports WHERE container_id = ? ORDER BY "
                               "container_port, proto, host_ip", (container_id,)).fetchall()

    def all_ports(self):
        return self.db.execute("SELECT * FROM ports").fetchall()

    def unpublish(self, container_id):
        with statedb.transaction(self.db) as db:
            db.execute("DELETE FROM ports WHERE container_id = ?", (container_id,))

    @staticmethod
    def _taken(db, proto, host_ip, port):
        wild = "0.0.0.0"
        return db.execute("SELECT 1 FROM ports WHERE proto = ? AND host_port = ? AND "
                          "(host_ip = ? OR host_ip = ? OR ? = ?)",
                          (proto, port, host_ip, wild, host_ip, wild)).fetchone() is not None

    def _check_free(self, db, proto, host_ip, port):
        if self._taken(db, proto, host_ip, port) or not _bindable(proto, host_ip, port):
            raise Conflict(f"Bind for {host_ip}:{port} failed: port is already allocated")

    def _free_port(self, db, proto, host_ip):
        import random      # it loads hashlib (OpenSSL): only for -p without a host port
        start = random.randrange(*EPHEMERAL)
        span = EPHEMERAL[1] - EPHEMERAL[0]
        for n in range(span):
            port = EPHEMERAL[0] + (start - EPHEMERAL[0] + n) % span
            if not self._taken(db, proto, host_ip, port) and _bindable(proto, host_ip, port):
                return port
        raise Conflict("no free host port left for a published port")


def _bindable(proto, host_ip, port):
    """Is the port free on the host? (A host service there would shadow, or be shadowed.)"""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host_ip, port))
        except OSError as e:
            if e.errno == 99:               # EADDRNOTAVAIL: not an address of this host
                raise MinirunError(f"cannot publish on {host_ip}: not an address of this host")
            return False
    return True


def _ranges(given, subnet, gateway):
    """A network's --ip-range and --aux-address for one of its subnets, checked."""
    net = ipaddress.ip_network(subnet)
    out = {}
    if given.get("IPRange"):
        try:
            pool = ipaddress.ip_network(given["IPRange"])
        except ValueError as e:
            raise MinirunError(f"invalid --ip-range {given['IPRange']!r}: {e}") from None
        if pool.version != net.version or not pool.subnet_of(net):
            raise MinirunError(f"--ip-range {pool} is not within the subnet {subnet}")
        out["IPRange"] = str(pool)
    aux = {}
    for name, address in (given.get("AuxiliaryAddresses") or {}).items():
        try:
            aux[name] = str(ipaddress.ip_address(address))        # one spelling, to compare
            if ipaddress.ip_address(address) not in net:
                raise ValueError
        except ValueError:
            raise MinirunError(f"--aux-address {name}={address}: not an address of "
                               f"{subnet}") from None
        if aux[name] == gateway:
            raise MinirunError(f"--aux-address {name}={address} is the gateway")
    if aux:
        out["AuxiliaryAddresses"] = aux
    return out


def _address(network, subnet, gateway, wanted, used, ranges=None):
    """The address an endpoint gets on *subnet*: *wanted* (--ip, --ip6) if it is a free host
    address there, else the lowest free one (in the network's --ip-range, if it has one);
    never the gateway nor an --aux-address."""
    net = ipaddress.ip_network(subnet)
    ranges = ranges or {}
    used = used | {gateway} | set((ranges.get("AuxiliaryAddresses") or {}).values())
    if wanted:
        try:
            address = ipaddress.ip_address(wanted)
        except ValueError:
            raise MinirunError(f"invalid IP address: {wanted}") from None
        if address.version != net.version or address not in net or address in (
                net.network_address, net.broadcast_address):
            raise MinirunError(f"no configured subnet contains IP address {wanted} (network "
                               f"{network['name']} is {subnet})")
        if str(address) in used:
            raise MinirunError(f"Address already in use: {wanted} on network {network['name']}")
        return str(address)
    # every address of the range, its own first and last too; never the subnet's two ends
    pool = ipaddress.ip_network(ranges["IPRange"]) if ranges.get("IPRange") else net
    ends = (net.network_address, net.broadcast_address)
    free = next((str(a) for a in pool if str(a) not in used and a not in ends), None)
    if free is None:
        raise MinirunError(f"no free address left on network {network['name']} ({subnet})")
    return free
