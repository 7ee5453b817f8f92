"""The Docker Engine API endpoints minirund serves, each a small function.

Every handler takes (engine, request, **path parameters) and returns JSON
data, (status, data), None (204) or a Stream.

The registry client and exec's machinery are imported by the handlers that use
them: cli/local.py serves image and network commands from these handlers when no
daemon runs, and would otherwise load them (~30 ms) for `minirun images`.
"""
import base64
import json
import os
import platform
import queue
import re
import struct
import threading
import time

from .. import __version__
from ..config import API_VERSION, MIN_API_VERSION
from ..engine import attach, logs
from ..engine.containers import ContainerStore
from ..engine.logs import LOG_NAME
from ..engine.stats import stats, top
from ..errors import Conflict, MinirunError
from ..fsutil import tree_size
from ..image import reference
from ..image.inspect import inspect_image
from ..network.inspect import find_pseudo
from ..runtime import cgroups
from . import convert as c
from .server import ApiError, Stream

ROUTES = []


def route(method, pattern, streams_body=False):
    """Register a handler. *streams_body*: it reads the request body itself, as it goes
    (``req.stream``: a tar can be larger than any body kept in memory)."""
    def register(fn):
        fn.streams_body = streams_body
        ROUTES.append((method, re.compile(pattern), fn))
        return fn
    return register


# -- system -------------------------------------------------------------------------
@route("GET", "/_ping")
@route("HEAD", "/_ping")
def ping(engine, req):
    return Stream(iter([b"OK"]), "text/plain; charset=utf-8") if req.method == "GET" else \
        Stream(iter([]), "text/plain; charset=utf-8")


@route("GET", "/version")
def version(engine, req):
    return {"Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
            "Os": "linux", "Arch": c.arch(), "KernelVersion": os.uname().release,
            "GoVersion": "python" + platform.python_version(), "GitCommit": "",
            "Components": [{"Name": "minirund", "Version": __version__, "Details": {}}],
            "Platform": {"Name": "minirun"}}


@route("GET", "/swarm")
@route("POST", "/swarm/(?P<action>init|join|leave|update|unlock)")
@route("GET", "/swarm/unlockkey")
@route("GET", "/(?P<kind>services|tasks|nodes|secrets|configs)")
def swarm(engine, req, **_):
    """No swarm here: dockerd's own answer where it runs without one."""
    raise ApiError(503, "This node is not a swarm manager. Use \"docker swarm init\" or "
                        "\"docker swarm join\" to connect this node to swarm and try again.")


@route("GET", "/system/df")
def system_df(engine, req):
    rows = engine.containers.list()
    images = [_image_summary(r, refs, sum(ctr["image_id"] == r["id"] for ctr in rows))
              for r, refs in engine.images.list()]
    containers = [dict(c.summary(engine, r),
                       SizeRw=tree_size(engine.containers.path(r["id"], "upper")))
                  for r in rows]
    volumes = [_volume(engine, r, usage=True) for r in engine.volumes.list()]
    return {"LayersSize": sum(i["Size"] for i in images), "Images": images,
            "Containers": containers, "Volumes": volumes, "BuildCache": []}


@route("GET", "/distribution/(?P<name>.+)/json")
def distribution(engine, req, name):
    """The manifest digest and platforms of an image in its registry (docker manifest)."""
    from ..registry.client import Client   # lazy: see image_create
    from ..registry.pull import Pull
    ref = reference.parse(name)
    pull = Pull(engine.images, ref, Client(ref.domain, credentials=_registry_auth(req)))
    pull.resolve()
    desc = {"mediaType": mf_type(pull.manifest), "digest": pull.digest,
            "size": len(pull.manifest)}
    return {"Descriptor": desc, "Platforms": [{"architecture": c.arch(), "os": "linux"}]}


def mf_type(data):
    from ..image import manifest as mf   # lazy: as distribution's
    return mf.media_type(mf.loads(data))


@route("GET", "/info")
def info(engine, req):
    rows = engine.containers.list()
    running = sum(r["state"] == "running" and not r["paused"] for r in rows)
    paused = sum(bool(r["paused"]) for r in rows)
    return {"ID": "minirund", "Containers": len(rows), "ContainersRunning": running,
            "ContainersPaused": paused, "ContainersStopped": len(rows) - running - paused,
            "Images": len(engine.images.list()), "Driver": "overlay",
            "DockerRootDir": engine.root, "CgroupDriver": "cgroupfs",
            "CgroupVersion": str(cgroups.detect().version), "OperatingSystem": "Linux",
            "OSType": "linux", "Architecture": os.uname().machine, "NCPU": os.cpu_count(),
            "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "Name": os.uname().nodename, "ServerVersion": __version__, "KernelVersion":
            os.uname().release, "LoggingDriver": "json-file", "Runtimes": {"minirun": {}},
            "DefaultRuntime": "minirun", "SecurityOptions": ["name=no-new-privileges"],
            "Debug": engine.log.isEnabledFor(10) if hasattr(engine, "log") else False,
            "ExperimentalBuild": False, "Swarm": {"LocalNodeState": "inactive"}}


# -- images ---------------------------------------------------------------------------
@route("GET", "/images/json")
def images_list(engine, req):
    """Images; as dockerd, an untagged image another was made from (a build's intermediate
    step) only with ``all``."""
    images = engine.images.list()
    parents = {record["parent"] for record, _ in images if record["parent"]}
    return [_image_summary(record, refs) for record, refs in images
            if refs or req.flag("all") or record["id"] not in parents]


def _image_summary(record, refs, containers=-1):
    """Docker's ImageSummary (images, system df)."""
    return {"Id": record["id"], "ParentId": record["parent"] or "",
            "RepoTags": [f"{r.familiar_repository}:{r.tag}" for r in refs],
            "RepoDigests": [f"{r.familiar_repository}@{record['manifest_digest']}"
                            for r in refs],
            "Created": int(c.created_unix(record["created"])), "Size": record["size"],
            "SharedSize": -1, "VirtualSize": record["size"], "Labels": {},
            "Containers": containers}


@route("POST", "/images/create", streams_body=True)
def image_create(engine, req):
    """``docker pull``: Docker's JSON progress messages, streamed as the pull goes."""
    from ..registry.client import Client   # lazy: see the module's note
    from ..registry.pull import Pull, pull_image
    name, tag = req.arg("fromImage") or "", req.arg("tag")
    if req.arg("fromSrc"):
        return _image_import(engine, req)
    if not name:
        raise ApiError(400, "fromImage or fromSrc is required")
    text = name + (("@" if tag.startswith("sha256:") else ":") + tag
                   if tag and "@" not in name and ":" not in name.rsplit("/", 1)[-1] else "")
    ref = reference.parse(text)
    pull = Pull(engine.images, ref, Client(ref.domain, credentials=_registry_auth(req)))
    pull.resolve()                        # "manifest unknown" is a 404, not a stream

    def work(progress):
        pull_image(pull, progress)
        engine.emit("image", "pull", str(ref), {"name": str(ref)})
    return Stream(_streamed(work), "application/json", chunked=True)


def _image_import(engine, req):
    """``docker import``: the body (a tar, plain or compressed) becomes a one-layer image."""
    from ..engine.commit import import_tar   # lazy: only import needs it
    if req.arg("fromSrc") != "-":
        raise ApiError(400, "import from a URL is not supported: send the tar as the body "
                            "(fromSrc=-)")
    path = _body_to_file(engine, req, "import")
    try:
        repo = req.arg("repo")
        image_id = import_tar(engine.images, path, repo, req.arg("tag"),
                              req.query.get("changes") or [], req.arg("message") or "")
    finally:
        os.unlink(path)
    engine.emit("image", "import", image_id, {"name": repo or image_id})
    return Stream(iter([json.dumps({"status": image_id}).encode() + b"\n"]),
                  "application/json")


def _registry_auth(req):
    """X-Registry-Auth: base64url JSON {username, password}; None to use the stored ones."""
    header = req.headers.get("X-Registry-Auth")
    if not header:
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except ValueError:
        raise ApiError(400, "X-Registry-Auth is not base64url JSON") from None
    if isinstance(doc, dict) and doc.get("username"):
        return doc["username"], doc.get("password") or ""
    return None


def _streamed(work):
    """Run *work(progress)* in a thread; yield its JSON messages as they come, then an
    error message if it failed (Docker reports errors inside the 200 stream)."""
    from ..registry.progress import JsonProgress   # lazy: see the module's note
    return _stream_lines(lambda put, _cancelled: work(JsonProgress(put)))


def _stream_lines(work, gone=lambda: False):
    """Run *work(put, cancelled)* in a thread: each line it puts is sent as it comes, then
    an error message if it failed. *cancelled* is set once the client has gone (*gone()*
    is asked each second it stays quiet)."""
    lines, cancelled = queue.Queue(), threading.Event()

    def run():
        try:
            work(lines.put, cancelled)
        except MinirunError as e:
            detail = {"message": str(e)}
            if getattr(e, "step_code", None) is not None:
                detail["code"] = e.step_code            # a build step's exit code
            lines.put(json.dumps({"errorDetail": detail, "error": str(e)}).encode() + b"\n")
        except Exception as e:              # minirun's bug: said in the stream, kept in the log
            import traceback
            traceback.print_exc()
            message = f"internal error: {type(e).__name__}: {e}"
            lines.put(json.dumps({"errorDetail": {"message": message}, "error": message}
                                 ).encode() + b"\n")
        finally:
            lines.put(None)
    threading.Thread(target=run, daemon=True).start()
    try:
        while True:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                if gone():
                    cancelled.set()
                continue
            if line is None:
                return
            yield line
    finally:
        cancelled.set()


@route("POST", "/images/(?P<name>.+)/push")
def image_push(engine, req, name):
    from ..registry.client import Client   # lazy: see the module's note
    from ..registry.push import push_image
    tag = req.arg("tag")
    ref = reference.parse(f"{name}:{tag}" if tag else name)
    auth = _registry_auth(req)

    def work(progress):
        push_image(engine.images, ref, Client(ref.domain, credentials=auth), progress)
        engine.emit("image", "push", str(ref), {"name": str(ref)})
    engine.images.resolve(str(ref))                 # 404 before the stream starts
    return Stream(_streamed(work), "application/json", chunked=True)


@route("POST", "/images/(?P<name>.+)/tag")
def image_tag(engine, req, name):
    repo, tag = req.arg("repo") or "", req.arg("tag") or "latest"
    image_id = engine.images.resolve(name)
    engine.images.tag(reference.parse(f"{repo}:{tag}"), image_id)
    engine.emit("image", "tag", image_id, {"name": f"{repo}:{tag}"})
    return 201, None


@route("GET", "/images/(?P<name>.+)/json")
def image_inspect(engine, req, name):
    return inspect_image(engine.images, engine.images.resolve(name))


@route("DELETE", "/images/(?P<name>.+)")
def image_delete(engine, req, name):
    done = engine.images.remove(name, force=req.flag("force"),
                                in_use=engine.containers.uses_image)
    for kind, value in done:
        engine.emit("image", "untag" if kind == "Untagged" else "delete", value,
                    {"name": value})
    return [{k: v} for k, v in done]


@route("POST", "/images/prune")
def image_prune(engine, req):
    """Untagged images no container uses (all such with dangling=false), then every blob and
    layer no image uses."""
    filters = _filters(req.arg("filters"))
    deleted = []
    if filters.get("dangling", ["true"]) in (["false"], ["0"]):
        for record, refs in engine.images.list():
            if not refs and not engine.containers.uses_image(record["id"]):
                deleted += [{k: v} for k, v in engine.images.remove(record["id"], force=True)]
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": engine.images.prune()}


# -- containers -------------------------------------------------------------------------
@route("POST", "/containers/create")
def container_create(engine, req):
    opts = c.run_options(req.json(), req.arg("name"))
    cid, _ = engine.create(opts)
    return 201, {"Id": cid, "Warnings": []}


@route("GET", "/containers/json")
def container_list(engine, req):
    filters = _filters(req.arg("filters"))
    show_all = req.flag("all") or any(k in filters for k in ("status", "exited"))
    out = []
    for row in engine.containers.list():
        if not show_all and row["state"] != "running":
            continue
        if _matches(engine, row, filters):
            out.append(c.summary(engine, row))
    limit = req.int("limit", -1)
    return out[:limit] if limit > 0 else out


def _filters(text):
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        raise ApiError(400, "invalid filters: not JSON") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "invalid filters")
    # Old clients send {"key": {"value": true}}; new ones {"key": ["value"]}.
    return {k: list(v) if isinstance(v, (list, dict)) else [v] for k, v in doc.items()}


def _matches(engine, row, filters):
    labels = ContainerStore.options(row).get("labels") or {}
    for key, values in filters.items():
        if key == "status" and c.state_name(row) not in values:
            return False
        if key == "name" and not any(name_matches(v, row["name"]) for v in values):
            return False
        if key == "id" and not any(row["id"].startswith(v) for v in values):
            return False
        if key == "label":
            for v in values:
                k, eq, want = v.partition("=")
                if k not in labels or (eq and labels[k] != want):
                    return False
        if key == "exited" and str(row["exit_code"]) not in values:
            return False
        if key == "health" and c.health_status(engine, row) not in values:
            return False
    return True


def name_matches(pattern, name):
    """Docker's name filter, as clients use it: a substring, or anchored with ^ and $. Not a
    regular expression: one crafted pattern ((a+)+$b) held every thread of the daemon."""
    pattern = pattern.lstrip("/")
    start, end = pattern.startswith("^"), pattern.endswith("$") and not pattern.endswith("\\$")
    core = pattern[1 if start else 0:len(pattern) - (1 if end else 0)].lstrip("/")
    if start and end:
        return name == core
    if start:
        return name.startswith(core)
    if end:
        return name.endswith(core)
    return core in name


@route("GET", "/containers/(?P<ref>[^/]+)/json")
def container_inspect(engine, req, ref):
    return c.inspect(engine, engine.get(ref))


@route("POST", "/containers/(?P<ref>[^/]+)/start")
def container_start(engine, req, ref):
    engine.start(ref)


@route("POST", "/containers/(?P<ref>[^/]+)/stop")
def container_stop(engine, req, ref):
    row = engine.get(ref)
    options = engine.containers.options(row)
    timeout = options.get("stop_timeout")
    engine.stop(ref, timeout=req.int("t", 10 if timeout is None else timeout),
                sig=c.parse_signal(req.arg("signal") or options.get("stop_signal"), 15))


@route("POST", "/containers/(?P<ref>[^/]+)/restart")
def container_restart(engine, req, ref):
    timeout = engine.containers.options(engine.get(ref)).get("stop_timeout")
    engine.restart(ref, timeout=req.int("t", 10 if timeout is None else timeout))


@route("POST", "/containers/(?P<ref>[^/]+)/kill")
def container_kill(engine, req, ref):
    engine.kill(ref, c.parse_signal(req.arg("signal"), 9))


@route("POST", "/containers/(?P<ref>[^/]+)/pause")
def container_pause(engine, req, ref):
    engine.pause(ref)


@route("POST", "/containers/(?P<ref>[^/]+)/unpause")
def container_unpause(engine, req, ref):
    engine.unpause(ref)


@route("POST", "/containers/(?P<ref>[^/]+)/rename")
def container_rename(engine, req, ref):
    name = req.arg("name")
    if not name:
        raise ApiError(400, "a new name is required (name=…)")
    engine.rename(ref, name)


@route("POST", "/containers/(?P<ref>[^/]+)/wait")
def container_wait(engine, req, ref):
    condition = req.arg("condition") or "not-running"
    engine.get(ref)                                   # 404 before the headers go out
    if condition not in ("not-running", "next-exit", "removed"):
        raise ApiError(400, f"invalid condition: {condition}")

    def body():
        yield b""                                     # the headers leave at once
        code = engine.wait(ref, condition, gone=req.peer_gone)
        if code is not None:
            yield json.dumps({"StatusCode": code, "Error": None}).encode()
    return Stream(body(), "application/json")


@route("DELETE", "/containers/(?P<ref>[^/]+)")
def container_delete(engine, req, ref):
    engine.remove(ref, force=req.flag("force"), volumes=req.flag("v"))


@route("POST", "/containers/prune")
def container_prune(engine, req):
    deleted, space = engine.prune()
    return {"ContainersDeleted": deleted, "SpaceReclaimed": space}


# -- logs, top, stats ---------------------------------------------------------------------
def frame(stream, data):
    """Docker's multiplexed stream: [stream, 0, 0, 0, size (big endian)] + payload."""
    return struct.pack(">BxxxI", 1 if stream == "stdout" else 2, len(data)) + data


@route("GET", "/containers/(?P<ref>[^/]+)/logs")
def container_logs(engine, req, ref):
    row = engine.get(ref)
    stdout, stderr = req.flag("stdout"), req.flag("stderr")
    if not (stdout or stderr):
        raise ApiError(400, "you must choose at least one stream (stdout or stderr)")
    tail = req.arg("tail", "all")
    tail = None if tail == "all" else _int(tail, "tail")
    since = req.number("since", 0)
    until = req.number("until", 0)
    stamps = req.flag("timestamps")
    tty = engine.containers.spec(row).tty
    path = engine.containers.path(row["id"], LOG_NAME)
    _, _, max_file = engine.log_options(row)

    def encode(entries):
        for stream, text, t in entries:
            data = ((t + " ") if stamps else "").encode() + text.encode()
            yield data if tty else frame(stream, data)

    # Opened now, before the answer's headers go out: docker-py's run() reads them, then
    # waits for the container and removes it, and reads this stream only after that.
    follower = logs.Follower(path) if req.flag("follow") else None

    def body():
        if follower is None:
            yield from encode(logs.read(path, stdout, stderr, since, until, tail, max_file))
            return
        try:
            yield from encode(logs.read(path, stdout, stderr, since, until, tail, max_file,
                                        follower))
            while not req.peer_gone():             # an abandoned logs -f ends its thread
                try:
                    state = engine.get(row["id"])["state"]
                except MinirunError:
                    state = None                   # removed (--rm, or docker-py's run())
                # The state first, then the file: an exit is recorded only after its last
                # output was written, so a poll after seeing it has everything (the other way
                # round, a container that spoke and ended between the two lost its output).
                yield from encode(follower.poll(stdout, stderr))
                if state != "running":
                    return
                time.sleep(0.1)
        finally:
            follower.close()
    content = "application/vnd.docker.raw-stream" if tty else \
        "application/vnd.docker.multiplexed-stream"
    return Stream(body(), content)


def _int(text, name):
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, f"invalid {name}: {text!r}") from None


@route("GET", "/containers/(?P<ref>[^/]+)/top")
def container_top(engine, req, ref):
    return top(engine, engine.get(ref))


@route("GET", "/containers/(?P<ref>[^/]+)/stats")
def container_stats(engine, req, ref):
    row = engine.get(ref)
    if not req.flag("stream", True) or req.flag("one-shot"):
        return stats(engine, row, prev=None)

    def body():
        prev = None
        while not req.peer_gone():
            doc = stats(engine, engine.get(row["id"]), prev)
            yield json.dumps(doc).encode() + b"\n"
            prev = doc
            time.sleep(1)
    return Stream(body(), "application/json")


# -- changes, commit, export, history --------------------------------------------------
@route("GET", "/containers/(?P<ref>[^/]+)/changes")
def container_changes(engine, req, ref):
    from ..engine import commit   # lazy: only diff, commit and export need it
    return commit.changes(engine.containers.spec(engine.get(ref)))


@route("POST", "/commit")
def container_commit(engine, req):
    from ..engine import commit   # lazy: as above
    row = engine.get(req.arg("container") or "")
    changes = req.query.get("changes") or []
    changes = [line for text in changes for line in text.splitlines() if line.strip()]
    body = req.json()                      # a Config to merge, as docker-py may send
    if body.get("Cmd"):
        changes.append("CMD " + json.dumps(c.str_list(body, "Cmd")))
    pause = req.flag("pause", True) and row["state"] == "running" and not row["paused"]
    if pause:
        try:
            engine.pause(row["id"])
        except Conflict:                   # it exited meanwhile: nothing to hold still
            pause = False
    try:
        image_id = commit.commit(engine.images, engine.containers, row, req.arg("repo"),
                                 req.arg("tag"), req.arg("comment") or "",
                                 req.arg("author") or "", changes)
    finally:
        if pause:
            try:
                engine.unpause(row["id"])
            except Conflict:               # its exit (before the pause) was heard meanwhile
                pass
    engine.emit_container("commit", row["id"], comment=req.arg("comment") or "")
    return 201, {"Id": image_id}


@route("GET", "/containers/(?P<ref>[^/]+)/export")
def container_export(engine, req, ref):
    from ..engine import commit   # lazy: as above
    row = engine.get(ref)
    spec = engine.containers.spec(row)
    engine.emit_container("export", row["id"])
    return Stream(commit.export(spec), "application/x-tar")


@route("GET", "/images/(?P<name>.+)/history")
def image_history(engine, req, name):
    """The image's history, newest first; the layers' entries carry the image's ID once."""
    image_id = engine.images.resolve(name)
    config = engine.images.config(image_id)
    tags = [f"{r.familiar_repository}:{r.tag}" for r in engine.images.tags_of(image_id)]
    out = []
    for i, h in enumerate(reversed(config.get("history") or [{}])):
        out.append({"Id": image_id if i == 0 else "<missing>",
                    "Created": _epoch(h.get("created") or config.get("created")),
                    "CreatedBy": h.get("created_by", ""), "Tags": tags if i == 0 else None,
                    "Size": 0, "Comment": h.get("comment", "")})
    return out


def _epoch(text):
    import calendar                        # lazy: only history needs it
    try:
        return calendar.timegm(time.strptime((text or "")[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0


# -- save, load, import -----------------------------------------------------------------
@route("GET", "/images/get")
@route("GET", "/images/(?P<name>[^?]+)/get")
def image_save(engine, req, name=None):
    """``docker save``: the archive written to a file of the store's, streamed, removed."""
    from ..image.archive import save     # lazy: only save needs it
    names = [name] if name else req.query.get("names") or []
    if not names:
        raise ApiError(400, "no image named")
    for n in names:
        engine.images.resolve(n)           # 404 before the stream starts
    path = os.path.join(engine.images.blobs.tmp, f"save-{os.urandom(8).hex()}.tar")
    save(engine.images, names, path)

    def body():
        try:
            with open(path, "rb") as f:
                while data := f.read(1 << 20):
                    yield data
        finally:
            os.unlink(path)
    for n in names:
        engine.emit("image", "save", n, {"name": n})
    return Stream(body(), "application/x-tar")


@route("POST", "/images/load", streams_body=True)
def image_load(engine, req):
    """``docker load``: the body (a docker save archive or an OCI layout tar) kept in a file
    of the store's while it loads."""
    from ..image.archive import ArchiveError, load   # lazy: only load needs it
    path = _body_to_file(engine, req, "load")
    try:
        loaded = load(engine.images, path)
    except ArchiveError as e:               # said of our temporary file: say it of the body
        raise ApiError(400, "the body: " + str(e).replace(path + ": ", "").rstrip(":")
                       ) from None
    finally:
        os.unlink(path)
    lines = []
    for image_id, refs in loaded:
        names = [f"{r.familiar_repository}:{r.tag}" for r in refs] or [image_id]
        for n in names:
            engine.emit("image", "load", n, {"name": n})
            lines.append({"stream": (f"Loaded image: {n}\n" if refs else
                                     f"Loaded image ID: {n}\n")})
    return Stream(iter([json.dumps(l).encode() + b"\n" for l in lines]), "application/json")


def _body_to_file(engine, req, what):
    path = os.path.join(engine.images.blobs.tmp, f"{what}-{os.urandom(8).hex()}.tar")
    try:
        with open(path, "wb") as f:
            while data := req.stream.read(1 << 20):
                f.write(data)
    except OSError as e:
        os.unlink(path)
        raise ApiError(400, f"reading the request body: {e}") from None
    return path


# -- build ------------------------------------------------------------------------------
@route("POST", "/build", streams_body=True)
def image_build(engine, req):
    """``docker build`` (the classic builder's API): the body is the context as a tar (plain
    or compressed), the answer Docker's JSON progress, the steps run by this engine."""
    from ..build import service         # lazy: only a build needs the builder
    from ..build.steps import DaemonSteps
    if req.arg("remote"):
        raise ApiError(400, "building from a remote context (remote=) is not supported: send "
                            "the context as the body")
    if req.arg("version") == "2":
        raise ApiError(400, "BuildKit (version=2) is not supported: minirun builds as "
                            "Docker's classic builder (DOCKER_BUILDKIT=0)")
    options = service.options_from_query(req.query)
    context = service.unpack_context(engine.images.root, req.stream)

    def work(put, cancelled):
        try:
            image_id = service.build(DaemonSteps(engine, cancelled), context,
                                     options, lambda m: put(json.dumps(m).encode() + b"\n"))
            for tag in options.tags:
                engine.emit("image", "tag", image_id, {"name": tag})
        finally:
            context.close()
    return Stream(_stream_lines(work, req.peer_gone), "application/json", chunked=True)


@route("POST", "/build/prune")
def build_prune(engine, req):
    from ..build import service         # lazy: as above
    removed, freed = service.prune(engine.images, engine.containers)
    return {"CachesDeleted": removed, "SpaceReclaimed": freed}


@route("POST", "/build/cancel")
def build_cancel(engine, req):
    return 200, None                    # a client's cancel: its build ends with its connection


# -- copy (docker cp) ---------------------------------------------------------------------
@route("HEAD", "/containers/(?P<ref>[^/]+)/archive")
@route("GET", "/containers/(?P<ref>[^/]+)/archive")
def container_archive(engine, req, ref):
    from ..engine import copy     # lazy: only docker cp needs it
    row = engine.get(ref)
    path = req.arg("path")
    if not path:
        raise ApiError(400, "path is required")
    with copy.container_root(engine.containers, row) as root:
        header = copy.stat_header(*copy.path_stat(root, path))
    headers = [("X-Docker-Container-Path-Stat", header)]
    if req.method == "HEAD":
        return Stream(iter(()), "application/x-tar", headers=headers)

    def body():                   # the root is opened again: a stream outlives this call
        with copy.container_root(engine.containers, engine.get(row["id"])) as root:
            yield from copy.tar_path(root, path)
    return Stream(body(), "application/x-tar", headers=headers)


@route("PUT", "/containers/(?P<ref>[^/]+)/archive", streams_body=True)
def container_extract(engine, req, ref):
    from ..engine import copy     # lazy: only docker cp needs it
    row = engine.get(ref)
    path = req.arg("path")
    if not path:
        raise ApiError(400, "path is required")
    spec = engine.containers.spec(row)
    owner = None if req.flag("copyUIDGID") else \
        ((spec.userns[0],) * 2 if spec.userns else (0, 0))    # the container's root
    if spec.readonly_rootfs:
        raise ApiError(403, "container rootfs is marked read-only")
    with copy.container_root(engine.containers, row) as root:
        copy.extract_into(root, path, req.stream, owner,
                          no_dir_overwrite=req.flag("noOverwriteDirNonDir"))
    return Stream(iter(()), "text/plain")      # 200 and nothing, as dockerd answers


# -- update -------------------------------------------------------------------------------
@route("POST", "/containers/(?P<ref>[^/]+)/update")
def container_update(engine, req, ref):
    """``docker update``: memory, CPUs, CPU shares, pids, cpuset, block I/O weight, restart
    policy; anything else asked is refused (as at create)."""
    options, limits = c.update_options(req.json())
    engine.update(ref, options, limits)
    return {"Warnings": []}


# -- attach -------------------------------------------------------------------------------
def _attachable(engine, req, ref):
    """The container an attach names, and its detach keys; or the refusal."""
    row = engine.get(ref)
    try:
        keys = attach.parse_detach_keys(req.arg("detachKeys"))
    except attach.DetachKeysError as e:
        raise ApiError(400, str(e)) from None
    if row["paused"]:
        raise Conflict("You cannot attach to a paused container, unpause it first")
    return row, keys


@route("POST", "/containers/(?P<ref>[^/]+)/attach")
def container_attach(engine, req, ref):
    row, keys = _attachable(engine, req, ref)
    tty = engine.containers.spec(row).tty
    output = attach.attach(engine, row, stdout=req.flag("stdout"), stderr=req.flag("stderr"),
                           logs=req.flag("logs"), stream=req.flag("stream"),
                           stdin=req.take_input() if req.flag("stdin") else None, keys=keys,
                           peer_gone=req.peer_gone)
    engine.emit_container("attach", row["id"])
    upgrade = (req.headers.get("Upgrade") or "").lower() == "tcp"
    content = "application/vnd.docker.raw-stream" if tty else \
        "application/vnd.docker.multiplexed-stream"
    return Stream(_encoded(output, tty), content, upgrade=upgrade)


@route("GET", "/containers/(?P<ref>[^/]+)/attach/ws")
def container_attach_ws(engine, req, ref):
    """Attach over a WebSocket (a browser's way): the output raw, one frame per read, never
    multiplexed; the client's frames are the input. Before API 1.42 every stream is
    attached whatever the query says, as dockerd does."""
    from . import websocket            # lazy: only a WebSocket client needs it
    try:
        key = websocket.accept(req.headers)
    except websocket.HandshakeError as e:
        raise ApiError(400, str(e)) from None
    row, keys = _attachable(engine, req, ref)

    def wanted(name):
        return req.flag(name) if req.version >= (1, 42) else True
    stdin = None
    if wanted("stdin"):
        sock, first = req.take_input()
        stdin = (websocket.FrameReader(sock, first), b"")
    output = attach.attach(engine, row, stdout=wanted("stdout"), stderr=wanted("stderr"),
                           logs=req.flag("logs"), stream=req.flag("stream"), stdin=stdin,
                           keys=keys, peer_gone=req.peer_gone)
    engine.emit_container("attach", row["id"])
    opcode = websocket.BINARY if req.version >= (1, 28) else websocket.TEXT

    def frames():
        try:
            for _, data in output:
                yield websocket.frame(data, opcode)
            yield websocket.close_frame()
        finally:
            output.close()
    return Stream(frames(), None, upgrade="websocket", headers=[("Sec-WebSocket-Accept", key)])


@route("POST", "/containers/(?P<ref>[^/]+)/resize")
def container_resize(engine, req, ref):
    row = engine.get(ref)
    if row["state"] != "running":
        raise Conflict(f"Container {row['id']} is not running")
    engine.hub(row["id"]).resize(req.int("h", 24), req.int("w", 80))
    return 200, {}


# -- exec ---------------------------------------------------------------------------------
@route("POST", "/containers/(?P<ref>[^/]+)/exec")
def exec_create(engine, req, ref):
    from ..engine.exec import create_exec   # lazy: see the module's note
    body = req.json()
    try:
        keys = attach.parse_detach_keys(c.field(body, "DetachKeys", str, ""))
    except attach.DetachKeysError as e:
        raise ApiError(400, str(e)) from None
    eid = create_exec(engine, engine.get(ref), c.str_list(body, "Cmd"),
                      env=c.str_list(body, "Env") or [],
                      workdir=c.field(body, "WorkingDir", str, ""),
                      user=c.field(body, "User", str, ""), tty=c.field(body, "Tty", bool, False),
                      stdin=c.field(body, "AttachStdin", bool, False),
                      # minirun's own: the joining process's steps on its stderr (exec --trace)
                      trace=c.field(body, "Trace", bool, False), detach_keys=keys)
    engine.emit_container("exec_create: " + " ".join(c.str_list(body, "Cmd")), ref,
                          execID=eid)
    return 201, {"Id": eid}


@route("POST", "/exec/(?P<eid>[^/]+)/start")
def exec_start(engine, req, eid):
    from ..engine.exec import start_exec   # lazy: see the module's note
    body = req.json()
    detach = c.field(body, "Detach", bool, False)
    tty = c.field(body, "Tty", bool, False)
    output = start_exec(engine, eid, detach, req.take_input())
    pc = engine.execs[eid]["ProcessConfig"]
    engine.emit_container("exec_start: " + " ".join([pc["entrypoint"], *pc["arguments"]]),
                          engine.execs[eid]["ContainerID"], execID=eid)
    if detach:
        return None
    chunks = _encoded(output, tty)
    upgrade = (req.headers.get("Upgrade") or "").lower() == "tcp"
    content = "application/vnd.docker.raw-stream" if tty else \
        "application/vnd.docker.multiplexed-stream"
    return Stream(chunks, content, upgrade=upgrade)


def _encoded(output, tty):
    """(stream, bytes) as the wire wants them: raw for a terminal, else multiplexed."""
    try:
        for stream, data in output:
            yield data if tty else frame(stream, data)
    finally:
        output.close()


@route("POST", "/exec/(?P<eid>[^/]+)/resize")
def exec_resize(engine, req, eid):
    from ..engine.exec import resize_exec   # lazy: see the module's note
    resize_exec(engine, eid, req.int("h", 24), req.int("w", 80))
    return 200, {}


@route("GET", "/exec/(?P<eid>[^/]+)/json")
def exec_inspect(engine, req, eid):
    from ..engine.exec import inspect_exec   # lazy: see the module's note
    return inspect_exec(engine, eid)


# -- events -----------------------------------------------------------------------------
@route("GET", "/events")
def events(engine, req):
    """What happened, as JSON objects one after another: those recorded since *since*, then
    (unless *until* is past) what happens, as it happens."""
    from ..engine.events import matches   # lazy: only event readers need it
    filters = _filters(req.arg("filters"))
    since, until = _event_time(req.arg("since")), _event_time(req.arg("until"))
    try:
        matches({"Type": "", "Action": "", "Actor": {"ID": "", "Attributes": {}}}, filters)
    except ValueError as e:
        raise ApiError(400, str(e)) from None
    mark = engine.events.mark()

    def body():
        yield b""                                   # the headers leave at once
        if since is not None:
            for event in engine.events.past(since, until):
                if matches(event, filters):
                    yield json.dumps(event).encode() + b"\n"
        last = mark
        while not req.peer_gone():
            if until is not None and time.time() > until:
                return
            last, new = engine.events.follow(last, 1.0)
            for event in new:
                if until is not None and event["timeNano"] / 1e9 > until:
                    return
                if matches(event, filters):
                    yield json.dumps(event).encode() + b"\n"
    return Stream(body(), "application/json", chunked=True)


def _event_time(text):
    """since/until: Unix seconds (with a fraction), or a duration back from now (10m)."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    from ..engine.options import OptionError, parse_duration
    try:
        return time.time() - parse_duration(text, "since") / 1e9
    except OptionError:
        raise ApiError(400, f"invalid time {text!r}") from None


# -- volumes ----------------------------------------------------------------------------
def _volume(engine, row, usage=False):
    """Docker's Volume object."""
    doc = {"Name": row["name"], "Driver": "local",
           "Mountpoint": engine.volumes.path(row["name"]),
           "CreatedAt": c.rfc3339(row["created"]), "Labels": json.loads(row["labels"]) or None,
           "Scope": "local", "Options": None}
    if usage:
        doc["UsageData"] = {"Size": engine.volumes.size(row["name"]),
                            "RefCount": len(engine.volumes.users(row["name"]))}
    return doc


def _volume_matches(engine, row, filters):
    labels = json.loads(row["labels"])
    for key, wanted in filters.items():
        if key == "name" and not any(w in row["name"] for w in wanted):
            return False
        if key == "driver" and "local" not in wanted:
            return False
        if key == "label" and not all(_label_matches(labels, w) for w in wanted):
            return False
        if key == "dangling":
            unused = not engine.volumes.users(row["name"])
            if not any(unused == (w.lower() in ("1", "true")) for w in wanted):
                return False
        if key not in ("name", "driver", "label", "dangling", "all"):
            raise ApiError(400, f"invalid filter '{key}'")
    return True


def _label_matches(labels, wanted):
    key, eq, value = wanted.partition("=")
    return key in labels and (not eq or labels[key] == value)


@route("GET", "/volumes")
def volume_list(engine, req):
    filters = _filters(req.arg("filters"))
    return {"Volumes": [_volume(engine, r) for r in engine.volumes.list()
                        if _volume_matches(engine, r, filters)], "Warnings": None}


@route("POST", "/volumes/create")
def volume_create(engine, req):
    body = req.json()
    name = c.field(body, "Name", str, "") or None
    driver = c.field(body, "Driver", str, "") or "local"
    labels = c.field(body, "Labels", dict, {}) or {}
    if driver != "local":
        raise ApiError(400, f"error looking up volume plugin {driver}: plugin \"{driver}\" "
                            f"not found (minirun has the local driver only)")
    if c.field(body, "DriverOpts", dict, {}):
        raise ApiError(400, "minirun's local driver takes no options (type, o, device)")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise ApiError(400, "invalid type for Labels: expected strings")
    row, made = engine.volumes.create(name, labels)
    if made:
        engine.emit("volume", "create", row["name"], {"driver": "local"})
    return 201, _volume(engine, row)


@route("GET", "/volumes/(?P<name>[^/]+)")
def volume_inspect(engine, req, name):
    return _volume(engine, engine.volumes.get(name))


@route("DELETE", "/volumes/(?P<name>[^/]+)")
def volume_delete(engine, req, name):
    existed = name in {r["name"] for r in engine.volumes.list()}
    engine.volumes.remove(name, force=req.flag("force"))
    if existed:
        engine.emit("volume", "destroy", name, {"driver": "local"})
    return 204, None


@route("POST", "/volumes/prune")
def volume_prune(engine, req):
    """Unused volumes; since API 1.42 only anonymous ones unless the filter all=true."""
    filters = _filters(req.arg("filters"))
    everything = any(w.lower() in ("1", "true") for w in filters.get("all", []))
    deleted, space = [], 0
    for row in engine.volumes.list():
        if (row["anonymous"] or everything) and not engine.volumes.users(row["name"]) \
                and _volume_matches(engine, row, filters):
            size = engine.volumes.size(row["name"])
            try:
                engine.volumes.remove(row["name"])
            except (Conflict, MinirunError):
                continue                            # taken meanwhile
            engine.emit("volume", "destroy", row["name"], {"driver": "local"})
            deleted.append(row["name"])
            space += size
    return {"VolumesDeleted": deleted, "SpaceReclaimed": space}


# -- networks ---------------------------------------------------------------------------
@route("GET", "/networks")
def network_list(engine, req):
    filters = _filters(req.arg("filters"))
    nets = engine.networking.networks()
    for key, field in (("name", "Name"), ("id", "Id"), ("driver", "Driver")):
        if key in filters:
            nets = [n for n in nets if any(v in n[field] for v in filters[key])]
    return nets


@route("GET", "/networks/(?P<ref>[^/]+)")
def network_inspect(engine, req, ref):
    return engine.networking.network(ref)


@route("POST", "/networks/create")
def network_create(engine, req):
    body = req.json()
    name = c.field(body, "Name", str, "")
    driver = c.field(body, "Driver", str, "") or "bridge"
    if driver != "bridge":
        raise ApiError(400, f'plugin "{driver}" not found: only the bridge driver is available')
    # (Attachable only matters to swarm; docker-compose sets it on every network it makes)
    for key, what in (("Ingress", "ingress (swarm) networks"),
                      ("ConfigOnly", "config-only networks")):
        if c.field(body, key, bool, False):
            raise ApiError(400, f"{what} are not supported by minirun")
    if c.field(body, "EnableIPv4", bool, True) is False:
        raise ApiError(400, "IPv6-only networks are not supported by minirun")
    if c.field(body, "Options", dict, {}) or c.field(body, "ConfigFrom", dict, {}):
        raise ApiError(400, "network options (-o) are not supported by minirun's bridge driver")
    v4, v6 = _ipam_config(body)
    row = engine.networking.create_network(
        name, v4.get("Subnet"), v4.get("Gateway"), c.field(body, "Labels", dict, {}) or {},
        internal=c.field(body, "Internal", bool, False),
        ipv6=c.field(body, "EnableIPv6", bool, False),
        subnet6=v6.get("Subnet"), gateway6=v6.get("Gateway"), ranges={4: v4, 6: v6})
    engine.emit("network", "create", row["id"], {"name": row["name"], "type": "bridge"})
    return 201, {"Id": row["id"], "Warning": ""}


def _ipam_config(body):
    """IPAM.Config: at most one IPv4 and one IPv6 {Subnet, Gateway, IPRange,
    AuxiliaryAddresses}, told apart by their addresses, as ``--subnet A --subnet B`` sends
    them."""
    import ipaddress                                   # only for a network's creation
    config = (c.field(body, "IPAM", dict, {}) or {}).get("Config") or []
    if not isinstance(config, list) or not all(isinstance(i, dict) for i in config):
        raise ApiError(400, "IPAM.Config: a list of {Subnet, Gateway}")
    found, seen = {4: {}, 6: {}}, set()
    for entry in config:
        values = {k: c.field(entry, k, str, "", "IPAM.Config.")
                  for k in ("Subnet", "Gateway", "IPRange")}
        aux = c.field(entry, "AuxiliaryAddresses", dict, {}, "IPAM.Config.") or {}
        if not all(isinstance(v, str) for v in aux.values()):
            raise ApiError(400, "invalid type for IPAM.Config.AuxiliaryAddresses: strings")
        try:
            text = values["Subnet"] or values["Gateway"]
            version = ipaddress.ip_network(text, strict=False).version if text else 4
        except ValueError:
            raise ApiError(400, f"invalid subnet {values['Subnet']!r}") from None
        if version in seen:
            raise ApiError(400, f"IPAM.Config: one IPv{version} subnet at most")
        seen.add(version)
        found[version] = {k: v for k, v in {**values, "AuxiliaryAddresses": aux}.items() if v}
    return found[4], found[6]


@route("DELETE", "/networks/(?P<ref>[^/]+)")
def network_delete(engine, req, ref):
    if find_pseudo(ref):
        raise ApiError(403, f"{find_pseudo(ref)} is a pre-defined network and cannot be removed")
    net = engine.networking.network(ref)
    engine.networking.remove_network(ref)
    engine.emit("network", "destroy", net["Id"], {"name": net["Name"], "type": "bridge"})


@route("POST", "/networks/(?P<ref>[^/]+)/connect")
def network_connect(engine, req, ref):
    body = req.json()
    endpoint = c.field(body, "EndpointConfig", dict, {}) or {}
    c.refuse_unsupported_endpoint(endpoint, "EndpointConfig.")
    if c.str_list(endpoint, "Links", "EndpointConfig."):
        raise ApiError(400, "EndpointConfig.Links: links made by network connect are not "
                            "supported by minirun (--link at create is)")
    aliases = c.str_list(endpoint, "Aliases", "EndpointConfig.") or []
    container = c.field(body, "Container", str, "")
    engine.networking.connect_network(ref, container, aliases,
                                      **c.endpoint_addresses(endpoint, "EndpointConfig."))
    _network_event(engine, "connect", ref, container)
    return 200, None


def _network_event(engine, action, ref, container):
    net = engine.networking.network(ref)
    engine.emit("network", action, net["Id"], {"name": net["Name"], "type": "bridge",
                                               "container": engine.get(container)["id"]})


@route("POST", "/networks/(?P<ref>[^/]+)/disconnect")
def network_disconnect(engine, req, ref):
    container = c.field(req.json(), "Container", str, "")
    engine.networking.disconnect_network(ref, container)
    _network_event(engine, "disconnect", ref, container)
    return 200, None


@route("POST", "/networks/prune")
def network_prune(engine, req):
    return {"NetworksDeleted": [r["name"] for r in engine.networking.prune_networks()]}
