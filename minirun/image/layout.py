"""Writing OCI image layouts: used by the busybox recipe and by the tests.

``LayerBuilder`` makes a reproducible tar layer in memory (fixed owners and
mtimes, gzip without a timestamp); ``write_layout`` turns layers and a
config into an OCI image layout directory that ``minirun load`` reads.
"""
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile

from . import manifest as mf

GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
TAR_LAYER = "application/vnd.oci.image.layer.v1.tar"


class LayerBuilder:
    def __init__(self, mtime=0):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)
        self.mtime = mtime

    def info(self, name, kind, mode, uid=0, gid=0):
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, mode, self.mtime
        info.uid, info.gid = uid, gid
        return info

    def add(self, info, data=None):
        if data is not None:
            info.size = len(data)
            self.tar.addfile(info, io.BytesIO(data))
        else:
            self.tar.addfile(info)
        return self

    def dir(self, name, mode=0o755, **kw):
        return self.add(self.info(name, tarfile.DIRTYPE, mode, **kw))

    def file(self, name, data, mode=0o644, **kw):
        return self.add(self.info(name, tarfile.REGTYPE, mode, **kw), data)

    def symlink(self, name, target):
        info = self.info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        return self.add(info)

    def hardlink(self, name, target):
        info = self.info(name, tarfile.LNKTYPE, 0o644)
        info.linkname = target
        return self.add(info)

    def tar_bytes(self):
        self.tar.close()
        return self.buf.getvalue()


def gzip_bytes(raw):
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as f:
        f.write(raw)
    return out.getvalue()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob(out, data, media_type):
    digest = sha256(data)
    with open(os.path.join(out, "blobs", "sha256", digest.split(":")[1]), "wb") as f:
        f.write(data)
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def write_layout(out, tars, config, name=None, compress=True):
    """Write an OCI layout at *out* holding one image.

    *tars* are plain tar bytes, lowest layer first; *config* is the image
    config without ``rootfs`` (added here). Returns the manifest descriptor.
    """
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "blobs", "sha256"))
    config = dict(config, rootfs={"type": "layers", "diff_ids": [sha256(t) for t in tars]})
    config.setdefault("os", "linux")
    config.setdefault("architecture", mf.host_platform()[1])
    layers = [_blob(tmp, gzip_bytes(t), GZIP_LAYER) if compress else _blob(tmp, t, TAR_LAYER)
              for t in tars]
    manifest = {"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST,
                "config": _blob(tmp, mf.dumps(config), mf.OCI_CONFIG), "layers": layers}
    desc = _blob(tmp, mf.dumps(manifest), mf.OCI_MANIFEST)
    entry = dict(desc, platform={"architecture": config["architecture"], "os": config["os"]})
    if name:
        entry["annotations"] = {"io.containerd.image.name": name,
                                "org.opencontainers.image.ref.name": name.rpartition(":")[2]}
    with open(os.path.join(tmp, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": [entry]}, f)
    with open(os.path.join(tmp, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    return desc
