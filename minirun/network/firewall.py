"""NAT, published ports and isolation, in rules minirun owns.

nftables: one table of minirun's own whose rules never change; networks and
ports are *elements* of its sets and maps, so adding a container's ports is
one atomic ``add element`` and removing them cannot disturb anything else.
iptables (where nft is missing): minirun's own chains, jumped to from the
built-in ones, one rule per network or port, as Docker does it.

Both do the same five things:
- masquerade what leaves a container subnet for the outside (IPv6 subnets too: nftables);
- DNAT a published host port (on any local address, 127.0.0.1 included) to
  its container; traffic from 127.0.0.1 is masqueraded so the container can
  answer, and the bridge gets route_localnet so the kernel routes it at all;
- masquerade a container reaching its own network's published port (hairpin);
- drop traffic between two different minirun networks;
- drop what would enter or leave an --internal network (nor is it masqueraded): its
  containers also get no default route (wiring.py), this is the wall behind that.

The nftables table is of the inet family, so one table holds the IPv4 and IPv6 rules;
iptables would need ip6tables beside it, so IPv6 networks need nftables.
"""
import json
import os

from ..config import RUN_DIR
from ..errors import MinirunError

# The nftables tables that iptables (its nft flavour) made for minirun's first rule: kept
# until every minirun chain in them is gone, then deleted (any root's remove_all does it).
IPTABLES_MADE = os.path.join(RUN_DIR, "iptables-tables")

NFT_TABLE = """
table inet {table} {{
    comment "{owner}";
    set bridges {{ type ifname; }}
    set same {{ type ifname . ifname; }}
    set internal {{ type ifname; }}
    set subnets {{ type ipv4_addr; flags interval; }}
    set subnets6 {{ type ipv6_addr; flags interval; }}
    map ports_any {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
    map ports_ip {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
    chain published {{
        meta l4proto {{ tcp, udp }} dnat ip to ip daddr . meta l4proto . th dport map @ports_ip
        meta nfproto ipv4 meta l4proto {{ tcp, udp }} dnat ip to meta l4proto . th dport map @ports_any
    }}
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        fib daddr type local jump published
    }}
    chain output {{
        type nat hook output priority -100; policy accept;
        fib daddr type local jump published
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr @subnets oifname != @bridges masquerade
        ip6 saddr @subnets6 oifname != @bridges masquerade
        ip saddr 127.0.0.0/8 oifname @bridges masquerade
        ct status dnat ip saddr @subnets oifname @bridges masquerade
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname . oifname @same accept
        iifname @internal drop
        oifname @internal drop
        ct status dnat accept
        iifname @bridges oifname @bridges drop
    }}
}}
"""


def _run(argv, stdin=None, ok_missing=False):
    import subprocess                    # only when rules change: not on every start
    res = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if res.returncode != 0:
        err = res.stderr.strip()
        if ok_missing and ("No such file" in err or "does not exist" in err
                           or "Bad rule" in err or "No chain" in err):
            return res
        raise MinirunError(f"{argv[0]} failed: {err.splitlines()[0] if err else res.returncode}")
    return res


class Recorded:
    """Remembers which backend holds the rules, so a later command removes them from there.
    *stale*: the rules are in a layout an older minirun made (wiring.py makes them anew)."""
    record_as = None

    def __init__(self, names, record, stale=False):
        self.names, self.record, self.stale = names, record, stale

    def remember(self):
        os.makedirs(os.path.dirname(self.record), exist_ok=True)
        with open(self.record, "w") as f:
            f.write(self.record_as or self.name)

    def forget(self):
        try:
            os.unlink(self.record)
        except FileNotFoundError:
            pass


class Nftables(Recorded):
    name = "nftables"
    record_as = "nftables-inet"  # "nftables": minirun 0.1's ip-family table
    ipv6 = True                  # an inet table

    def __init__(self, names, record, stale=False):
        super().__init__(names, record, stale)
        self.table = names.table

    def _batch(self, verb, items):
        """One atomic nft run for many elements; a delete falls back to one at a time (some
        may be gone already)."""
        script = "".join(f"{verb} element inet {self.table} {s} {{ {e} }}\n" for s, e in items)
        if not script:
            return
        if verb == "add":
            _run(["nft", "-f", "-"], stdin=script)
        elif _run(["nft", "-f", "-"], stdin=script, ok_missing=True).returncode:
            for set_name, element in items:
                _run(["nft", f"delete element inet {self.table} {set_name} {{ {element} }}"],
                     ok_missing=True)

    def start(self, network):
        """The table, fresh (a crash, or minirun 0.1's ip-family table, may be there), with
        its first network."""
        self.remember()
        _run(["nft", "-f", "-"], stdin="".join(
            f"table {family} {self.table} {{}}\ndelete table {family} {self.table}\n"
            for family in FAMILIES)
             + NFT_TABLE.format(table=self.table, owner=self.names.owner) + "".join(
                 f"add element inet {self.table} {s} {{ {e} }}\n"
                 for s, e in _network_elements(network)))

    def add_network(self, network):
        self._batch("add", _network_elements(network))

    def remove_network(self, network):
        self._batch("delete", _network_elements(network))

    def add_ports(self, ports):
        self._batch("add", [_port_element(p) for p in ports])

    def remove_ports(self, ports):
        self._batch("delete", [_port_element(p) for p in ports])

    def remove_all(self):
        for family in FAMILIES:
            _run(["nft", "delete", "table", family, self.table], ok_missing=True)
        self.forget()


FAMILIES = ("inet", "ip")      # minirun 0.1 made an ip-family table: gone with the new one


def _network_elements(network):
    """A network's elements: its bridge, its subnets to masquerade unless it is internal."""
    bridge = network["bridge"]
    elements = [("bridges", f'"{bridge}"'), ("same", f'"{bridge}" . "{bridge}"')]
    if network["internal"]:
        return elements + [("internal", f'"{bridge}"')]
    elements.append(("subnets", network["subnet"]))
    if network["subnet6"]:
        elements.append(("subnets6", network["subnet6"]))
    return elements


def _port_element(p):
    target = f"{p['container_ip']} . {p['container_port']}"
    if p["host_ip"] == "0.0.0.0":
        return "ports_any", f"{p['proto']} . {p['host_port']} : {target}"
    return "ports_ip", f"{p['host_ip']} . {p['proto']} . {p['host_port']} : {target}"


class Iptables(Recorded):
    name = "iptables"
    ipv6 = False                 # (ip6tables would be a second set of chains)

    def __init__(self, names, record):
        super().__init__(names, record)
        p = names.chain
        self.dnat, self.post = f"{p}-DNAT", f"{p}-POSTROUTING"
        self.forward, self.isolate = f"{p}-FORWARD", f"{p}-ISOLATE"

    @staticmethod
    def _ipt(table, *args, ok_missing=False):
        return _run(["iptables", "-w", "-t", table, *args], ok_missing=ok_missing)

    def _add(self, table, chain, rule, first=False):
        """Append (or insert) a rule unless it is there already."""
        if _run(["iptables", "-w", "-t", table, "-C", chain, *rule], ok_missing=True).returncode:
            self._ipt(table, "-I" if first else "-A", chain, *rule)

    def _delete(self, table, chain, rule):
        self._ipt(table, "-D", chain, *rule, ok_missing=True)

    def _jumps(self):
        local = ["-m", "addrtype", "--dst-type", "LOCAL"]
        return [("nat", "PREROUTING", local + ["-j", self.dnat]),
                ("nat", "OUTPUT", local + ["-j", self.dnat]),
                ("nat", "POSTROUTING", ["-j", self.post]),
                ("filter", "FORWARD", ["-j", self.forward])]

    def start(self, network):
        self.remove_all()                      # what a crash may have left
        self.remember()
        before = _nft_tables()
        for table, chain in (("nat", self.dnat), ("nat", self.post),
                             ("filter", self.forward), ("filter", self.isolate)):
            self._ipt(table, "-N", chain)
        if before is not None and {"nat", "filter"} - before:
            os.makedirs(RUN_DIR, exist_ok=True)
            with open(IPTABLES_MADE, "a") as f:
                f.write("".join(f"{t}\n" for t in sorted({"nat", "filter"} - before)))
        self._add("filter", self.forward, ["-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"])
        for table, chain, rule in self._jumps():
            self._add(table, chain, rule, first=(chain == "FORWARD"))
        self.add_network(network)

    def _network_rules(self, network):
        bridge, subnet = network["bridge"], network["subnet"]
        ct = ["-m", "conntrack", "--ctstate"]
        if network["internal"]:
            return [("filter", self.forward, ["-i", bridge, "-o", bridge, "-j", "ACCEPT"]),
                    ("filter", self.forward, ["-i", bridge, "-j", "DROP"]),
                    ("filter", self.forward, ["-o", bridge, "-j", "DROP"]),
                    ("filter", self.isolate, ["-o", bridge, "-j", "DROP"])]   # before others'
                    #                                          "-i theirs -j ACCEPT"
        return [("nat", self.post, ["-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"]),
                ("nat", self.post, ["-s", "127.0.0.0/8", "-o", bridge, "-j", "MASQUERADE"]),
                ("nat", self.post, ct + ["DNAT", "-s", subnet, "-o", bridge, "-j", "MASQUERADE"]),
                ("filter", self.forward, ["-i", bridge, "-o", bridge, "-j", "ACCEPT"]),
                ("filter", self.forward, ["-i", bridge, "-j", self.isolate]),
                ("filter", self.forward, ["-i", bridge, "-j", "ACCEPT"]),
                ("filter", self.forward, ["-o", bridge] + ct + ["RELATED,ESTABLISHED", "-j", "ACCEPT"]),
                ("filter", self.isolate, ["-o", bridge, "-j", "DROP"])]

    def add_network(self, network):
        for table, chain, rule in self._network_rules(network):
            self._add(table, chain, rule)

    def remove_network(self, network):
        for table, chain, rule in self._network_rules(network):
            self._delete(table, chain, rule)

    def _port_rule(self, p):
        dest = ["-d", p["host_ip"]] if p["host_ip"] != "0.0.0.0" else []
        return dest + ["-p", p["proto"], "--dport", str(p["host_port"]), "-j", "DNAT",
                       "--to-destination", f"{p['container_ip']}:{p['container_port']}"]

    def add_ports(self, ports):
        for p in ports:
            self._add("nat", self.dnat, self._port_rule(p))

    def remove_ports(self, ports):
        for p in ports:
            self._delete("nat", self.dnat, self._port_rule(p))

    def remove_all(self):
        for table, chain, rule in self._jumps():
            self._delete(table, chain, rule)
        for table, chain in (("nat", self.dnat), ("nat", self.post),
                             ("filter", self.forward), ("filter", self.isolate)):
            self._ipt(table, "-F", chain, ok_missing=True)
            self._ipt(table, "-X", chain, ok_missing=True)
        self.forget()
        _drop_made_tables()


def _nft_tables():
    """The host's ip tables as nft names them, or None without nft (legacy iptables)."""
    import shutil                        # only when rules change
    if not shutil.which("nft"):
        return None
    return set(_run(["nft", "list", "tables", "ip"]).stdout.split()[2::3])


def _drop_made_tables():
    """Delete the tables iptables made for minirun once nothing is left in them: no rule and
    no chain but the built-in ones (another user's rule keeps them)."""
    try:
        with open(IPTABLES_MADE) as f:
            made = set(f.read().split())
    except FileNotFoundError:
        return
    kept = set()
    for table in made & (_nft_tables() or set()):
        items = json.loads(_run(["nft", "-j", "list", "table", "ip", table]).stdout)["nftables"]
        if any("rule" in i or ("chain" in i and "hook" not in i["chain"]) for i in items):
            kept.add(table)
        else:
            _run(["nft", "delete", "table", "ip", table], ok_missing=True)
    if kept:
        with open(IPTABLES_MADE, "w") as f:
            f.write("".join(f"{t}\n" for t in sorted(kept)))
    else:
        os.unlink(IPTABLES_MADE)



def firewall(names, state_dir):
    """The backend this state root's rules are in: the one recorded when they were made, else
    nftables where the host has nft, else iptables (MINIRUN_FIREWALL picks one)."""
    record = os.path.join(state_dir, "firewall")
    try:
        with open(record) as f:
            return BACKENDS[f.read().strip()](names, record)
    except (FileNotFoundError, KeyError):
        choice = os.environ.get("MINIRUN_FIREWALL") or ""
    if choice not in ("", "nftables", "iptables"):
        raise MinirunError(f"MINIRUN_FIREWALL={choice}: use nftables or iptables")
    import shutil                        # only when the backend is first chosen
    if choice != "iptables" and shutil.which("nft"):
        return Nftables(names, record)
    if choice != "nftables" and shutil.which("iptables"):
        return Iptables(names, record)
    raise MinirunError("bridge networking needs nftables or iptables "
                       "(apt-get install nftables)")


BACKENDS = {"nftables-inet": Nftables, "iptables": Iptables,
            "nftables": lambda names, record: Nftables(names, record, stale=True)}


# -- IP forwarding: one host-wide switch per IP version ------------------------------
FORWARD = {4: "/proc/sys/net/ipv4/ip_forward", 6: "/proc/sys/net/ipv6/conf/all/forwarding"}


def _marker(state_dir, version):
    return os.path.join(state_dir, "ip_forward.was-off" if version == 4 else
                        "ip6_forward.was-off")


def enable_forwarding(state_dir, version=4):
    """Turn routing on, remembering if it was off so a reset can turn it off again."""
    with open(FORWARD[version]) as f:
        if f.read().strip() == "1":
            return
    if version == 6:
        _check_router_advertisements()
    os.makedirs(state_dir, exist_ok=True)
    open(_marker(state_dir, version), "w").close()
    with open(FORWARD[version], "w") as f:
        f.write("1")


def _check_router_advertisements():
    """A host that forwards IPv6 ignores router advertisements on interfaces with accept_ra=1
    (the kernel's default): turning forwarding on would make such a host lose the IPv6
    addresses and routes it learnt from them when they expire. Refuse, in one line saying
    what to do, where an interface has such an address or route."""
    learnt = set()
    with open("/proc/net/if_inet6") as f:
        for line in f:                   # address index prefix scope flags name
            _, _, _, scope, flags, dev = line.split()
            if scope == "00" and not int(flags, 16) & IFA_F_PERMANENT:
                learnt.add(dev)
    with open("/proc/net/ipv6_route") as f:
        for line in f:
            fields = line.split()
            if int(fields[8], 16) & (RTF_ADDRCONF | RTF_DEFAULT):
                learnt.add(fields[9])
    for dev in sorted(learnt):
        try:
            with open(f"/proc/sys/net/ipv6/conf/{dev}/accept_ra") as f:
                if f.read().strip() != "1":
                    continue
        except OSError:
            continue
        raise MinirunError(
            f"IPv6 networks need IPv6 forwarding, which would make {dev} ignore the router "
            f"advertisements it configures itself from (accept_ra=1): set "
            f"net.ipv6.conf.{dev}.accept_ra=2, or net.ipv6.conf.all.forwarding=1, yourself")


IFA_F_PERMANENT = 0x80                      # linux/if_addr.h: not learnt (SLAAC, DHCPv6)
RTF_DEFAULT, RTF_ADDRCONF = 0x10000, 0x40000    # linux/ipv6_route.h: routes learnt from RAs


def restore_forwarding(state_dir):
    for version in FORWARD:
        marker = _marker(state_dir, version)
        if os.path.exists(marker):
            with open(FORWARD[version], "w") as f:
                f.write("0")
            os.unlink(marker)
