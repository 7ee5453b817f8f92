"""``--trace``: one line per step of a container's birth, for a student to follow.

Each line names the call and says what it achieves, e.g.

    [trace] unshare(CLONE_NEWNS|CLONE_NEWUTS)  own mount table and hostname
"""
import os
import time


class Tracer:
    """Writes each step to *fd*; with fd None it holds the lines until ``release(fd)`` (an
    exec'd process with a terminal has nowhere to write them until its terminal exists)."""

    def __init__(self, fd=2):
        self.fd = fd
        self.held = []
        self.start = time.monotonic()

    def __call__(self, what, why=""):
        ms = (time.monotonic() - self.start) * 1000
        line = f"[trace {ms:7.1f}ms] {what}"
        if why:
            line = f"{line:<72}  # {why}"
        if self.fd is None:
            self.held.append(line)
        else:
            self._write(line)

    def release(self, fd):
        self.fd = fd
        for line in self.held:
            self._write(line)
        self.held = []

    def _write(self, line):
        try:
            os.write(self.fd, (line + "\n").encode())
        except OSError:
            pass


def quiet(*_):
    """The tracer of a process nobody watches."""
