"""The click command tree of ``minirun``.

Commands import what they need when they run, so ``minirun`` starts fast.
User mistakes end in one line on stderr and exit 1 (usage errors exit 2);
``--debug`` shows the traceback of anything unexpected.
"""
import os
import sys

import click

DEFAULT_ROOT = "/var/lib/minirun"
_debug = False


class Context:
    def __init__(self, root, host=None, debug=False):
        self.root, self.host, self.debug = root, host, debug
        self._images = None

    @property
    def client(self):
        from .client import Client
        return Client(self.host)

    @property
    def images(self):
        if self._images is None:
            from ..image.store import ImageStore
            self._images = ImageStore(self.root)
        return self._images

    def image_in_use(self, image_id):
        from ..engine.containers import ContainerStore
        return ContainerStore(self.root).uses_image(image_id)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", envvar="MINIRUN_ROOT", default=DEFAULT_ROOT, show_default=True,
              help="State root (images, layers, containers).")
@click.option("-H", "--host", envvar="MINIRUN_HOST", default=None,
              help="minirund's socket (default unix:///run/minirun/minirun.sock).")
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.version_option(package_name="minirun")
@click.pass_context
def cli(ctx, root, host, debug):
    """minirun: a small Linux container runtime."""
    global _debug
    _debug = debug
    ctx.obj = Context(os.path.abspath(root), host, debug)


def main():
    from . import containers, images, network, registry, run  # noqa: F401  (register them)
    from .report import report
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
