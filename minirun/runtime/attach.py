"""A foreground container's terminal and signals, from minirun's side.

Without -t the container simply shares minirun's stdout/stderr (and stdin
with -i). With -t minirun holds the master side of the container's pty: it
puts its own terminal in raw mode (so ^C travels as a byte and the
container's line discipline turns it into SIGINT), copies bytes both ways,
and passes window-size changes on. Signals sent to minirun itself
(SIGINT, SIGTERM, …) are forwarded to the container's PID 1.

When minirun's own terminal goes away (an ssh session drops, a terminal
window is closed) it does what a terminal emulator does: it hangs up the
container's terminal by closing the master side, gives the container
HANGUP_GRACE seconds to end, then kills it. (A PID 1 ignores the SIGHUP that
is forwarded to it, so without this the container would wait for ever.)
"""
import _signal as signal   # signal.py's C core, without its enums (docs/architecture.md)
import errno
import fcntl
import os

from ..fsutil import readable
from ..linux.process import TIOCGWINSZ, TIOCSWINSZ

HANGUP_GRACE = 5          # seconds between hanging up a container's terminal and SIGKILL
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2)


class forwarding_signals:
    """Forward minirun's signals to the container: ``with forwarding_signals() as attach:``,
    then ``attach(process)``.

    Until a process is attached the signals stay blocked (held by the
    kernel), so one that arrives while the container starts is delivered
    to it as soon as it runs rather than killing minirun half way.

    A class, not a contextlib generator (docs/architecture.md, "What a start imports").
    """

    def __enter__(self):
        self.target = []
        self.old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        self.old = {s: signal.signal(s, self._forward) for s in FORWARDED}
        return self.attach

    def _forward(self, sig, _frame):
        if self.target:
            self.target[0].signal(sig)

    def attach(self, proc):
        self.target.append(proc)
        signal.pthread_sigmask(signal.SIG_SETMASK, self.old_mask)

    def __exit__(self, *_):
        signal.pthread_sigmask(signal.SIG_SETMASK, self.old_mask)
        for s, h in self.old.items():
            signal.signal(s, h)


def copy_winsize(src, dst):
    try:
        fcntl.ioctl(dst, TIOCSWINSZ, fcntl.ioctl(src, TIOCGWINSZ, b"\0" * 8))
    except OSError:
        pass


class raw_terminal:
    """Terminal *fd* in raw mode inside the with block; nothing if *fd* is None or no
    terminal."""

    def __init__(self, fd):
        self.fd, self.saved = fd, None

    def __enter__(self):
        if self.fd is not None and os.isatty(self.fd):
            import termios            # only -t: a start without a terminal loads neither
            import tty
            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd)
        return self

    def __exit__(self, *_):
        if self.saved is None:
            return
        import termios
        try:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
        except termios.error:
            pass                          # the terminal is gone (hung up)


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def relay_pty(proc, stdin=True):
    """Copy between minirun's stdio and the container's pty until PID 1 exits."""
    import selectors
    master = proc.pty
    if os.isatty(0):
        copy_winsize(0, master)
    old_winch = signal.signal(signal.SIGWINCH, lambda *_: copy_winsize(0, master))
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ)
    sel.register(proc.pidfd, selectors.EVENT_READ)
    terminal = stdin and os.isatty(0)
    if stdin:
        sel.register(0, selectors.EVENT_READ)
    hung_up = False
    try:
        with raw_terminal(0 if stdin else None):
            while (state := _pump(sel, master, proc, terminal)) is True:
                pass
            hung_up = state == HUNG_UP
    finally:
        signal.signal(signal.SIGWINCH, old_winch)
        sel.close()
        os.close(master)              # for a hang-up: the container's terminal hangs up too
        proc.pty = None
    if hung_up:
        _end_after_hangup(proc)


def _end_after_hangup(proc):
    if not readable(proc.pidfd, HANGUP_GRACE):
        proc.signal(signal.SIGKILL)


HUNG_UP = "hung up"


def _pump(sel, master, proc, terminal):
    """One round of copying: True to go on, False when the container is gone, HUNG_UP when
    minirun's own terminal is."""
    for key, _ in sel.select():
        fd = key.fd
        if fd == proc.pidfd:
            _drain(master)
            return False
        try:
            data = os.read(fd, 65536)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            if fd != master:
                return HUNG_UP            # our terminal went away (EIO on read)
            return False                  # every slave closed: the container is gone
        if fd == master:
            if not data:
                return False
            try:
                _write_all(1, data)
            except OSError as e:
                if e.errno in (errno.EIO, errno.EPIPE) and terminal:
                    return HUNG_UP
                raise
        elif data:
            _write_all(master, data)
        elif terminal:
            return HUNG_UP                # end of file on a terminal: it hung up
        else:
            sel.unregister(0)             # stdin closed: the container keeps running
    return True


def _drain(master):
    """What the container wrote just before it exited."""
    os.set_blocking(master, False)
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        _write_all(1, data)
