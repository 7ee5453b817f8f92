"""Bridges and firewall rules whose state root is gone.

Each state root names what it makes on the host after itself (names.HostNames)
and marks it with its path: a bridge's alias (IFLA_IFALIAS, shown in
/sys/class/net/NAME/ifalias and by ``ip -d link``) and a comment on its
nftables table. When a root is deleted by hand — as users and test suites do —
its bridges, NAT table or iptables chains would stay for ever and hold their
subnets; ``network reset``, a root's first default network and a subnet that
clashes sweep them.
"""
import os
import re
import shutil
import subprocess

from . import links
from .firewall import Iptables, Nftables
from .names import OWNER, HostNames


def root_gone(root):
    return not os.path.exists(os.path.join(root, "state.db"))


def sweep():
    """Remove every bridge and firewall table whose owner root no longer exists; return the
    roots whose leftovers went."""
    gone = set()
    for dev in links.names():
        owner = links.alias(dev)
        if owner.startswith(OWNER) and root_gone(owner[len(OWNER):]):
            links.remove(dev)
            gone.add(owner[len(OWNER):])
    gone.update(_orphan_tables())
    for root in gone:
        names, record = HostNames(root), os.path.join(root, "network", "firewall")
        if shutil.which("nft"):
            Nftables(names, record).remove_all()
        if shutil.which("iptables"):
            Iptables(names, record).remove_all()
    return gone


def _orphan_tables():
    """Roots named by the comments of minirun's nftables tables, where the root is gone."""
    if not shutil.which("nft"):
        return set()
    res = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    roots = set()
    # inet: this minirun's tables; ip: minirun 0.1's (firewall.FAMILIES)
    for family, table in re.findall(r"^table (inet|ip) (minirun\w*)$", res.stdout, re.M):
        text = subprocess.run(["nft", "list", "table", family, table], capture_output=True,
                              text=True).stdout
        m = re.search(r'comment "' + re.escape(OWNER) + r'(.*)"', text)
        if m and root_gone(m.group(1)):
            roots.add(m.group(1))
    return roots
