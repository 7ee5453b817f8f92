"""Import and export of images: OCI layouts and ``docker save`` archives.

``load`` accepts an OCI image layout (directory or tar), a legacy
``docker save`` / ``podman save`` archive (``manifest.json`` + ``<id>/layer.tar``)
and the newer Docker form that is both at once. ``save`` writes that newer
form: ``docker load`` and ``podman load`` read its ``manifest.json``, OCI
tools its ``index.json``.
"""
import io
import json
import os
import shutil
import tarfile
import tempfile

from ..errors import MinirunError
from . import manifest as mf
from . import reference
from .compression import DecompressingReader, sniff
from .digest import check_digest, hex_of, sha256_bytes

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
REF_NAME = "org.opencontainers.image.ref.name"
IMAGE_NAME = "io.containerd.image.name"


class ArchiveError(MinirunError):
    pass


# -- sources: a directory or a tar, read by relative path ---------------
class DirSource:
    def __init__(self, path):
        self.path = path

    def has(self, name):
        return os.path.isfile(os.path.join(self.path, name))

    def open(self, name):
        try:
            return open(os.path.join(self.path, name), "rb")
        except FileNotFoundError:
            raise ArchiveError(f"{name} is missing from {self.path}") from None

    def close(self):
        pass


class TarSource:
    def __init__(self, path):
        try:
            self.tar = tarfile.open(path, "r:*")
            self.names = {m.name.removeprefix("./"): m for m in self.tar.getmembers()}
        except (tarfile.TarError, EOFError, OSError) as e:
            raise ArchiveError(f"{path}: not an image archive ({e})") from None

    def has(self, name):
        return name in self.names

    def open(self, name):
        member = self.names.get(name)
        f = self.tar.extractfile(member) if member is not None else None
        if f is None:
            raise ArchiveError(f"{name} is missing from the archive")
        return f

    def close(self):
        self.tar.close()


def _read(src, name):
    with src.open(name) as f:
        return f.read(mf.MAX_MANIFEST + 1)


def open_source(path):
    if os.path.isdir(path):
        return DirSource(path)
    if os.path.isfile(path):
        return TarSource(path)
    raise ArchiveError(f"{path}: no such file or directory")


# -- load ------------------------------------------------------------------
def load(store, path):
    """Load every image in *path*; return [(image ID, [references tagged])]."""
    src = open_source(path)
    try:
        with store.adding():
            if src.has("manifest.json"):
                return _load_docker(store, src)
            if src.has("index.json"):
                return _load_oci(store, src)
            raise ArchiveError(f"{path}: neither an OCI layout nor a docker save archive")
    finally:
        src.close()


def _import_blob(store, src, desc, what):
    digest = check_digest(desc["digest"])
    if not store.blobs.has(digest):
        with src.open("blobs/sha256/" + hex_of(digest)) as f:
            store.blobs.put_stream(f, digest, desc.get("size"), what)
    return digest


def _load_oci(store, src):
    index = mf.loads(_read(src, "index.json"), "index.json")
    loaded = []
    for desc in index.get("manifests") or []:
        mf.descriptor(desc, "index.json entry")
        names = _oci_names(desc.get("annotations") or {})
        if desc.get("mediaType") in mf.INDEX_TYPES:
            _import_blob(store, src, desc, "index")
            desc = mf.select_platform(mf.loads(store.blobs.read(desc["digest"]), "index"))
        loaded.append(_load_oci_manifest(store, src, desc, names))
    if not loaded:
        raise ArchiveError("the archive holds no image")
    return loaded


def _oci_names(annotations):
    """References an OCI layout entry names: a full name, or none for a bare tag."""
    for key in (IMAGE_NAME, REF_NAME):
        value = annotations.get(key)
        if value and ("/" in value or key == IMAGE_NAME):
            return [reference.parse(value)]
    return []


def _load_oci_manifest(store, src, desc, names):
    _import_blob(store, src, desc, "manifest")
    raw = store.blobs.read(desc["digest"])
    config_desc, layers = mf.parse_manifest(mf.loads(raw))
    _import_blob(store, src, config_desc, "config")
    for layer in layers:
        _import_blob(store, src, layer, "layer")
    image_id = store.add_image(raw)
    for ref in names:
        store.tag(ref, image_id)
    return image_id, names


def _load_docker(store, src):
    try:
        entries = json.loads(_read(src, "manifest.json"))
    except ValueError as e:
        raise ArchiveError(f"manifest.json is not valid JSON: {e}") from None
    if not isinstance(entries, list) or not entries:
        raise ArchiveError("manifest.json lists no image")
    loaded = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                or not isinstance(entry.get("Layers"), list):
            raise ArchiveError("manifest.json entry lacks Config or Layers")
        config_raw = _read(src, entry["Config"])
        config_digest = store.blobs.put_bytes(config_raw, what="config")
        _expect_named_digest(entry["Config"], config_digest)
        layers = [_import_docker_layer(store, src, name) for name in entry["Layers"]]
        manifest = {
            "schemaVersion": 2, "mediaType": mf.OCI_MANIFEST,
            "config": {"mediaType": mf.OCI_CONFIG, "digest": config_digest,
                       "size": len(config_raw)},
            "layers": layers,
        }
        image_id = store.add_image(mf.dumps(manifest))
        refs = [reference.parse(t) for t in entry.get("RepoTags") or []]
        for ref in refs:
            store.tag(ref, image_id)
        loaded.append((image_id, refs))
    return loaded


def _expect_named_digest(name, digest):
    """Files named by digest (``blobs/sha256/<hex>``, ``<hex>.json``) must match it."""
    base = os.path.basename(name).removesuffix(".json")
    if len(base) == 64 and all(c in "0123456789abcdef" for c in base) and base != hex_of(digest):
        raise ArchiveError(f"{name}: content digest is {digest}")


def _import_docker_layer(store, src, name):
    with src.open(name) as f:
        digest = store.blobs.put_stream(f, what=f"layer {name}")
    with store.blobs.open(digest) as f:
        compression = sniff(f.read(4))
    media = {"": "application/vnd.oci.image.layer.v1.tar",
             "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
             "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}[compression]
    return {"mediaType": media, "digest": digest, "size": os.path.getsize(store.blobs.path(digest))}


# -- save ------------------------------------------------------------------
def save(store, names, out_path):
    """Write the images *names* as one archive that docker, podman and OCI tools load."""
    images = {}        # image ID -> [references]
    for name in names:
        image_id = store.resolve(name)
        refs = images.setdefault(image_id, [])
        if not reference.looks_like_id(name):
            refs.append(reference.parse(name))
    tmpdir = tempfile.mkdtemp(dir=store.blobs.tmp, prefix="save-")
    out_tmp = out_path + ".tmp"
    try:
        with tarfile.open(out_tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            written = set()
            docker_manifest, index = [], []
            for image_id, refs in images.items():
                d_entry, m_desc = _save_image(store, tar, tmpdir, image_id, refs, written)
                docker_manifest.append(d_entry)
                index.extend(dict(m_desc, annotations={IMAGE_NAME: str(r), REF_NAME: r.tag})
                             for r in refs)
                if not refs:
                    index.append(m_desc)
            _add_bytes(tar, "oci-layout", OCI_LAYOUT)
            _add_bytes(tar, "index.json", mf.dumps(
                {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": index}))
            _add_bytes(tar, "manifest.json", json.dumps(docker_manifest).encode())
        os.rename(out_tmp, out_path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
        if os.path.exists(out_tmp):
            os.unlink(out_tmp)


def _save_image(store, tar, tmpdir, image_id, refs, written):
    """Add one image's blobs; return its manifest.json entry and its OCI descriptor."""
    manifest = store.manifest(image_id)
    config_raw = store.blobs.read(image_id)
    diff_ids = json.loads(config_raw)["rootfs"]["diff_ids"]
    _add_blob(tar, image_id, lambda: io.BytesIO(config_raw), len(config_raw), written)
    layers = []
    for desc, diff_id in zip(manifest["layers"], diff_ids):
        # Docker's own save writes uncompressed layers, named by their diff ID.
        if diff_id not in written:
            plain = _decompressed(store, desc["digest"], tmpdir)
            _add_blob(tar, diff_id, lambda: open(plain, "rb"), os.path.getsize(plain), written)
            os.unlink(plain)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                       "digest": diff_id, "size": _blob_size(tar, diff_id)})
    oci_manifest = mf.dumps({
        "schemaVersion": 2, "mediaType": mf.OCI_MANIFEST,
        "config": {"mediaType": mf.OCI_CONFIG, "digest": image_id, "size": len(config_raw)},
        "layers": layers})
    m_digest = sha256_bytes(oci_manifest)
    _add_blob(tar, m_digest, lambda: io.BytesIO(oci_manifest), len(oci_manifest), written)
    entry = {"Config": "blobs/sha256/" + hex_of(image_id),
             "RepoTags": [f"{r.familiar_repository}:{r.tag}" for r in refs],
             "Layers": ["blobs/sha256/" + hex_of(d) for d in diff_ids]}
    return entry, {"mediaType": mf.OCI_MANIFEST, "digest": m_digest, "size": len(oci_manifest)}


def _decompressed(store, digest, tmpdir):
    """The layer blob as a plain tar file in *tmpdir*."""
    path = os.path.join(tmpdir, "layer.tar")
    with store.blobs.open(digest) as f, open(path, "wb") as out:
        reader = DecompressingReader(f, sniff(f.peek(4)[:4]))
        shutil.copyfileobj(reader, out, 1 << 20)
    return path


def _blob_size(tar, digest):
    return tar.getmember("blobs/sha256/" + hex_of(digest)).size


def _add_blob(tar, digest, opener, size, written):
    if digest in written:
        return
    written.add(digest)
    if "blobs" not in written:
        written.add("blobs")
        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
    info = tarfile.TarInfo("blobs/sha256/" + hex_of(digest))
    info.size, info.mode = size, 0o644
    with opener() as f:
        tar.addfile(info, f)


def _add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))
