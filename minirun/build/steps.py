"""A build step's container: made, run (its output streamed), committed, removed.

Every RUN runs as a real container — the same create and start as ``minirun run``,
with the same isolation and default network; every COPY and ADD writes into a
created (never started) container's file system, as ``docker cp`` does. Its
upper directory is then the step's layer (``engine.commit``). Two ways host
those containers: this process (``minirun build`` with no daemon: it forks them
itself, as a foreground ``run`` does) or minirund's engine (``/build``: its
fork server forks them, its supervisor reads their output).
"""
import contextlib
import os
import select
import signal

from ..engine import commit
from ..engine.containers import ContainerStore
from ..engine.copy import container_root
from ..engine.create import create
from ..engine.networking import Networking, wired
from ..engine.start import start
from ..engine.volumes import remove_container
from ..errors import MinirunError
from ..image.store import ImageStore
from ..runtime.trace import quiet


class Cancelled(MinirunError):
    pass


class Steps:
    """What both hosts share: the stores, a container's root, its layer."""

    def __init__(self, images, containers, cancelled=None):
        """*cancelled*: an Event set when the build's client went away."""
        self.images, self.containers, self.cancelled = images, containers, cancelled

    def check(self):
        if self.cancelled is not None and self.cancelled.is_set():
            raise Cancelled("the build was cancelled: its client went away")

    @contextlib.contextmanager
    def root(self, cid):
        """A descriptor of the (stopped) container's root, read-write."""
        with container_root(self.containers, self.containers.get(cid)) as fd:
            yield fd

    def layer(self, cid, clamp=None):
        """The container's changes as a layer in the blob store: (digest, diff ID, size)."""
        spec = self.containers.spec(self.containers.get(cid))
        return commit.store_layer(self.images, commit.layer_tar(spec, clamp))


class LocalSteps(Steps):
    """Containers forked by this process (a single-threaded CLI, as a foreground run)."""

    def __init__(self, root):
        images = ImageStore(root)
        super().__init__(images, ContainerStore(root, db=images.db))
        self.networking = Networking(root, self.containers)

    def create(self, opts):
        return create(self.images, self.containers, opts, self.networking)[0]

    def run(self, cid, output):
        spec = self.containers.spec(self.containers.get(cid))
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            cgroups, proc = start(spec, quiet, self.networking, stdio=(null, out_w, err_w))
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            for fd in (out_w, err_w, null):
                os.close(fd)
        code = None
        try:
            self.containers.mark_running(cid, proc.pid)
            _relay({out_r: False, err_r: True}, output)
            code = proc.wait()
        finally:
            if code is None:                    # interrupted: it does not outlive the build
                proc.signal(signal.SIGKILL)
                code = proc.wait()
            cgroups.kill_all(cid)
            cgroups.remove(cid)
            if wired(self.containers.options(self.containers.get(cid)).get("network") or ""):
                self.networking.disconnect(cid, exited=True)
            self.containers.mark_exited(cid, code)
        return code

    def remove(self, cid):
        remove_container(self.containers, cid, volumes=True)


def _relay(fds, output):
    """Copy what the container writes to *output(data, stderr)* until every writer is gone
    (PID 1's exit takes the rest of its PID namespace with it); closes *fds*."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    try:
        left = dict(fds)
        while left:
            for fd, _ in poller.poll():
                data = os.read(fd, 65536)
                if data:
                    output(data, left[fd])
                else:
                    poller.unregister(fd)
                    del left[fd]
    finally:
        for fd in fds:
            os.close(fd)


class DaemonSteps(Steps):
    """Containers of minirund's engine (its fork server forks them)."""

    def __init__(self, engine, cancelled=None):
        super().__init__(engine.images, engine.containers, cancelled)
        self.engine = engine

    def create(self, opts):
        return self.engine.create(opts)[0]

    def run(self, cid, output):
        hub = self.engine.hub(cid)
        sub, _ = hub.subscribe()
        try:
            self.engine.start(cid)
            while True:
                item = sub.get(timeout=1)
                self.check()                    # its container goes with the build
                if item is None:
                    break
                if item:
                    output(item[1], item[0] == "stderr")
        finally:
            sub.close()
        return self.engine.wait(cid)

    def remove(self, cid):
        self.engine.remove(cid, force=True, volumes=True)
