"""Layers unpacked for overlayfs: stacking, whiteouts, metadata, and hostile tars."""
import os
import stat
import subprocess
import tarfile
import tempfile

import pytest

from minirun.image.layout import LayerBuilder, write_layout

pytestmark = pytest.mark.root


def load_layers(minirun, tmp_path, tars, name="test/layers:1", check=True):
    out = str(tmp_path / "oci")
    write_layout(out, tars, {"config": {"Cmd": ["sh"]}}, "docker.io/" + name)
    return minirun("load", "-i", out, check=check)


def overlay(store, image, target):
    """Mount the image's layers read-only, as a container's lower dirs would be."""
    lower = ":".join(reversed(store.layer_dirs(store.resolve(image))))
    os.makedirs(target)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower}", target],
                   check=True)


def tree(root):
    """{relative path: description} of everything below *root*."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "-> " + os.readlink(p)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            else:
                with open(p, "rb") as f:
                    out[rel] = f.read().decode()
    return out


def test_three_layers_stack_to_the_expected_tree(minirun, tmp_path):
    base = (LayerBuilder().dir("a").file("a/keep", b"keep").file("a/gone", b"gone")
            .dir("d").file("d/old", b"old").dir("o").file("o/x", b"x").file("o/y", b"y")
            .file("f", b"v1").tar_bytes())
    middle = (LayerBuilder().dir("a").file("a/.wh.gone", b"")      # delete a file
              .file("d", b"now a file")                            # a directory replaced
              .file("f", b"v2").tar_bytes())
    top = (LayerBuilder().dir("o").file("o/.wh..wh..opq", b"")     # opaque: hide lower o/*
           .file("o/z", b"z").file("f", b"v3").tar_bytes())
    load_layers(minirun, tmp_path, [base, middle, top])
    mnt = str(tmp_path / "mnt")
    overlay(minirun.store(), "test/layers:1", mnt)
    try:
        assert tree(mnt) == {"a": "dir", "a/keep": "keep", "d": "now a file",
                             "o": "dir", "o/z": "z", "f": "v3"}
    finally:
        subprocess.run(["umount", mnt], check=True)


def test_whiteouts_are_stored_the_overlayfs_way(minirun, tmp_path):
    top = (LayerBuilder().dir("o").file("o/.wh..wh..opq", b"").file("o/.wh.gone", b"")
           .tar_bytes())
    load_layers(minirun, tmp_path, [LayerBuilder().dir("o").tar_bytes(), top])
    store = minirun.store()
    upper = store.layer_dirs(store.resolve("test/layers:1"))[1]
    st = os.lstat(os.path.join(upper, "o", "gone"))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert os.getxattr(os.path.join(upper, "o"), "trusted.overlay.opaque") == b"y"
    assert not os.path.lexists(os.path.join(upper, "o", ".wh..wh..opq"))


def test_metadata_is_preserved(minirun, tmp_path):
    b = LayerBuilder(mtime=1_600_000_000)
    b.dir("d", 0o700, uid=1000, gid=1001)
    b.file("d/suid", b"#!/bin/sh\n", 0o4755, uid=1000, gid=1001)
    b.symlink("abs", "/etc/passwd")                    # absolute symlinks are legitimate
    b.file("orig", b"same inode")
    b.hardlink("link", "orig")
    dev = b.info("null", tarfile.CHRTYPE, 0o666)
    dev.devmajor, dev.devminor = 1, 3
    b.add(dev)
    b.add(b.info("fifo", tarfile.FIFOTYPE, 0o600))
    x = b.info("xattr", tarfile.REGTYPE, 0o644)
    x.pax_headers = {"SCHILY.xattr.user.color": "blue"}
    b.add(x, b"x")
    load_layers(minirun, tmp_path, [b.tar_bytes()])
    store = minirun.store()
    root = store.layer_dirs(store.resolve("test/layers:1"))[0]
    p = lambda n: os.path.join(root, n)
    st = os.lstat(p("d/suid"))
    assert stat.S_IMODE(st.st_mode) == 0o4755 and (st.st_uid, st.st_gid) == (1000, 1001)
    assert int(st.st_mtime) == 1_600_000_000
    st = os.lstat(p("d"))
    assert stat.S_IMODE(st.st_mode) == 0o700 and int(st.st_mtime) == 1_600_000_000
    assert os.readlink(p("abs")) == "/etc/passwd"
    assert os.lstat(p("link")).st_ino == os.lstat(p("orig")).st_ino
    st = os.lstat(p("null"))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert stat.S_ISFIFO(os.lstat(p("fifo")).st_mode)
    assert os.getxattr(p("xattr"), "user.color") == b"blue"


def hostile_cases(outside):
    """Each a (description, layer tar) that tries to write into *outside*."""
    o = str(outside)
    yield "dot-dot", LayerBuilder().file("../../../../../../" + o.lstrip("/") + "/pwned",
                                         b"x").tar_bytes()
    yield "absolute", LayerBuilder().file(o + "/pwned", b"x").tar_bytes()
    yield "symlink-then-write", (LayerBuilder().symlink("evil", o)
                                 .file("evil/pwned", b"x").tar_bytes())
    yield "relative-symlink-then-write", (LayerBuilder().symlink("evil", "../../../../../..")
                                          .file("evil/" + o.lstrip("/") + "/pwned", b"x")
                                          .tar_bytes())
    yield "hardlink-outside", LayerBuilder().hardlink("h", "../../../../../../" + o.lstrip("/")
                                                      + "/victim").tar_bytes()
    yield "hardlink-through-symlink", (LayerBuilder().symlink("s", o).hardlink("h", "s/victim")
                                       .tar_bytes())
    yield "whiteout-outside", LayerBuilder().file("../../../../../../" + o.lstrip("/")
                                                  + "/.wh.victim", b"").tar_bytes()
    yield "whiteout-through-symlink", (LayerBuilder().symlink("s", o).file("s/.wh.victim", b"")
                                       .tar_bytes())
    yield "opaque-through-symlink", (LayerBuilder().symlink("s", o)
                                     .file("s/.wh..wh..opq", b"").tar_bytes())


@pytest.mark.parametrize("case", [c for c, _ in hostile_cases("/x")])
def test_hostile_layer_is_rejected_and_leaves_nothing(minirun, tmp_path, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("intact")
    tar = dict(hostile_cases(outside))[case]
    good = LayerBuilder().file("fine", b"ok").tar_bytes()
    p = load_layers(minirun, tmp_path, [good, tar], check=False)
    assert p.returncode == 1
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: ") and "Traceback" not in p.stderr
    assert sorted(os.listdir(outside)) == ["victim"]
    assert (outside / "victim").read_text() == "intact"
    assert "trusted.overlay.opaque" not in os.listxattr(outside)
    layers = os.path.join(minirun.root, "layers")
    assert sorted(os.listdir(layers)) == [".tmp", "l"]              # no layer, whole or partial
    assert os.listdir(os.path.join(layers, ".tmp")) == []
    assert os.listdir(os.path.join(layers, "l")) == []
    assert minirun("images", "-q").stdout == ""
    assert os.listdir(os.path.join(minirun.root, "blobs", "sha256")) == []


def test_layers_and_containers_are_placed_apart_from_what_was_removed(loaded):
    """On ext4, the directories that take a layer's or a container's files carry chattr +T
    (fsutil.spread_subdirs): each new tree gets a block group of its own instead of the one
    where trees were just removed (without a journal, each create there scans past every
    inode freed in the last minutes). Elsewhere the flag is refused and nothing fails."""
    kind = subprocess.run(["stat", "-f", "-c", "%T", loaded.root], capture_output=True,
                          text=True, check=True).stdout.strip()
    if kind != "ext2/ext3":
        pytest.skip(f"the flag is ext4's; the state root is on {kind}")
    loaded("run", "--rm", "--network", "none", "busybox", "true")
    for d in ("layers/.tmp", "containers"):
        flags = subprocess.run(["lsattr", "-d", os.path.join(loaded.root, d)],
                               capture_output=True, text=True, check=True).stdout.split()[0]
        assert "T" in flags, (d, flags)

    from minirun.fsutil import spread_subdirs
    shm = tempfile.mkdtemp(dir="/dev/shm")           # tmpfs: no such flag
    try:
        assert spread_subdirs(shm) is False
    finally:
        os.rmdir(shm)
