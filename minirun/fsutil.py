"""File-system helpers that need nothing heavier than ``os`` (shutil alone costs ~8 ms to
import)."""
import fcntl
import os
import select
import struct

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def readable(fd, timeout=None):
    """Whether *fd* turns readable within *timeout* seconds (None: wait until it does); a
    pidfd is readable once its process has ended. poll(2), never select(2): select takes no
    descriptor numbered past 1023, and minirund holds three for each container it runs."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else timeout * 1000))


# linux/fs.h. The ioctls' encoded size says long; every file system reads an int.
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_TOPDIR_FL = 0x00020000            # chattr +T


def spread_subdirs(path):
    """Have ext4 place each directory made in *path* apart from its siblings, as it places
    directories made in ``/`` (chattr +T: Orlov's allocator then picks the new directory's
    group afresh: from its name's hash on, the one with fewest directories among those with
    more free inodes and blocks than the average).

    Why: on ext4 without a journal, every create scans past the inodes its group freed in
    the last minute or more (fs/ext4/ialloc.c, ``recently_deleted``). A tree of thousands of
    files made in the group where containers or layers were just removed takes quadratic
    time: 4000 creates took 0.11 s in a fresh group and 0.5-2.6 s after 40000 removals in
    the same one. A hint only: other file systems refuse the flag (ENOTTY, EOPNOTSUPP), and
    nothing depends on it. Returns whether the flag is set."""
    try:
        fd = os.open(path, _DIR)
    except OSError:
        return False
    try:
        flags, = struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(4)))
        if not flags & FS_TOPDIR_FL:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", flags | FS_TOPDIR_FL))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def rmtree_at(top):
    """Empty the directory open at *top*, never following a symlink.

    Without recursion and with two descriptors at most: a container can make a tree deeper
    than Python's stack or the descriptor limit (1100 levels stopped ``rm`` once). Each step
    down opens the entry with O_NOFOLLOW relative to its parent; each step back up opens
    ``..`` and checks it is the directory we came from, so a directory moved meanwhile
    cannot lead the removal out of the tree.
    """
    fd = os.dup(top)
    path = []                                   # (name, (dev, ino) of its parent) from top
    try:
        while True:
            subdir = None
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        subdir = subdir or entry.name
                    else:
                        os.unlink(entry.name, dir_fd=fd)
            if subdir is not None:                 # down: its files go next round
                st = os.fstat(fd)
                child = os.open(subdir, _DIR, dir_fd=fd)
                os.close(fd)
                fd = child
                path.append((subdir, (st.st_dev, st.st_ino)))
                continue
            if not path:
                return
            name, parent_id = path.pop()           # up: this directory is empty now
            parent = os.open("..", _DIR, dir_fd=fd)
            st = os.fstat(parent)
            if (st.st_dev, st.st_ino) != parent_id:
                os.close(parent)
                raise OSError(16, "directory moved during removal", name)   # EBUSY
            os.close(fd)
            fd = parent
            os.rmdir(name, dir_fd=fd)
    finally:
        os.close(fd)


def rmtree(path):
    """Remove *path* and everything below it; nothing to do if it is gone."""
    try:
        fd = os.open(path, _DIR)
    except FileNotFoundError:
        return
    try:
        rmtree_at(fd)
    finally:
        os.close(fd)
    os.rmdir(path)


def tree_size(path):
    """Bytes of the files below *path* (what ``du`` counts as their size; links not
    followed, files gone meanwhile skipped): a container's writes, a volume's content."""
    total = 0
    for top, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(top, name)).st_size
            except OSError:
                pass
    return total


COPY_DEPTH = 512      # a tree deeper than this is refused rather than copied


def copy_tree_at(src, dst, depth=0):
    """Copy the directory open at *src* into the one open at *dst*: directories, regular
    files and symlinks, with their modes, owners and times; never following a symlink (one
    is copied as a link) and never opening anything but a regular file or a directory, so a
    FIFO or device in the source cannot block or reach anything. Used to fill an empty
    volume with what an image has where it is mounted (as Docker does)."""
    if depth > COPY_DEPTH:
        raise OSError(40, "directory tree too deep to copy")      # ELOOP
    with os.scandir(src) as entries:
        for entry in entries:
            name = entry.name
            st = entry.stat(follow_symlinks=False)
            if entry.is_symlink():
                os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
            elif entry.is_dir(follow_symlinks=False):
                os.mkdir(name, 0o700, dir_fd=dst)
                s = os.open(name, _DIR, dir_fd=src)
                try:
                    d = os.open(name, _DIR, dir_fd=dst)
                    try:
                        copy_tree_at(s, d, depth + 1)
                    finally:
                        os.close(d)
                finally:
                    os.close(s)
            elif entry.is_file(follow_symlinks=False):
                _copy_file(src, dst, name)
            else:
                continue                          # sockets, FIFOs, devices: not copied
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
            if not entry.is_symlink():
                os.chmod(name, st.st_mode & 0o7777, dir_fd=dst)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst,
                     follow_symlinks=False)


def _copy_file(src, dst, name):
    s = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=src)
    try:
        d = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600,
                    dir_fd=dst)
        try:
            while os.copy_file_range(s, d, 1 << 30):
                pass
        except OSError:                           # across file systems on old kernels
            os.lseek(s, 0, os.SEEK_SET)
            os.lseek(d, 0, os.SEEK_SET)
            os.ftruncate(d, 0)
            while data := os.read(s, 1 << 20):
                os.write(d, data)
        finally:
            os.close(d)
    finally:
        os.close(s)
