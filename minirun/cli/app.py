"""The click command tree of ``minirun``.

Commands import what they need when they run, so ``minirun`` starts fast.
User mistakes end in one line on stderr and exit 1 (usage errors exit 2);
``--debug`` shows the traceback of anything unexpected.
"""
import os
import sys

import click

from .. import config

_debug = False


class Context:
    """One rule for where a command goes: to the daemon named (-H, MINIRUN_HOST), else to
    the one serving the state root, else — for what needs no daemon — the state root."""

    def __init__(self, root, host=None, debug=False):
        self.root, self.host, self.debug = root, host, debug
        self._images = None
        self._daemon = None

    @property
    def daemon(self):
        if self._daemon is None:                 # asked once: it reads the root's lock file
            self._daemon = self.host or config.running_daemon(self.root) or ""
        return self._daemon

    @property
    def client(self):
        """minirund's API (commands that need a daemon: containers)."""
        from .client import Client                            # on use: not on every start
        return Client(self.daemon)

    @property
    def api(self):
        """minirund's API if one is named or running, else the same API in this process."""
        if self.daemon:
            return self.client
        from .local import LocalClient                        # on use: not on every start
        return LocalClient(self.root)

    def local_only(self, command):
        """For commands that act on the state root itself (load, save, network reset):
        they cannot honour -H, and say so rather than act on another root."""
        from ..errors import UsageError                       # on use: not on every start
        if self.host:
            raise UsageError(f"minirun {command} works on the state root directly and cannot "
                             f"go through minirund (-H/{config.HOST_ENV}): give --root instead")

    @property
    def images(self):
        if self._images is None:
            from ..image.store import ImageStore              # on use: not on every start
            self._images = ImageStore(self.root)
        return self._images


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", default=None,
              help=f"State root: images, layers, containers (${config.ROOT_ENV}; default "
                   f"{config.DEFAULT_ROOT}).")
@click.option("-H", "--host", default=None,
              help=f"minirund's socket (${config.HOST_ENV}; default {config.DEFAULT_HOST}).")
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.version_option(package_name="minirun")
@click.pass_context
def cli(ctx, root, host, debug):
    """minirun: a small Linux container runtime."""
    global _debug
    g = config.resolve(root, host, debug, os.environ)    # the fast path resolves the same way
    _debug = g.debug
    ctx.obj = Context(g.root, g.host, g.debug)


def main():
    from . import build, containers, images, network, registry, run, volumes  # noqa: F401
    from .report import report                                # on use: not on every start
    try:
        rv = cli.main(standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.UsageError as e:
        e.show()
        sys.exit(2)
    except click.Abort:
        sys.exit(130)
    except click.ClickException as e:
        click.echo(f"Error: {e.format_message()}", err=True)
        sys.exit(1)
    except (Exception, KeyboardInterrupt) as e:
        sys.exit(report(e, _debug))
    sys.exit(rv or 0)
