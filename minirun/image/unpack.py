"""Unpacking one layer tarball into a directory, escape-proof, for overlayfs.

``tarfile`` only parses the stream here; every write is ours. Each entry's
parent directory is opened with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS),
and the entry is then created relative to that descriptor with O_NOFOLLOW
semantics, so no entry can write outside the layer: not through ``..``, an
absolute path, a symlink planted by an earlier entry, or a hardlink.
(tarfile's own extraction filters have been bypassed, and they also reject
legitimate content such as absolute symlinks, so they are not used.)

Whiteouts become what overlayfs understands: ``.wh.NAME`` a 0/0 character
device named NAME, ``.wh..wh..opq`` the xattr ``trusted.overlay.opaque=y``.
"""
import errno
import os
import stat
import tarfile

from ..errors import MinirunError
from ..fsutil import rmtree_at
from ..linux.fs import open_beneath

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
XATTR_PREFIX = "SCHILY.xattr."
COPY_CHUNK = 1 << 20


class LayerError(MinirunError):
    pass


def clean_parts(name, what="entry"):
    """Split a tar path into components; refuse absolute paths and ``..``."""
    if name.startswith("/"):
        raise LayerError(f"layer {what} {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayerError(f"layer {what} {name!r} climbs out with '..'")
    return parts


class LayerWriter:
    """Creates tar entries below one directory descriptor."""

    def __init__(self, root=None, root_fd=None, whiteouts=True, xattrs=True):
        """Below the directory *root*, or a duplicate of the descriptor *root_fd*. Without
        *whiteouts* a ``.wh.`` name is a plain file (``docker cp``); without *xattrs* the
        tar's extended attributes are not set (a client's tar must not set trusted.*)."""
        self.root_fd = os.dup(root_fd) if root_fd is not None else \
            os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.whiteouts, self.xattrs = whiteouts, xattrs
        self.size = 0
        self._dir_times = []          # applied last: creating children changes them
        self._cached = (None, None)   # (parent path, fd): entries come grouped by directory

    def close(self):
        self._forget_parent()
        os.close(self.root_fd)

    # -- parents -------------------------------------------------------
    def _forget_parent(self):
        if self._cached[1] is not None:
            os.close(self._cached[1])
        self._cached = (None, None)

    def parent(self, parts, name):
        """Descriptor of the directory that will hold *parts*[-1], created if missing."""
        key = "/".join(parts[:-1])
        if self._cached[0] == key:
            return self._cached[1]
        self._forget_parent()
        fd = self._open_dir(key, name)
        self._cached = (key, fd)
        return fd

    def _open_dir(self, path, name):
        try:
            return open_beneath(self.root_fd, path or ".")
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise self._escape(name, e) from None
        # Tars may omit parent directories; create them one by one, never following a link.
        fd = os.dup(self.root_fd)
        try:
            for part in path.split("/"):
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=fd)
                os.close(fd)
                fd = nfd
            return fd
        except OSError as e:
            os.close(fd)
            raise self._escape(name, e) from None

    @staticmethod
    def _escape(name, err):
        if err.errno in (errno.ELOOP, errno.EXDEV, errno.ENOTDIR):
            return LayerError(f"layer entry {name!r} would leave the layer through a symlink "
                              f"or a non-directory")
        return LayerError(f"layer entry {name!r}: {err.strerror}")

    def _clear(self, pfd, base, keep_dir=False):
        """Remove what an earlier entry put at *base*; True if a directory was kept."""
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            dfd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=pfd)
            try:
                rmtree_at(dfd)
            finally:
                os.close(dfd)
            os.rmdir(base, dir_fd=pfd)
        else:
            os.unlink(base, dir_fd=pfd)
        return False

    # -- entries -------------------------------------------------------
    def add(self, member, tar):
        parts = clean_parts(member.name)
        if not parts:                       # "./": the layer root itself
            return
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX) and self.whiteouts:
            return self._whiteout(parts, member.name)
        pfd = self.parent(parts, member.name)
        if member.isdir():
            if not self._clear(pfd, base, keep_dir=True):
                os.mkdir(base, 0o700, dir_fd=pfd)
            self._finish(pfd, base, member, is_dir=True)
        elif member.isreg():
            self._clear(pfd, base)
            self._write_file(pfd, base, member, tar)
        elif member.issym():
            self._clear(pfd, base)
            os.symlink(member.linkname, base, dir_fd=pfd)
            self._finish(pfd, base, member)
        elif member.islnk():
            self._hardlink(pfd, base, member)
        elif member.ischr() or member.isblk() or member.isfifo():
            self._clear(pfd, base)
            kind = {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK,
                    tarfile.FIFOTYPE: stat.S_IFIFO}[member.type]
            os.mknod(base, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=pfd)
            self._finish(pfd, base, member)
        else:
            raise LayerError(f"layer entry {member.name!r} has unsupported type {member.type!r}")

    def _whiteout(self, parts, name):
        pfd = self.parent(parts, name)
        base = parts[-1]
        if base == OPAQUE_MARKER:
            os.setxattr(f"/proc/self/fd/{pfd}", OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return                          # other aufs metadata (.wh..wh.plnk …): nothing to do
        target = base[len(WHITEOUT_PREFIX):]
        if target in ("", ".", ".."):
            raise LayerError(f"layer whiteout {name!r} names no file")
        self._clear(pfd, target)
        os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)

    def _write_file(self, pfd, base, member, tar):
        chunks = _chunks(tar.extractfile(member), member)
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=pfd)
        _fill_file(fd, chunks, member, self.xattrs)
        self.size += member.size

    def _hardlink(self, pfd, base, member):
        src_parts = clean_parts(member.linkname, "hardlink target")
        if not src_parts:
            raise LayerError(f"layer hardlink {member.name!r} points at the layer root")
        src_key = "/".join(src_parts[:-1])
        try:
            sfd = open_beneath(self.root_fd, src_key or ".")
        except OSError as e:
            raise self._escape(member.linkname, e) from None
        try:
            st = os.stat(src_parts[-1], dir_fd=sfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise LayerError(f"layer hardlink {member.name!r} points at a directory")
            self._clear(pfd, base)
            os.link(src_parts[-1], base, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            raise LayerError(f"layer hardlink {member.name!r} points at {member.linkname!r}, "
                             f"which is not in the layer") from None
        finally:
            os.close(sfd)

    def _finish(self, pfd, base, member, is_dir=False):
        """Owner, mode, xattrs and mtime of a non-regular entry."""
        os.chown(base, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
        if member.issym():
            os.utime(base, ns=(_ns(member.mtime),) * 2, dir_fd=pfd, follow_symlinks=False)
            return
        fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_PATH, dir_fd=pfd)
        try:
            path = f"/proc/self/fd/{fd}"   # O_PATH fds take chmod/xattrs through /proc
            os.chmod(path, member.mode & 0o7777)
            if self.xattrs:
                _set_xattrs(path, member)
            if is_dir:
                self._dir_times.append((member.name, member.mtime))
                return
            os.utime(path, ns=(_ns(member.mtime),) * 2)
        finally:
            os.close(fd)


    def finish(self):
        self._forget_parent()
        for name, mtime in reversed(self._dir_times):
            fd = open_beneath(self.root_fd, "/".join(clean_parts(name)))
            try:
                os.utime(fd, ns=(_ns(mtime),) * 2)
            finally:
                os.close(fd)
        self._dir_times = []


def layer_xattr(name):
    """May a layer carry (and set) the extended attribute *name*? Not trusted.* (overlayfs's
    own — redirects, metacopy, opaque — and privileged), nor SELinux labels (the host's)."""
    return not name.startswith("trusted.") and name != "security.selinux"


def read_xattrs(path):
    """{name: value} of the extended attributes at *path* (not followed) a layer keeps:
    user.*, file capabilities (security.capability), ACLs."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in names:
        if layer_xattr(name):
            try:
                out[name] = os.getxattr(path, name, follow_symlinks=False)
            except OSError:
                pass
    return out


def pax_xattrs(xattrs):
    """The tar PAX records of *xattrs* (GNU tar's and Docker's SCHILY.xattr. names)."""
    return {XATTR_PREFIX + k: v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()}


def _set_xattrs(target, member):
    for key, value in member.pax_headers.items():
        if not key.startswith(XATTR_PREFIX):
            continue
        attr = key[len(XATTR_PREFIX):]
        if not layer_xattr(attr):
            continue    # a layer must not steer overlayfs (redirects, metacopy)
        os.setxattr(target, attr, value.encode("utf-8", "surrogateescape"))


def _chunks(src, member):
    remaining = member.size
    while remaining:
        buf = src.read(min(COPY_CHUNK, remaining))
        if not buf:
            raise LayerError(f"layer is truncated inside {member.name!r}")
        remaining -= len(buf)
        yield buf


def _fill_file(fd, chunks, member, xattrs=True):
    """Write a new file's content and metadata, then close it."""
    try:
        for buf in chunks:
            _write_all(fd, buf)
        os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, member.mode & 0o7777)    # after chown, which clears setuid
        if xattrs:
            _set_xattrs(fd, member)
        os.utime(fd, ns=(_ns(member.mtime),) * 2)
    finally:
        os.close(fd)


def _ns(mtime):
    return int(mtime * 1_000_000_000)


def _write_all(fd, buf):
    view = memoryview(buf)
    while view:
        view = view[os.write(fd, view):]


def extract_tar(stream, dest):
    """Extract the tar *stream* into the existing empty directory *dest*.

    Returns the total size of regular files. Raises LayerError on hostile or
    broken content; the caller removes *dest* then.
    """
    writer = LayerWriter(dest)
    try:
        try:
            tar = tarfile.open(fileobj=stream, mode="r|", errorlevel=2)
            for member in tar:
                writer.add(member, tar)
        except tarfile.TarError as e:
            raise LayerError(f"layer is not a valid tar archive: {e}") from None
        writer.finish()
        return writer.size
    finally:
        writer.close()
