"""What a state root calls the things it makes on the host, and how it marks them as its own.

Two roots (the default one and a test's, say) never share a bridge, a table
or a chain; the owner mark lets network/orphans.py find what a root that was
deleted by hand left behind.
"""
import os
import zlib

from ..config import DEFAULT_ROOT

OWNER = "minirun:"       # + the state root: written on each bridge (its alias) and nft table
# Every link minirun makes on the host is named so (bridges: minirun0, mr<tag>0, mr-<id>;
# container veths: mrv<id><n>): network/networkd.py tells networkd to leave these alone.
LINK_GLOBS = ("minirun*", "mr*")


class HostNames:
    """Names of what a state root makes on the host, so two roots never share a bridge or table,
    and the owner mark that says which root made them (network/orphans.py reads it back)."""

    def __init__(self, root):
        root = os.path.realpath(root)
        self.owner = OWNER + root
        tag = "" if root == DEFAULT_ROOT else f"{zlib.crc32(root.encode()):08x}"[:6]
        self.table = f"minirun_{tag}" if tag else "minirun"          # nftables table
        self.chain = f"MR{tag}" if tag else "MINIRUN"                 # iptables chain prefix
        self.default_bridge = f"mr{tag}0" if tag else "minirun0"
