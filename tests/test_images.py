"""The image store through the CLI: load, save, tag, rmi, inspect, prune, and digests."""
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from minirun.image.layout import LayerBuilder, write_layout

pytestmark = pytest.mark.root


def image_id(minirun, name="busybox"):
    return json.loads(minirun("image", "inspect", name).stdout)[0]["Id"]


def one_error_line(p):
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1, p
    assert len(lines) == 1 and lines[0].startswith("Error: "), p.stderr
    return lines[0]


def test_load_lists_busybox_like_docker_images(loaded):
    out = loaded("images").stdout.splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    cols = out[1].split()
    assert cols[:2] == ["busybox", "latest"] and len(cols[2]) == 12
    assert loaded("images", "-q").stdout.split() == [cols[2]]


def test_layers_are_shared_between_images(loaded, tmp_path):
    store = loaded.store()
    base = store.layer_dirs(store.resolve("busybox"))
    extra = LayerBuilder().file("hello", b"hi").tar_bytes()
    # A second image on top of busybox's layers reuses them: no second copy on disk.
    layout = str(tmp_path / "child")
    src = store.blobs
    tars = []
    for desc in store.manifest(store.resolve("busybox"))["layers"]:
        import gzip
        tars.append(gzip.decompress(src.read(desc["digest"])))
    write_layout(layout, tars + [extra], {}, "docker.io/library/child:1")
    loaded("load", "-i", layout)
    child = loaded.store().layer_dirs(loaded.store().resolve("child:1"))
    assert child[:2] == base and len(child) == 3
    assert len([d for d in os.listdir(os.path.join(loaded.root, "layers")) if len(d) == 64]) == 3


def test_save_then_load_gives_the_same_image(loaded, tmp_path, busybox_oci):
    archive = str(tmp_path / "bb.tar")
    loaded("save", "-o", archive, "busybox")
    names = tarfile.open(archive).getnames()
    assert "manifest.json" in names and "index.json" in names and "oci-layout" in names
    other = type(loaded)(str(tmp_path / "other"))
    assert other("load", "-i", archive).stdout.strip() == "Loaded image: busybox:latest"
    assert image_id(other) == image_id(loaded)
    assert other.store().config(image_id(other))["rootfs"] == \
        loaded.store().config(image_id(loaded))["rootfs"]


def test_legacy_docker_save_archive_loads(loaded, tmp_path):
    """The pre-25 layout: <id>/layer.tar, <id>.json config, manifest.json, repositories."""
    store = loaded.store()
    iid = store.resolve("busybox")
    config = store.blobs.read(iid)
    path = str(tmp_path / "legacy.tar")
    with tarfile.open(path, "w") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        layers = []
        import gzip
        for i, desc in enumerate(store.manifest(iid)["layers"]):
            add(f"layer{i}/layer.tar", gzip.decompress(store.blobs.read(desc["digest"])))
            add(f"layer{i}/VERSION", b"1.0")
            layers.append(f"layer{i}/layer.tar")
        add(iid.split(":")[1] + ".json", config)
        add("manifest.json", json.dumps([{"Config": iid.split(":")[1] + ".json",
                                          "RepoTags": ["legacy/bb:v1"],
                                          "Layers": layers}]).encode())
        add("repositories", b"{}")
    other = type(loaded)(str(tmp_path / "other"))
    assert "Loaded image: legacy/bb:v1" in other("load", "-i", path).stdout
    assert image_id(other, "legacy/bb:v1") == iid


def corrupt(path):
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        data[len(data) // 2] ^= 0xFF
        f.seek(0)
        f.write(data)


def blob_path(layout, digest):
    return os.path.join(layout, "blobs", "sha256", digest.split(":")[1])


@pytest.mark.parametrize("which", ["layer", "config"])
def test_blob_digest_mismatch_is_rejected(minirun, busybox_oci, tmp_path, which):
    layout = str(tmp_path / "bad")
    shutil.copytree(busybox_oci, layout)
    index = json.load(open(os.path.join(layout, "index.json")))
    manifest = json.load(open(blob_path(layout, index["manifests"][0]["digest"])))
    target = manifest["layers"][0] if which == "layer" else manifest["config"]
    corrupt(blob_path(layout, target["digest"]))
    err = one_error_line(minirun("load", "-i", layout, check=False))
    assert "digest mismatch" in err
    assert minirun("images", "-q").stdout == ""
    assert os.listdir(os.path.join(minirun.root, "blobs", "sha256")) == []


def test_diff_id_mismatch_is_rejected(minirun, tmp_path):
    layout = str(tmp_path / "bad")
    write_layout(layout, [LayerBuilder().file("a", b"a").tar_bytes()], {}, "docker.io/x/y:z")
    # Rewrite the config with a wrong diff ID, keeping every blob digest consistent.
    index_path = os.path.join(layout, "index.json")
    index = json.load(open(index_path))
    mpath = blob_path(layout, index["manifests"][0]["digest"])
    manifest = json.load(open(mpath))
    config = json.load(open(blob_path(layout, manifest["config"]["digest"])))
    config["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    def put(doc):
        raw = json.dumps(doc).encode()
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        open(blob_path(layout, digest), "wb").write(raw)
        return digest, len(raw)
    manifest["config"]["digest"], manifest["config"]["size"] = put(config)
    index["manifests"][0]["digest"], index["manifests"][0]["size"] = put(manifest)
    json.dump(index, open(index_path, "w"))
    err = one_error_line(minirun("load", "-i", layout, check=False))
    assert "diff ID mismatch" in err
    assert sorted(os.listdir(os.path.join(minirun.root, "layers"))) == [".tmp", "l"]


def test_tag_rmi_and_prune(loaded):
    iid = image_id(loaded)
    loaded("tag", "busybox", "localhost:5000/bb:v2")
    assert image_id(loaded, "localhost:5000/bb:v2") == iid
    err = one_error_line(loaded("rmi", iid[7:19], check=False))
    assert "must be forced" in err
    assert loaded("rmi", "busybox").stdout.strip() == "Untagged: busybox:latest"
    out = loaded("rmi", "localhost:5000/bb:v2").stdout
    assert f"Deleted: {iid}" in out
    assert loaded("images", "-q").stdout == ""
    assert "Total reclaimed space" in loaded("image", "prune").stdout
    assert os.listdir(os.path.join(loaded.root, "blobs", "sha256")) == []
    assert sorted(os.listdir(os.path.join(loaded.root, "layers"))) == [".tmp", "l"]


def test_prune_keeps_what_images_use(loaded):
    loaded("image", "prune")
    assert loaded("images", "-q").stdout.strip()
    store = loaded.store()
    for d in store.layer_dirs(store.resolve("busybox")):
        assert os.path.isdir(d)


@pytest.mark.parametrize("args,msg", [
    (["rmi", "nosuch"], "No such image: nosuch"),
    (["image", "inspect", "Bad:Name"], "invalid reference format"),
    (["tag", "nosuch", "x"], "No such image: nosuch"),
    (["load", "-i", "/nonexistent"], "no such file or directory"),
])
def test_user_errors_are_one_line(minirun, args, msg):
    assert msg in one_error_line(minirun(*args, check=False))


def test_usage_error_exits_2(minirun):
    p = minirun("load", check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_concurrent_loads_do_not_corrupt_the_store(minirun, busybox_oci):
    env = dict(os.environ, MINIRUN_ROOT=minirun.root)
    import sys
    procs = [subprocess.Popen([sys.executable, "-m", "minirun", "load", "-q", "-i", busybox_oci],
                              env=env, stderr=subprocess.PIPE) for _ in range(6)]
    for p in procs:
        assert p.wait(60) == 0, p.stderr.read()
    assert len(minirun("images", "-q").stdout.split()) == 1
    assert os.listdir(os.path.join(minirun.root, "layers", ".tmp")) == []


@pytest.mark.skipif(not shutil.which("podman"), reason="podman not installed")
def test_podman_save_archive_loads_and_podman_loads_ours(loaded, tmp_path):
    conf = tmp_path / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "vfs"\nrunroot = "{tmp_path}/prun"\n'
                    f'graphroot = "{tmp_path}/pgraph"\n')
    env = dict(os.environ, CONTAINERS_STORAGE_CONF=str(conf))
    ours = str(tmp_path / "ours.tar")
    loaded("save", "-o", ours, "busybox")
    podman = lambda *a: subprocess.run(["podman", "--cgroup-manager=cgroupfs", *a], env=env,
                                       check=True, capture_output=True, text=True)
    try:
        podman("load", "-i", ours)
        theirs = str(tmp_path / "theirs.tar")
        podman("save", "-o", theirs, "docker.io/library/busybox:latest")
        other = type(loaded)(str(tmp_path / "other"))
        other("load", "-i", theirs)
        assert image_id(other) == image_id(loaded)
    finally:
        subprocess.run(["podman", "--cgroup-manager=cgroupfs", "system", "reset", "-f"], env=env,
                       capture_output=True)
