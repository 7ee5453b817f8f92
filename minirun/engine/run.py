"""``minirun run`` in the foreground: image + options → container → exit code.

The CLI process itself supervises the container (no daemon needed): it
records the container, creates its cgroups, starts it through the runtime,
relays its terminal and signals, and records how it ended. Every step that
changes the host registers its undo before the next one runs.
"""
import os
import sys

from ..errors import EXIT_RUNTIME, MinirunError
from ..image.store import ImageNotFound, ImageStore
from ..runtime.attach import copy_winsize, forwarding_signals, relay_pty
from ..runtime.container import StartError
from ..runtime.trace import Tracer
from .cleanup import reap_orphans
from .containers import ContainerStore
from .create import create
from .volumes import remove_container
from .networking import Networking, wired
from .start import start


def run_foreground(root, opts):
    """``minirun run``: the exit code, Docker's way (125 when minirun itself fails)."""
    if os.geteuid() != 0:
        raise MinirunError("minirun run needs root (try: sudo minirun run …)")
    try:
        return run(root, opts)
    except StartError:
        raise                      # carries 125, 126 or 127
    except MinirunError as e:
        e.exit_code = EXIT_RUNTIME
        raise


def run(root, opts, stderr=sys.stderr):
    """Run a container in the foreground; return its exit code."""

    if opts.tty and opts.interactive and not os.isatty(0):
        raise MinirunError("the input device is not a TTY")   # Docker's words for -it < file
    trace = Tracer() if opts.trace else (lambda *a: None)
    containers = ContainerStore(root)
    networking = Networking(root, containers)
    reap_orphans(containers, networking, trace)
    images = ImageStore(root, containers.db)          # one connection: each costs ~0.5 ms
    pull_if_missing(images, opts.image, stderr)
    cid, _, spec, made = create(images, containers, opts, networking)
    cgroups = proc = None
    try:
        with forwarding_signals() as forward_to:
            cgroups, proc = start(spec, trace, networking, outside=_size_terminal)
            forward_to(proc)
            containers.mark_running(cid, proc.pid)
            if proc.pty is not None:
                relay_pty(proc, stdin=opts.interactive)
            code = proc.wait()
        oom = cgroups.oom_killed(cid)
        if oom:
            print("minirun: the container was OOM killed (memory limit reached)", file=stderr)
        containers.mark_exited(cid, code, oom)
        return code
    finally:
        # Undone last first, each even if the one before it failed. (A start that failed
        # undid its own cgroups and network.) A run that fails to start leaves nothing, not
        # the volumes made for it either; one that started stays unless --rm, which takes its
        # anonymous volumes with it.
        try:
            if proc is not None:
                try:
                    if wired(opts.network):
                        networking.disconnect(cid, exited=proc.status is not None)
                finally:
                    cgroups.remove(cid)
        finally:
            if opts.rm or proc is None:
                remove_container(containers, cid, volumes=True, made=made if proc is None else ())


def pull_if_missing(images, name, stderr):
    """As docker run: an image the store lacks is pulled first (progress on stderr)."""
    try:
        images.resolve(name)
    except ImageNotFound:
        from ..image import reference                 # the registry client (http, ssl) only
        from ..registry.progress import Progress      # when there is something to pull:
        from ..registry.pull import Pull, pull_image  # ~30 ms more on every start otherwise
        ref = reference.parse(name)
        print(f"Unable to find image '{name}' locally", file=stderr, flush=True)
        pull_image(Pull(images, ref), Progress(out=stderr))


def _size_terminal(proc):
    """Before the command runs, its terminal gets the size of minirun's own."""
    if proc.pty is not None and os.isatty(0):
        copy_winsize(0, proc.pty)
