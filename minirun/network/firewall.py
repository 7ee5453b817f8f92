"""NAT, published ports and isolation, in rules minirun owns.

nftables: one table of minirun's own whose rules never change; networks and
ports are *elements* of its sets and maps, so adding a container's ports is
one atomic ``add element`` and removing them cannot disturb anything else.
iptables (where nft is missing): minirun's own chains, jumped to from the
built-in ones, one rule per network or port, as Docker does it.

Both do the same four things:
- masquerade what leaves a container subnet for the outside;
- DNAT a published host port (on any local address, 127.0.0.1 included) to
  its container; traffic from 127.0.0.1 is masqueraded so the container can
  answer, and the bridge gets route_localnet so the kernel routes it at all;
- masquerade a container reaching its own network's published port (hairpin);
- drop traffic between two different minirun networks.
"""
import json
import os

from ..config import RUN_DIR
from ..errors import MinirunError

# The nftables tables that iptables (its nft flavour) made for minirun's first rule: kept
# until every minirun chain in them is gone, then deleted (any root's remove_all does it).
IPTABLES_MADE = os.path.join(RUN_DIR, "iptables-tables")

NFT_TABLE = """
table ip {table} {{
    comment "{owner}";
    set bridges {{ type ifname; }}
    set same {{ type ifname . ifname; }}
    set subnets {{ type ipv4_addr; flags interval; }}
    map ports_any {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
    map ports_ip {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
    chain published {{
        meta l4proto {{ tcp, udp }} dnat ip to ip daddr . meta l4proto . th dport map @ports_ip
        meta l4proto {{ tcp, udp }} dnat ip to meta l4proto . th dport map @ports_any
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
        ip saddr 127.0.0.0/8 oifname @bridges masquerade
        ct status dnat ip saddr @subnets oifname @bridges masquerade
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        ct status dnat accept
        iifname . oifname @same accept
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
    """Remembers which backend holds the rules, so a later command removes them from there."""

    def __init__(self, names, record):
        self.names, self.record = names, record

    def remember(self):
        os.makedirs(os.path.dirname(self.record), exist_ok=True)
        with open(self.record, "w") as f:
            f.write(self.name)

    def forget(self):
        try:
            os.unlink(self.record)
        except FileNotFoundError:
            pass


class Nftables(Recorded):
    name = "nftables"

    def __init__(self, names, record):
        super().__init__(names, record)
        self.table = names.table

    def _batch(self, verb, items):
        """One atomic nft run for many elements; a delete falls back to one at a time (some
        may be gone already)."""
        script = "".join(f"{verb} element ip {self.table} {s} {{ {e} }}\n" for s, e in items)
        if not script:
            return
        if verb == "add":
            _run(["nft", "-f", "-"], stdin=script)
        elif _run(["nft", "-f", "-"], stdin=script, ok_missing=True).returncode:
            for set_name, element in items:
                _run(["nft", f"delete element ip {self.table} {set_name} {{ {element} }}"],
                     ok_missing=True)

    def start(self, bridge, subnet):
        """The table, fresh (a crash may have left an old one), with its first network."""
        self.remember()
        _run(["nft", "-f", "-"], stdin=f"table ip {self.table} {{}}\ndelete table ip {self.table}\n"
             + NFT_TABLE.format(table=self.table, owner=self.names.owner) + "".join(
                 f"add element ip {self.table} {s} {{ {e} }}\n"
                 for s, e in _network_elements(bridge, subnet)))

    def add_network(self, bridge, subnet):
        self._batch("add", _network_elements(bridge, subnet))

    def remove_network(self, bridge, subnet):
        self._batch("delete", _network_elements(bridge, subnet))

    def add_ports(self, ports):
        self._batch("add", [_port_element(p) for p in ports])

    def remove_ports(self, ports):
        self._batch("delete", [_port_element(p) for p in ports])

    def remove_all(self):
        _run(["nft", "delete", "table", "ip", self.table], ok_missing=True)
        self.forget()


def _network_elements(bridge, subnet):
    return [("bridges", f'"{bridge}"'), ("same", f'"{bridge}" . "{bridge}"'),
            ("subnets", subnet)]


def _port_element(p):
    target = f"{p['container_ip']} . {p['container_port']}"
    if p["host_ip"] == "0.0.0.0":
        return "ports_any", f"{p['proto']} . {p['host_port']} : {target}"
    return "ports_ip", f"{p['host_ip']} . {p['proto']} . {p['host_port']} : {target}"


class Iptables(Recorded):
    name = "iptables"

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

    def start(self, bridge, subnet):
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
        self.add_network(bridge, subnet)

    def _network_rules(self, bridge, subnet):
        ct = ["-m", "conntrack", "--ctstate"]
        return [("nat", self.post, ["-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"]),
                ("nat", self.post, ["-s", "127.0.0.0/8", "-o", bridge, "-j", "MASQUERADE"]),
                ("nat", self.post, ct + ["DNAT", "-s", subnet, "-o", bridge, "-j", "MASQUERADE"]),
                ("filter", self.forward, ["-i", bridge, "-o", bridge, "-j", "ACCEPT"]),
                ("filter", self.forward, ["-i", bridge, "-j", self.isolate]),
                ("filter", self.forward, ["-i", bridge, "-j", "ACCEPT"]),
                ("filter", self.forward, ["-o", bridge] + ct + ["RELATED,ESTABLISHED", "-j", "ACCEPT"]),
                ("filter", self.isolate, ["-o", bridge, "-j", "DROP"])]

    def add_network(self, bridge, subnet):
        for table, chain, rule in self._network_rules(bridge, subnet):
            self._add(table, chain, rule)

    def remove_network(self, bridge, subnet):
        for table, chain, rule in self._network_rules(bridge, subnet):
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


BACKENDS = {"nftables": Nftables, "iptables": Iptables}


# -- IP forwarding: one host-wide switch ---------------------------------------------
FORWARD = "/proc/sys/net/ipv4/ip_forward"


def enable_forwarding(state_dir):
    """Turn routing on, remembering if it was off so a reset can turn it off again."""
    with open(FORWARD) as f:
        if f.read().strip() == "1":
            return
    os.makedirs(state_dir, exist_ok=True)
    open(os.path.join(state_dir, "ip_forward.was-off"), "w").close()
    with open(FORWARD, "w") as f:
        f.write("1")


def restore_forwarding(state_dir):
    marker = os.path.join(state_dir, "ip_forward.was-off")
    if os.path.exists(marker):
        with open(FORWARD, "w") as f:
            f.write("0")
        os.unlink(marker)
