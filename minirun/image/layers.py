"""The layer store: each layer unpacked once, shared by every image and container.

``layers/<diff-id hex>/diff`` holds one layer's files (overlayfs-ready),
``layers/l/<short>`` a short symlink to it, so that an overlay mount of an
image with many layers stays within the one page of mount data the kernel
accepts. A layer is unpacked into ``layers/.tmp`` and renamed into place
only after its diff ID was verified; two commands unpacking the same layer
at once both succeed and one copy survives.
"""
import errno
import os

from ..fsutil import spread_subdirs
from .digest import hex_of

SHORT = 16   # hex characters in a link name: short, and collision-free in practice


class LayerStore:
    def __init__(self, root):
        self.dir = os.path.join(root, "layers")
        self.tmp = os.path.join(self.dir, ".tmp")
        self.links = os.path.join(self.dir, "l")
        os.makedirs(self.tmp, exist_ok=True)
        os.makedirs(self.links, exist_ok=True)
        self.written = []   # diff IDs this process unpacked, for rollback of a failed load

    def path(self, diff_id):
        return os.path.join(self.dir, hex_of(diff_id))

    def diff_dir(self, diff_id):
        return os.path.join(self.path(diff_id), "diff")

    def link(self, diff_id):
        """Short name of the layer's files, relative to ``self.dir``."""
        return "l/" + hex_of(diff_id)[:SHORT]

    def empty(self):
        """The link name of an empty, read-only-by-use directory (the lower of no layers)."""
        path = os.path.join(self.links, "empty")
        os.makedirs(path, mode=0o755, exist_ok=True)
        return "l/empty"

    def has(self, diff_id):
        return os.path.isdir(self.diff_dir(diff_id))

    def size(self, diff_id):
        try:
            with open(os.path.join(self.path(diff_id), "size")) as f:
                return int(f.read())
        except (OSError, ValueError):
            return 0

    def unpack(self, diff_id, blob, compression=None, verified=None):
        """Unpack the layer blob *blob* (a path, or a stream as it downloads), verifying it
        decompresses to *diff_id*. *verified()*, if given, is asked last, before the layer
        is published: a pull checks there that the compressed blob had its digest."""
        if self.has(diff_id):
            return
        import shutil                                          # only unpacking needs these:
        import tempfile                                        # a start only reads the store
        from .compression import DecompressingReader, sniff
        from .unpack import LayerError, extract_tar
        spread_subdirs(self.tmp)       # each layer in a group of its own, away from removals
        work = tempfile.mkdtemp(dir=self.tmp)
        try:
            os.mkdir(os.path.join(work, "diff"), 0o755)
            with (open(blob, "rb") if isinstance(blob, str) else blob) as f:
                if compression is None:
                    compression = sniff(f.peek(4)[:4])
                reader = DecompressingReader(f, compression)
                try:
                    size = extract_tar(reader, os.path.join(work, "diff"))
                    reader.drain()
                except BaseException:
                    reader.close()
                    raise
            if reader.diff_id != diff_id:
                raise LayerError(f"layer diff ID mismatch: config says {diff_id}, "
                                 f"content is {reader.diff_id}")
            if verified is not None:
                verified()
            with open(os.path.join(work, "size"), "w") as f:
                f.write(str(size))
            self._publish(work, diff_id)
            work = None
        except (OSError, EOFError, ValueError) as e:
            if isinstance(e, LayerError):
                raise
            raise LayerError(f"cannot unpack layer {diff_id}: {e}") from None
        finally:
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)

    def _publish(self, work, diff_id):
        import shutil          # not on a start's path
        try:
            os.rename(work, self.path(diff_id))
            self.written.append(diff_id)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            shutil.rmtree(work, ignore_errors=True)   # another command unpacked it first
        try:
            os.symlink(os.path.join("..", hex_of(diff_id), "diff"),
                       os.path.join(self.dir, self.link(diff_id)))
        except FileExistsError:
            pass

    def remove(self, diff_id):
        import shutil          # not on a start's path
        import tempfile        # not on a start's path
        try:
            os.unlink(os.path.join(self.dir, self.link(diff_id)))
        except FileNotFoundError:
            pass
        # Rename first so a half-removed layer is never mistaken for a whole one.
        doomed = tempfile.mkdtemp(dir=self.tmp)
        try:
            os.rename(self.path(diff_id), os.path.join(doomed, "layer"))
        except FileNotFoundError:
            pass
        shutil.rmtree(doomed, ignore_errors=True)

    def diff_ids(self):
        return ["sha256:" + n for n in os.listdir(self.dir) if len(n) == 64]

    def clean_tmp(self):
        """Remove work directories left by a crashed unpack."""
        import shutil          # not on a start's path
        for n in os.listdir(self.tmp):
            shutil.rmtree(os.path.join(self.tmp, n), ignore_errors=True)
