"""``minirun build`` and ``minirun builder prune``.

With a daemon (named, or serving the state root) the context goes to minirund's
``/build`` as a tar — what .dockerignore excludes left out, as the docker CLI
does — and its progress comes back; without one, the build runs in this
process on the state root (its steps' containers forked here, as a foreground
``run``'s are).
"""
import json
import os
import sys

import click

from .app import cli


@cli.command("build")
@click.option("-t", "--tag", "tags", multiple=True, help="Name the image (repeatable).")
@click.option("-f", "--file", "dockerfile", default=None,
              help="The Dockerfile (default: CONTEXT/Dockerfile).")
@click.option("--build-arg", "build_args", multiple=True, help="KEY=VALUE (or KEY: its "
              "value here) for an ARG.")
@click.option("--target", default="", help="Build up to this stage.")
@click.option("--no-cache", is_flag=True, help="Run every step again.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ID.")
@click.option("--network", default="", help="The RUN steps' network (default: bridge).")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE on the image.")
@click.option("--iidfile", default=None, help="Write the image ID to this file.")
@click.argument("context", type=click.Path(exists=True, file_okay=False))
@click.pass_obj
def build_cmd(ctx, tags, dockerfile, build_args, target, no_cache, quiet, network, labels,
              iidfile, context):
    """Build an image from a Dockerfile."""
    from ..build.builder import BuildOptions      # on use: not on every start
    from ..image import reference
    for tag in tags:
        reference.parse(tag)                       # a bad name fails before any step
    options = BuildOptions(
        tags=list(tags), build_args=_build_args(build_args), target=target,
        no_cache=no_cache, quiet=quiet, network=network,
        labels=dict(_pair(label, "--label") for label in labels))
    if ctx.daemon:
        image_id = _through_daemon(ctx, context, dockerfile, options)
    else:
        image_id = _here(ctx, context, dockerfile, options)
    if quiet:
        click.echo(image_id)
    if iidfile:
        with open(iidfile, "w") as f:
            f.write(image_id)


def _pair(text, flag):
    key, eq, value = text.partition("=")
    if not key:
        raise click.UsageError(f"{flag} {text!r}: KEY=VALUE")
    return key, value


def _build_args(items):
    args = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise click.UsageError(f"--build-arg {item!r}: KEY=VALUE")
        if eq:
            args[key] = value
        elif key in os.environ:                    # as docker: a bare KEY takes its value
            args[key] = os.environ[key]
    if "SOURCE_DATE_EPOCH" in os.environ:          # as docker buildx: the environment's
        args.setdefault("SOURCE_DATE_EPOCH", os.environ["SOURCE_DATE_EPOCH"])
    return args


def _print(message):
    text = message.get("stream")
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


def _dockerfile_text(context, dockerfile):
    """The Dockerfile when -f names one: its text (it may lie outside the context)."""
    if dockerfile is None:
        return None
    try:
        with open(dockerfile, "rb") as f:
            return f.read(16 << 20).decode("utf-8", "replace")
    except OSError as e:
        raise click.ClickException(f"unable to read the Dockerfile {dockerfile}: "
                                   f"{e.strerror}") from None


def _here(ctx, context, dockerfile, options):
    from ..build.service import Context, build
    from ..build.steps import LocalSteps
    from ..errors import MinirunError
    if os.geteuid() != 0:
        raise MinirunError("minirun build needs root (try: sudo minirun build …)")
    directory = Context(context)
    try:
        return build(LocalSteps(ctx.root), directory, options,
                     (lambda m: None) if options.quiet else _print,
                     _dockerfile_text(context, dockerfile))
    finally:
        directory.close()


def _through_daemon(ctx, context, dockerfile, options):
    from ..build.context import Source
    from ..build.patterns import Ignore
    from ..errors import MinirunError
    fd = os.open(context, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            with open(os.path.join(context, ".dockerignore")) as f:
                ignore = Ignore(f.read())
        except FileNotFoundError:
            ignore = Ignore()
        source = Source(fd, ignore)
        query = {"t": options.tags, "buildargs": json.dumps(options.build_args),
                 "target": options.target or None, "nocache": int(options.no_cache),
                 "q": int(options.quiet), "networkmode": options.network or None,
                 "labels": json.dumps(options.labels), "rm": 1, "forcerm": 1}
        extra = []
        if dockerfile is not None:
            inside = os.path.relpath(os.path.realpath(dockerfile), os.path.realpath(context))
            if inside.startswith("../") or inside == "..":
                name = f".dockerfile.{os.urandom(6).hex()}"     # as the docker CLI sends it
                extra.append((name, _dockerfile_text(context, dockerfile).encode()))
                query["dockerfile"] = name
            else:
                query["dockerfile"] = inside
        chunks = _with_files(source.tar([("", source.plan("."))]), extra)
        resp = ctx.client.request("POST", "/build", chunks=chunks,
                                  headers={"Content-Type": "application/x-tar"}, **query)
        image_id = None
        try:
            for line in resp:
                message = json.loads(line)
                if "errorDetail" in message:
                    detail = message["errorDetail"]
                    error = MinirunError(detail.get("message") or message.get("error"))
                    error.exit_code = detail.get("code") or 1
                    raise error
                if "aux" in message:
                    image_id = message["aux"].get("ID")
                if not options.quiet:
                    _print(message)
        finally:
            resp.conn.close()
        if image_id is None:
            raise MinirunError("the build ended without an image (minirund went away?)")
        return image_id
    finally:
        os.close(fd)


def _with_files(chunks, extra):
    """The context's tar, with *extra* (name, bytes) files added before its end."""
    import tarfile
    pending = b""
    for chunk in chunks:
        pending += chunk
        if len(pending) > 1024:
            yield pending[:-1024]
            pending = pending[-1024:]
    for name, data in extra:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        yield info.tobuf(tarfile.PAX_FORMAT) + data + b"\0" * (-len(data) % 512)
    yield pending


@cli.group("builder")
def builder_group():
    """Manage the build cache."""


@builder_group.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Accepted (the cache is all there "
              "is).")
@click.option("-f", "--force", is_flag=True, help="Do not ask (minirun never asks).")
@click.pass_obj
def builder_prune(ctx, all_, force):
    """Remove the build cache."""
    from ..humanize import human_size
    answer = ctx.api.call("POST", "/build/prune")
    if answer["CachesDeleted"]:
        click.echo("Deleted build cache objects:")
        for key in answer["CachesDeleted"]:
            click.echo(key)
    click.echo(f"Total reclaimed space: {human_size(answer['SpaceReclaimed'])}")
