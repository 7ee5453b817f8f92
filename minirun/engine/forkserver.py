"""minirund's fork server: the one process that forks containers and exec'd processes.

A process with threads must not fork a container: the child inherits whatever
the other threads hold at that instant — a flock'd file (a start then waits for
ever on its own lock), a database, directory fds of a layer being unpacked —
and a container would begin its life with them. So minirund starts this small,
single-threaded, pre-imported process once per state root (as containerd
starts a shim and podman a conmon, but one for all containers) and asks it,
over a unix socket only root can reach:

    minirund                                       fork server              new process
      START {spec, exit_file} + stdio fds  ──▶  fork_container ────────▶ PID 1, waits for GO
      ◀── {pid} + pidfd + handshake socket          (runtime/container.py)
      the handshake, as a foreground run does it (cgroups, GO, READY, network, CONTINUE)

      EXEC {process, cgroups} + ns + stdio fds ──▶ fork_joiner ───────▶ joins, execs
      ◀── {pid} + pidfd + handshake socket          (runtime/join.py)

      KEEP {tag} + a -t container's terminal (pty master) ──▶ held until it exits

      HELLO (the one events connection) ──▶
      ◀── {running: {container id: pid}, terminals: N}, N × {terminal: tag} + its master,
          then EXIT {kind, tag, pid, code} as they happen

While minirund is connected, it keeps the next container's PID 1 forked ahead:
a child in a new PID namespace that has made its UTS, IPC and network
namespaces and waits for a spec (runtime/child.py's wait_for_spec). START
hands it the spec and its stdio and gives minirund its socket as if it had
just forked it, then forks the next one once the request is answered. So a
start finds the fork (~0.5 ms of copying and faulting in a Python process)
and the network namespace (~0.5 ms) made. A spec that keeps or joins a
network namespace (--network host, container:NAME) gets a child forked for
it, as does every spec if a child forked ahead ever dies unasked.

It is the parent of everything it forks, so it reaps them and knows their exit
codes; a container's is also written to the file its START named, so a
minirund that was down (killed, restarting) reads it when it comes back, and
an exit nobody was listening for is sent with the next HELLO. It also holds a
copy of each -t container's terminal master (as containerd's shim holds it): were
minirund's the only one, a minirund that stops would hang up the terminal and
the kernel would SIGHUP the container; the next minirund gets the master back
with HELLO. It runs in its own session and outlives minirund; it exits once it
has no children and nobody is connected. It holds no lock and no file but its own
sockets, pidfds and terminals, and a child keeps none of those past its first step.
"""
import errno
import fcntl
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time

from ..errors import MinirunError
from ..linux.process import set_dumpable
from ..runtime import child as pid1
from ..runtime import container as rt
from ..runtime import join, sync
from ..runtime.lockdown import exit_code
from ..runtime.spec import process_from_dict, process_to_dict, spec_from_dict, spec_to_dict
from ..runtime.trace import quiet

SOCKET_NAME = "forkserver.sock"
START, EXEC, KEEP, HELLO, EXIT = "start", "exec", "keep", "hello", "exit"
# What START and EXEC carry and what the child expects of the handshake. A fork server
# outlives minirund, so after an upgrade the new minirund may meet the old one's: then
# neither forks for the other (a container whose half of the handshake differs could start
# outside its cgroups). 2: the cgroups are made after the fork and GO brings v1's tasks files.
PROTOCOL = 2
_mismatch = ("minirund and the fork server of this state root are of different minirun "
             "versions: stop the containers the fork server started (it ends with the last "
             "of them), then try again")
FIRST_CONTACT = 10.0        # seconds a new fork server waits for minirund to connect
REQUEST_TIMEOUT = 5.0


def _send(sock, msg, fds=()):
    sync.send_fds(sock, json.dumps(msg).encode(), list(fds))


def _recv(sock, maxfds=16):
    data, fds = sync.recv_fds(sock, sync.SPEC_SIZE, maxfds)
    return (json.loads(data) if data else None), fds


def _at(path, fn):
    """bind/connect to a unix socket *path*, however long its directory's name: through
    /proc/self/fd/N the address stays short (sun_path holds 108 bytes)."""
    d = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return fn(f"/proc/self/fd/{d}/{os.path.basename(path)}")
    finally:
        os.close(d)


# -- the server ------------------------------------------------------------------------
class _Child:
    def __init__(self, kind, tag, pidfd, exit_file=None):
        self.kind, self.tag, self.pidfd, self.exit_file = kind, tag, pidfd, exit_file
        self.terminal = None          # a -t container's pty master (KEEP)


class Server:
    def __init__(self, root):
        self.path = os.path.join(root, SOCKET_NAME)
        self.sel = selectors.DefaultSelector()
        self.children = {}            # pid -> _Child
        self.events = None            # minirund's events connection
        self.unsent = []              # exits that happened while nobody listened
        self.ahead = None             # (pid, pidfd, socket) of a PID 1 forked ahead
        self.forks_ahead = True       # until one of them dies unasked

    def listen(self):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            os.unlink(self.path)      # stale: the lock proves no fork server owns it
        except FileNotFoundError:
            pass
        old = os.umask(0o077)         # root only: whoever reaches it can start anything
        try:
            _at(self.path, listener.bind)
        finally:
            os.umask(old)
        listener.listen(64)
        self.sel.register(listener, selectors.EVENT_READ, ("accept", None))

    def run(self):
        deadline = time.monotonic() + FIRST_CONTACT
        while self.children or self.events or time.monotonic() < deadline:
            if self.events and self.ahead is None and self.forks_ahead:
                self._fork_ahead()    # the next start's, once this one's is answered
            for key, _ in self.sel.select(timeout=1.0):
                kind, data = key.data
                if kind == "accept":
                    self._accept(key.fileobj)
                elif kind == "reap":
                    self._reap(data)
                elif kind == "events":
                    self._events_closed(key.fileobj)
                elif kind == "ahead":
                    self._drop_ahead()
                    self.forks_ahead = False
                    print("a container's PID 1 forked ahead died before its start: forking "
                          "each one at its start from now on", file=sys.stderr, flush=True)
            if self.events:
                deadline = 0          # from the first contact on, idle means done
        self._drop_ahead()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _accept(self, listener):
        conn, _ = listener.accept()
        conn.settimeout(REQUEST_TIMEOUT)     # only root can connect; still, never hang
        keep = False
        try:
            msg, fds = _recv(conn)
            try:
                keep = self._handle(conn, msg or {}, fds)
            finally:
                for fd in fds:
                    os.close(fd)
        except Exception as e:                # one bad request must not end the server
            try:
                _send(conn, {"error": f"{type(e).__name__}: {e}"})
            except OSError:
                pass
        finally:
            if not keep:
                conn.close()

    def _handle(self, conn, msg, fds):
        op = msg.get("op")
        if op in (START, EXEC) and msg.get("protocol") != PROTOCOL:
            raise MinirunError(_mismatch)
        if op == START:
            pid, pidfd, sock = self._fork_container(msg["spec"], fds[:3])
            self._adopt(pid, pidfd, _Child("container", msg["tag"], pidfd, msg.get("exit_file")))
        elif op == EXEC:
            n = msg["namespaces"]                  # 6, or 7 with the container's user ns
            pid, pidfd, sock = join.fork_joiner(fds[:n], msg["cgroups"],
                                                process_from_dict(msg["process"]),
                                                fds[n:n + 3], msg["target"],
                                                msg.get("trace", False))
            self._adopt(pid, pidfd, _Child("exec", msg["tag"], pidfd))
        elif op == KEEP:
            child = next((c for c in self.children.values()
                          if c.kind == "container" and c.tag == msg["tag"]), None)
            if child is not None and fds and child.terminal is None:
                child.terminal = os.dup(fds[0])     # (fds are closed after the request)
            _send(conn, {"kept": child is not None})
            return False
        elif op == HELLO:
            if self.events is not None:
                self._events_closed(self.events)
            self.events = conn
            conn.settimeout(None)
            self.sel.register(conn, selectors.EVENT_READ, ("events", None))
            containers = [c for c in self.children.values() if c.kind == "container"]
            terminals = [c for c in containers if c.terminal is not None]
            _send(conn, {"running": {c.tag: pid for pid, c in self.children.items()
                                     if c.kind == "container"}, "terminals": len(terminals)})
            for c in terminals:                    # one each: SCM_RIGHTS carries 253 at most
                _send(conn, {"terminal": c.tag}, [c.terminal])
            unsent, self.unsent = self.unsent, []
            for msg in unsent:                     # an exec that ended before minirund came
                self._tell(msg)                    # back (or before its events connection)
            return True
        else:
            raise MinirunError(f"unknown request {op!r}")
        try:
            _send(conn, {"pid": pid, "protocol": PROTOCOL}, [pidfd, sock.fileno()])
        finally:
            sock.close()
        return False

    def _fork_container(self, spec_dict, stdio):
        """The container's PID 1: the one forked ahead if the spec fits it, else forked now."""
        spec = spec_from_dict(spec_dict)
        if self.ahead is not None and pid1.fits_ahead(spec):
            pid, pidfd, sock = self.ahead
            self.sel.unregister(pidfd)
            self.ahead = None
            try:
                rt.hand_over(sock, spec_dict, stdio)
                return pid, pidfd, sock
            except OSError:                 # it died (its exit is not the container's)
                self.ahead = (pid, pidfd, sock)
                self.sel.register(pidfd, selectors.EVENT_READ, ("ahead", pid))
        return rt.fork_container(spec, quiet, stdio=stdio)

    def _fork_ahead(self):
        try:
            self.ahead = rt.fork_ahead(quiet)
        except OSError as e:                # (out of PIDs, or memory): fork at each start
            print(f"forking a container's PID 1 ahead: {e}", file=sys.stderr, flush=True)
            self.forks_ahead = False
            return
        self.sel.register(self.ahead[1], selectors.EVENT_READ, ("ahead", self.ahead[0]))

    def _drop_ahead(self):
        """End the PID 1 forked ahead (minirund left, or it died), and reap it."""
        if self.ahead is None:
            return
        pid, pidfd, sock = self.ahead
        self.ahead = None
        self.sel.unregister(pidfd)
        sock.close()
        child = rt.Process(pid, pidfd)            # we are its parent: wait() reaps it
        child.signal(signal.SIGKILL)
        child.wait()

    def _adopt(self, pid, pidfd, child):
        self.children[pid] = child
        self.sel.register(pidfd, selectors.EVENT_READ, ("reap", pid))

    def _reap(self, pid):
        child = self.children.pop(pid)
        self.sel.unregister(child.pidfd)
        os.close(child.pidfd)
        if child.terminal is not None:
            os.close(child.terminal)
        _, status = os.waitpid(pid, 0)
        code = exit_code(status)
        if child.exit_file:
            _write_atomically(child.exit_file, str(code))
        self._tell({"op": EXIT, "kind": child.kind, "tag": child.tag, "pid": pid, "code": code})

    def _tell(self, msg):
        """An exit, to minirund; kept for its next HELLO if nobody listens now."""
        if self.events is None:
            self.unsent.append(msg)
            return
        try:
            _send(self.events, msg)
        except OSError:
            self._events_closed(self.events)
            self.unsent.append(msg)

    def _events_closed(self, conn):
        self.sel.unregister(conn)
        conn.close()
        self.events = None
        self._drop_ahead()            # no start comes without minirund


def _write_atomically(path, text):
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, path)
    except OSError:
        pass                          # its directory is gone: the container was removed


def main():
    """``python -m minirun.engine.forkserver ROOT``, started by minirund."""
    root = sys.argv[1]
    lock = os.open(os.path.join(root, "forkserver.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                   0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0                      # another one serves this root
    # Children inherit this: a joining process is never readable through /proc by the
    # container it enters (CVE-2019-5736), from its first instruction on.
    set_dumpable(False)
    server = Server(root)
    server.listen()
    server.run()
    return 0


# -- minirund's side --------------------------------------------------------------------
class ForkServerGone(MinirunError):
    pass


class Client:
    """minirund's handle on its fork server: started on first use, and again if it died."""

    def __init__(self, root, log_file=None):
        self.root, self.log_file = root, log_file
        self.path = os.path.join(root, SOCKET_NAME)
        self.proc = None              # the one we started (reaped if it ends before us)

    def _connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            _at(self.path, sock.connect)
        except OSError:
            sock.close()
            raise
        return sock

    def connect(self):
        """A connection to the fork server, starting one if none answers."""
        try:
            return self._connect()
        except (FileNotFoundError, ConnectionRefusedError):
            pass
        self._spawn()
        for _ in range(400):
            try:
                return self._connect()
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.025)
        raise ForkServerGone("the fork server did not start (see the daemon's log)")

    def _spawn(self):
        if self.proc is not None:
            self.proc.poll()          # a fork server that died is not left a zombie
        log = open(self.log_file or os.devnull, "ab")
        try:
            # Its own session: a ^C or hang-up of minirund's terminal does not reach it.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "minirun.engine.forkserver", self.root],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True,
                start_new_session=True, cwd="/")
        finally:
            log.close()

    def _request(self, msg, fds):
        sock = self.connect()
        try:
            _send(sock, msg, fds)
            reply, got = _recv(sock, 2)
        finally:
            sock.close()
        if reply is None:
            raise ForkServerGone("the fork server closed the connection")
        if "error" in reply:
            for fd in got:
                os.close(fd)
            raise MinirunError(f"fork server: {reply['error']}")
        pidfd, conn = got
        if reply.get("protocol") != PROTOCOL:     # an older fork server forked it: no GO
            rt.Process(reply["pid"], pidfd, reaps=False).signal(signal.SIGKILL)
            os.close(pidfd)
            os.close(conn)
            raise MinirunError(f"fork server: {_mismatch}")
        return reply["pid"], pidfd, socket.socket(fileno=conn)

    def start(self, spec, stdio, exit_file):
        """runtime.container.start's *spawn*: fork the container's PID 1 there."""
        return self._request({"op": START, "protocol": PROTOCOL, "tag": spec.id,
                              "spec": spec_to_dict(spec), "exit_file": exit_file}, stdio)

    def exec(self, tag, ns_fds, cgroups, process, stdio, target, trace=False):
        return self._request({"op": EXEC, "protocol": PROTOCOL, "tag": tag,
                              "cgroups": list(cgroups),
                              "process": process_to_dict(process), "target": target,
                              "trace": trace, "namespaces": len(ns_fds)}, [*ns_fds, *stdio])

    def keep(self, tag, terminal):
        """Have the fork server hold a copy of container *tag*'s terminal master."""
        sock = self.connect()
        try:
            _send(sock, {"op": KEEP, "tag": tag}, [terminal])
            reply, _ = _recv(sock, 0)
        finally:
            sock.close()
        if not reply or "error" in reply:
            raise MinirunError(f"fork server: {(reply or {}).get('error', 'no answer')}")

    def events(self):
        """(socket, {container id: pid} of the containers it runs, {container id: terminal
        master} of those with one): exits come on the socket."""
        sock = self.connect()
        terminals = {}
        try:
            _send(sock, {"op": HELLO})
            reply, _ = _recv(sock, 0)
            if reply is None:
                raise ForkServerGone("the fork server closed the connection")
            for _ in range(reply.get("terminals", 0)):
                msg, fds = _recv(sock, 1)
                if msg is None or not fds:
                    raise ForkServerGone("the fork server closed the connection")
                terminals[msg["terminal"]] = fds[0]
        except BaseException:
            sock.close()
            for fd in terminals.values():
                os.close(fd)
            raise
        return sock, reply["running"], terminals


def read_event(sock):
    """The next EXIT message on the events connection, or None when the fork server is gone."""
    try:
        msg, _ = _recv(sock)
    except OSError as e:
        if e.errno not in (errno.ECONNRESET, errno.EPIPE):
            raise
        return None
    return msg


if __name__ == "__main__":
    sys.exit(main())
