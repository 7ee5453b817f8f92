"""minirund: the daemon. Serves the Docker Engine API on a unix socket.

One per state root (a lock file says so). On SIGTERM it stops serving and
exits; the containers it started keep running, and the next minirund
re-adopts them.
"""
import argparse
import fcntl
import grp
import logging
import os
import resource
import signal
import sys
import threading

from .. import __version__, config
from ..build.service import sweep_contexts
from ..engine.engine import Engine
from ..errors import MinirunError
from ..statedb import private_root
from .routes import ROUTES
from .server import UnixServer


def _lock(root, path):
    """One minirund per state root; the lock file says which socket serves it, so that
    commands given only the root find it (config.running_daemon)."""
    private_root(root)
    fd = os.open(os.path.join(root, config.DAEMON_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise MinirunError(f"minirund is already running for {root}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n{os.path.abspath(path)}\n".encode())
    return fd


def _logger(log_file, debug):
    log = logging.getLogger("minirund")
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if debug else logging.INFO)
    return log


def _listen(path, engine, log):
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)             # a stale socket: the lock proves no daemon owns it
    server = UnixServer(path, engine, ROUTES, log)
    try:
        gid = grp.getgrnam("minirun").gr_gid
    except KeyError:
        gid = 0
    # Its owner and mode before it listens: no moment when others could connect, nor one
    # when the socket could be moved away under us.
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)
    server.server_activate()
    return server


def serve(root, host, log_file=None, debug=False, userns_remap=None):
    if os.geteuid() != 0:
        raise MinirunError("minirund needs root")
    path = config.socket_path(host)
    lock = _lock(root, path)
    log = _logger(log_file, debug)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))   # a few descriptors per container
    if userns_remap not in (None, "", "default"):
        raise MinirunError(f"--userns-remap={userns_remap}: only 'default' (minirun's own "
                           f"subordinate ids) is supported")
    engine = Engine(root, log, log_file, userns_remap=bool(userns_remap))
    engine.startup()
    sweep_contexts(root)                          # contexts of builds a killed minirund ran
    server = _listen(path, engine, log)
    stop = threading.Event()

    def on_signal(sig, _frame):
        log.info("signal %d: shutting down (containers keep running)", sig)
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("minirund %s serving %s (state root %s)", __version__, path, root)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        engine.shutdown()
        os.close(lock)
    return 0


def main():
    """The ``minirund`` command (``minirun daemon`` is the same)."""
    p = argparse.ArgumentParser(prog="minirund", description="Serve the Docker Engine API.")
    p.add_argument("-H", "--host", help=f"socket to serve (default {config.DEFAULT_HOST})")
    p.add_argument("--root", help=f"state root (default {config.DEFAULT_ROOT})")
    p.add_argument("--log-file", help="log here instead of stderr")
    p.add_argument("--debug", action="store_true", help="log every request")
    p.add_argument("--userns-remap", help="default: every container's root is an "
                   "unprivileged range of host ids")
    args = p.parse_args()
    g = config.resolve(args.root, args.host, args.debug, os.environ)
    try:
        sys.exit(serve(g.root, g.host or config.DEFAULT_HOST, args.log_file, g.debug,
                       args.userns_remap))
    except MinirunError as e:
        print(f"minirund: {e}", file=sys.stderr)
        sys.exit(1)
