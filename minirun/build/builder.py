"""A Dockerfile → an image, one step per instruction, as Docker's classic builder builds.

Each instruction of the stages the target needs is a step, and each step's
result is an image (untagged: ``images -a`` shows them): a RUN's or COPY's with
one more layer, any other's with a changed config and an empty history entry.
A step is taken from the cache when an earlier build made it from the same
parent image with the same instruction — after substitution, with the build
arguments a RUN sees, and for COPY and ADD the digest of what they copy — so a
rebuild of an unchanged context runs no container at all.

Progress goes to *out* as Docker's JSON messages (``{"stream": …}``,
``{"aux": {"ID": …}}``): minirund sends them as they are, the CLI prints them.
"""
import contextlib
import hashlib
import json
import os
import posixpath
import tempfile
import time

from .. import statedb
from ..errors import MinirunError
from ..engine import commit as commits
from ..engine.containers import BUILD_STEP_LABEL
from ..engine.copy import extract_into, make_in_root
from ..engine.options import OptionError, RunOptions, parse_duration
from ..image import manifest as mf
from ..image import reference
from ..image.store import ImageNotFound
from ..linux.fs import RESOLVE_IN_ROOT, openat2
from ..network.ports import PortError, parse_exposed
from ..record import Record
from .context import ChunkReader, ContextError, Source, decompressing
from .dockerfile import DockerfileError, parse
from .patterns import Ignore
from .words import process_word

PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
              "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
DEFAULT_SHELL = ["/bin/sh", "-c"]
NOP = "/bin/sh -c #(nop) "           # how Docker's history marks a step that ran nothing
EPOCH_ARG = "SOURCE_DATE_EPOCH"


class BuildOptions(Record):
    FIELDS = {
        "tags": [], "dockerfile": "Dockerfile", "build_args": {}, "target": "",
        "no_cache": False, "quiet": False, "network": "", "labels": {},
        "cache_from": [],              # only these images (and their parents) are the cache
        "extra_hosts": [],             # "name:address" lines for the RUN steps' /etc/hosts
    }


class BuildError(MinirunError):
    """The build failed; when a RUN step did, *step_code* is its command's exit code (and
    the exit code of ``minirun build``)."""
    step_code = None


class Stage(Record):
    FIELDS = {"index": 0, "name": "", "instructions": [], "image_id": "", "config": {},
              "args": {}, "cmd_set": False}


class Builder:
    def __init__(self, steps, context_fd, options, out, dockerfile_text=None):
        """*steps*: steps.LocalSteps or DaemonSteps; *context_fd*: the context directory;
        *dockerfile_text*: the Dockerfile (else read from the context)."""
        self.steps, self.images, self.options, self.out = steps, steps.images, options, out
        self.context_fd = context_fd
        self.dockerfile_text = dockerfile_text
        self.ignore = Ignore(self._context_file(".dockerignore", missing_ok=True) or "")
        self.context = Source(context_fd, self.ignore)
        epoch = options.build_args.get(EPOCH_ARG)     # clamps every time in layers, config
        self.epoch = _int(epoch, EPOCH_ARG) if epoch else None
        self.stages = []
        self.cache_sources = self._lineage(options.cache_from) if options.cache_from else None
        self.used_args = set()
        self.step_no, self.total = 0, 0

    # -- messages ------------------------------------------------------------------------
    def say(self, text):
        if not self.options.quiet:
            self.out({"stream": text + "\n"})

    # -- the build -----------------------------------------------------------------------
    def build(self):
        """Run the build; return the final image's ID (tagged as asked)."""
        text = self.dockerfile_text
        if text is None:
            text = self._context_file(self.options.dockerfile)
        instructions, self.escape = parse(text)
        meta = []
        while instructions and instructions[0].cmd == "arg":
            meta.append(instructions.pop(0))
        if not instructions or instructions[0].cmd != "from":
            raise DockerfileError("no build stage in current context: the first instruction "
                                  "must be FROM (or ARG before it)")
        for ins in instructions:
            if ins.cmd == "from":
                args = ins.args
                self.stages.append(Stage(index=len(self.stages), instructions=[],
                                         name=args[2].lower() if len(args) == 3 else ""))
            self.stages[-1].instructions.append(ins)
        self.global_args = {}
        for ins in meta:
            self._declare(ins, self.global_args, self.global_args)
        target = self._target()
        needed = self._needed(target)
        self.total = len(meta) + sum(len(s.instructions) for s in self.stages
                                     if s.index in needed)
        for ins in meta:
            self._step(ins)
        for stage in self.stages:
            if stage.index in needed:
                self._run_stage(stage)
                if stage is target:
                    break
        image_id = target.image_id
        if self.options.labels:
            stage = target
            stage.config["config"]["Labels"] = {
                **(stage.config["config"].get("Labels") or {}), **self.options.labels}
            self._metadata(stage, "LABEL " + " ".join(
                f"{k}={v}" for k, v in sorted(self.options.labels.items())))
            image_id = stage.image_id
        unused = sorted(set(self.options.build_args) - self.used_args - set(PROXY_ARGS)
                        - {EPOCH_ARG})
        if unused:
            self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not "
                     f"consumed")
        for tag in self.options.tags:
            self.images.tag(reference.parse(tag), image_id)
        self.out({"aux": {"ID": image_id}})
        if self.options.quiet:                 # quiet: the ID is all the stream says
            self.out({"stream": image_id + "\n"})
        self.say(f"Successfully built {image_id.removeprefix('sha256:')[:12]}")
        for tag in self.options.tags:
            ref = reference.parse(tag)
            self.say(f"Successfully tagged {ref.familiar_repository}:{ref.tag}")
        return image_id

    def _context_file(self, name, missing_ok=False):
        try:
            fd = Source(self.context_fd).open(name, os.O_RDONLY)
        except ContextError:
            if missing_ok:
                return None
            raise BuildError(f"Cannot locate specified Dockerfile: {name}") from None
        with os.fdopen(fd, "rb") as f:
            data = f.read(16 << 20)
        return data.decode("utf-8", "replace")

    def _target(self):
        want = self.options.target
        if not want:
            return self.stages[-1]
        for stage in self.stages:
            if stage.name == want.lower():
                return stage
        raise BuildError(f"failed to reach build target {want} in Dockerfile")

    def _needed(self, target):
        """The stages *target* depends on (FROM a stage, COPY --from a stage), itself too."""
        needed, todo = set(), [target]
        while todo:
            stage = todo.pop()
            if stage.index in needed:
                continue
            needed.add(stage.index)
            for ins in stage.instructions:
                ref = ins.args[0] if ins.cmd == "from" else ins.flags.get("from") \
                    if ins.cmd == "copy" else None
                dep = self._stage_named(ref, before=stage.index) if isinstance(ref, str) \
                    else None
                if dep is not None:
                    todo.append(dep)
        return needed

    def _stage_named(self, ref, before):
        for stage in self.stages[:before]:
            if (stage.name and stage.name == ref.lower()) or ref == str(stage.index):
                return stage
        return None

    def _step(self, ins):
        self.steps.check()
        self.step_no += 1
        self.say(f"Step {self.step_no}/{self.total} : {ins.original}")

    # -- a stage -------------------------------------------------------------------------
    def _run_stage(self, stage):
        first, *rest = stage.instructions
        self._step(first)
        self._from(stage, first)
        triggers = stage.config["config"].pop("OnBuild", None) or []
        if triggers:
            self.say(f" ---> Executing {len(triggers)} build trigger"
                     f"{'s' if len(triggers) > 1 else ''}")
            for line in triggers:
                ins = parse(line)[0][0]
                if ins.cmd in ("onbuild", "from", "maintainer"):
                    raise BuildError(f"{ins.cmd.upper()} isn't allowed as an ONBUILD trigger")
                self._instruction(stage, ins)
        for ins in rest:
            self._step(ins)
            self._instruction(stage, ins)

    def _from(self, stage, ins):
        env = {k: v for k, v in self.global_args.items() if v is not None}
        name = process_word(ins.args[0], env, self.escape)
        if not name:
            raise BuildError(f"FROM requires an image: {ins.original!r} names none")
        dep = self._stage_named(name, before=stage.index)
        if dep is not None:
            image_id = dep.image_id
        elif name.lower() == "scratch":
            image_id = self._scratch()
        else:
            image_id = self._base_image(name)
        self._load(stage, image_id)
        stage.args = {}
        self.say(f" ---> {_short(image_id)}")

    def _load(self, stage, image_id):
        stage.image_id = image_id
        stage.config = self.images.config(image_id)
        stage.config["config"] = dict(stage.config.get("config") or {})

    def _scratch(self):
        """An image of no layers and an empty config: what ``FROM scratch`` starts from."""
        config = {"architecture": mf.host_platform()[1], "os": "linux",
                  "created": _timestamp(0), "config": {},
                  "rootfs": {"type": "layers", "diff_ids": []}}
        with self.images.adding():
            return commits.add_image(self.images, config, [])

    def _base_image(self, name):
        try:
            return self.images.resolve(name)
        except ImageNotFound:
            pass
        from ..registry.progress import Progress      # only a build that pulls needs the
        from ..registry.pull import Pull, pull_image   # registry client (http, ssl)
        ref = reference.parse(name)
        self.say(f"Unable to find image '{name}' locally")
        return pull_image(Pull(self.images, ref), Progress(out=_Lines(self.say),
                                                             quiet=self.options.quiet))

    # -- instructions --------------------------------------------------------------------
    def _env(self, stage):
        """What ``$NAME`` means at this point: the stage's build args, then its ENV."""
        env = {k: v for k, v in stage.args.items() if v is not None}
        for item in stage.config["config"].get("Env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        return env

    def _words(self, stage, ins):
        """The arguments, each substituted (quotes and escapes removed)."""
        env = self._env(stage)
        return [process_word(word, env, self.escape) for word in ins.args]

    def _instruction(self, stage, ins):
        getattr(self, "do_" + ins.cmd)(stage, ins)

    def do_arg(self, stage, ins):
        self._declare(ins, stage.args, self.global_args, self._env(stage))
        names = [w.partition("=")[0] for w in ins.args]
        self._metadata(stage, "ARG " + " ".join(
            n if stage.args[n] is None else f"{n}={stage.args[n]}" for n in names))

    def _declare(self, ins, into, globals_, env=None):
        env = dict(env if env is not None else {k: v for k, v in globals_.items()
                                                if v is not None})
        for word in ins.args:
            name, eq, default = word.partition("=")
            if not name:
                raise DockerfileError(f"ARG requires a name: {ins.original!r}")
            default = process_word(default, env, self.escape) if eq else \
                globals_.get(name) if into is not globals_ else None
            value = self.options.build_args.get(name, default)
            if name in self.options.build_args:
                self.used_args.add(name)
            into[name] = value
            if value is not None:
                env[name] = value

    def _metadata(self, stage, description):
        """A step that changes only the config: its image, cached like any other."""
        if self._cached(stage, NOP + description):
            return
        with self.images.adding():
            self._commit(stage, NOP + description)
        self.say(f" ---> {_short(stage.image_id)}")

    def do_maintainer(self, stage, ins):
        stage.config["author"] = " ".join(ins.args)
        self._metadata(stage, "MAINTAINER " + stage.config["author"])

    def do_label(self, stage, ins):
        env = self._env(stage)
        pairs = [(process_word(k, env, self.escape), process_word(v, env, self.escape))
                 for k, v in ins.args]
        stage.config["config"]["Labels"] = {**(stage.config["config"].get("Labels") or {}),
                                            **dict(pairs)}
        self._metadata(stage, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs))

    def do_expose(self, stage, ins):
        ports = dict(stage.config["config"].get("ExposedPorts") or {})
        for word in self._words(stage, ins):
            for port in _ports(word):
                ports[port] = {}
        stage.config["config"]["ExposedPorts"] = ports
        self._metadata(stage, "EXPOSE " + " ".join(sorted(ports)))

    def do_user(self, stage, ins):
        stage.config["config"]["User"] = self._words(stage, ins)[0]
        self._metadata(stage, "USER " + stage.config["config"]["User"])

    def do_stopsignal(self, stage, ins):
        stage.config["config"]["StopSignal"] = self._words(stage, ins)[0]
        self._metadata(stage, "STOPSIGNAL " + stage.config["config"]["StopSignal"])

    def do_volume(self, stage, ins):
        paths = self._words(stage, ins)
        if any(not p for p in paths):
            raise BuildError("VOLUME specified can not be an empty string")
        stage.config["config"]["Volumes"] = {**(stage.config["config"].get("Volumes") or {}),
                                             **{p: {} for p in paths}}
        self._metadata(stage, f"VOLUME {json.dumps(paths)}")

    def do_shell(self, stage, ins):
        stage.config["config"]["Shell"] = list(ins.args)
        self._metadata(stage, f"SHELL {json.dumps(ins.args)}")

    def _command(self, stage, ins):
        """CMD and ENTRYPOINT's argument list: exec form as given, shell form via SHELL."""
        if ins.json:
            return list(ins.args)
        if not ins.text:
            return []
        return list(stage.config["config"].get("Shell") or DEFAULT_SHELL) + [ins.text]

    def do_cmd(self, stage, ins):
        stage.config["config"]["Cmd"] = self._command(stage, ins)
        stage.cmd_set = True
        self._metadata(stage, f"CMD {json.dumps(stage.config['config']['Cmd'])}")

    def do_entrypoint(self, stage, ins):
        stage.config["config"]["Entrypoint"] = self._command(stage, ins)
        if not stage.cmd_set:              # an ENTRYPOINT drops the base image's CMD
            stage.config["config"]["Cmd"] = None
        self._metadata(stage, f"ENTRYPOINT {json.dumps(stage.config['config']['Entrypoint'])}")

    def do_onbuild(self, stage, ins):
        trigger = ins.args[0].strip()
        word = trigger.split(None, 1)[0].lower() if trigger else ""
        if word in ("onbuild", "from", "maintainer"):
            raise DockerfileError(f"{word.upper()} isn't allowed as an ONBUILD trigger")
        parse(trigger)                         # a trigger that cannot parse fails now
        stage.config["config"]["OnBuild"] = (stage.config["config"].get("OnBuild") or []) \
            + [trigger]
        self._metadata(stage, "ONBUILD " + trigger)

    def do_healthcheck(self, stage, ins):
        words = ins.text.split(None, 1)
        kind = words[0].upper() if words else ""
        if kind == "NONE":
            if ins.flags or len(words) > 1:
                raise DockerfileError("HEALTHCHECK NONE takes no arguments")
            check = {"Test": ["NONE"]}
        elif kind == "CMD":
            rest = words[1] if len(words) > 1 else ""
            exec_form = rest.startswith("[") and _json_list(rest)
            check = {"Test": ["CMD", *exec_form] if exec_form else ["CMD-SHELL", rest]}
            if not rest:
                raise DockerfileError("Missing command after HEALTHCHECK CMD")
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                              ("start-period", "StartPeriod"),
                              ("start-interval", "StartInterval")):
                if flag in ins.flags:
                    check[key] = parse_duration(ins.flags[flag], "--" + flag)
            if "retries" in ins.flags:
                check["Retries"] = _int(ins.flags["retries"], "--retries")
        else:
            raise DockerfileError(f"Unknown type {kind!r} in HEALTHCHECK (try CMD)")
        stage.config["config"]["Healthcheck"] = check
        self._metadata(stage, f"HEALTHCHECK &{json.dumps(check)}")

    def do_workdir(self, stage, ins):
        path = self._words(stage, ins)[0]
        path = posixpath.normpath(posixpath.join(
            stage.config["config"].get("WorkingDir") or "/", path))
        stage.config["config"]["WorkingDir"] = path

        def make(root):
            target = Source(root, what="image")
            if target.kind(path) is not None:
                return False                   # there already: no layer for it
            make_in_root(root, target.resolve(path, missing_ok=True), is_dir=True)
            return True
        self._with_container(stage, NOP + "WORKDIR " + path, make)

    def do_env(self, stage, ins):
        env_list = list(stage.config["config"].get("Env") or [])
        shown = []
        for key, value in ins.args:
            scope = self._env(stage)
            key = process_word(key, scope, self.escape)
            value = process_word(value, scope, self.escape)
            env_list = [e for e in env_list if e.partition("=")[0] != key] + [f"{key}={value}"]
            stage.config["config"]["Env"] = env_list
            shown.append(f"{key}={value}")
        self._metadata(stage, "ENV " + " ".join(shown))

    # -- RUN -------------------------------------------------------------------------------
    def do_run(self, stage, ins):
        args = list(ins.args) if ins.json else \
            list(stage.config["config"].get("Shell") or DEFAULT_SHELL) + [ins.text]
        env_names = {e.partition("=")[0] for e in stage.config["config"].get("Env") or []}
        build_env = [f"{k}={v}" for k, v in sorted(stage.args.items())
                     if v is not None and k not in env_names]
        build_env += [f"{k}={self.options.build_args[k]}" for k in PROXY_ARGS
                      if k in self.options.build_args and k not in stage.args]
        shown = [e for e in build_env if e.partition("=")[0] not in PROXY_ARGS]
        created_by = (f"|{len(shown)} {' '.join(shown)} " if shown else "") + " ".join(args)
        if self._cached(stage, created_by):
            return
        opts = RunOptions(image=stage.image_id, command=args, entrypoint=[],
                          env=build_env, env_from_host=False, no_healthcheck=True,
                          network=self.options.network or "bridge",
                          add_host=list(self.options.extra_hosts),
                          labels={BUILD_STEP_LABEL: "RUN"})
        cid = self.steps.create(opts)
        try:
            self.say(f" ---> Running in {cid[:12]}")
            code = self.steps.run(cid, self._output)
            if code:
                error = BuildError(f"The command '{' '.join(args)}' returned a non-zero code: "
                                   f"{code}")
                error.exit_code = error.step_code = code
                raise error
            with self.images.adding():
                layer = self.steps.layer(cid, self.epoch)
                self._commit(stage, created_by, layer)
        finally:
            self.steps.remove(cid)
        self.say(f"Removing intermediate container {cid[:12]}")
        self.say(f" ---> {_short(stage.image_id)}")

    def _output(self, data, stderr=False):
        if self.options.quiet:
            return
        text = data.decode("utf-8", "replace")
        self.out({"stream": f"\x1b[91m{text}\x1b[0m" if stderr else text})   # as Docker

    # -- COPY and ADD ----------------------------------------------------------------------
    def do_copy(self, stage, ins, add=False):
        words = self._words(stage, ins)
        flags = {k: process_word(v, self._env(stage), self.escape) if isinstance(v, str)
                 else v for k, v in ins.flags.items()}
        sources, dest = words[:-1], words[-1]
        chmod = _mode(flags["chmod"]) if "chmod" in flags else None
        workdir = stage.config["config"].get("WorkingDir") or "/"
        into_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith("/.")
        dest = posixpath.normpath(posixpath.join(workdir, dest))
        with contextlib.ExitStack() as stack:
            source, keep_owners = self.context, False
            if flags.get("from"):
                source = stack.enter_context(self._source_of(flags["from"], stage))
                keep_owners = True
            items = []                     # (source, path, plan) of each copied thing
            for pattern in sources:
                if add and _is_url(pattern):
                    fetched = stack.enter_context(_download(pattern, self.images.root))
                    items.append((fetched, fetched.name, fetched.plan(fetched.name)))
                    continue
                items += [(source, p, source.plan(p)) for p in source.expand(pattern)]
            if len(items) > 1 and not into_dir:
                raise BuildError(f"When using {ins.cmd.upper()} with more than one source "
                                 f"file, the destination must be a directory and end with "
                                 f"a /")
            digest = hashlib.sha256()
            for src, _, plan in items:
                digest.update(src.digest([("", plan)]).encode())
            what = f"{ins.cmd.upper()} " + " ".join(
                f"--{k}={v}" for k, v in sorted(flags.items()) if k in ("chown", "chmod",
                                                                       "from")) + \
                f" sha256:{digest.hexdigest()} in {dest}{'/' if into_dir else ''}"

            def copy(root):
                target = Source(root, what="image")
                owner = _owner(root, flags["chown"]) if flags.get("chown") else \
                    None if keep_owners else (0, 0)
                for src, path, plan in items:
                    self._copy_one(src, path, plan, target, root, dest, into_dir, owner,
                                   chmod, add and not isinstance(src, _Downloaded))
            self._with_container(stage, NOP + what, copy)

    def do_add(self, stage, ins):
        self.do_copy(stage, ins, add=True)

    def _copy_one(self, src, path, plan, target, root, dest, into_dir, owner, chmod, unpack):
        single = len(plan) == 1 and plan[0][1] == "" and path != "." and not src.is_dir(path)
        if single and unpack:
            opened = _archive(src, plan[0][0])
            if opened is not None:
                where = target.resolve(dest, missing_ok=True)
                make_in_root(root, where, is_dir=True)
                with opened:
                    extract_into(root, where, opened, owner=None)
                return
        if single:
            name = posixpath.basename(plan[0][0])
            to = posixpath.join(dest, name) if into_dir or target.is_dir(dest) else dest
            where = target.resolve(to, missing_ok=True)
            plans = [(where, plan)]
        else:
            where = target.resolve(dest, missing_ok=True)
            if target.kind(where) is None:     # a new directory: the source's own mode
                plan = [(src.resolve(path), "")] + plan
            plans = [(where, plan)]
        stream = ChunkReader(src.tar(plans, chmod, self.epoch))
        extract_into(root, "/", stream, owner=owner, xattrs=True)

    def _source_of(self, ref, stage):
        """COPY --from: a stage built before this one, or an image; its root, read-only."""
        dep = self._stage_named(ref, before=stage.index)
        image_id = dep.image_id if dep is not None else self._base_image(ref)

        @contextlib.contextmanager
        def opened():
            cid = self.steps.create(_quiet_container(image_id, "COPY --from"))
            try:
                with self.steps.root(cid) as root:
                    yield Source(root, what=f"stage {ref}", keep_owners=True)
            finally:
                self.steps.remove(cid)
        return opened()

    # -- committing ------------------------------------------------------------------------
    def _with_container(self, stage, created_by, change):
        """A step that changes files: *change(root fd)* in a created (never started)
        container of the stage's image; its changes become the step's layer (none when
        *change* says False: it found nothing to do)."""
        if self._cached(stage, created_by):
            return
        cid = self.steps.create(_quiet_container(stage.image_id, created_by))
        try:
            with self.steps.root(cid) as root:
                changed = change(root) is not False
            with self.images.adding():
                layer = self.steps.layer(cid, self.epoch) if changed else None
                self._commit(stage, created_by, layer)
        finally:
            self.steps.remove(cid)
        self.say(f" ---> {_short(stage.image_id)}")

    def _cache_key(self, stage, created_by):
        return hashlib.sha256(json.dumps(
            [stage.image_id, created_by, stage.config["config"]],
            sort_keys=True).encode()).hexdigest()

    def _cached(self, stage, created_by):
        """Take the step from the cache if it is there: True if it was."""
        if self.options.no_cache:
            return False
        row = self.images.db.execute("SELECT image_id FROM build_cache WHERE key = ?",
                                     (self._cache_key(stage, created_by),)).fetchone()
        if row is None or self.images.record(row["image_id"]) is None:
            return False
        if self.cache_sources is not None and row["image_id"] not in self.cache_sources:
            return False                       # --cache-from: only their steps count
        self._load(stage, row["image_id"])
        self.say(" ---> Using cache")
        self.say(f" ---> {_short(stage.image_id)}")
        return True

    def _lineage(self, names):
        """The images *names* name and those they were built from (their steps)."""
        ids = set()
        for name in names:
            try:
                image_id = self.images.resolve(name)
            except MinirunError:
                continue                       # as Docker: a missing cache source is no error
            while image_id and image_id not in ids:
                ids.add(image_id)
                record = self.images.record(image_id)
                image_id = record["parent"] if record is not None else ""
        return ids

    def _commit(self, stage, created_by, layer=None):
        """The stage's next image: its config as it stands now, plus *layer*. The caller
        holds ``images.adding()``: one, never nested (an inner one would forget what the outer
        one wrote, and a failure would leave it)."""
        key = self._cache_key(stage, created_by)
        now = _timestamp(self.epoch if self.epoch is not None else time.time())
        config = dict(stage.config, created=now)
        config["history"] = list(config.get("history") or []) + [
            {"created": now, "created_by": created_by,
             **({} if layer is not None else {"empty_layer": True})}]
        image_id = commits.add_image(self.images, config,
                                     self.images.manifest(stage.image_id)["layers"], layer,
                                     parent=stage.image_id)
        with statedb.transaction(self.images.db) as db:
            db.execute("INSERT OR REPLACE INTO build_cache (key, image_id, created) "
                       "VALUES (?, ?, ?)", (key, image_id, time.time()))
        self._load(stage, image_id)


def _quiet_container(image_id, what):
    """Options of a container that never runs: a COPY's or WORKDIR's file system."""
    return RunOptions(image=image_id, command=["#(nop)", what], entrypoint=[],
                      network="none", image_volumes=False, no_healthcheck=True,
                      env_from_host=False, labels={BUILD_STEP_LABEL: "COPY"})


def _short(image_id):
    return image_id.removeprefix("sha256:")[:12]


def _timestamp(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _int(text, what):
    try:
        return int(str(text).strip())
    except ValueError:
        raise OptionError(f"invalid {what}: {text!r} is not a whole number") from None


def _mode(text):
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise BuildError(f"invalid chmod parameter {text!r}: an octal mode like 0755")
    return mode


def _json_list(text):
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) \
        else None


def _ports(word):
    """EXPOSE's word: 80, 80/udp, 8000-8002/tcp → Docker's "80/tcp" keys, each checked as
    ``run`` checks an image's exposed ports (so the image runs)."""
    number, _, proto = word.partition("/")
    low, dash, high = number.partition("-")
    last = high if dash and high.isdigit() else low
    try:
        first, _ = parse_exposed(f"{low}/{proto or 'tcp'}")
        end, proto = parse_exposed(f"{last}/{proto or 'tcp'}")
    except PortError:
        raise BuildError(f"EXPOSE {word}: invalid port or protocol (80, 80/udp, "
                         f"8000-8002/tcp)") from None
    if first > end:
        raise BuildError(f"EXPOSE {word}: invalid port range")
    return [f"{p}/{proto}" for p in range(first, end + 1)]


def _owner(root, text):
    """--chown=user[:group] → (uid, gid), names looked up in the image's /etc/passwd and
    /etc/group (read inside its root)."""
    user, _, group = text.partition(":")
    gid = None
    if user.isdigit():
        uid = int(user)
    else:
        entry = _entry(root, "/etc/passwd", user, "uid", "user")
        uid, gid = int(entry[2]), int(entry[3])
    if group:
        gid = int(group) if group.isdigit() else \
            int(_entry(root, "/etc/group", group, "gid", "group")[2])
    elif gid is None:
        gid = uid                      # as Docker: a user alone is also the group's number
    return uid, gid


def _entry(root, path, name, field, kind):
    entry = _lookup(root, path, name)
    if entry is None:
        raise BuildError(f"unable to convert uid/gid chown string to host mapping: can't "
                         f"find {field} for {kind} {name}: no such {kind}: {name}")
    return entry


def _lookup(root, path, name):
    try:
        fd = openat2(root, path, os.O_RDONLY | os.O_CLOEXEC, RESOLVE_IN_ROOT)
    except OSError:
        return None
    with os.fdopen(fd, "r", errors="replace") as f:
        for line in f.read(1 << 20).splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and fields[0] == name and fields[2].isdigit():
                return fields
    return None


def _is_url(text):
    return text.startswith(("http://", "https://"))


def _archive(src, path):
    """ADD's local archive: a decompressing reader of the tar at *path*, or None when it is
    no tar (then it is copied as it is)."""
    f = os.fdopen(src.open(path, os.O_RDONLY), "rb")
    head = f.read(6)
    f.seek(0)
    try:
        block = decompressing(f, head).read(512)
    except Exception:                   # corrupt gzip, bzip2 or xz: no archive, a file
        block = b""
    if len(block) < 512 or block[257:262] != b"ustar":
        f.close()
        return None
    f.seek(0)
    return decompressing(f, head)


class _Lines:
    """A file object whose lines go to *say* (a pull's progress inside a build)."""

    def __init__(self, say):
        self.say, self.buf = say, ""

    def isatty(self):
        return False

    def write(self, text):
        self.buf += text
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            self.say(line)

    def flush(self):
        pass


class _Downloaded(Source):
    """ADD's download: one file, named *name*, copied as it is (never unpacked)."""

    def __init__(self, root_fd, name, what):
        super().__init__(root_fd, what=what)
        self.name = name


def _download(url, root):
    """ADD <url>: the file, downloaded into a private directory under the state root, as a
    Source (mode 0600, as Docker gives it)."""
    import urllib.error                 # only an ADD of a URL needs http (and ssl)
    import urllib.request

    @contextlib.contextmanager
    def fetched():
        tmp = tempfile.mkdtemp(prefix="build-add-", dir=root)
        fd = None
        try:
            name = posixpath.basename(url.split("?", 1)[0].rstrip("/")) or "download"
            try:
                with urllib.request.urlopen(url, timeout=30) as r, \
                        open(os.path.join(tmp, name), "wb", opener=lambda p, f:
                             os.open(p, f, 0o600)) as out:
                    while True:
                        chunk = r.read(1 << 20)
                        if not chunk:
                            break
                        out.write(chunk)
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = getattr(e, "reason", None) or e
                raise BuildError(f"ADD {url}: cannot download it: {reason}") from None
            fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            yield _Downloaded(fd, name, what=f"download {url}")
        finally:
            if fd is not None:
                os.close(fd)
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    return fetched()
