"""Manifest and index handling: platform choice, media types, zstd layers."""
import os

import pytest

from minirun.image import manifest as mf


def entry(arch, os_="linux", variant=None, attestation=False, digest="a"):
    platform = {"architecture": arch, "os": os_}
    if variant:
        platform["variant"] = variant
    e = {"mediaType": mf.OCI_MANIFEST, "digest": "sha256:" + digest * 64, "size": 1,
         "platform": platform}
    if attestation:
        e["annotations"] = {"vnd.docker.reference.type": "attestation-manifest"}
    return e


def test_index_picks_the_host_platform_and_skips_attestations():
    index = {"manifests": [entry("unknown", "unknown", attestation=True, digest="0"),
                           entry("arm64", variant="v8", digest="1"),
                           entry("amd64", digest="2"),
                           entry("amd64", "windows", digest="3")]}
    assert mf.select_platform(index, ("linux", "amd64", None))["digest"].endswith("2" * 64)
    assert mf.select_platform(index, ("linux", "arm64", "v8"))["digest"].endswith("1" * 64)
    host = mf.host_platform()
    if host[1] in ("amd64", "arm64"):
        assert mf.select_platform(index)["platform"]["architecture"] == host[1]


def test_variant_must_match_when_both_name_one():
    index = {"manifests": [entry("arm", variant="v6", digest="1"),
                           entry("arm", variant="v7", digest="2")]}
    assert mf.select_platform(index, ("linux", "arm", "v7"))["digest"].endswith("2" * 64)


def test_no_matching_platform_is_a_clear_error():
    with pytest.raises(mf.ManifestError, match="no image for platform linux/s390x"):
        mf.select_platform({"manifests": [entry("amd64")]}, ("linux", "s390x", None))


def test_manifest_with_unknown_layer_type_is_rejected():
    doc = {"schemaVersion": 2, "config": {"digest": "sha256:" + "a" * 64, "size": 2},
           "layers": [{"mediaType": "application/x-evil", "digest": "sha256:" + "b" * 64,
                       "size": 3}]}
    with pytest.raises(mf.ManifestError, match="unsupported layer media type"):
        mf.parse_manifest(doc)


@pytest.mark.root
def test_zstd_layers_unpack(minirun, tmp_path):
    import json
    import zstandard
    from minirun.image.layout import LayerBuilder, sha256, write_layout
    tar = LayerBuilder().dir("etc").file("etc/zstd-was-here", b"yes").tar_bytes()
    layout = str(tmp_path / "z")
    write_layout(layout, [tar], {}, "docker.io/library/zstd:1", compress=False)
    # Swap the plain layer for its zstd form; the diff ID stays the plain tar's digest.
    index = json.load(open(os.path.join(layout, "index.json")))
    mpath = os.path.join(layout, "blobs", "sha256", index["manifests"][0]["digest"][7:])
    manifest = json.load(open(mpath))
    z = zstandard.ZstdCompressor().compress(tar)
    open(os.path.join(layout, "blobs", "sha256", sha256(z)[7:]), "wb").write(z)
    manifest["layers"][0] = {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                             "digest": sha256(z), "size": len(z)}
    raw = json.dumps(manifest).encode()
    open(os.path.join(layout, "blobs", "sha256", sha256(raw)[7:]), "wb").write(raw)
    index["manifests"][0].update(digest=sha256(raw), size=len(raw))
    json.dump(index, open(os.path.join(layout, "index.json"), "w"))
    minirun("load", "-i", layout)
    store = minirun.store()
    top = store.layer_dirs(store.resolve("zstd:1"))[0]
    assert open(os.path.join(top, "etc", "zstd-was-here")).read() == "yes"
