"""Keeping systemd-networkd off minirun's links.

networkd configures every link that one of its ``.network`` files matches, and many hosts
match broadly (``Type=ether``, ``Name=*``, ``Name=en* veth*``): it then takes a container's
veth off its bridge and gives it the host's address, and the container's network is gone.
networkd reads the ``.network`` files of /etc, /run and /usr/lib in the lexical order of
their names and the first match wins, so a file whose name sorts early, matching only the
names minirun gives its links (network/names.py, wiring.veth_name), keeps it away. It lives
in /run: made again after a reboot, the first time minirun makes a bridge, and removed by
``network reset`` once no minirun link of any state root is left.
"""
import os
import subprocess
from fnmatch import fnmatch

from . import links
from .names import LINK_GLOBS

CONFIG = "/run/systemd/network/05-minirun.network"
BOOTED = "/run/systemd/system"          # there when systemd is PID 1 (sd_booted(3))
TEXT = f"""\
# Written by minirun: its bridges and container veths are its own to configure.
[Match]
Name={" ".join(LINK_GLOBS)}

[Link]
Unmanaged=yes
"""


def keep_off_our_links(config=CONFIG, booted=BOOTED):
    """On a systemd host, make sure networkd has minirun's links as unmanaged before one is
    made (written even while networkd is stopped: it may start later)."""
    if not os.path.isdir(booted):
        return
    try:
        with open(config) as f:
            if f.read() == TEXT:
                return
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(config), exist_ok=True)
    tmp = f"{config}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(TEXT)
        os.rename(tmp, config)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _reload()


def release(config=CONFIG, present=links.names):
    """``network reset``'s undo: the file goes once no link of minirun's is left on the host."""
    if any(fnmatch(name, glob) for name in present() for glob in LINK_GLOBS):
        return
    try:
        os.unlink(config)
    except FileNotFoundError:
        return
    _reload()


def _reload():
    # networkd reads its files at start and on reload; reload waits until it has applied them
    # (and fails, harmlessly, where networkd does not run)
    try:
        subprocess.run(["networkctl", "reload"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    except OSError:
        pass                            # no networkctl: networkd reads the file when it starts
