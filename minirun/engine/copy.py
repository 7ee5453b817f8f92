"""``docker cp``: copying between a container's file system and a tar stream.

Every path a user names is a path *inside the container*, and the container
decides what its files are: a symlink there pointing at ``/etc`` or at
``../../..`` means the container's /etc, never the host's. Docker got this
wrong twice (CVE-2018-15664, a symlink swapped in during the copy;
CVE-2019-14271, code of the container run by the copy). Here:

- the container's root is a directory descriptor: ``/proc/PID/root`` of a
  running container (its own mount namespace, volumes included), or, for a
  stopped one, its overlay mounted in a mount namespace of a short-lived
  thread of its own, so nothing appears on the host's mount table;
- the path is opened with openat2(RESOLVE_IN_ROOT): ``..`` and symlinks,
  absolute or not, resolve as they would for a process chrooted there, and
  the kernel does it in one step, so nothing swapped in meanwhile escapes;
- below that descriptor, reading never follows a symlink (a link is copied as
  a link) and writing goes through the layer unpacker (image/unpack.py):
  every entry's parent opened beneath the target with no symlinks at all;
- nothing of the container is ever run.
"""
import base64
import contextlib
import json
import os
import stat
import tarfile
import threading
import time

from ..errors import Conflict, MinirunError, NotFound
from ..fsutil import readable
from ..image.unpack import LayerError, LayerWriter, clean_parts, pax_xattrs
from ..linux import mount as m
from ..linux import namespaces as ns
from ..linux.fs import RESOLVE_IN_ROOT, openat2
from ..runtime.rootfs import mount_overlay
from ..runtime.trace import quiet

O_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
CHUNK = 1 << 20


class PathNotFound(NotFound):
    pass


# -- the container's root ---------------------------------------------------------------
@contextlib.contextmanager
def container_root(containers, row):
    """A descriptor of the container's root directory, as its processes see it."""
    if row["state"] == "running" and row["pid"]:
        fd = _running_root(row["pid"])
        try:
            yield fd
        finally:
            os.close(fd)
    else:
        with _stopped_root(containers.spec(row)) as fd:
            yield fd


def _running_root(pid):
    pidfd = os.pidfd_open(pid)
    try:
        fd = os.open(f"/proc/{pid}/root", O_PATH_DIR)
        if readable(pidfd, 0):           # it ended: the number may be another's now
            os.close(fd)
            raise Conflict("the container stopped during the copy; try again")
        return fd
    finally:
        os.close(pidfd)


@contextlib.contextmanager
def private_mounts(mount_root):
    """Run *mount_root()* (it mounts, and returns where) in the mount namespace of a thread of
    its own, and yield a descriptor of that place. The thread holds the namespace (and so
    the mounts inside one another) until the caller is done; when it ends, the namespace
    and its mounts go. Nothing ever appears in the host's mount table, and nothing is left
    should minirund die meanwhile."""
    ready, done, result = threading.Event(), threading.Event(), {}

    def hold():
        where = None
        try:
            ns.unshare(ns.CLONE_NEWNS)               # this thread only (it implies CLONE_FS)
            m.mount(None, "/", None, m.MS_REC | m.MS_PRIVATE)   # nothing leaks to the host
            where = mount_root()
            result["fd"] = os.open(where, O_PATH_DIR)
        except BaseException as e:
            result["error"] = e
        ready.set()
        done.wait()
    t = threading.Thread(target=hold, name="private-mounts", daemon=True)
    t.start()
    ready.wait()
    try:
        if "error" in result:
            raise MinirunError(f"cannot mount the container's file system: "
                               f"{result['error']}") from None
        try:
            yield result["fd"]
        finally:
            os.close(result["fd"])
    finally:
        done.set()
        t.join()


def _stopped_root(spec):
    """A stopped container's overlay, with its volumes and binds where it has them."""
    def mount_root():
        for attempt in range(30):        # the last copy's overlay may be going away still:
            try:                         # its work directory is busy until it has
                mount_overlay(spec, quiet)
                break
            except OSError as e:
                if e.errno != 16 or attempt == 29:      # EBUSY
                    raise
                time.sleep(0.1)
        root = os.open(spec.rootfs, O_PATH_DIR)
        try:
            for mnt in spec.mounts:
                if mnt.kind == "bind":
                    _bind_inside(root, mnt)
        finally:
            os.close(root)
        return spec.rootfs
    return private_mounts(mount_root)


def _bind_inside(root, mnt):
    """A volume or bind of the container, where the container has it. Its mount point is
    made first if missing (as the container's start would make it), each step resolved in
    the container's root; one of the wrong kind (a file where a volume goes) is skipped."""
    is_dir = os.path.isdir(mnt.source)
    try:
        make_in_root(root, mnt.target, is_dir)
        target = openat2(root, mnt.target, os.O_PATH, RESOLVE_IN_ROOT)
    except OSError:
        return
    try:
        if stat.S_ISDIR(os.fstat(target).st_mode) != is_dir:
            return
        where = f"/proc/self/fd/{target}"
        m.mount(mnt.source, where, None, m.MS_BIND | m.MS_REC)
        if mnt.readonly:
            m.mount(None, where, None, m.MS_BIND | m.MS_REMOUNT | m.MS_RDONLY | m.MS_REC)
    finally:
        os.close(target)


def make_in_root(root, path, is_dir):
    """mkdir -p (and, for a file, touch) *path* inside the root: each missing component
    made relative to its parent's descriptor, itself resolved in the root."""
    parts = [p for p in path.split("/") if p]
    for i, name in enumerate(parts):
        here = "/" + "/".join(parts[:i + 1])
        try:
            os.close(openat2(root, here, os.O_PATH, RESOLVE_IN_ROOT))
            continue
        except FileNotFoundError:
            pass
        parent = openat2(root, "/" + "/".join(parts[:i]), os.O_RDONLY | os.O_DIRECTORY,
                         RESOLVE_IN_ROOT)
        try:
            if i < len(parts) - 1 or is_dir:
                os.mkdir(name, 0o755, dir_fd=parent)
            else:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o644, dir_fd=parent))
        finally:
            os.close(parent)


# -- stat ---------------------------------------------------------------------------------
_GO_MODE = ((stat.S_IFDIR, 1 << 31), (stat.S_IFLNK, 1 << 27), (stat.S_IFIFO, 1 << 25),
            (stat.S_IFSOCK, 1 << 24), (stat.S_IFBLK, 1 << 26),
            (stat.S_IFCHR, (1 << 26) | (1 << 21)))


def go_mode(mode):
    """A stat mode as Go's os.FileMode bits (what the docker CLI reads)."""
    bits = mode & 0o777
    for kind, flag in _GO_MODE:
        if stat.S_IFMT(mode) == kind:
            bits |= flag
    for special, flag in ((stat.S_ISUID, 1 << 23), (stat.S_ISGID, 1 << 22),
                          (stat.S_ISVTX, 1 << 20)):
        if mode & special:
            bits |= flag
    return bits


def _split(path):
    path = path or "/"
    if not path.startswith("/"):
        path = "/" + path
    parent, _, base = path.rstrip("/").rpartition("/")
    return parent or "/", base


def _open_parent(root, path):
    parent, base = _split(path)
    try:
        return openat2(root, parent, os.O_RDONLY | os.O_DIRECTORY, RESOLVE_IN_ROOT), base
    except OSError as e:
        raise PathNotFound(f"Could not find the file {path} in container: "
                           f"{e.strerror}") from None


def path_stat(root, path):
    """(stat result, name, link target) of *path* in the container; the last component is
    not followed (a symlink is itself)."""
    pfd, base = _open_parent(root, path)
    try:
        if not base:
            st = os.stat(pfd)
            return st, "/", ""
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except OSError:
            raise PathNotFound(f"Could not find the file {path} in container") from None
        link = os.readlink(base, dir_fd=pfd) if stat.S_ISLNK(st.st_mode) else ""
        return st, base, link
    finally:
        os.close(pfd)


def stat_header(st, name, link):
    """X-Docker-Container-Path-Stat: base64 of Docker's ContainerPathStat."""
    doc = {"name": name, "size": st.st_size, "mode": go_mode(st.st_mode),
           "mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime)),
           "linkTarget": link}
    return base64.b64encode(json.dumps(doc).encode()).decode()


# -- out: a tar of a path -----------------------------------------------------------------
BLOCK = 512


def tar_path(root, path, name=None):
    """A tar of *path* (named by its last component, or *name*), streamed as chunks of
    bytes: a big file goes out a chunk at a time, never whole in memory."""
    pfd, base = _open_parent(root, path)
    try:
        if not base:                                     # "/": everything, named "."
            yield tar_header(name or ".", os.stat(pfd))
            yield from _tree(pfd, name or ".")
        else:
            yield from _entry(pfd, base, name or base)
        yield b"\0" * (2 * BLOCK)                        # the end of the archive
    finally:
        os.close(pfd)


def tar_header(name, st, link="", clamp=None, xattrs=None):
    """A tar header for *st*; *clamp*: no time later than this (a reproducible layer);
    *xattrs*: extended attributes to carry ({name: bytes})."""
    info = tarfile.TarInfo(name)
    if xattrs:
        info.pax_headers = pax_xattrs(xattrs)
    info.mode, info.uid, info.gid = st.st_mode & 0o7777, st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime) if clamp is None else min(int(st.st_mtime), clamp)
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, link
    elif stat.S_ISREG(st.st_mode):
        info.size = st.st_size
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    else:
        return None                                      # devices, sockets: not copied
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _entry(pfd, base, name):
    """One entry and what is below it. A running container can remove or swap any entry
    between our stat and our open: what is gone by then is left out (a directory whose
    contents are gone goes out empty), never followed, and never ends the copy early."""
    try:
        st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        link = os.readlink(base, dir_fd=pfd) if stat.S_ISLNK(st.st_mode) else ""
    except OSError:
        return                                           # gone meanwhile, or swapped
    if stat.S_ISREG(st.st_mode):
        yield from tar_file(pfd, base, name)
        return
    header = tar_header(name, st, link)
    if header is None:
        return
    yield header
    if stat.S_ISDIR(st.st_mode):
        try:
            fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=pfd)
        except OSError:
            return                                       # gone, or now a link or a file
        try:
            yield from _tree(fd, name)
        finally:
            os.close(fd)


def tar_file(pfd, base, name, clamp=None, xattrs=None):
    """A regular file: its header, then exactly as many bytes as the header says (a file
    that grows or shrinks while it is read, in a running container, cannot break the tar)."""
    try:
        fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=pfd)
    except OSError:
        return                                           # gone, or swapped for a link
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return
        yield tar_header(name, st, clamp=clamp, xattrs=xattrs)
        left = st.st_size
        while left:
            data = os.read(fd, min(CHUNK, left)) or b"\0" * min(CHUNK, left)
            left -= len(data)
            yield data
        yield b"\0" * (-st.st_size % BLOCK)
    finally:
        os.close(fd)


def _tree(dfd, name):
    """The entries below the directory open at *dfd*, named *name*/…"""
    for entry in sorted(os.listdir(dfd)):
        yield from _entry(dfd, entry, entry if name == "." else f"{name}/{entry}")


# -- in: a tar into a directory ----------------------------------------------------------
def extract_into(root, path, stream, owner=None, no_dir_overwrite=False, unended_ok=False,
                 xattrs=False):
    """Unpack the tar *stream* into the directory *path* of the container. *owner*: (uid,
    gid) every entry gets (the container's root, unless the client asked to keep the tar's,
    copyUIDGID). *unended_ok*: a tar may stop right after its last member's data, without
    the padding and end blocks (the docker CLI sends a build context so when -f names a
    Dockerfile outside it, and dockerd takes it); a member cut short is still an error.
    *xattrs*: set the tar's extended attributes (a build's own COPY; never a client's tar)."""
    try:
        dfd = openat2(root, path or "/", os.O_RDONLY | os.O_DIRECTORY, RESOLVE_IN_ROOT)
    except OSError as e:
        if e.errno == 20:                                 # ENOTDIR
            raise MinirunError(f"extraction point is not a directory: {path}") from None
        raise PathNotFound(f"Could not find the file {path} in container") from None
    try:
        writer = LayerWriter(root_fd=dfd, whiteouts=False, xattrs=xattrs)
    finally:
        os.close(dfd)                   # the writer has its own: ours would keep the mount busy
    try:
        tar = tarfile.open(fileobj=stream, mode="r|", errorlevel=2)
        for member in _members(tar, unended_ok):
            if member.ischr() or member.isblk():
                raise LayerError(f"{member.name!r}: device files cannot be copied into a "
                                 f"container")
            if no_dir_overwrite and _would_replace_dir(dfd, member):
                raise Conflict(f"cannot overwrite directory {member.name!r} with "
                               f"non-directory")
            if owner is not None:
                member.uid, member.gid = owner
            writer.add(member, tar)
        writer.finish()
    except tarfile.TarError as e:
        raise MinirunError(f"not a valid tar archive: {e}") from None
    finally:
        writer.close()


def _members(tar, unended_ok):
    while True:
        try:
            member = tar.next()
        except tarfile.ReadError as e:
            if unended_ok and str(e) == "unexpected end of data":
                return                  # after a whole member: the writer read all its data
            raise
        if member is None:
            return
        yield member


def _would_replace_dir(dfd, member):
    if member.isdir():
        return False
    try:
        fd = openat2(dfd, "/".join(clean_parts(member.name)), os.O_PATH, RESOLVE_IN_ROOT)
    except OSError:
        return False
    try:
        return stat.S_ISDIR(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
