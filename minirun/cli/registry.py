"""``minirun registry serve|gc``: run a registry, and collect its garbage."""
import os

import click

from .app import cli


@cli.group("registry")
def registry_group():
    """An OCI distribution registry."""


def _root(ctx, root):
    return os.path.abspath(root) if root else os.path.join(ctx.root, "registry")


@registry_group.command("serve")
@click.option("--listen", default="127.0.0.1:5000", show_default=True, help="HOST:PORT")
@click.option("--root", "root", help="Where it keeps blobs and repositories "
              "(default: registry/ in the state root).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False))
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False))
@click.option("--htpasswd", type=click.Path(exists=True, dir_okay=False),
              help="bcrypt htpasswd file: pulls and pushes need one of its users.")
@click.option("--read-only", is_flag=True, help="Refuse pushes and deletes.")
@click.option("-v", "--verbose", is_flag=True, help="Log each request.")
@click.pass_obj
def serve_cmd(ctx, listen, root, tls_cert, tls_key, htpasswd, read_only, verbose):
    """Serve images over the OCI distribution API (skopeo, docker, podman can use it)."""
    from ..registry.server import parse_listen, serve
    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    try:
        parse_listen(listen)
    except ValueError as e:
        raise click.UsageError(str(e))
    serve(_root(ctx, root), listen, tls_cert, tls_key, htpasswd, read_only, verbose)


@registry_group.command("gc")
@click.option("--root", "root", help="The registry's directory.")
@click.pass_obj
def gc_cmd(ctx, root):
    """Remove blobs that no manifest references (run it while nothing pushes)."""
    from ..registry.storage import Storage
    for digest in Storage(_root(ctx, root)).gc():
        click.echo(f"deleted {digest}")
