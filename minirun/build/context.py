"""The files a COPY or ADD reads: the build context, or another stage's (or image's) root.

Either is a directory descriptor, and every path is resolved inside it with
openat2(RESOLVE_IN_ROOT): a symlink in a context (a client's tar can hold
``secret -> /etc/shadow``) resolves within the context, never on the host. A
source named by COPY follows its symlinks (as Docker's does); below it, links
are copied as links. .dockerignore's rules hide what they exclude, as if it
were not there. ``digest`` is what the cache keys a COPY on: names, types,
modes, owners, extended attributes, link targets and contents — not times.
"""
import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import tarfile

from ..errors import MinirunError
from ..image.unpack import pax_xattrs, read_xattrs
from ..linux.fs import RESOLVE_IN_ROOT, openat2
from .patterns import Ignore, clean, compile_pattern, has_wildcards

CHUNK = 1 << 20
WHITEOUT_PREFIX = ".wh."


class ContextError(MinirunError):
    pass


class Source:
    """A tree COPY reads from: *root_fd* (borrowed), with *ignore* rules (or none)."""

    def __init__(self, root_fd, ignore=None, what="build context", keep_owners=False):
        self.root_fd, self.ignore = root_fd, ignore or Ignore()
        self.what, self.keep_owners = what, keep_owners

    # -- finding sources -------------------------------------------------------------------
    def expand(self, pattern):
        """The context-relative paths *pattern* names (one, or what its wildcards match)."""
        path = clean(pattern)
        if path.startswith("../") or path == "..":
            raise ContextError(f"forbidden path outside the {self.what}: {pattern}")
        if not has_wildcards(path):
            if path != "." and (self.ignore.excluded(path) or not self._exists(path)):
                raise ContextError(f"file not found in {self.what} or excluded by "
                                   f".dockerignore: stat {pattern}: file does not exist")
            return [path]
        regex = compile_pattern(path)
        depth = path.count("/") + 1
        found = [rel for rel, _ in self.walk(".", max_depth=depth) if regex.match(rel)]
        if not found:
            raise ContextError(f"no source files were specified by {pattern!r} in the "
                               f"{self.what}")
        return found

    def _exists(self, path):
        try:
            os.close(openat2(self.root_fd, path, os.O_PATH, RESOLVE_IN_ROOT))
            return True
        except OSError:
            return False

    def open(self, path, flags=os.O_PATH):
        try:
            return openat2(self.root_fd, path, flags | os.O_CLOEXEC, RESOLVE_IN_ROOT)
        except OSError as e:
            raise ContextError(f"{self.what}: {path}: {e.strerror}") from None

    def is_dir(self, path):
        return self.kind(path) == stat.S_IFDIR

    def walk(self, path, max_depth=None):
        """(relative path, lstat) below the directory *path*, parents first, sorted; what
        .dockerignore excludes left out."""
        fd = self.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            yield from self._walk(fd, "" if path == "." else path, 1, max_depth)
        finally:
            os.close(fd)

    def _walk(self, dfd, prefix, depth, max_depth):
        for name in sorted(os.listdir(dfd)):
            rel = f"{prefix}/{name}" if prefix else name
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                if self.ignore.prunes(rel):
                    continue
                if not self.ignore.excluded(rel):
                    yield rel, st
                if max_depth is None or depth < max_depth:
                    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                  | os.O_CLOEXEC, dir_fd=dfd)
                    try:
                        yield from self._walk(sub, rel, depth + 1, max_depth)
                    finally:
                        os.close(sub)
            elif not self.ignore.excluded(rel):
                yield rel, st

    # -- what a copy takes ----------------------------------------------------------------
    def plan(self, path):
        """[(relative path, tar name)] of copying *path*: a file as itself (named ""), a
        directory as its contents, never the directory itself (as Docker copies them)."""
        path = self.resolve(path)
        if path != "." and not self.is_dir(path):
            return [(path, "")]
        base = "" if path == "." else path
        return [(rel, rel[len(base):].lstrip("/")) for rel, _ in self.walk(path)]

    def digest(self, plans):
        """sha256 over what *plans* copy: names, types, modes, (owners), targets, contents."""
        h = hashlib.sha256()
        for rel, name, st, fd in self._entries(plans):
            try:
                h.update(f"{name}\0{stat.S_IFMT(st.st_mode)}\0{st.st_mode & 0o7777}\0"
                         .encode("utf-8", "surrogateescape"))
                if self.keep_owners:
                    h.update(f"{st.st_uid}:{st.st_gid}\0".encode())
                for key, value in sorted(self._xattrs(fd, rel).items()):   # copied too
                    h.update(key.encode() + b"=" + value + b"\0")
                if stat.S_ISLNK(st.st_mode):
                    h.update(os.readlink(os.path.basename(rel), dir_fd=fd).encode(
                        "utf-8", "surrogateescape"))
                elif stat.S_ISREG(st.st_mode):
                    for chunk in self._content(fd, rel):
                        h.update(chunk)
                h.update(b"\0")
            finally:
                os.close(fd)
        return "sha256:" + h.hexdigest()

    def _entries(self, plans):
        """(relative path, tar name, lstat, descriptor of its parent) of each entry."""
        for dest, entries in plans:
            for rel, name in entries:
                parent, _, base = rel.rpartition("/")
                pfd = self.open(parent or ".", os.O_RDONLY | os.O_DIRECTORY)
                try:
                    st = os.stat(base, dir_fd=pfd, follow_symlinks=False) if base else \
                        os.fstat(pfd)
                except BaseException:
                    os.close(pfd)
                    raise
                yield rel, _join(dest, name), st, pfd

    def resolve(self, path, missing_ok=False):
        """*path* with every symlink on the way resolved inside the root (as the kernel's
        RESOLVE_IN_ROOT would): a COPY follows the links of the source it names, and
        writes through those of its destination. With *missing_ok*, what does not exist
        yet is taken as written."""
        todo, done, hops = [p for p in path.split("/") if p not in ("", ".")], [], 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            try:
                fd = self.open("/".join(done) or ".", os.O_RDONLY | os.O_DIRECTORY)
            except ContextError:
                fd = None
            try:
                st = os.stat(part, dir_fd=fd, follow_symlinks=False) if fd is not None \
                    else None
            except FileNotFoundError:
                st = None
            finally:
                if fd is not None:
                    os.close(fd)
            if st is None:
                if not missing_ok:
                    raise ContextError(f"file not found in {self.what}: {path}")
                done.append(part)
                continue
            if not stat.S_ISLNK(st.st_mode):
                done.append(part)
                continue
            hops += 1
            if hops > 40:
                raise ContextError(f"{self.what}: {path}: too many levels of symbolic links")
            fd = self.open("/".join(done) or ".", os.O_RDONLY | os.O_DIRECTORY)
            try:
                target = os.readlink(part, dir_fd=fd)
            finally:
                os.close(fd)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p not in ("", ".")] + todo
        return "/".join(done) or "."

    def kind(self, path):
        """The file type (stat.S_IFMT) at *path* (links followed in the root), or None."""
        try:
            fd = openat2(self.root_fd, path, os.O_PATH | os.O_CLOEXEC, RESOLVE_IN_ROOT)
        except OSError:
            return None
        try:
            return stat.S_IFMT(os.fstat(fd).st_mode)
        finally:
            os.close(fd)

    @staticmethod
    def _xattrs(pfd, rel):
        return read_xattrs(f"/proc/self/fd/{pfd}/{os.path.basename(rel)}")

    def _content(self, pfd, rel):
        fd = os.open(os.path.basename(rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=pfd)
        try:
            while True:
                chunk = os.read(fd, CHUNK)
                if not chunk:
                    return
                yield chunk
        finally:
            os.close(fd)

    def tar(self, plans, chmod=None, mtime=None):
        """The tar stream of *plans* ([(destination prefix, plan)]) as chunks: modes
        replaced by *chmod* where given, times clamped to *mtime* where given."""
        for rel, name, st, pfd in self._entries(plans):
            try:
                base = os.path.basename(rel)
                if base.startswith(WHITEOUT_PREFIX):
                    raise ContextError(f"{rel}: names beginning with {WHITEOUT_PREFIX} are "
                                       f"layer whiteouts and cannot be copied into an image")
                info = tarfile.TarInfo(name)
                info.pax_headers = pax_xattrs(self._xattrs(pfd, rel))
                info.mode = chmod if chmod is not None else st.st_mode & 0o7777
                info.uid, info.gid = st.st_uid, st.st_gid
                info.mtime = int(st.st_mtime) if mtime is None else min(int(st.st_mtime),
                                                                        mtime)
                data = None
                if stat.S_ISDIR(st.st_mode):
                    info.type = tarfile.DIRTYPE
                elif stat.S_ISLNK(st.st_mode):
                    info.type = tarfile.SYMTYPE
                    info.linkname = os.readlink(base, dir_fd=pfd)
                elif stat.S_ISREG(st.st_mode):
                    info.size = st.st_size
                    data = self._content(pfd, rel)
                else:
                    continue                        # devices, FIFOs, sockets: not copied
                yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
                if data is not None:
                    left = info.size
                    for chunk in data:             # exactly the size the header said
                        chunk = chunk[:left]
                        left -= len(chunk)
                        yield chunk
                    yield b"\0" * left
                    yield b"\0" * (-info.size % 512)
            finally:
                os.close(pfd)
        yield b"\0" * 1024


def _join(dest, name):
    return f"{dest}/{name}" if dest and name else dest or name or "."


class ChunkReader(io.RawIOBase):
    """A file object reading an iterator of byte chunks (for tarfile)."""

    def __init__(self, chunks):
        self.chunks, self.left = iter(chunks), b""

    def readable(self):
        return True

    def readinto(self, buf):
        while not self.left:
            try:
                self.left = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(buf), len(self.left))
        buf[:n] = self.left[:n]
        self.left = self.left[n:]
        return n


_MAGIC = ((b"\x1f\x8b", lambda f: gzip.GzipFile(fileobj=f)), (b"BZh", bz2.BZ2File),
          (b"\xfd7zXZ\x00", lzma.LZMAFile))


def decompressing(f, head):
    """*f* read through the decompressor its first bytes *head* call for (gzip, bzip2, xz:
    what Docker takes for a build context or an ADD archive), or as it is."""
    for magic, opener in _MAGIC:
        if head.startswith(magic):
            return opener(f)
    return f
