#!/usr/bin/env python3
"""Build busybox:latest as an OCI image layout from Debian's busybox-static.

No internet: the binary comes from the host (/bin/busybox of busybox-static).
Two layers, built reproducibly (fixed mtimes and owners, gzip without a time):
  1. /bin/busybox and a symlink for every applet it has (busybox --list-full)
  2. /etc (passwd, group, shadow, hosts, nsswitch.conf) and the usual directories

Usage: build.py [--busybox PATH] [--out DIR]   (default out: images/busybox/build/oci)
Runs with minirun's virtual environment (scripts/setup does it).
"""
import argparse
import datetime
import os
import subprocess

from minirun.image.layout import LayerBuilder, write_layout

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "docker.io/library/busybox:latest"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
tty:x:5:
www-data:x:33:
users:x:100:
nogroup:x:65534:
"""
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
NSSWITCH = "hosts: files dns\nnetworks: files\npasswd: files\ngroup: files\n"


def busybox_layer(busybox, mtime):
    applets = subprocess.run([busybox, "--list-full"], check=True, capture_output=True,
                             text=True).stdout.split()
    layer = LayerBuilder(mtime)
    dirs = set()
    for applet in applets + ["bin/busybox"]:
        parts = applet.split("/")[:-1]
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    for d in sorted(dirs):
        layer.dir(d)
    with open(busybox, "rb") as f:
        layer.file("bin/busybox", f.read(), 0o755)
    for applet in sorted(set(applets) - {"bin/busybox"}):
        layer.symlink(applet, "/bin/busybox")
    return layer.tar_bytes()


def etc_layer(mtime):
    layer = LayerBuilder(mtime)
    for d in ("etc", "home", "proc", "sys", "dev", "run", "var", "var/www",
              "usr", "usr/local", "usr/local/bin"):
        layer.dir(d)
    layer.dir("root", 0o700)
    layer.dir("tmp", 0o1777)
    layer.file("etc/passwd", PASSWD.encode())
    layer.file("etc/group", GROUP.encode())
    layer.file("etc/shadow", b"root:*:19000:0:99999:7:::\n", 0o640)
    layer.file("etc/hosts", HOSTS.encode())
    layer.file("etc/nsswitch.conf", NSSWITCH.encode())
    return layer.tar_bytes()


def build(busybox, out):
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH") or os.stat(busybox).st_mtime)
    created = datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    config = {
        "created": created,
        "config": {"Env": [PATH_ENV], "Cmd": ["sh"]},
        "history": [
            {"created": created, "created_by": "busybox-static: /bin/busybox + applet links"},
            {"created": created, "created_by": "/etc files and base directories"},
        ],
    }
    return write_layout(out, [busybox_layer(busybox, mtime), etc_layer(mtime)], config, NAME)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--busybox", default="/bin/busybox")
    ap.add_argument("--out", default=os.path.join(HERE, "build", "oci"))
    args = ap.parse_args()
    if not os.path.exists(args.busybox):
        raise SystemExit(f"{args.busybox} not found: install busybox-static")
    desc = build(args.busybox, args.out)
    print(f"built {NAME} at {args.out} ({desc['digest']})")


if __name__ == "__main__":
    main()
