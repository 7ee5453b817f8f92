#!/usr/bin/env python3
"""Build debian:bookworm-slim as an OCI image layout from Debian's own packages.

No registry: debootstrap (--variant=minbase) installs the packages from the host's
Debian mirror (the first one in its apt sources) into a temporary root; that tree
becomes the image's one layer, written as the bundled busybox's layers are
(tar entries sorted, times clamped, gzip without a time). As Docker's -slim images,
it leaves out documentation, man pages and translations, and keeps no apt lists.

Usage: build.py [--suite bookworm] [--mirror URL] [--out DIR]
       (default out: images/debian/oci; takes a few minutes; needs root)
"""
import argparse
import datetime
import glob
import os
import shutil
import subprocess
import tarfile
import tempfile

from minirun.image.layout import write_layout

HERE = os.path.dirname(os.path.abspath(__file__))
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What debian:*-slim excludes (its /etc/dpkg/dpkg.cfg.d/docker), so later installs skip it too.
SLIM = """path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
"""
LEFT_OUT = ("usr/share/man/*", "usr/share/groff/*", "usr/share/info/*", "usr/share/lintian/*",
            "usr/share/linda/*", "usr/share/locale/*", "var/lib/apt/lists/*",
            "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb", "var/log/*.log",
            "var/log/apt/*", "var/cache/debconf/*-old", "var/lib/dpkg/*-old")


def host_mirror():
    """The first Debian mirror in the host's apt sources (deb822 or one-line form)."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for line in open(path):
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        try:
            for line in open(path):
                words = line.split()
                if words[:1] == ["deb"] and "security" not in line:
                    return next(w for w in words[1:] if "://" in w)
        except (OSError, StopIteration):
            pass
    return "http://deb.debian.org/debian"


def slim(root):
    for pattern in LEFT_OUT:
        for path in glob.glob(os.path.join(root, pattern)):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
    docs = os.path.join(root, "usr/share/doc")
    for package in os.listdir(docs):
        here = os.path.join(docs, package)
        if os.path.islink(here) or not os.path.isdir(here):
            continue                      # a link to another package's: that one is cleaned
        for name in os.listdir(here):
            path = os.path.join(here, name)
            if name != "copyright":
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) \
                    else os.unlink(path)
    with open(os.path.join(root, "etc/dpkg/dpkg.cfg.d/docker"), "w") as f:
        f.write(SLIM)
    with open(os.path.join(root, "etc/apt/apt.conf.d/docker-clean"), "w") as f:
        f.write('DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };\n'
                'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n')
    for name in ("etc/hostname", "etc/resolv.conf"):      # the runtime provides them
        path = os.path.join(root, name)
        if os.path.lexists(path):
            os.unlink(path)


def layer_tar(root, mtime):
    """The tree as one layer: sorted entries, no device nodes (the runtime makes /dev),
    times clamped to *mtime*."""
    def clean(info):
        if info.ischr() or info.isblk() or info.name.startswith("./dev/"):
            return None
        info.mtime = min(info.mtime, mtime)
        info.uname = info.gname = ""
        return info
    path = os.path.join(tempfile.mkdtemp(), "layer.tar")
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        t.add(root, arcname=".", filter=clean)            # tarfile sorts each directory
    with open(path, "rb") as f:
        data = f.read()
    shutil.rmtree(os.path.dirname(path))
    return data


def build(suite, mirror, out):
    work = tempfile.mkdtemp(prefix="minirun-debian-")
    root = os.path.join(work, "root")
    try:
        subprocess.run(["debootstrap", "--variant=minbase", "--components=main", suite, root,
                        mirror], check=True)
        slim(root)
        mtime = int(os.environ.get("SOURCE_DATE_EPOCH")
                    or os.stat(os.path.join(root, "var/lib/dpkg/status")).st_mtime)
        created = datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        config = {"created": created, "config": {"Env": [PATH_ENV], "Cmd": ["bash"]},
                  "history": [{"created": created, "created_by":
                               f"debootstrap --variant=minbase {suite} {mirror} (slim)"}]}
        name = f"docker.io/library/debian:{suite}-slim"
        return name, write_layout(out, [layer_tar(root, mtime)], config, name)
    finally:
        subprocess.run(["umount", "-R", root], capture_output=True)   # if debootstrap died
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="bookworm")
    ap.add_argument("--mirror", default=None, help="default: the host's apt mirror")
    ap.add_argument("--out", default=os.path.join(HERE, "oci"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (debootstrap needs it)")
    if not shutil.which("debootstrap"):
        raise SystemExit("debootstrap not found: apt-get install debootstrap")
    name, desc = build(args.suite, args.mirror or host_mirror(), args.out)
    print(f"built {name} at {args.out} ({desc['digest']})")


if __name__ == "__main__":
    main()
