"""``minirun pull``: a registry's image into the local store, verified all the way.

    manifest (or index → this platform's manifest), digests checked
    config blob
    layers, in parallel, each one pipelined:
        HTTP body ─┬─▶ sha256 + blob file  (renamed into the store once the digest matches)
                   └─▶ pipe ─▶ decompress ─▶ sha256 (diff ID) ─▶ safe tar extraction
        the unpacked layer is published only when both digests match
    the image record and its tag

Layers already in the store are skipped. A failed pull leaves nothing (the
store's ``adding()`` rolls back what it wrote).
"""
import errno
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from ..errors import MinirunError
from ..image import manifest as mf
from ..image.digest import DigestError, sha256_bytes
from .client import Client

PARALLEL = 3        # Docker's default max-concurrent-downloads
MAX_CONFIG = 16 << 20   # an image config is JSON of a few kB; a larger "config" is an attack


def short(digest):
    return digest.split(":", 1)[1][:12]


class Pull:
    def __init__(self, store, ref, client=None, progress=lambda *a, **k: None):
        self.store, self.ref, self.progress = store, ref, progress
        self.client = client or Client(ref.domain)
        self.repo = ref.path
        self.manifest = self.digest = None

    def resolve(self):
        """The image's manifest (this platform's, from an index), verified. A pull's first
        step, apart so that minirund can answer "not found" before its progress stream."""
        data, self.digest = self._manifest(self.ref.digest or self.ref.tag)
        doc = mf.loads(data)
        if mf.media_type(doc) in mf.INDEX_TYPES:
            chosen = mf.select_platform(doc)
            child, _ = self._manifest(chosen["digest"])
            doc, data = mf.loads(child), child
        if mf.media_type(doc) not in mf.MANIFEST_TYPES:
            raise MinirunError(f"{self.ref}: not an image (media type {mf.media_type(doc)})")
        self.manifest = data
        return self

    def run(self):
        """Pull; return (image ID, manifest digest, whether anything new was downloaded)."""
        if self.manifest is None:
            self.resolve()
        data, digest = self.manifest, self.digest
        config_desc, layers = mf.parse_manifest(mf.loads(data))
        with self.store.adding():
            new = self._blob(config_desc)
            config = mf.parse_config(self.store.blobs.read(config_desc["digest"]))
            diff_ids = config["rootfs"]["diff_ids"]
            if len(diff_ids) != len(layers):
                raise mf.ManifestError("manifest and config disagree on the number of layers")
            with ThreadPoolExecutor(PARALLEL) as pool:
                fetched = list(pool.map(self._layer, layers, diff_ids))
            image_id = self.store.add_image(data)
            if self.ref.tag:                  # pulled by digest alone: no tag, as in Docker
                self.store.tag(self.ref, image_id)
        return image_id, digest, new or any(fetched)

    def _manifest(self, reference):
        data, _, header = self.client.manifest(self.repo, reference)
        digest = sha256_bytes(data)
        expected = reference if reference.startswith("sha256:") else header
        if expected and expected.startswith("sha256:") and expected != digest:
            raise DigestError(f"manifest digest mismatch: expected {expected}, got {digest}")
        return data, digest

    def _blob(self, desc):
        """A small blob (the config), straight into the store; True if it was new."""
        if self.store.blobs.has(desc["digest"]):
            return False
        if not isinstance(desc.get("size"), int) or not 0 <= desc["size"] <= MAX_CONFIG:
            raise DigestError(f"image config {desc['digest']}: its size {desc.get('size')!r} "
                              f"is not a number up to {MAX_CONFIG}")
        resp = self.client.blob(self.repo, desc["digest"])
        self.store.blobs.put_stream(resp, desc["digest"], desc.get("size"), "config")
        return True

    def _layer(self, desc, diff_id):
        digest, layer_id = desc["digest"], short(desc["digest"])
        if self.store.blobs.has(digest) and self.store.layers.has(diff_id):
            self.progress(layer_id, "Already exists")
            return False
        self.progress(layer_id, "Pulling fs layer")
        resp = self.client.blob(self.repo, digest)
        counted = Counting(resp, lambda n: self.progress(layer_id, "Downloading", n,
                                                         desc.get("size")))
        if self.store.layers.has(diff_id):
            self.store.blobs.put_stream(counted, digest, desc.get("size"), "layer")
        else:
            self._download_and_unpack(counted, desc, diff_id)
        self.progress(layer_id, "Pull complete")
        return True

    def _download_and_unpack(self, stream, desc, diff_id):
        """One layer: the download feeds both the blob file and, through a pipe, the unpacker."""
        read_end, write_end = os.pipe()
        outcome = {}
        blob_checked = threading.Event()

        def verified():
            blob_checked.wait()
            if "error" in outcome:
                raise DigestError(f"layer {desc['digest']}: {outcome['error']}")

        reader = os.fdopen(read_end, "rb", buffering=1 << 20)

        def unpack():
            try:
                with reader:               # closed early, it stops the download too
                    self.store.layers.unpack(diff_id, reader,
                                             mf.LAYER_TYPES.get(desc.get("mediaType")), verified)
            except BaseException as e:
                outcome["unpack"] = e
        unpacker = threading.Thread(target=unpack, name="unpack")
        unpacker.start()
        pipe = os.fdopen(write_end, "wb")
        try:
            self.store.blobs.put_stream(Tee(stream, pipe), desc["digest"], desc.get("size"),
                                        "layer")
            pipe.close()                          # end of file: the unpacker can finish
        except BrokenPipeError:
            outcome["stopped"] = MinirunError(f"layer {desc['digest']}: the unpacker stopped "
                                              f"before the download ended")
        except BaseException as e:
            outcome["error"] = e
        finally:
            try:
                pipe.close()
            except OSError:
                pass
            blob_checked.set()
            unpacker.join()
        # Which failure is the cause: a download that failed (a full disk, a bad digest, a lost
        # connection) leaves the unpacker a truncated stream, whose error would only mislead;
        # an unpacker that refused the content stops the download, whose error says nothing.
        for cause in ("error", "unpack", "stopped"):
            if cause in outcome:
                raise explained(outcome[cause], desc["digest"])


def explained(error, digest):
    """A full disk, said plainly (a pull fills the state root first)."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC or \
            "No space left on device" in str(error):
        return MinirunError(f"layer {short(digest)}: no space left on device")
    return error


class Counting:
    """A stream that reports how much has been read from it."""

    def __init__(self, src, report):
        self.src, self.report, self.total = src, report, 0

    def read(self, n=-1):
        data = self.src.read(n)
        self.total += len(data)
        self.report(self.total)
        return data


class Tee:
    """What is read from *src* is also written to *copy* (the unpacker's pipe)."""

    def __init__(self, src, copy):
        self.src, self.copy = src, copy

    def read(self, n=-1):
        data = self.src.read(n)
        if data:
            self.copy.write(data)
        return data


def pull_image(pull, progress):
    """Run *pull* with Docker's messages around it (``pull``, ``run`` and minirund's
    /images/create share them); returns the image ID."""
    ref = pull.ref
    progress.say(f"Pulling from {ref.path}", id=ref.tag or ref.digest)
    pull.progress = progress
    image_id, digest, new = pull.run()
    progress.say(f"Digest: {digest}")
    progress.say(f"Status: {'Downloaded newer image' if new else 'Image is up to date'} for "
                 f"{ref.familiar_repository}{':' + ref.tag if ref.tag else '@' + ref.digest}")
    return image_id
