"""Content-addressed blob store: ``blobs/sha256/<hex>``.

A blob is written to a temporary file, hashed as it is written, and renamed
into place only once its digest is verified: a reader never sees a partial
or corrupt blob, and a mismatch leaves nothing behind.
"""
import os

from ..errors import NotFound
from .digest import DigestError, check_digest, hex_of

CHUNK = 1 << 20


class BlobNotFound(NotFound):
    pass


class BlobStore:
    def __init__(self, root):
        self.dir = os.path.join(root, "blobs", "sha256")
        self.tmp = os.path.join(root, "tmp")
        os.makedirs(self.dir, exist_ok=True)
        os.makedirs(self.tmp, exist_ok=True)
        self.written = []   # digests this process added, for rollback of a failed load

    def path(self, digest):
        return os.path.join(self.dir, hex_of(digest))

    def has(self, digest):
        return os.path.exists(self.path(digest))

    def open(self, digest):
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} is not in the store") from None

    def read(self, digest):
        with self.open(digest) as f:
            return f.read()

    def put_stream(self, src, expected=None, size=None, what="blob"):
        """Copy *src* into the store; return its digest. Verifies *expected*/*size*, and never
        reads more than *size* (and one byte to tell): a registry that serves a 1 GiB blob
        for a 100-byte descriptor costs 101 bytes, not a gigabyte of disk."""
        import hashlib       # loading OpenSSL is slow; a container start never adds a blob
        import tempfile
        if expected is not None:
            check_digest(expected)
        h = hashlib.sha256()
        total = 0
        fd, tmp = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    buf = src.read(CHUNK if size is None else min(CHUNK, size + 1 - total))
                    if not buf:
                        break
                    h.update(buf)
                    out.write(buf)
                    total += len(buf)
                    if size is not None and total > size:
                        raise DigestError(f"{what} {expected or ''} is larger than the "
                                          f"{size} bytes its descriptor says")
            digest = "sha256:" + h.hexdigest()
            if expected is not None and digest != expected:
                raise DigestError(f"{what} digest mismatch: expected {expected}, got {digest}")
            if size is not None and total != size:
                raise DigestError(f"{what} {digest} size mismatch: expected {size}, got {total}")
            os.chmod(tmp, 0o644)
            if not self.has(digest):
                self.written.append(digest)
            os.rename(tmp, self.path(digest))
            tmp = None
            return digest
        finally:
            if tmp is not None:
                os.unlink(tmp)

    def put_bytes(self, data, expected=None, what="blob"):
        import io            # as above: not on a start's path
        return self.put_stream(io.BytesIO(data), expected, len(data), what)

    def delete(self, digest):
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            pass

    def digests(self):
        return ["sha256:" + name for name in os.listdir(self.dir)]
