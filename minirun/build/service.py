"""The doors into a build: minirund's ``/build`` (a context tar, query options) and
``minirun build`` without a daemon (a directory); and ``builder prune``."""
import json
import os
import shutil
import tempfile

from .. import statedb
from ..engine.copy import extract_into
from ..errors import MinirunError
from ..fsutil import spread_subdirs
from ..image import reference
from .builder import BuildOptions, Builder
from .context import decompressing

CONTEXTS = "builds"          # under the state root: contexts unpacked from /build bodies


class Context:
    """A context directory, open as a descriptor; *temporary*: removed on close."""

    def __init__(self, path, temporary=False):
        self.path, self.temporary = path, temporary
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise MinirunError(f"unable to prepare context: {path}: {e.strerror}") from None

    def close(self):
        os.close(self.fd)
        if self.temporary:
            shutil.rmtree(self.path, ignore_errors=True)


def options_from_query(query):
    """/build's query (Docker's names) → BuildOptions; bad JSON is a 400 before the stream."""

    def arg(name, default=None):
        return query.get(name, [default])[0]     # the first, as Go's FormValue reads it

    def flag(name):
        return (arg(name) or "").lower() in ("1", "true")

    def mapping(name):
        text = arg(name)
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise MinirunError(f"{name}: not a JSON object: {text[:80]}")
        return {str(k): v for k, v in value.items()}
    for tag in query.get("t", []):
        reference.parse(tag)                 # a bad name is a 400 before any step runs
    args = {k: v for k, v in mapping("buildargs").items() if v is not None}
    network = arg("networkmode") or ""
    return BuildOptions(tags=query.get("t", []), dockerfile=arg("dockerfile") or "Dockerfile",
                        build_args={k: str(v) for k, v in args.items()},
                        target=arg("target") or "", no_cache=flag("nocache"),
                        quiet=flag("q"), network="" if network == "default" else network,
                        labels={k: str(v) for k, v in mapping("labels").items()},
                        cache_from=_strings(arg("cachefrom")),
                        extra_hosts=query.get("extrahosts", []))


def _strings(text):
    """cachefrom: a JSON list of image names."""
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MinirunError(f"cachefrom: not a JSON list of names: {text[:80]}")
    return value


def unpack_context(root, stream):
    """A /build body (a tar: plain, gzip, bzip2 or xz) unpacked into a private directory,
    by the escape-proof unpacker (no whiteouts, no xattrs, no devices)."""
    base = os.path.join(root, CONTEXTS)
    os.makedirs(base, mode=0o700, exist_ok=True)
    spread_subdirs(base)              # a context is thousands of files, made and removed
    sweep_contexts(root)
    path = tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=base)
    context = Context(path, temporary=True)
    try:
        extract_into(context.fd, "/", _decompressed(stream), unended_ok=True)
    except BaseException:
        context.close()
        raise
    return context


def sweep_contexts(root):
    """Contexts a killed minirund left (their name starts with its PID)."""
    base = os.path.join(root, CONTEXTS)
    if not os.path.isdir(base):
        return
    for name in os.listdir(base):
        pid = name.partition("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


class _Peeked:
    def __init__(self, head, rest):
        self.head, self.rest = head, rest

    def read(self, n=-1):
        if self.head:
            data, self.head = (self.head[:n], self.head[n:]) if n >= 0 else (self.head, b"")
            return data
        return self.rest.read(n)


def _decompressed(stream):
    head = stream.read(6)
    return decompressing(_Peeked(head, stream), head)


def build(steps, context, options, out, dockerfile_text=None):
    """Run a build; the final image's ID."""
    return Builder(steps, context.fd, options, out, dockerfile_text).build()


def prune(images, containers):
    """``builder prune``: forget the build cache, and remove the steps' images nothing else
    names (no tag, no container, no image made from them); (cache entries, bytes freed)."""
    rows = images.db.execute("SELECT key, image_id FROM build_cache").fetchall()
    with statedb.transaction(images.db) as db:
        db.execute("DELETE FROM build_cache")
    removed = [r["key"] for r in rows]
    candidates = {r["image_id"] for r in rows}
    for _ in range(len(candidates) + 1):           # children first, then their parents
        gone = False
        for image_id in sorted(candidates):
            record = images.record(image_id)
            if record is None:
                candidates.discard(image_id)
                continue
            child = images.db.execute("SELECT 1 FROM images WHERE parent = ?",
                                      (image_id,)).fetchone()
            if images.tags_of(image_id) or child or containers.uses_image(image_id):
                continue
            images.remove(image_id, in_use=containers.uses_image)
            candidates.discard(image_id)
            gone = True
        if not gone:
            break
    return removed, images.prune()
