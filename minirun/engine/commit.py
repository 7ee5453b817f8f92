"""A container's changes: ``docker diff``, ``docker commit`` and ``docker export``.

Everything a container changed is in its overlay upper directory: new and
changed files as they are, a deleted one as a 0/0 character device (overlayfs'
whiteout), a directory whose lower content is hidden marked with the xattr
``trusted.overlay.opaque=y``. ``diff`` reads that; ``commit`` turns it into an
OCI layer (whiteouts as ``.wh.NAME`` files, opaque directories as
``.wh..wh..opq``) stacked on the container's image, with the config changes
``--change`` asks for; ``export`` is a tar of the whole merged file system,
read through a read-only overlay of the upper directory and the layers, mounted
only in a short-lived thread's mount namespace (as ``docker cp`` does).
"""
import gzip
import hashlib
import json
import os
import stat
import threading
import time

from ..errors import MinirunError
from ..image import manifest as mf
from ..image import reference
from ..image.layout import GZIP_LAYER
from ..image.unpack import read_xattrs
from ..runtime.rootfs import mount_readonly_view
from .copy import BLOCK, private_mounts, tar_file, tar_header, tar_path
from .options import OptionError

ZSTD_LAYER = "application/vnd.oci.image.layer.v1.tar+zstd"
OPAQUE_XATTR = "trusted.overlay.opaque"
CHANGED, ADDED, DELETED = 0, 1, 2         # Docker's change kinds


def _is_whiteout(st):
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path):
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _walk(upper):
    """(relative path, lstat) of everything in the upper directory, parents first."""
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(upper, rel)) as entries:
            for entry in sorted(entries, key=lambda e: e.name, reverse=True):
                path = f"{rel}/{entry.name}" if rel else entry.name
                st = entry.stat(follow_symlinks=False)
                yield path, st
                if stat.S_ISDIR(st.st_mode):
                    stack.append(path)


def _mount_points(spec):
    """What the runtime made in the upper directory only to mount something on (/etc/hosts &
    co., a volume's directory): not the container's own change, so never listed or
    committed, as in Docker."""
    return {t.lstrip("/") for t in [*spec.etc_files, *(m.target for m in spec.mounts)]}


def _changed(spec):
    skip = _mount_points(spec)
    kept = [(rel, st) for rel, st in sorted(_walk(spec.upper), key=lambda x: x[0])
            if rel not in skip and not any(rel.startswith(p + "/") for p in skip)]
    # A directory copied up only to hold a mount point (/etc for /etc/hosts) is no change
    # of the container's either: unless something else changed in it, or its mode or owner.
    holders = set()
    for point in skip:
        while "/" in point:
            point = point.rpartition("/")[0]
            holders.add(point)
    children = {}
    for rel, _ in kept:
        children.setdefault(rel.rpartition("/")[0], []).append(rel)
    lowers = [os.path.join(spec.layers_dir, name) for name in reversed(spec.lower)]  # top first
    dropped = set()
    for rel, st in sorted(kept, key=lambda x: -x[0].count("/")):     # deepest first
        if rel in holders and stat.S_ISDIR(st.st_mode) \
                and all(c in dropped for c in children.get(rel, ())) \
                and _as_below(rel, st, lowers) and not _opaque(os.path.join(spec.upper, rel)):
            dropped.add(rel)
    return [(rel, st) for rel, st in kept if rel not in dropped]


def _as_below(rel, st, lowers):
    """Has the topmost lower layer with *rel* it of the same type, mode and owner as *st*?"""
    for lower in lowers:
        try:
            low = os.lstat(os.path.join(lower, rel))
        except FileNotFoundError:
            continue
        return (low.st_mode, low.st_uid, low.st_gid) == (st.st_mode, st.st_uid, st.st_gid)
    return False


def changes(spec):
    """[{"Path": "/etc/x", "Kind": 0|1|2}] as ``docker diff`` lists them."""
    lowers = [os.path.join(spec.layers_dir, name) for name in spec.lower]
    out = []
    for rel, st in _changed(spec):
        if _is_whiteout(st):
            kind = DELETED
        else:
            in_lower = any(os.path.lexists(os.path.join(l, rel)) for l in lowers)
            kind = CHANGED if in_lower else ADDED
        out.append({"Path": "/" + rel, "Kind": kind})
    return out


# -- commit ------------------------------------------------------------------------------
def layer_tar(spec, clamp=None):
    """The upper directory as an OCI layer tar, in chunks; *clamp*: no time later than this
    (SOURCE_DATE_EPOCH, for a reproducible build)."""
    upper = spec.upper
    fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for rel, st in _changed(spec):
            parent, _, name = rel.rpartition("/")
            if _is_whiteout(st):
                yield tar_header(f"{parent}/.wh.{name}" if parent else f".wh.{name}",
                                 _Empty(st), clamp=clamp)
                continue
            pfd = os.open(parent or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                          | os.O_CLOEXEC, dir_fd=fd)
            try:
                xattrs = read_xattrs(os.path.join(upper, rel))   # file capabilities, user.*
                if stat.S_ISREG(st.st_mode):
                    yield from tar_file(pfd, name, rel, clamp, xattrs)
                    continue
                header = tar_header(rel, st, os.readlink(name, dir_fd=pfd)
                                    if stat.S_ISLNK(st.st_mode) else "", clamp, xattrs)
                if header:
                    yield header
                if stat.S_ISDIR(st.st_mode) and _opaque(os.path.join(upper, rel)):
                    yield tar_header(f"{rel}/.wh..wh..opq", _Empty(st), clamp=clamp)
            finally:
                os.close(pfd)
        yield b"\0" * (2 * BLOCK)
    finally:
        os.close(fd)


class _Empty:
    """The stat of an empty regular file, owned by root: what a whiteout entry is."""

    def __init__(self, st):
        self.st_mode, self.st_uid, self.st_gid = stat.S_IFREG | 0o644, 0, 0
        self.st_size, self.st_mtime = 0, st.st_mtime


CHANGES = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER",
           "VOLUME", "WORKDIR")


def apply_changes(config, changes):
    """``--change 'CMD ["sh"]'``-style Dockerfile instructions applied to an image config."""
    config = dict(config)
    for line in changes:
        word, _, rest = line.strip().partition(" ")
        word, rest = word.upper(), rest.strip()
        if word not in CHANGES:
            raise OptionError(f"{word} is not a valid change command")
        if word in ("CMD", "ENTRYPOINT"):
            config["Cmd" if word == "CMD" else "Entrypoint"] = _exec_form(rest)
        elif word == "ENV":
            key, sep, value = rest.partition("=") if "=" in rest.split(" ")[0] else \
                rest.partition(" ")
            env = [e for e in config.get("Env") or [] if e.split("=", 1)[0] != key]
            config["Env"] = env + [f"{key}={value.strip()}"]
        elif word == "EXPOSE":
            config["ExposedPorts"] = {**(config.get("ExposedPorts") or {}),
                                      **{(p if "/" in p else p + "/tcp"): {}
                                         for p in rest.split()}}
        elif word == "LABEL":
            key, _, value = rest.partition("=")
            config["Labels"] = {**(config.get("Labels") or {}), key: value.strip('"')}
        elif word == "VOLUME":
            paths = _exec_form(rest) if rest.startswith("[") else rest.split()
            config["Volumes"] = {**(config.get("Volumes") or {}), **{p: {} for p in paths}}
        elif word == "ONBUILD":
            config["OnBuild"] = (config.get("OnBuild") or []) + [rest]
        else:
            config[{"STOPSIGNAL": "StopSignal", "USER": "User",
                    "WORKDIR": "WorkingDir"}[word]] = rest
    return config


def _exec_form(text):
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            raise OptionError(f"invalid JSON in change: {text}") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise OptionError(f"invalid change: {text}")
        return value
    return ["/bin/sh", "-c", text]


def _reference(repo, tag):
    """repo + tag as clients send them: the docker CLI's import puts the tag in repo."""
    if not repo:
        return None
    return reference.parse(f"{repo}:{tag}" if tag else repo)


def commit(images, containers, row, repo=None, tag=None, comment="", author="", changes=()):
    """A new image: the container's image plus its upper directory as one more layer."""
    spec = containers.spec(row)
    base = images.config(row["image_id"])
    config = dict(base, config=apply_changes(base.get("config") or {}, changes))
    ref = _reference(repo, tag)
    with images.adding():
        layer = store_layer(images, layer_tar(spec))
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        config["created"] = now
        config["history"] = list(base.get("history") or []) + [
            {"created": now, "created_by": " ".join(spec.args), "comment": comment,
             **({"author": author} if author else {})}]
        if author:
            config["author"] = author
        image_id = add_image(images, config, images.manifest(row["image_id"])["layers"],
                             layer, parent=row["image_id"])
        if ref:
            images.tag(ref, image_id)
    return image_id


def add_image(images, config, layers, layer=None, media=GZIP_LAYER, parent=""):
    """Record an image: *config* (its rootfs gains *layer*'s diff ID) over the layer
    descriptors *layers*, plus *layer* ((digest, diff ID, size) or None); its ID."""
    layers = list(layers)
    if layer is not None:
        digest, diff_id, size = layer
        config = dict(config, rootfs={"type": "layers", "diff_ids": list(
            (config.get("rootfs") or {}).get("diff_ids") or []) + [diff_id]})
        layers.append({"mediaType": media, "digest": digest, "size": size})
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    config_digest = images.blobs.put_bytes(config_bytes, what="config")
    manifest = {"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST,
                "config": {"mediaType": mf.OCI_CONFIG, "digest": config_digest,
                           "size": len(config_bytes)},
                "layers": layers}
    return images.add_image(json.dumps(manifest, separators=(",", ":")).encode(), parent=parent)


def store_layer(images, chunks):
    """Gzip *chunks* into the blob store; (blob digest, diff ID, compressed size)."""
    r, w = os.pipe()
    diff = hashlib.sha256()
    result = {}

    def write():
        try:
            with os.fdopen(w, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb",
                                                        mtime=0) as gz:
                for chunk in chunks:
                    diff.update(chunk)
                    gz.write(chunk)
        except BaseException as e:
            result["error"] = e
    t = threading.Thread(target=write, daemon=True)
    t.start()
    with os.fdopen(r, "rb") as src:
        digest = images.blobs.put_stream(src, what="layer")
    t.join()
    if "error" in result:
        raise MinirunError(f"cannot write the layer: {result['error']}")
    return digest, "sha256:" + diff.hexdigest(), os.path.getsize(images.blobs.path(digest))


# -- export ------------------------------------------------------------------------------
def merged_view(spec):
    """A read-only view of the container's whole file system (its upper directory over its
    layers, no volumes): a descriptor of its root, in a mount namespace of its own."""
    def mount_root():
        mount_readonly_view(spec)
        return spec.rootfs
    return private_mounts(mount_root)


def export(spec):
    with merged_view(spec) as root:
        yield from tar_path(root, "/")


# -- import ------------------------------------------------------------------------------
def import_tar(images, path, repo=None, tag=None, changes=(), message=""):
    """``docker import``: the tar at *path* (plain, gzip or zstd: the layer store finds out)
    as the one layer of a new image; its config from *changes*."""
    from ..image import compression             # only import needs it
    ref = _reference(repo, tag)
    with open(path, "rb") as f:
        kind = compression.sniff(f.read(8))
    with images.adding():
        with open(path, "rb") as f:
            if not kind:                        # plain: gzip it, as a pushed layer would be
                blob, diff_id, size = store_layer(images, iter(lambda: f.read(1 << 20), b""))
            else:
                blob = images.blobs.put_stream(f, what="layer")
                size = os.path.getsize(images.blobs.path(blob))
                diff = hashlib.sha256()         # the uncompressed tar's digest
                with open(images.blobs.path(blob), "rb") as packed:
                    for chunk in compression.chunks(packed, kind):
                        diff.update(chunk)
                diff_id = "sha256:" + diff.hexdigest()
        media = GZIP_LAYER if kind in ("", "gzip") else ZSTD_LAYER
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        config = {"architecture": mf.host_platform()[1], "os": "linux", "created": now,
                  "config": apply_changes({}, changes),
                  "rootfs": {"type": "layers", "diff_ids": []},
                  "history": [{"created": now, "created_by": "docker import",
                               "comment": message or "Imported from -"}]}
        image_id = add_image(images, config, [], (blob, diff_id, size), media)
        if ref:
            images.tag(ref, image_id)
    return image_id
