"""The image store: blobs, layers and the image/tag records that tie them.

Callers get image records and layer directories; nobody else pokes at the
store's files. Loads hold a shared lock and prune an exclusive one, so a
prune never removes a blob that a load has written but not yet recorded.
"""
import fcntl
import os
import time

from .. import cjson, statedb
from ..errors import Conflict, NotFound
from . import manifest as mf
from . import reference
from .blobs import BlobStore
from .layers import LayerStore


class ImageNotFound(NotFound):
    pass


class ImageConflict(Conflict):
    pass


class ImageStore:
    def __init__(self, root, db=None):
        self.root = root
        statedb.private_root(root)
        self.blobs = BlobStore(root)
        self.layers = LayerStore(root)
        self.db = db or statedb.open_db(root)

    def lock(self, exclusive=False):
        """``with store.lock():`` the flock on images.lock, held while the file it returns is
        open (shared, or *exclusive* for a prune)."""
        f = open(os.path.join(self.root, "images.lock"), "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except BaseException:
            f.close()
            raise
        return f

    # -- adding ----------------------------------------------------------
    def adding(self):
        """``with store.adding():`` a shared lock for a load or pull; on failure, undo the
        blobs and layers it wrote."""
        return _Adding(self)

    def _discard_written(self):
        blobs, diffs = self.referenced()
        for d in self.blobs.written:
            if d not in blobs:
                self.blobs.delete(d)
        for d in self.layers.written:
            if d not in diffs:
                self.layers.remove(d)

    def add_image(self, manifest_bytes, parent=""):
        """Record the image whose manifest (and every blob it names) is in the store.

        Unpacks each missing layer, verifying diff IDs. Returns the image ID. *parent*: the
        local image it was made from (commit), as Docker's inspect shows it.
        """
        doc = mf.loads(manifest_bytes)
        if mf.media_type(doc) not in mf.MANIFEST_TYPES:
            raise mf.ManifestError(f"not an image manifest: {mf.media_type(doc)}")
        config_desc, layer_descs = mf.parse_manifest(doc)
        config = mf.parse_config(self.blobs.read(config_desc["digest"]))
        mf.ensure_platform_matches(config)
        diff_ids = config["rootfs"]["diff_ids"]
        if len(diff_ids) != len(layer_descs):
            raise mf.ManifestError(f"manifest has {len(layer_descs)} layers, "
                                   f"config has {len(diff_ids)} diff IDs")
        for desc, diff_id in zip(layer_descs, diff_ids):
            self.layers.unpack(diff_id, self.blobs.path(desc["digest"]),
                               mf.LAYER_TYPES[desc["mediaType"]])
        manifest_digest = self.blobs.put_bytes(manifest_bytes, what="manifest")
        image_id = config_desc["digest"]
        size = sum(self.layers.size(d) for d in diff_ids)
        with statedb.transaction(self.db) as db:
            db.execute("INSERT OR IGNORE INTO images (id, manifest_digest, created, size, added,"
                       " parent) VALUES (?, ?, ?, ?, ?, ?)",
                       (image_id, manifest_digest, config.get("created"), size, time.time(),
                        parent))
        return image_id

    def tag(self, ref, image_id):
        with statedb.transaction(self.db) as db:
            db.execute("INSERT OR REPLACE INTO tags (repository, tag, image_id) VALUES (?, ?, ?)",
                       (ref.repository, ref.tag, image_id))

    # -- looking up ------------------------------------------------------
    def resolve(self, name):
        """Image ID for a reference, a full or short ID; ImageNotFound otherwise."""
        row = None
        if reference.looks_like_id(name):
            hexid = name.removeprefix("sha256:")
            rows = self.db.execute("SELECT id FROM images WHERE id LIKE ?",
                                   (f"sha256:{hexid}%",)).fetchall()
            if len(rows) > 1:
                raise ImageConflict(f"image ID prefix {name} is ambiguous")
            row = rows[0] if rows else None
        if row is None:
            try:
                ref = reference.parse(name)
            except reference.InvalidReference:
                if reference.looks_like_id(name):
                    raise ImageNotFound(f"No such image: {name}") from None
                raise
            if ref.digest:
                row = self.db.execute("SELECT id FROM images WHERE manifest_digest = ?",
                                      (ref.digest,)).fetchone()
            else:
                row = self.db.execute("SELECT image_id AS id FROM tags WHERE repository = ? "
                                      "AND tag = ?", (ref.repository, ref.tag)).fetchone()
        if row is None:
            raise ImageNotFound(f"No such image: {name}")
        return row["id"]

    def record(self, image_id):
        return self.db.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()

    def tags_of(self, image_id):
        rows = self.db.execute("SELECT repository, tag FROM tags WHERE image_id = ? "
                               "ORDER BY repository, tag", (image_id,))
        return [reference.Reference(*reference.split_domain(r["repository"]), r["tag"])
                for r in rows]

    def list(self):
        """[(image record, [references])], newest first."""
        rows = self.db.execute("SELECT * FROM images ORDER BY added DESC").fetchall()
        return [(r, self.tags_of(r["id"])) for r in rows]

    def manifest(self, image_id):
        return mf.loads(self.blobs.read(self.record(image_id)["manifest_digest"]))

    def config(self, image_id):
        return cjson.loads(self.blobs.read(image_id))

    def layer_dirs(self, image_id):
        """The image's layer directories, lowest first."""
        return [self.layers.diff_dir(d) for d in self.config(image_id)["rootfs"]["diff_ids"]]

    def layer_links(self, image_id):
        """Short names of the layer directories (relative to ``layers.dir``), lowest first.

        An image of no layers (a build ``FROM scratch``) stands on one empty directory:
        overlayfs needs a lower one. An image may hold one layer twice (two build steps
        that changed nothing): overlayfs refuses a directory twice in its stack (ELOOP), and
        the lower copy decides nothing the upper one does not, so only the topmost stays."""
        diff_ids = self.config(image_id)["rootfs"]["diff_ids"]
        kept = [d for i, d in enumerate(diff_ids) if d not in diff_ids[i + 1:]]
        return [self.layers.link(d) for d in kept] or [self.layers.empty()]

    # -- removing --------------------------------------------------------
    def remove(self, name, force=False, in_use=lambda image_id: False):
        """``rmi``: untag a reference, delete the image when nothing else names it.

        Returns a list of ("Untagged"|"Deleted", what) like Docker prints.
        """
        image_id = self.resolve(name)
        by_id = reference.looks_like_id(name) and image_id.startswith(
            "sha256:" + name.removeprefix("sha256:"))
        tags = self.tags_of(image_id)
        if by_id and len(tags) > 1 and not force:
            raise ImageConflict(f"unable to delete {name} (must be forced) - image is "
                                f"referenced in multiple repositories")
        if (by_id or len(tags) <= 1) and in_use(image_id) and not force:
            raise ImageConflict(f"unable to remove image {name}: it is used by a container")
        done = []
        with statedb.transaction(self.db) as db:
            if by_id:
                untag = tags
            else:
                ref = reference.parse(name)
                untag = [t for t in tags if t.repository == ref.repository and t.tag == ref.tag]
            for t in untag:
                db.execute("DELETE FROM tags WHERE repository = ? AND tag = ?",
                           (t.repository, t.tag))
                done.append(("Untagged", f"{t.familiar_repository}:{t.tag}"))
            left = db.execute("SELECT COUNT(*) FROM tags WHERE image_id = ?",
                              (image_id,)).fetchone()[0]
            if not left:
                db.execute("DELETE FROM images WHERE id = ?", (image_id,))
                done.append(("Deleted", image_id))
        return done

    def referenced(self):
        """(blob digests, diff IDs) that some recorded image needs."""
        blobs, diffs = set(), set()
        for row in self.db.execute("SELECT id, manifest_digest FROM images").fetchall():
            blobs.update((row["id"], row["manifest_digest"]))
            config_desc, layers = mf.parse_manifest(
                mf.loads(self.blobs.read(row["manifest_digest"])))
            blobs.update(l["digest"] for l in layers)
            diffs.update(self.config(row["id"])["rootfs"]["diff_ids"])
        return blobs, diffs

    def prune(self):
        """Remove blobs and layers that no image references; return bytes freed."""
        freed = 0
        with self.lock(exclusive=True):
            blobs, diffs = self.referenced()
            for d in self.blobs.digests():
                if d not in blobs:
                    freed += os.path.getsize(self.blobs.path(d))
                    self.blobs.delete(d)
            for d in self.layers.diff_ids():
                if d not in diffs:
                    freed += self.layers.size(d)
                    self.layers.remove(d)
            self.layers.clean_tmp()
            for n in os.listdir(self.blobs.tmp):
                os.unlink(os.path.join(self.blobs.tmp, n))
        return freed


class _Adding:
    """ImageStore.adding. A class, not a contextlib generator (docs/architecture.md, "What a
    start imports")."""

    def __init__(self, store):
        self.store = store

    def __enter__(self):
        self.store.blobs.written.clear()
        self.store.layers.written.clear()
        self.lock = self.store.lock()

    def __exit__(self, error, *_):
        with self.lock:
            if error:
                self.store._discard_written()
