"""Manifests, indexes and image configs: OCI and Docker schema2.

Only what minirun needs is read; everything untrusted is checked before use.
"""
import os

from .. import cjson
from ..errors import MinirunError
from .digest import check_digest

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)

# Layer media type → compression ("" is a plain tar).
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar": "",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd": "zstd",
}

MAX_MANIFEST = 4 * 1024 * 1024 + 64 * 1024   # the distribution spec's 4 MiB, with room


class ManifestError(MinirunError, ValueError):
    pass


def loads(data, what="manifest"):
    if len(data) > MAX_MANIFEST:
        raise ManifestError(f"{what} is too large ({len(data)} bytes)")
    try:
        doc = cjson.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ManifestError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{what} is not a JSON object")
    return doc


def media_type(doc, fallback=None):
    """The document's media type; OCI allows it to be omitted, so infer it."""
    mt = doc.get("mediaType") or fallback
    if mt:
        return mt
    if "manifests" in doc:
        return OCI_INDEX
    if "layers" in doc:
        return OCI_MANIFEST
    raise ManifestError("document is neither a manifest nor an index")


def descriptor(d, what="descriptor"):
    """Validate a descriptor dict and return it."""
    if not isinstance(d, dict):
        raise ManifestError(f"{what} is not an object")
    check_digest(d.get("digest"))
    size = d.get("size")
    if not isinstance(size, int) or size < 0:
        raise ManifestError(f"{what} has a bad size: {size!r}")
    if not isinstance(d.get("mediaType", ""), str):
        raise ManifestError(f"{what} has a bad mediaType")
    return d


def parse_manifest(doc):
    """Return (config descriptor, [layer descriptors]) of an image manifest."""
    if doc.get("schemaVersion") != 2:
        raise ManifestError("unsupported manifest schemaVersion (only 2 is supported)")
    config = descriptor(doc.get("config"), "config descriptor")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ManifestError("manifest has no layer list")
    layers = [descriptor(l, "layer descriptor") for l in layers]
    for l in layers:
        if l.get("mediaType") not in LAYER_TYPES:
            raise ManifestError(f"unsupported layer media type {l.get('mediaType')!r}")
    return config, layers


def host_platform():
    """(os, architecture, variant) in OCI's vocabulary for this machine."""
    machine = os.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm",
            "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x",
            "riscv64": "riscv64"}.get(machine, machine)
    variant = {"aarch64": "v8", "armv7l": "v7", "armv6l": "v6"}.get(machine)
    return "linux", arch, variant


def select_platform(index, want=None):
    """Pick the manifest for *want* (default: this host) from an index.

    Attestation manifests (``vnd.docker.reference.type``) and unknown
    platforms are skipped; a missing variant matches any.
    """
    os_, arch, variant = want or host_platform()
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise ManifestError("index has no manifest list")
    best = None
    for m in manifests:
        descriptor(m, "index entry")
        if (m.get("annotations") or {}).get("vnd.docker.reference.type"):
            continue
        p = m.get("platform") or {}
        if p.get("os") != os_ or p.get("architecture") != arch:
            continue
        if p.get("variant") in (None, variant) or variant is None:
            if p.get("variant") == variant:
                return m
            best = best or m
    if best is None:
        raise ManifestError(f"no image for platform {os_}/{arch}" + (f"/{variant}" if variant else ""))
    return best


def parse_config(data):
    """Validate an image config; return the dict."""
    doc = loads(data, "image config")
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise ManifestError("image config has no rootfs of type 'layers'")
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list):
        raise ManifestError("image config has no rootfs.diff_ids")
    for d in diff_ids:
        check_digest(d)
    cfg = doc.get("config")
    if cfg is not None and not isinstance(cfg, dict):
        raise ManifestError("image config 'config' is not an object")
    return doc


def dumps(doc):
    """Canonical-ish bytes for manifests minirun writes itself."""
    return cjson.dumps(doc, separators=(",", ":"), sort_keys=False).encode()


def ensure_platform_matches(config):
    """Refuse an image for another OS; an arch mismatch is only a warning in Docker."""
    if config.get("os") not in (None, "linux"):
        raise ManifestError(f"image is for {config.get('os')}, not linux")

