"""``minirun cp``: the client side of copying between a container and the host.

As the docker CLI: ``cp CONTAINER:SRC DEST`` asks minirund for a tar of SRC and
unpacks it at DEST; ``cp SRC CONTAINER:DEST`` sends a tar of SRC to be unpacked
in the container (minirund resolves every container path inside the
container, engine/copy.py). DEST that exists as a directory receives SRC under
its own name; a DEST that does not exist becomes SRC's copy; ``SRC/.`` copies
a directory's content. ``-`` is a tar on stdin or stdout.
"""
import base64
import json
import os
import sys

from ..engine.copy import tar_path
from ..errors import MinirunError, UsageError
from ..image.unpack import LayerWriter
from .client import DaemonError


def split_target(arg):
    """"NAME:/path" → (NAME, "/path"); a host path → (None, path)."""
    name, sep, path = arg.partition(":")
    if sep and "/" not in name and name:
        return name, path
    return None, arg


def copy(client, src, dest, archive=False):
    (src_ref, src_path), (dest_ref, dest_path) = split_target(src), split_target(dest)
    if bool(src_ref) == bool(dest_ref):
        raise UsageError("copying between containers, or between two host paths, is not "
                         "supported: one of SRC and DEST must be CONTAINER:PATH")
    if src_ref:
        _from_container(client, src_ref, src_path, dest_path, archive)
    else:
        _to_container(client, src_path, dest_ref, dest_path, archive)


def _stat(client, ref, path):
    """ContainerPathStat of a path in the container, or None if it is not there."""
    try:
        resp = client.request("HEAD", f"/containers/{ref}/archive", path=path)
    except DaemonError as e:
        if e.status == 404 and "No such container" not in str(e):
            return None
        raise
    header = resp.getheader("X-Docker-Container-Path-Stat")
    resp.conn.close()
    return json.loads(base64.b64decode(header)) if header else None


def _is_dir(stat):
    return bool(stat["mode"] & (1 << 31))


def _from_container(client, ref, src, dest, archive):
    stat = _stat(client, ref, src)
    if stat is None:
        raise MinirunError(f"Could not find the file {src} in container {ref}")
    resp = client.request("GET", f"/containers/{ref}/archive", path=src)
    if dest == "-":
        while data := resp.read(1 << 20):
            sys.stdout.buffer.write(data)
        return
    contents = src.endswith("/.")
    if os.path.isdir(dest):
        into, rename = dest, None if not contents else ""
    else:
        parent = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(parent):
            raise MinirunError(f"no such directory: {parent}")
        if _is_dir(stat) and not contents:
            into, rename = parent, os.path.basename(dest)
        elif _is_dir(stat):
            os.mkdir(dest)
            into, rename = dest, ""
        else:
            into, rename = parent, os.path.basename(dest)
    owner = None if archive else (os.getuid(), os.getgid())
    import tarfile                                           # only cp needs it
    writer = LayerWriter(into, whiteouts=False, xattrs=False)
    try:
        tar = tarfile.open(fileobj=resp, mode="r|")
        for member in tar:
            if rename is not None:                           # the top takes DEST's name
                rest = member.name.partition("/")[2]
                member.name = "/".join(p for p in (rename, rest) if p) or "."
            if owner:
                member.uid, member.gid = owner
            writer.add(member, tar)
        writer.finish()
    finally:
        writer.close()
        resp.conn.close()


def _to_container(client, src, ref, dest, archive):
    query = {"path": dest, "copyUIDGID": int(archive)}
    if src == "-":
        stream = iter(lambda: sys.stdin.buffer.read(1 << 20), b"")
    else:
        if not os.path.lexists(src):
            raise MinirunError(f"no such file or directory: {src}")
        stat = _stat(client, ref, dest)
        contents = src.endswith("/.")
        name = None
        if stat is None and dest.endswith("/"):
            raise MinirunError(f"no such directory in the container: {dest}")
        if stat is None or not _is_dir(stat):            # DEST is the copy's own name
            parent, name = os.path.split(dest.rstrip("/"))
            query["path"] = parent or "/"
        elif contents:
            name = "."
        root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        stream = _closing(tar_path(root, os.path.abspath(src.rstrip(".") if contents
                                                         else src), name), root)
    resp = client.request("PUT", f"/containers/{ref}/archive", chunks=stream,
                          headers={"Content-Type": "application/x-tar"}, **query)
    resp.read()
    resp.conn.close()


def _closing(chunks, fd):
    try:
        yield from chunks
    finally:
        os.close(fd)
