"""File-system helpers that need only ``os`` (shutil alone costs ~8 ms to import)."""
import os

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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
