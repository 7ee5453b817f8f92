"""Attaching to a detached container's stdio: Docker's ``/containers/{id}/attach``.

A container the daemon runs writes to FIFOs that the supervisor reads (its log);
what the supervisor reads it also hands to each client attached at that moment,
through the container's ``Hub``. A client attached before the container starts
(``docker run`` attaches first, then starts) gets everything from the first byte;
its stream ends once the container has exited and all its output was sent.

    container ─ FIFO / pty ─▶ supervisor ─┬─▶ json.log
                                          └─▶ Hub ─▶ one queue per attached client

Input goes the other way: a container created with ``OpenStdin`` (``-i``) gets a
pipe as stdin (with ``-t``: its terminal) whose write end minirund keeps, so stdin
stays open while nobody is attached (``docker run -di busybox cat`` stays up). An
attached client's input is copied into it; with ``StdinOnce`` the pipe is closed
when the first attached client's input ends, so ``echo hi | docker run -i busybox
cat`` ends. Docker's detach keys (ctrl-p ctrl-q unless changed) end an attach
without touching the container.

A slow client does not make the daemon hold a container's output without bound:
once a client's queue holds QUEUED bytes the supervisor stops reading that
container (its pipe fills and it waits, as it would writing to a slow terminal)
until the client caught up.
"""
import collections
import fcntl
import os
import struct
import threading

from ..linux.process import TIOCSWINSZ
from . import logs as log_files

QUEUED = 1 << 20            # bytes a client may lag behind before its container waits
DETACH_KEYS = "ctrl-p,ctrl-q"
_CTRL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


class DetachKeysError(ValueError):
    pass


def parse_detach_keys(text):
    """Docker's detach-key syntax ("ctrl-p,ctrl-q", "a", "ctrl-@") → the bytes."""
    keys = bytearray()
    for key in (text or DETACH_KEYS).split(","):
        if len(key) == 1:
            keys.append(ord(key))
            continue
        name = key.lower()
        if not name.startswith("ctrl-") or len(name) != 6:
            raise DetachKeysError(f"Invalid detach keys ({text}) provided")
        c = name[5]
        if "a" <= c <= "z":
            keys.append(ord(c) - ord("a") + 1)
        elif c in _CTRL:
            keys.append(_CTRL[c])
        else:
            raise DetachKeysError(f"Invalid detach keys ({text}) provided")
    return bytes(keys)


class Subscriber:
    """One attached client's view of a container's output."""

    def __init__(self, hub, stdout, stderr):
        self.hub, self.stdout, self.stderr = hub, stdout, stderr
        self.queue = collections.deque()
        self.queued = 0
        self.ended = False
        self.ready = threading.Condition(hub.lock)

    def get(self, timeout=None):
        """The next (stream, bytes); None once the container's output ended; () on timeout."""
        with self.ready:
            if not self.queue and not self.ended:
                self.ready.wait(timeout)
            if self.queue:
                item = self.queue.popleft()
                self.queued -= len(item[1])
                if self.hub.throttled and self.queued < QUEUED // 2:
                    self.hub.room()
                return item
            return None if self.ended else ()

    def close(self):
        """The client went away (or detached)."""
        with self.hub.lock:
            self.hub.subscribers.discard(self)
            self.ended = True
            self.queue.clear()
            self.ready.notify_all()
            if self.hub.throttled:
                self.hub.room()


class Hub:
    """A container's attached clients and its stdin; lives as long as the container."""

    def __init__(self):
        self.lock = threading.Lock()
        self.subscribers = set()
        self.running = False
        self.throttled = False          # the supervisor stopped reading this container
        self.resume = None              # the supervisor's: read this container again
        self.stdin = None               # minirund's write end of the container's stdin
        self.stdin_once = False
        self.stdin_taken = False        # with StdinOnce: one client's input only
        self.pty = None                 # a -t container's terminal (our own copy)
        self.pty_input = False          # … which takes input (-i)
        self.size = None                # the terminal size asked for before it existed
        self.run_started = None         # a Condition on the lock, made when a client waits
                                        # (~1 kB: most containers never have one)

    def subscribe(self, stdout=True, stderr=True, log_follower=None):
        """A new client. *log_follower()* is called in step with the output: what it has
        not read yet is exactly what the queue will get."""
        with self.lock:
            sub = Subscriber(self, stdout, stderr)
            self.subscribers.add(sub)
            follower = log_follower() if log_follower else None
        return sub, follower

    # -- the supervisor's side --------------------------------------------------
    def started(self, stdin, stdin_once, pty, open_stdin):
        """A run begins: *stdin* (-i) and *pty* (-t) are ours to write to and close at its
        end; a terminal takes input only with *open_stdin*."""
        with self.lock:
            self.running = True
            self.stdin, self.stdin_once, self.stdin_taken = stdin, stdin_once, False
            self.pty, self.pty_input = pty, open_stdin
            if self.run_started is not None:
                self.run_started.notify_all()

    def size_terminal(self, pty):
        """Give a new terminal the size asked for (ConsoleSize, or a resize before)."""
        with self.lock:
            if self.size:
                _set_size(pty, self.size)

    def resize(self, height, width):
        """The terminal's size (kept for the next run if it has none now)."""
        with self.lock:
            self.size = (height, width)
            if self.pty is not None:
                _set_size(self.pty, self.size)

    def publish(self, stream, data, write_log=None):
        """Hand output to every attached client (and *write_log()* it under the same lock,
        so that a client's log replay and its queue meet at one point). True if a client
        lags so far behind that the container should wait for it."""
        with self.lock:
            if write_log:
                write_log()
            for sub in self.subscribers:
                if (stream == "stdout" and sub.stdout) or (stream == "stderr" and sub.stderr):
                    sub.queue.append((stream, data))
                    sub.queued += len(data)
                    sub.ready.notify()
            self.throttled = any(s.queued >= QUEUED for s in self.subscribers)
            return self.throttled

    def lagging(self):
        with self.lock:
            self.throttled = any(s.queued >= QUEUED for s in self.subscribers)
            return self.throttled

    def room(self):                     # with the lock held
        if self.resume:
            self.resume()

    def ended(self):
        """The container exited and all its output was published: every stream ends."""
        with self.lock:
            self.running = self.throttled = False
            self.resume = None
            for sub in self.subscribers:
                sub.ended = True
                sub.ready.notify()
            self.subscribers.clear()
            self._close_stdin()
            if self.pty is not None:
                os.close(self.pty)
                self.pty = None

    def _close_stdin(self):
        if self.stdin is not None:
            os.close(self.stdin)
            self.stdin = None

    # -- a client's input -----------------------------------------------------
    def take_stdin(self, sub):
        """The fd an attached client's input goes to, or None (no stdin, or StdinOnce and
        another client has had it). A client attached before the start waits for it."""
        with self.lock:
            while not self.running and not sub.ended:
                if self.run_started is None:
                    self.run_started = threading.Condition(self.lock)
                self.run_started.wait(1.0)
            if self.stdin_once and self.stdin_taken:
                return None
            self.stdin_taken = True
            target = self.stdin if self.pty is None else self.pty if self.pty_input else None
            return None if target is None else os.dup(target)

    def input_ended(self):
        """An attached client's input ended: with StdinOnce the container's stdin closes."""
        with self.lock:
            if self.stdin_once and self.pty is None:
                self._close_stdin()


class DetachScanner:
    """Finds the detach keys in a stream of input, holding back a partial match."""

    def __init__(self, keys):
        self.keys, self.matched = keys, 0

    def scan(self, data):
        """(the bytes to pass on, whether the keys were typed: nothing after them counts)."""
        out = bytearray()
        for b in data:
            if self.keys and b == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    return bytes(out), True
                continue
            out += self.keys[:self.matched]          # not the sequence after all
            self.matched = 0
            out.append(b)
        return bytes(out), False


def feed_input(hub, sub, conn, first, keys):
    """Copy a client's input (*first*, then the socket) into the container's stdin until it
    ends or the client types *keys*: then its subscription ends. Runs in a thread."""
    fd = hub.take_stdin(sub)
    scanner = DetachScanner(keys)
    data = first
    try:
        while True:
            out, detached = scanner.scan(data)
            _write_all(fd, out)
            if detached:
                sub.close()
                return
            data = conn.recv(65536)
            if not data:
                break
        if fd is not None:
            hub.input_ended()
    except OSError:
        pass
    finally:
        if fd is not None:
            os.close(fd)


def _set_size(pty, size):
    fcntl.ioctl(pty, TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))


def _write_all(fd, data):
    while data and fd is not None:
        data = data[os.write(fd, data):]


def attach(engine, row, stdout=True, stderr=True, logs=False, stream=True, stdin=None,
           keys=b"", peer_gone=lambda: False):
    """Attach a client to a container; return its output as (stream name, bytes).

    The client is subscribed at once, before the caller answers: ``docker run`` starts
    the container as soon as its attach is answered, and must not miss the first byte.
    *logs*: what the log holds first (it and the live output meet at one point);
    *stream*: then the live output until the container's run ends (or, while it is
    not running, its next run); *stdin*: (socket, bytes read) whose input goes to it.
    """
    cid = row["id"]
    hub = engine.hub(cid)
    path = engine.containers.path(cid, log_files.LOG_NAME)
    sub, follower = hub.subscribe(stdout, stderr,
                                  (lambda: log_files.Follower(path)) if logs else None)
    expect_run = row["state"] == "running"      # else: the next run (``docker start -a``)
    max_file = engine.log_options(row)[2] if logs else None

    def output():
        try:
            if logs:
                for name, text, _ in log_files.read(path, stdout, stderr, max_file=max_file,
                                                    follower=follower):
                    yield name, text.encode()
            if not stream:
                return
            if stdin is not None:
                threading.Thread(target=feed_input, args=(hub, sub, *stdin, keys),
                                 daemon=True).start()
            while True:
                item = sub.get(1.0)
                if item is None:
                    return
                if item:
                    yield item
                elif (stdin is None and peer_gone()) or (expect_run and not hub.running
                                                         and _exited(engine, cid)):
                    return
        finally:
            sub.close()
            if follower is not None:
                follower.close()
    return output()


def _exited(engine, cid):
    """Did the run a client attached to end before the client was subscribed?"""
    try:
        return engine.get(cid)["state"] != "running"
    except Exception:
        return True
