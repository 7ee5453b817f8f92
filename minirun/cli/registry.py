"""``minirun registry serve|gc``: run a registry, and collect its garbage."""
import os
import sys

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
    from ..registry.server import parse_listen, serve         # on use: not on every start
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
    from ..registry.storage import Storage                    # on use: not on every start
    for digest in Storage(_root(ctx, root)).gc():
        click.echo(f"deleted {digest}")


def _tls_verify_option(fn):
    return click.option("--tls-verify", type=click.BOOL, default=True, show_default=True,
                        help="Check the registry's certificate (loopback registries are "
                        "insecure anyway, as in Docker).")(fn)


@cli.command("pull")
@click.option("-q", "--quiet", is_flag=True, help="Only the image's name at the end.")
@_tls_verify_option
@click.argument("name")
@click.pass_obj
def pull_cmd(ctx, quiet, tls_verify, name):
    """Pull an image from a registry (layers in parallel, unpacked as they arrive)."""
    from ..image import reference                             # on use: not on every start
    from ..registry.client import Client
    from ..registry.progress import Progress
    from ..registry.pull import Pull, pull_image
    ref = reference.parse(name)
    if ctx.daemon:                      # the daemon pulls into its own store
        from .runner import daemon_stream                     # on use: not on every start
        daemon_stream(ctx.client.request("POST", "/images/create", fromImage=str(ref)),
                      None if quiet else sys.stdout)
    else:
        pull_image(Pull(ctx.images, ref, Client(ref.domain, tls_verify)), Progress(quiet=quiet))
    click.echo(str(ref))


@cli.command("push")
@click.option("-q", "--quiet", is_flag=True)
@_tls_verify_option
@click.argument("name")
@click.pass_obj
def push_cmd(ctx, quiet, tls_verify, name):
    """Push an image to a registry."""
    from ..image import reference                             # on use: not on every start
    from ..registry.client import Client
    from ..registry.progress import Progress
    from ..registry.push import push_image
    ref = reference.parse(name)
    if ctx.daemon:
        from .runner import daemon_stream                     # on use: not on every start
        daemon_stream(ctx.client.request("POST", f"/images/{ref.familiar_repository}/push",
                                         tag=ref.tag), None if quiet else sys.stdout)
        return
    push_image(ctx.images, ref, Client(ref.domain, tls_verify), Progress(quiet=quiet))


@cli.command("login")
@click.option("-u", "--username")
@click.option("-p", "--password")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@_tls_verify_option
@click.argument("server", required=False)
def login_cmd(username, password, password_stdin, tls_verify, server):
    """Log in to a registry (credentials kept in ~/.docker/config.json, mode 0600)."""
    from ..registry import auth                               # on use: not on every start
    from ..registry.client import Client
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    username = username or click.prompt("Username")
    password = password if password is not None else click.prompt("Password", hide_input=True)
    domain = server or "docker.io"
    Client(domain, tls_verify, credentials=(username, password)).ping()
    auth.store(domain, username, password)
    click.echo("Login Succeeded")


@cli.command("logout")
@click.argument("server", required=False)
def logout_cmd(server):
    """Forget the credentials of a registry."""
    from ..registry import auth                               # on use: not on every start
    domain = server or "docker.io"
    if auth.forget(domain):
        click.echo(f"Removing login credentials for {auth.key_for(domain)}")
    else:
        click.echo(f"Not logged in to {auth.key_for(domain)}")
