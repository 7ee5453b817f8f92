"""File-system helpers that need only ``os`` (shutil alone costs ~8 ms to import)."""
import os


def rmtree_at(dfd):
    """Empty the directory open at *dfd*, never following a symlink."""
    for entry in os.scandir(dfd):
        if entry.is_dir(follow_symlinks=False):
            sub = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
            try:
                rmtree_at(sub)
            finally:
                os.close(sub)
            os.rmdir(entry.name, dir_fd=dfd)
        else:
            os.unlink(entry.name, dir_fd=dfd)


def rmtree(path):
    """Remove *path* and everything below it; nothing to do if it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        rmtree_at(fd)
    finally:
        os.close(fd)
    os.rmdir(path)
