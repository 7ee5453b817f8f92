"""``minirun run``: Docker's flags, in the foreground, with no daemon needed."""
import os
import sys

import click

from . import cli

EXIT_RUNTIME = 125   # Docker's code for "the runtime itself failed"


@cli.command("run", context_settings={"allow_interspersed_args": False})
@click.option("--rm", is_flag=True, help="Remove the container when it exits.")
@click.option("--name", help="Name the container.")
@click.option("-e", "--env", multiple=True, help="Set an environment variable (NAME=VALUE).")
@click.option("--env-file", multiple=True, help="Read environment variables from a file.")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("-u", "--user", help="uid[:gid] or name[:group].")
@click.option("--entrypoint", help="Override the image's entrypoint.")
@click.option("-h", "--hostname", help="Container hostname.")
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-terminal.")
@click.option("-v", "--volume", "volumes", multiple=True, help="Bind mount /host:/ctr[:ro].")
@click.option("--tmpfs", multiple=True, help="Mount a tmpfs: /path[:options].")
@click.option("--read-only", is_flag=True, help="Mount the root file system read-only.")
@click.option("-m", "--memory", help="Memory limit (e.g. 64m).")
@click.option("--cpus", help="Number of CPUs (e.g. 0.5).")
@click.option("-c", "--cpu-shares", type=int, help="CPU shares (relative weight).")
@click.option("--pids-limit", type=int, help="Maximum number of processes (-1: unlimited).")
@click.option("--cpuset-cpus", help="CPUs to run on (e.g. 0-1).")
@click.option("--cap-add", multiple=True, help="Add a Linux capability.")
@click.option("--cap-drop", multiple=True, help="Drop a Linux capability.")
@click.option("--privileged", is_flag=True, help="All capabilities and devices, no masks.")
@click.option("--security-opt", multiple=True, help="no-new-privileges.")
@click.option("--ulimit", multiple=True, help="name=soft[:hard], e.g. nofile=1024:2048.")
@click.option("--network", "--net", default="none", show_default=True, help="none or host.")
@click.option("--init", is_flag=True, help="Run an init (tini) as PID 1 that reaps zombies.")
@click.option("--trace", is_flag=True, help="Print each step (syscall and why) as it happens.")
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run_cmd(ctx, image, command, **kw):
    """Run a command in a new container."""
    from ..engine.options import RunOptions
    from ..engine.run import run
    from ..errors import MinirunError
    from ..runtime.container import StartError
    if os.geteuid() != 0:
        raise click.ClickException("minirun run needs root (try: sudo minirun run …)")
    opts = RunOptions(image=image, command=list(command), **kw)
    try:
        code = run(ctx.root, opts)
    except StartError:
        raise
    except MinirunError as e:
        e.exit_code = EXIT_RUNTIME
        raise
    sys.stdout.flush()
    raise SystemExit(code)
