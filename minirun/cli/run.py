"""``minirun run``: Docker's flags, in the foreground, with no daemon needed."""
import click

from .app import cli
from .runflags import RUN_FLAGS

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
    kw = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items() if v is not None}
    raise SystemExit(run_any(ctx.root, ctx.host, dict(kw, image=image, command=list(command))))


def run_any(root, host, options):
    """Foreground in this process, or ``-d`` through minirund; returns the exit code."""
    from ..engine.options import RunOptions
    labels = options.pop("label", None) or []
    options["labels"] = dict(l.partition("=")[::2] for l in labels)
    opts = RunOptions(**options)
    if not opts.detach:
        from ..engine.run import run_foreground
        return run_foreground(root, opts)
    from ..api.convert import create_body
    from .client import Client
    client = Client(host)
    cid = client.call("POST", "/containers/create", create_body(opts), name=opts.name)["Id"]
    client.call("POST", f"/containers/{cid}/start")
    print(cid)
    return 0
