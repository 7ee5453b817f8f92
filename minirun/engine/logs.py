"""Container logs in Docker's json-file format: one JSON object per line.

    {"log":"hello\\n","stream":"stdout","time":"2026-11-26T03:00:00.123456789Z"}

The daemon's supervisor appends lines as a container writes them; ``logs``
reads them back, filtered by stream, time and count, and can follow the file
while the container runs.
"""
import json
import os
import time

LOG_NAME = "json.log"


def timestamp(t=None):
    """RFC 3339 with nanoseconds, as Docker writes them."""
    t = time.time() if t is None else t
    secs = int(t)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{int((t - secs) * 1e9):09d}Z"


def parse_timestamp(text):
    """Seconds since the epoch of a timestamp written by ``timestamp``."""
    import calendar    # only reading logs needs it, never writing them
    whole, _, frac = text.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))


class LineWriter:
    """Splits one stream's bytes into lines and appends them to the log."""

    def __init__(self, log_fd, stream):
        self.fd = log_fd
        self.stream = stream
        self.partial = b""

    def feed(self, data):
        data = self.partial + data
        *lines, self.partial = data.split(b"\n")
        if lines:
            self._write([l + b"\n" for l in lines])

    def flush(self):
        if self.partial:
            self._write([self.partial])
            self.partial = b""

    def _write(self, lines):
        now = timestamp()
        out = "".join(json.dumps({"log": l.decode("utf-8", "replace"), "stream": self.stream,
                                  "time": now}) + "\n" for l in lines)
        os.write(self.fd, out.encode())


def read(path, stdout=True, stderr=True, since=0, until=0, tail=None):
    """[(stream, text, time)] from a log file, filtered."""
    try:
        with open(path) as f:
            lines = f.readlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue               # a line cut short by a crash
        if (entry["stream"] == "stdout" and not stdout) or \
                (entry["stream"] == "stderr" and not stderr):
            continue
        t = parse_timestamp(entry["time"])
        if (since and t < since) or (until and t > until):
            continue
        out.append((entry["stream"], entry["log"], entry["time"]))
    if tail is not None and tail >= 0:
        out = out[len(out) - tail:] if tail else []
    return out


def follow(path, offset, stdout=True, stderr=True):
    """New entries appended after byte *offset*: ([(stream, text, time)], new offset)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
    except FileNotFoundError:
        return [], offset
    complete = chunk[:chunk.rfind(b"\n") + 1]
    out = []
    for line in complete.decode().splitlines():
        entry = json.loads(line)
        if (entry["stream"] == "stdout" and stdout) or (entry["stream"] == "stderr" and stderr):
            out.append((entry["stream"], entry["log"], entry["time"]))
    return out, offset + len(complete)
