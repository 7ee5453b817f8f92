"""``exec``: a new process inside a running container.

    minirund ─fork→ A: join the container's cgroups, then setns() into its
                      ipc, uts, net, pid, cgroup and mount namespaces
                 A ─fork→ B: PID n of the container's PID namespace; the
                      container's user, env and workdir (unless overridden),
                      its capabilities; execve
                 A exits; B is re-parented to minirund (child subreaper)

B's stdout and stderr are pipes that the request streams back; stdin a pipe
fed from the client's hijacked connection when it asked for it.
"""
import json
import os
import signal
import threading

from ..errors import Conflict, MinirunError, NotFound
from ..linux import namespaces as ns
from ..runtime import cgroups as cg
from ..runtime import child as runtime_child
from ..runtime import security
from .options import OptionError

NAMESPACES = (("ipc", ns.CLONE_NEWIPC), ("uts", ns.CLONE_NEWUTS), ("net", ns.CLONE_NEWNET),
              ("pid", ns.CLONE_NEWPID), ("cgroup", ns.CLONE_NEWCGROUP), ("mnt", ns.CLONE_NEWNS))


class ExecNotFound(NotFound):
    pass


def create_exec(engine, row, cmd, env=(), workdir="", user="", tty=False, stdin=False):
    """Record an exec instance (Docker's shape); it runs on start_exec."""
    if row["state"] != "running":
        raise Conflict(f"Container {row['id']} is not running")
    if not cmd:
        raise OptionError("No exec command specified")
    eid = os.urandom(32).hex()
    engine.execs[eid] = {
        "ID": eid, "ContainerID": row["id"], "Running": False, "ExitCode": None, "Pid": 0,
        "OpenStdin": stdin, "OpenStdout": True, "OpenStderr": True,
        "ProcessConfig": {"entrypoint": cmd[0], "arguments": cmd[1:], "tty": tty,
                          "privileged": False, "user": user},
        "Env": list(env), "WorkingDir": workdir, "CanRemove": False,
    }
    return eid


def inspect_exec(engine, eid):
    try:
        return {k: v for k, v in engine.execs[eid].items() if not k.startswith("_")}
    except KeyError:
        raise ExecNotFound(f"No such exec instance: {eid}") from None


def start_exec(engine, eid, detach, stdin):
    """Start the exec; return its output as (stream name, bytes), or None if detached.

    *stdin*: (socket, bytes already read from it) to feed the process's stdin from.

    The process starts when the stream is first read, after the response headers
    went out: a client that takes over the raw socket once it has read the headers
    (docker-py does) would lose output that arrived together with them.
    """
    ex = inspect_exec(engine, eid)
    if ex["Running"] or ex["ExitCode"] is not None:
        raise Conflict(f"exec {eid} has already run")
    row = engine.get(ex["ContainerID"])
    if row["state"] != "running":
        raise Conflict(f"Container {row['id']} is not running")
    if detach:
        pid, out_r, err_r = _spawn_exec(engine, eid, row, stdin)
        threading.Thread(target=lambda: (_drain(out_r, err_r), _finish(engine, eid, pid)),
                         daemon=True).start()
        return None

    def chunks():                   # runs on the first read: after the headers went out
        pid, out_r, err_r = _spawn_exec(engine, eid, row, stdin)
        try:
            yield from _read_both(out_r, err_r)
        finally:
            _finish(engine, eid, pid)
    return chunks()


def _spawn_exec(engine, eid, row, stdin):
    """Start the exec'd process; return (pid, stdout read end, stderr read end or None)."""
    ex = engine.execs[eid]
    spec = engine.containers.spec(row)
    pc = ex["ProcessConfig"]
    if pc["tty"]:
        return _spawn_tty_exec(engine, eid, row, spec, stdin)
    stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC) if ex["OpenStdin"] else (None, None)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = spawn(row, spec, [pc["entrypoint"], *pc["arguments"]],
                    merge_env(spec.env, ex["Env"]), ex["WorkingDir"] or spec.cwd,
                    pc["user"] or spec.user, (stdin_r, out_w, err_w))
    except BaseException:
        for fd in (stdin_w, out_r, err_r):
            if fd is not None:
                os.close(fd)
        raise
    finally:
        for fd in (stdin_r, out_w, err_w):
            if fd is not None:
                os.close(fd)
    ex.update(Running=True, Pid=pid)
    if stdin_w is not None:
        _start_stdin(stdin, stdin_w)
    return pid, out_r, err_r


def _spawn_tty_exec(engine, eid, row, spec, stdin):
    """-t: the process gets a terminal of the container's own; we keep its master side."""
    import socket
    ex = engine.execs[eid]
    pc = ex["ProcessConfig"]
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        pid = spawn(row, spec, [pc["entrypoint"], *pc["arguments"]],
                    merge_env(spec.env, ex["Env"] + ["TERM=xterm"]),
                    ex["WorkingDir"] or spec.cwd, pc["user"] or spec.user, theirs)
        theirs.close()
        ours.settimeout(10)
        _, fds, _, _ = socket.recv_fds(ours, 16, 1)
    finally:
        ours.close()
        theirs.close()
    if not fds:
        _finish(engine, eid, pid)
        raise MinirunError("exec: the process failed before its terminal was set up")
    master = fds[0]
    ex.update(Running=True, Pid=pid, _pty=master)
    if ex.get("_size"):
        import fcntl
        from ..linux.process import TIOCSWINSZ
        fcntl.ioctl(master, TIOCSWINSZ, ex["_size"])
    if ex["OpenStdin"]:
        _start_stdin(stdin, master, close=False)
    return pid, master, None


def resize_exec(engine, eid, height, width):
    import fcntl
    import struct
    from ..linux.process import TIOCSWINSZ
    ex = engine.execs.get(eid)
    if ex is None or not ex["ProcessConfig"]["tty"]:
        raise ExecNotFound(f"No such exec instance with a terminal: {eid}")
    ex["_size"] = struct.pack("HHHH", height, width, 0, 0)
    if ex.get("_pty") is not None:        # else applied when the terminal exists
        fcntl.ioctl(ex["_pty"], TIOCSWINSZ, ex["_size"])


def _finish(engine, eid, pid):
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    engine.execs[eid].update(Running=False, ExitCode=128 - code if code < 0 else code)


def merge_env(base, extra):
    env = dict(e.split("=", 1) for e in base if "=" in e)
    env.update(e.split("=", 1) for e in extra if "=" in e)
    return [f"{k}={v}" for k, v in env.items()]


def _read_both(out_r, err_r):
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(out_r, selectors.EVENT_READ, "stdout")
    if err_r is not None:
        sel.register(err_r, selectors.EVENT_READ, "stderr")
    try:
        while sel.get_map():
            for key, _ in sel.select():
                try:
                    data = os.read(key.fd, 65536)
                except OSError:                   # a pty whose last slave closed: EIO
                    data = b""
                if data:
                    yield key.data, data
                else:
                    sel.unregister(key.fd)
                    os.close(key.fd)
    finally:
        for key in list(sel.get_map().values()):
            os.close(key.fd)
        sel.close()


def _drain(out_r, err_r):
    for _ in _read_both(out_r, err_r):
        pass


def _start_stdin(source, fd, close=True):
    """Feed the process's stdin from the hijacked connection, in a thread."""
    conn, first = source
    threading.Thread(target=_feed_stdin, args=(conn, fd, first, close), daemon=True).start()


def _feed_stdin(conn, fd, first, close=True):
    data = first
    try:
        while True:
            while data:
                data = data[os.write(fd, data):]
            data = conn.recv(65536)
            if not data:
                break
    except OSError:
        pass
    finally:
        if close:
            os.close(fd)


def spawn(row, spec, argv, env, cwd, user, stdio):
    """Fork the exec'd process into the container; return its (host) PID."""
    target = row["pid"]
    ns_fds = [(os.open(f"/proc/{target}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC), flag)
              for name, flag in NAMESPACES]
    procs = cg.detect().procs_files(row["id"])
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    a = os.fork()
    if a == 0:
        _in_a(ns_fds, procs, report_w, spec, argv, env, cwd, user, stdio)
    os.close(report_w)
    for fd, _ in ns_fds:
        os.close(fd)
    data = b""
    while True:
        chunk = os.read(report_r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(report_r)
    os.waitpid(a, 0)
    msg = json.loads(data or b'{"error": "exec helper died"}')
    if "error" in msg:
        raise MinirunError(msg["error"])
    # B may still be finishing its set-up; its exec failure shows up as exit 126/127.
    return msg["pid"]


def _in_a(ns_fds, procs, report_w, spec, argv, env, cwd, user, stdio):
    """Process A: join, fork B, report B's PID, exit. Never returns."""
    try:
        pid = os.getpid()
        for path in procs:
            with open(path, "w") as f:
                f.write(str(pid))
        for fd, flag in ns_fds:
            ns.setns(fd, flag)
        b = os.fork()
        if b == 0:
            _in_b(spec, argv, env, cwd, user, stdio)
        os.write(report_w, json.dumps({"pid": b}).encode())
        os._exit(0)
    except BaseException as e:
        try:
            os.write(report_w, json.dumps({"error": f"exec: {e}"}).encode())
        finally:
            os._exit(1)


def _in_b(spec, argv, env, cwd, user, stdio):
    """Process B, inside every namespace: lock down like the container, then exec."""
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        if isinstance(stdio, tuple):
            for target, fd in enumerate(stdio):
                if fd is None:
                    fd = os.open("/dev/null", os.O_RDONLY)
                os.dup2(fd, target)
        else:                                  # -t: a pty of the container's devpts
            import socket
            master, slave = runtime_child.open_pty(lambda *a: None)
            socket.send_fds(stdio, [b"pty"], [master])
            os.close(master)
            runtime_child.stdio(spec, slave)
        uid, gid, groups, home = security.resolve_user(user)
        if not any(e.startswith("HOME=") for e in env):
            env = env + [f"HOME={home}"]
        os.chdir(cwd)
        quiet = lambda *a: None
        security.drop_bounding_caps(spec.caps, quiet)
        security.switch_user(uid, gid, groups, quiet)
        security.set_caps(spec.caps, uid, quiet)
        if spec.no_new_privileges:
            security.no_new_privs(quiet)
        runtime_child.close_inherited_fds()
        runtime_child.execute(argv, env)
    except runtime_child.ExecError as e:
        os.write(2, f"{e}\n".encode())
        os._exit(e.code)
    except BaseException as e:
        os.write(2, f"minirun exec: {e}\n".encode())
        os._exit(126)
    os._exit(127)
