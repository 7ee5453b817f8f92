"""The registry's files: content-addressed blobs, and per repository the links to them.

    blobs/sha256/<hex>                          every blob and manifest, by digest (shared)
    repos/<name>/_layers/<hex>                  this repository may serve that blob
    repos/<name>/_manifests/revisions/<hex>     a manifest of this repository (holds its media type)
    repos/<name>/_manifests/tags/<tag>          a tag (holds the manifest digest)
    repos/<name>/_referrers/<subject>/<hex>     a manifest whose subject is <subject> (its descriptor)
    uploads/<uuid>/data                         an upload in progress

A blob becomes visible only by a rename after its digest was checked, so an
upload cut short (or a server killed with -9) never shows a partial blob; the
same blob pushed twice at once is renamed into place twice, harmlessly. Every
small file is written to a temporary name and renamed, for the same reason.
"""
import hashlib
import json
import os
import re
import shutil
import threading
import time
import uuid

from ..image import manifest as mf
from ..image.blobs import BlobStore
from ..image.digest import hex_of, is_sha256
from ..image.reference import valid_path, valid_tag
from .errors import RegistryError

MAX_MANIFEST = 32 << 20          # the spec asks for at least 4 MiB
CHUNK = 1 << 20


def check_name(name):
    if len(name) > 255 or not valid_path(name):
        raise RegistryError("NAME_INVALID", f"invalid repository name: {name!r}")
    return name


def check_digest(digest):
    if not is_sha256(digest):
        raise RegistryError("DIGEST_INVALID", f"invalid or unsupported digest: {digest!r}")
    return digest


def write_atomic(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


class Storage:
    def __init__(self, root):
        self.root = root
        self.blobs = BlobStore(root)
        self.repos = os.path.join(root, "repos")
        self.uploads = os.path.join(root, "uploads")
        os.makedirs(self.repos, exist_ok=True)
        os.makedirs(self.uploads, exist_ok=True)
        self._hashers = {}            # upload uuid -> (sha256 so far, bytes hashed)
        self._lock = threading.Lock()

    def _repo(self, name, *parts):
        return os.path.join(self.repos, check_name(name), *parts)

    def repo_exists(self, name):
        return os.path.isdir(self._repo(name))

    # -- blobs ---------------------------------------------------------------------------
    def blob_path(self, name, digest):
        """The file of a blob this repository may serve, else BLOB_UNKNOWN."""
        hex_ = hex_of(check_digest(digest))
        linked = os.path.exists(self._repo(name, "_layers", hex_)) or \
            os.path.exists(self._repo(name, "_manifests", "revisions", hex_))
        path = self.blobs.path(digest)
        if not linked or not os.path.exists(path):
            raise RegistryError("BLOB_UNKNOWN", f"blob unknown to registry: {digest}")
        return path

    def link_blob(self, name, digest):
        write_atomic(self._repo(name, "_layers", hex_of(digest)), b"")

    def mount(self, name, digest, source):
        """Cross-repository mount: True if *source* has the blob and *name* now links it."""
        try:
            self.blob_path(check_name(source), digest)
        except RegistryError:
            return False
        self.link_blob(name, digest)
        return True

    def delete_blob(self, name, digest):
        self.blob_path(name, digest)
        os.unlink(self._repo(name, "_layers", hex_of(digest)))

    # -- uploads -------------------------------------------------------------------------
    def start_upload(self, name):
        check_name(name)
        upload = uuid.uuid4().hex
        os.makedirs(os.path.join(self.uploads, upload))
        with open(os.path.join(self.uploads, upload, "repo"), "w") as f:
            f.write(name)
        open(os.path.join(self.uploads, upload, "data"), "wb").close()
        return upload

    def _upload_dir(self, name, upload):
        path = os.path.join(self.uploads, upload)
        try:
            if not re.fullmatch(r"[0-9a-f]{32}", upload):
                raise FileNotFoundError
            with open(os.path.join(path, "repo")) as f:
                if f.read() != name:
                    raise FileNotFoundError
        except FileNotFoundError:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", f"blob upload unknown: {upload}") from None
        return path

    def upload_size(self, name, upload):
        return os.path.getsize(os.path.join(self._upload_dir(name, upload), "data"))

    def append(self, name, upload, stream, length, start=None):
        """Add *length* bytes (None: until the stream ends) at offset *start*, which must
        be where the upload stands (chunks in order). Returns the new size."""
        data = os.path.join(self._upload_dir(name, upload), "data")
        size = os.path.getsize(data)
        if start is not None and start != size:
            raise RegistryError("BLOB_UPLOAD_INVALID", f"chunk starts at {start}, upload has "
                                f"{size} bytes", status=416, range_end=size)
        hasher = self._hasher(upload, data, size)
        with open(data, "ab") as f:
            remaining = length
            while remaining is None or remaining > 0:
                buf = stream.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not buf:
                    break
                f.write(buf)
                hasher.update(buf)
                if remaining is not None:
                    remaining -= len(buf)
            f.flush()
            new_size = f.tell()
        with self._lock:
            self._hashers[upload] = (hasher, new_size)
        if remaining:
            raise RegistryError("BLOB_UPLOAD_INVALID", "the request ended before its "
                                "Content-Length")
        return new_size

    def _hasher(self, upload, data, size):
        """The running sha256 of an upload (recomputed if this server did not see it all)."""
        with self._lock:
            hasher, hashed = self._hashers.pop(upload, (None, -1))
        if hashed == size:
            return hasher
        hasher = hashlib.sha256()
        with open(data, "rb") as f:
            while buf := f.read(CHUNK):
                hasher.update(buf)
        return hasher

    def finish(self, name, upload, digest):
        """Check the upload against *digest*; publish it as a blob of the repository."""
        check_digest(digest)
        path = self._upload_dir(name, upload)
        data = os.path.join(path, "data")
        hasher = self._hasher(upload, data, os.path.getsize(data))
        if "sha256:" + hasher.hexdigest() != digest:
            self.cancel(name, upload)
            raise RegistryError("DIGEST_INVALID", f"provided digest did not match uploaded "
                                f"content ({digest})")
        os.chmod(data, 0o644)
        os.rename(data, self.blobs.path(digest))
        self.link_blob(name, digest)
        shutil.rmtree(path, ignore_errors=True)

    def cancel(self, name, upload):
        shutil.rmtree(self._upload_dir(name, upload), ignore_errors=True)
        with self._lock:
            self._hashers.pop(upload, None)

    # -- manifests -----------------------------------------------------------------------
    def put_manifest(self, name, reference, data, content_type):
        """Store a manifest under a tag or its digest; returns (digest, subject or None)."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if is_sha256(reference) and reference != digest:
            raise RegistryError("DIGEST_INVALID", f"manifest digest is {digest}, not {reference}")
        if not is_sha256(reference) and not valid_tag(reference):
            raise RegistryError("MANIFEST_INVALID", f"invalid tag: {reference!r}")
        doc, media_type = self._parse_manifest(data, content_type)
        for child in _references(doc, media_type):
            try:
                self.blob_path(name, child)
            except RegistryError:
                raise RegistryError("MANIFEST_BLOB_UNKNOWN", f"manifest references {child}, "
                                    f"which is not in {name}") from None
        self.blobs.put_bytes(data, digest, what="manifest")
        write_atomic(self._repo(name, "_manifests", "revisions", hex_of(digest)),
                     media_type.encode())
        if not is_sha256(reference):
            write_atomic(self._repo(name, "_manifests", "tags", reference), digest.encode())
        subject = doc.get("subject")
        if isinstance(subject, dict) and is_sha256(subject.get("digest")):
            self._add_referrer(name, subject["digest"], doc, media_type, digest, len(data))
            return digest, subject["digest"]
        return digest, None

    @staticmethod
    def _parse_manifest(data, content_type):
        try:
            doc = mf.loads(data)
        except mf.ManifestError as e:
            raise RegistryError("MANIFEST_INVALID", str(e)) from None
        media_type = doc.get("mediaType") or content_type
        if doc.get("mediaType") and content_type and content_type != doc["mediaType"]:
            raise RegistryError("MANIFEST_INVALID", f"Content-Type {content_type} differs from "
                                f"the manifest's mediaType {doc['mediaType']}")
        if not media_type:
            raise RegistryError("MANIFEST_INVALID", "manifest media type unknown")
        return doc, media_type

    def _add_referrer(self, name, subject, doc, media_type, digest, size):
        descriptor = {"mediaType": media_type, "digest": digest, "size": size,
                      "artifactType": doc.get("artifactType")
                      or (doc.get("config") or {}).get("mediaType")}
        if doc.get("annotations"):
            descriptor["annotations"] = doc["annotations"]
        write_atomic(self._repo(name, "_referrers", hex_of(subject), hex_of(digest)),
                     json.dumps(descriptor).encode())

    def resolve(self, name, reference):
        """A tag or digest → the manifest's digest, or MANIFEST_UNKNOWN."""
        if not self.repo_exists(name):
            raise RegistryError("NAME_UNKNOWN", f"repository name not known to registry: {name}")
        if is_sha256(reference):
            digest = reference
        elif not valid_tag(reference):
            raise RegistryError("MANIFEST_UNKNOWN", f"manifest unknown: {reference!r}")
        else:
            try:
                with open(self._repo(name, "_manifests", "tags", reference)) as f:
                    digest = f.read()
            except (FileNotFoundError, NotADirectoryError):
                raise RegistryError("MANIFEST_UNKNOWN", f"manifest unknown: {reference}") from None
        if not os.path.exists(self._repo(name, "_manifests", "revisions", hex_of(digest))):
            raise RegistryError("MANIFEST_UNKNOWN", f"manifest unknown: {reference}")
        return digest

    def get_manifest(self, name, reference):
        """(bytes, media type, digest) of a manifest."""
        digest = self.resolve(name, reference)
        with open(self._repo(name, "_manifests", "revisions", hex_of(digest))) as f:
            media_type = f.read()
        return self.blobs.read(digest), media_type, digest

    def delete_manifest(self, name, reference):
        """By tag: the tag goes. By digest: the manifest and every tag naming it go."""
        digest = self.resolve(name, reference)
        tags = self._repo(name, "_manifests", "tags")
        if not is_sha256(reference):
            os.unlink(os.path.join(tags, reference))
            return
        for tag in self.tags(name):
            with open(os.path.join(tags, tag)) as f:
                if f.read() == digest:
                    os.unlink(os.path.join(tags, tag))
        doc = json.loads(self.blobs.read(digest))
        os.unlink(self._repo(name, "_manifests", "revisions", hex_of(digest)))
        subject = (doc.get("subject") or {}).get("digest") if isinstance(doc, dict) else None
        if subject and is_sha256(subject):
            try:
                os.unlink(self._repo(name, "_referrers", hex_of(subject), hex_of(digest)))
            except FileNotFoundError:
                pass

    def tags(self, name):
        if not self.repo_exists(name):
            raise RegistryError("NAME_UNKNOWN", f"repository name not known to registry: {name}")
        try:
            return sorted(os.listdir(self._repo(name, "_manifests", "tags")))
        except FileNotFoundError:
            return []

    def referrers(self, name, digest):
        check_digest(digest)
        folder = self._repo(name, "_referrers", hex_of(digest))
        out = []
        for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            with open(os.path.join(folder, entry)) as f:
                out.append(json.load(f))
        return out

    def catalog(self):
        names = []
        for dirpath, dirnames, _ in os.walk(self.repos):
            if "_manifests" in dirnames:
                names.append(os.path.relpath(dirpath, self.repos))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return sorted(names)

    # -- garbage collection ---------------------------------------------------------------
    def gc(self, upload_age=24 * 3600):
        """Delete blobs no manifest of any repository references, and stale uploads.
        Run it while nothing pushes (as distribution's garbage-collect)."""
        keep = set()
        for name in self.catalog():
            revisions = self._repo(name, "_manifests", "revisions")
            for hex_ in os.listdir(revisions):
                digest = "sha256:" + hex_
                keep.add(digest)
                try:
                    doc = json.loads(self.blobs.read(digest))
                except (OSError, ValueError):
                    continue
                try:
                    keep.update(_references(doc, doc.get("mediaType")))
                except RegistryError:
                    continue
        removed = []
        for digest in self.blobs.digests():
            if digest not in keep:
                self.blobs.delete(digest)
                removed.append(digest)
        for name in self.catalog():
            layers = self._repo(name, "_layers")
            for hex_ in os.listdir(layers) if os.path.isdir(layers) else []:
                if "sha256:" + hex_ not in keep:
                    os.unlink(os.path.join(layers, hex_))
        for upload in os.listdir(self.uploads):
            path = os.path.join(self.uploads, upload)
            if time.time() - os.path.getmtime(path) > upload_age:
                shutil.rmtree(path, ignore_errors=True)
        return removed


def _references(doc, media_type):
    """Digests a manifest needs present: its config and layers, or an index's manifests."""
    if not isinstance(doc, dict):
        return []
    if media_type in mf.INDEX_TYPES or "manifests" in doc:
        items = doc.get("manifests") or []
    else:
        items = [doc.get("config") or {}] + list(doc.get("layers") or [])
    out = []
    for d in items:
        digest = d.get("digest") if isinstance(d, dict) else None
        if not is_sha256(digest):
            raise RegistryError("MANIFEST_INVALID", f"invalid descriptor in manifest: {d!r}")
        out.append(digest)
    return out
