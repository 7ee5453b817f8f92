"""``minirun run``: Docker's flags, in the foreground, with no daemon needed."""
import click

from .app import cli
from .runflags import RUN_FLAGS
from .runner import create_any, run_any


def _with_run_flags(fn):
    kinds = {"flag": dict(is_flag=True), "value": {}, "int": dict(type=int),
             "multi": dict(multiple=True)}
    for flags, dest, kind, help_ in reversed(RUN_FLAGS):
        fn = click.option(*flags, dest, help=help_, **kinds[kind])(fn)
    return fn


@cli.command("run", context_settings={"allow_interspersed_args": False})
@_with_run_flags
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run_cmd(ctx, image, command, **kw):
    """Run a command in a new container."""
    raise SystemExit(run_any(ctx.root, ctx.host, _options(kw, image, command)))


@cli.command("create", context_settings={"allow_interspersed_args": False})
@_with_run_flags
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def create_cmd(ctx, image, command, **kw):
    """Create a container through minirund without starting it (start it with start)."""
    raise SystemExit(create_any(ctx.host, dict(_options(kw, image, command), detach=True)))


def _options(kw, image, command):
    """click's values as RunOptions takes them: lists, and nothing for an absent flag."""
    kw = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items() if v is not None}
    return dict(kw, image=image, command=list(command))
