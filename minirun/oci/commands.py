"""One function per minirun-runc command: (state root, flags, arguments, log) → exit code.

What each prints is what runc prints (containerd and conmon parse ``state``,
``ps --format json`` and ``features``; people read ``list`` and ``ps``).
"""
import os
import sys
import time

from .. import cjson, units
from ..runtime import sync
from ..runtime.container import Process
from . import bundle, lifecycle, state
from .lifecycle import OciError


def _out(text):
    sys.stdout.write(text)
    sys.stdout.flush()


def _load(flags):
    cfg = bundle.load(flags.get("bundle") or ".")
    cfg.no_pivot = flags.get("no-pivot", False)
    cfg.new_keyring = not flags.get("no-new-keyring", False)
    return cfg


def create(root, flags, args, log):
    lifecycle.create(_load(flags), root, args[0], flags.get("pid-file", ""),
                     flags.get("console-socket", ""), flags.get("preserve-fds", 0), log.trace)
    return 0


def start(root, flags, args, log):
    c = state.load(root, args[0], lock=True)
    lifecycle.start(c)
    _warnings(log)
    return 0


def run(root, flags, args, log):
    """create + start; without -d, wait for the container's end (forwarding signals, and
    relaying its terminal when no --console-socket takes it, as runc does), delete it and exit
    with its code (this process is the first process's parent, so it reaps it)."""
    from ..runtime.attach import forwarding_signals     # for run alone
    cfg = _load(flags)
    detach = flags.get("detach", False)
    console = flags.get("console-socket", "")
    relay = cfg.terminal and not console and not detach
    if detach:
        return _run(cfg, root, flags, args, log, attach=None, own=None)
    with forwarding_signals() as attach:
        if not relay:
            return _run(cfg, root, flags, args, log, attach, own=None)
        with _OwnConsole(root) as own:
            return _run(cfg, root, flags, args, log, attach, own)


def _run(cfg, root, flags, args, log, attach, own):
    """run's create, start and (unless it detaches: no *attach*) wait; *own*: run's own
    console socket, when it relays the terminal itself."""
    c = lifecycle.create(cfg, root, args[0], flags.get("pid-file", ""),
                         own.path if own else flags.get("console-socket", ""),
                         flags.get("preserve-fds", 0), log.trace)
    try:
        master = own.receive() if own else None
        lifecycle.start(c)
    except BaseException:
        lifecycle.delete(c, force=True)
        raise
    finally:
        c.unlock()
    _warnings(log)
    if attach is None:
        return 0
    try:
        proc = Process(c.pid, os.pidfd_open(c.pid))
        proc.pty = master
        attach(proc)
        if master is not None:
            from ..runtime.attach import relay_pty
            relay_pty(proc)
        return proc.wait()
    finally:                          # whatever ends the relay, the container goes too
        lifecycle.delete(state.load(c.root, c.id, lock=True), force=True)


class _OwnConsole:
    """A console socket of run's own: create sends the terminal's master here, and run
    relays it to its own stdio (runtime/attach.py, as ``minirun run -t``)."""

    def __init__(self, root):
        os.makedirs(root, mode=0o711, exist_ok=True)
        self.path = os.path.join(root, f".console-{os.getpid()}.sock")
        import socket                             # accept(): only run -t has a listener
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def __enter__(self):
        self.listener.bind(self.path)
        self.listener.listen(1)
        return self

    def receive(self):
        conn, _ = self.listener.accept()          # create connected and sent already
        with conn:
            _, fds = sync.recv_fds(conn, 64, 1)
        if not fds:
            raise OciError("the container's terminal never came")
        return fds[0]

    def __exit__(self, *_):
        self.listener.close()
        os.unlink(self.path)


def state_(root, flags, args, log):
    c = state.load(root, args[0])
    st = lifecycle.status(c)
    out = c.oci_state(st)
    out.update(rootfs=c.data.get("rootfs", ""), created=c.data.get("created", ""),
               owner=c.data.get("owner", ""))
    _out(cjson.dumps(out, indent=2) + "\n")
    return 0



def kill(root, flags, args, log):
    c = state.load(root, args[0])
    sig = parse_signal(args[1] if len(args) > 1 else "SIGTERM")
    lifecycle.kill(c, sig, flags.get("all", False))
    return 0


def parse_signal(text):
    name = text.upper()
    if name.isdigit():
        n = int(name)
        if not 0 < n < 65:
            raise OciError(f"invalid signal: {text}")
        return n
    name = name if name.startswith("SIG") else "SIG" + name
    import signal                               # its Signals, only to kill
    sig = getattr(signal, name, None)
    if not isinstance(sig, signal.Signals):
        raise OciError(f"unknown signal {text!r}")
    return sig


def delete(root, flags, args, log):
    force = flags.get("force", False)
    try:
        c = state.load(root, args[0], lock=True)
    except state.StateError:
        if force and os.path.basename(args[0]) == args[0]:
            state.check_id(args[0])
            return 0              # runc: deleting what is not there, with --force, is done
        raise
    lifecycle.delete(c, force)
    _warnings(log)
    return 0


def pause(root, flags, args, log):
    lifecycle.pause(state.load(root, args[0], lock=True), True)
    return 0


def resume(root, flags, args, log):
    lifecycle.pause(state.load(root, args[0], lock=True), False)
    return 0


def exec_(root, flags, args, log):
    from . import exec as ex            # the join machinery: only for exec
    c = state.load(root, args[0])
    if flags.get("preserve-fds"):
        raise OciError("exec --preserve-fds is not supported by minirun-runc")
    if flags.get("process"):
        raw = ex.process_from_file(flags["process"])
    else:
        if len(args) < 2:
            raise OciError("exec needs a command (or --process)")
        raw = ex.process_from_flags(c, args[1:], flags.get("cwd", ""), flags.get("env", []),
                                    flags.get("user", ""), flags.get("additional-gids", []),
                                    flags.get("cap", []), flags.get("no-new-privs", False),
                                    flags.get("tty", False))
    return ex.run(c, raw, flags.get("console-socket", ""), flags.get("pid-file", ""),
                  flags.get("detach", False))


def ps(root, flags, args, log):
    c = state.load(root, args[0])
    if lifecycle.status(c) == "stopped":
        raise OciError("container not running")
    pids = lifecycle.pids(c)
    if flags.get("format", "table") == "json":
        _out(cjson.dumps(pids) + "\n")
        return 0
    import subprocess                   # a table: ps(1)'s, filtered, as runc does
    out = subprocess.run(["ps", *(args[1:] or ["-ef"])], capture_output=True, text=True)
    lines = out.stdout.splitlines()
    if not lines:
        raise OciError(f"ps failed: {out.stderr.strip()}")
    column = lines[0].split().index("PID")
    _out("\n".join([lines[0]] + [l for l in lines[1:]
                                 if int(l.split()[column]) in pids]) + "\n")
    return 0


def list_(root, flags, args, log):
    found = [(c, lifecycle.status(c)) for c in state.all_containers(root)]
    if flags.get("quiet"):
        _out("".join(c.id + "\n" for c, _ in found))
        return 0
    if flags.get("format", "table") == "json":
        _out(cjson.dumps([{**c.oci_state(s), "rootfs": c.data.get("rootfs", ""),
                           "created": c.data.get("created", ""), "owner": ""}
                          for c, s in found]) + "\n")
        return 0
    from ..humanize import table          # datetime and re: for the table alone
    _out(table(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
               [(c.id, c.pid if s != "stopped" else 0, s, c.data.get("bundle", ""),
                 c.data.get("created", ""), "root") for c, s in found]) + "\n")
    return 0


def events(root, flags, args, log):
    c = state.load(root, args[0])
    interval = _seconds(flags.get("interval", "5s"))
    while True:
        if lifecycle.status(c) == "stopped":
            raise OciError("container not running")
        d, name = lifecycle.driver(c)
        memory, limit, cpu, pids = d.usage(name)
        _out(cjson.dumps({"type": "stats", "id": c.id, "data": {
            "cpu": {"usage": {"total": cpu}},
            "memory": {"usage": {"usage": memory, "limit": limit}},
            "pids": {"current": pids}}}) + "\n")
        if flags.get("stats"):
            return 0
        time.sleep(interval)


def _seconds(text):
    try:
        return units.parse_duration(text) / 1e9
    except ValueError:
        raise OciError(f"invalid interval {text!r} (e.g. 5s)") from None


def update(root, flags, args, log):
    c = state.load(root, args[0], lock=True)
    raw = {}
    if flags.get("resources"):
        path = flags["resources"]
        try:
            text = sys.stdin.read() if path == "-" else open(path).read()
            raw = cjson.loads(text)
        except OSError as e:
            raise OciError(f"cannot read {path}: {e.strerror}") from None
        except ValueError as e:
            raise OciError(f"resources are not JSON: {e}") from None
    limits = bundle.resources(raw)
    for flag, attr in (("memory", "memory"), ("memory-reservation", "memory_reservation"),
                       ("memory-swap", "memory_swap")):
        if flag in flags:
            setattr(limits, attr, _bytes(flags[flag]))
    for flag, attr in (("cpu-shares", "cpu_shares"), ("cpu-quota", "cpu_quota"),
                       ("cpu-period", "cpu_period"), ("cpuset-cpus", "cpuset_cpus"),
                       ("cpuset-mems", "cpuset_mems"), ("pids-limit", "pids")):
        if flag in flags:
            setattr(limits, attr, flags[flag])
    if lifecycle.status(c) == "stopped":
        raise OciError("container not running")
    d, name = lifecycle.driver(c)
    d.update(name, limits)
    return 0


def _bytes(text):
    try:
        return units.parse_bytes(text)
    except ValueError:
        raise OciError(f"invalid size {text!r}") from None


def features(root, flags, args, log):
    from .features import FEATURES
    _out(cjson.dumps(FEATURES, indent=4) + "\n")
    return 0


def spec(root, flags, args, log):
    from .features import default_spec
    path = os.path.join(flags.get("bundle") or ".", "config.json")
    if os.path.exists(path):
        raise OciError("File config.json exists. Remove it first.")
    with open(path, "w") as f:
        f.write(cjson.dumps(default_spec(flags.get("rootless", False)), indent="\t"))
    return 0


def _warnings(log):
    for w in lifecycle.warnings():
        log.write("warning", w)


def command(name):
    """The function of command *name* (three have a trailing _: a module's or a builtin's
    name is taken)."""
    return {"state": state_, "list": list_, "exec": exec_}.get(name) or globals()[name]
