"""minirund: the daemon. Serves the Docker Engine API on a unix socket.

One per state root (a lock file says so). On SIGTERM it stops serving and
exits; the containers it started keep running, and the next minirund
re-adopts them.
"""
import fcntl
import grp
import logging
import os
import signal
import sys
import threading

from ..errors import MinirunError

DEFAULT_SOCKET = "/run/minirun/minirun.sock"


def socket_path(host):
    """``unix:///run/minirun/minirun.sock`` or a plain path → the path."""
    if host.startswith("unix://"):
        return host[len("unix://"):]
    if "://" in host:
        raise MinirunError(f"unsupported host {host!r}: only unix:// sockets are served")
    return host


def _lock(root):
    os.makedirs(root, mode=0o711, exist_ok=True)
    fd = os.open(os.path.join(root, "daemon.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise MinirunError(f"minirund is already running for {root}") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _logger(log_file, debug):
    log = logging.getLogger("minirund")
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if debug else logging.INFO)
    return log


def _listen(path, engine, log):
    from .routes import ROUTES
    from .server import UnixServer
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)             # a stale socket: the lock proves no daemon owns it
    server = UnixServer(path, engine, ROUTES, log)
    try:
        gid = grp.getgrnam("minirun").gr_gid
    except KeyError:
        gid = 0
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)
    return server


def serve(root, host, log_file=None, debug=False):
    if os.geteuid() != 0:
        raise MinirunError("minirund needs root")
    lock = _lock(root)
    log = _logger(log_file, debug)
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))   # a few descriptors per container
    from ..engine.engine import Engine
    engine = Engine(root, log, log_file)
    engine.startup()
    path = socket_path(host)
    server = _listen(path, engine, log)
    stop = threading.Event()

    def on_signal(sig, _frame):
        log.info("signal %d: shutting down (containers keep running)", sig)
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("minirund %s serving %s (state root %s)", __import__("minirun").__version__,
             path, root)
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
    """The ``minirund`` command: ``minirun daemon``."""
    sys.argv[1:1] = ["daemon"]
    from ..cli.app import main as cli_main
    cli_main()
