"""The daemon's one supervisor for every detached container.

One thread, one event loop: for each container it reads the pipes its stdout
and stderr write to and appends what arrives to the container's json-file log,
and it learns of exits — from the fork server, which forked and reaps every
container and exec'd process (engine/forkserver.py), over one events
connection. No process per container.

The pipes are FIFOs in the container's directory. The container holds its
ends open read-write, so it never gets SIGPIPE: if minirund is killed, output
waits in the pipe (and, once the pipe is full, the container waits) until
the next minirund opens the FIFOs again and goes on reading. Its exit code
waits too, in the exit file the fork server writes. Only a container whose
fork server died (and so nobody reaped) ends with its exit code unknown
(255); that is watched through its pidfd.
"""
import errno
import os
import selectors
import threading

from .forkserver import read_event
from .logs import LineWriter

UNKNOWN_EXIT = 255
# A log FIFO keeps the kernel's size, 64 KiB, as Docker's do: room for that much output per
# stream while no minirund reads it (then the container waits, and loses nothing). Larger
# costs the kernel, whether used or not, a bigger ring of slots (40 bytes a page, allocated
# in powers of two): 4.4 kB of slab a pipe at 256 KiB against 1.3 kB (measured over 2000
# pipes), 6 kB of a detached container's ~600 (scripts/bench/density).
# What is read once a container has exited: what any pipe minirund made can hold (minirund
# set 1 MiB, then 256 KiB, and one it re-adopts may have been started so).
DRAIN = 1 << 20
TURN = 256 * 1024       # bytes read from one stream before the others get their turn


def make_fifos(path):
    """(stdout, stderr) FIFO paths of a container directory, created if missing."""
    fifos = (os.path.join(path, "stdout.fifo"), os.path.join(path, "stderr.fifo"))
    for f in fifos:
        if not os.path.exists(f):
            os.mkfifo(f, 0o600)
    return fifos


def daemon_ends(fifos):
    """minirund's read ends. Opened before the container starts: a FIFO's buffer exists
    only while someone has it open, so output of a container that exits at once
    would otherwise be gone before anyone read it."""
    return [os.open(f, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC) for f in fifos]


def container_ends(fifos):
    """The container's stdout/stderr: the FIFOs opened read-write (never EPIPE)."""
    return [os.open(f, os.O_RDWR | os.O_CLOEXEC) for f in fifos]


def read_exit_file(path):
    """The exit code the fork server recorded, or None."""
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


class Watched:
    """What the loop knows of one container. *owned*: a child of the live fork server, whose
    exit comes as an event; else its pidfd says when it ended."""

    def __init__(self, cid, pid, pidfd, owned, exit_file, log, readers, on_exit, hub):
        self.cid, self.pid, self.pidfd, self.owned = cid, pid, pidfd, owned
        self.exit_file = exit_file
        self.log = log                  # logs.LogFile (or NoLog)
        self.readers = readers          # fd -> LineWriter
        self.on_exit = on_exit
        self.hub = hub                  # attach.Hub: the clients attached to it
        self.paused = False             # not read until a lagging attached client catches up


class Supervisor:
    def __init__(self, log, forkserver, on_exec_exit):
        self.log = log
        self.forkserver = forkserver
        self.on_exec_exit = on_exec_exit        # (exec id or None for all, code)
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.sel.register(self.wake_r, selectors.EVENT_READ, ("wake", None))
        self.pending = []
        self.watched = {}               # pid -> Watched
        self.early = {}                 # pid -> code: exits seen before their watch() arrived
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)
        self.stopping = False
        self.events = None
        self.running = {}               # what the fork server ran when we connected
        self.terminals = {}             # … and the terminal masters it held (engine takes them)
        self.resuming = []              # paused containers whose clients may have caught up

    def start(self):
        self._connect(first=True)
        self.thread.start()

    def _connect(self, first=False):
        self.events, self.running, terminals = self.forkserver.events()
        if first:
            self.terminals = terminals
        else:                           # (a later connection: ours are being read already)
            for fd in terminals.values():
                os.close(fd)
        self.sel.register(self.events, selectors.EVENT_READ, ("event", None))

    def stop(self):
        self.stopping = True
        os.write(self.wake_w, b"x")
        self.thread.join(5)

    def watch(self, cid, pid, container_dir, exit_file, on_exit, log, hub, owned=True, pty=None,
              ends=None, pidfd=None):
        """Follow a running container: log its output, call ``on_exit(cid, code)`` when done.

        *log*: where its output goes (logs.LogFile); *hub*: to the clients attached to
        it too (engine/attach.py); *owned*: the fork server started it
        (or runs it still, after our restart); *ends*: minirund's read ends of its FIFOs
        (opened anew when None: re-adoption); *pty*: the master of a -t container's
        terminal (its one output stream); *pidfd*: the process's, taken over (a container
        that exits at once may be reaped before a new one could be opened).
        """
        if pidfd is None:
            pidfd = os.pidfd_open(pid)
        readers = {}
        if pty is not None:
            os.set_blocking(pty, False)
            readers[pty] = LineWriter(log, "stdout")
        ends = ends or daemon_ends(make_fifos(container_dir))
        for fd, stream in zip(ends, ("stdout", "stderr")):
            if pty is not None:
                os.close(fd)               # -t: everything comes through the terminal
            else:
                readers[fd] = LineWriter(log, stream)
        w = Watched(cid, pid, pidfd, owned, exit_file, log, readers, on_exit, hub)
        with self.lock:
            self.pending.append(w)
        os.write(self.wake_w, b"x")

    def _resume_later(self, w):
        """(A client's thread:) *w*'s attached clients may have room again."""
        with self.lock:
            self.resuming.append(w)
        os.write(self.wake_w, b"x")

    # -- the loop -----------------------------------------------------------
    def _loop(self):
        while not self.stopping:
            if self.events is None:
                self._reconnect()
            # without an events connection, try again each second until there is one
            for key, _ in self.sel.select(None if self.events else 1.0):
                if self.sel.get_map().get(key.fd) is not key:
                    continue    # closed by an earlier event of this round; its number may be reused
                kind, w = key.data
                try:
                    if kind == "wake":
                        self._take_pending()
                    elif kind == "out":
                        self._read(key.fd, w)
                    elif kind == "event":
                        self._event()
                    elif kind == "gone":
                        code = read_exit_file(w.exit_file)
                        self._exited(w, UNKNOWN_EXIT if code is None else code)
                except Exception:
                    self.log.exception("supervisor: %s of %s", kind, w and w.cid)

    def _take_pending(self):
        try:
            os.read(self.wake_r, 4096)
        except BlockingIOError:
            pass
        with self.lock:
            pending, self.pending = self.pending, []
            resuming, self.resuming = self.resuming, []
        for w in resuming:
            if w.paused and self.watched.get(w.pid) is w and not w.hub.lagging():
                w.paused = False
                for fd in w.readers:
                    self.sel.register(fd, selectors.EVENT_READ, ("out", w))
        for w in pending:
            w.hub.resume = lambda w=w: self._resume_later(w)
            for fd in w.readers:
                self.sel.register(fd, selectors.EVENT_READ, ("out", w))
            self.watched[w.pid] = w
            if w.pid in self.early:
                self._exited(w, self.early.pop(w.pid))
            elif not w.owned:
                self.sel.register(w.pidfd, selectors.EVENT_READ, ("gone", w))

    def _event(self):
        msg = read_event(self.events)
        if msg is None:
            self._forkserver_lost()
            return
        if msg.get("kind") == "exec":
            self.on_exec_exit(msg["tag"], msg["code"])
        elif msg["pid"] in self.watched:
            self._exited(self.watched[msg["pid"]], msg["code"])
        else:
            self.early[msg["pid"]] = msg["code"]

    def _forkserver_lost(self):
        """Nobody reaps what it started now: watch those through their pidfds, and start a
        new fork server for what comes next."""
        self.log.error("the fork server is gone: exit codes of the containers it ran are "
                       "lost (255)")
        self.sel.unregister(self.events)
        self.events.close()
        self.events = None
        for w in self.watched.values():
            if w.owned:
                w.owned = False
                self.sel.register(w.pidfd, selectors.EVENT_READ, ("gone", w))
        with self.lock:
            for w in self.pending:
                w.owned = False
        self.on_exec_exit(None, UNKNOWN_EXIT)
        self._reconnect()

    def _reconnect(self):
        """Events from a new fork server (started if none runs). The one that died may still
        be closing its sockets: a connection it accepted is then reset, and the loop tries
        again a second later — exits meanwhile wait in the new server (its ``unsent``)."""
        try:
            self._connect()
        except Exception as e:
            self.log.warning("no events connection to a fork server yet: %s", e)

    def _read(self, fd, w, limit=TURN, throttle=True):
        """Read what is there, up to *limit* bytes: one container printing without pause must
        not keep the loop from the others' output and exits. True if more may come."""
        taken = 0
        while taken < limit:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return True
            except OSError as e:
                if e.errno == errno.EIO:      # pty: every slave closed
                    return False
                raise
            if not data:
                return False
            taken += len(data)
            writer = w.readers[fd]
            if w.hub.publish(writer.stream, data, lambda: writer.feed(data)) and throttle:
                w.paused = True            # its pipe fills; it waits for the slow client
                for each in w.readers:
                    self.sel.unregister(each)
                return True
        return True

    def _exited(self, w, code):
        for fd, writer in w.readers.items():      # what it wrote just before it exited
            self._read(fd, w, DRAIN, throttle=False)
            writer.flush()
            if not w.paused:
                self.sel.unregister(fd)
            os.close(fd)
        w.hub.ended()
        if not w.owned:
            self.sel.unregister(w.pidfd)
        os.close(w.pidfd)
        w.log.close()
        del self.watched[w.pid]
        w.on_exit(w.cid, code)
