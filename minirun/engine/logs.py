"""Container logs in Docker's json-file format: one JSON object per line.

    {"log":"hello\\n","stream":"stdout","time":"2026-11-26T03:00:00.123456789Z"}

The daemon's supervisor appends entries as a container writes; ``logs`` reads
them back, filtered by stream, time and count, and can follow the file while
the container runs. What a container can do to the daemon through its output is
bounded, as in Docker:

- a line longer than 16 KiB is cut into 16 KiB entries; an entry whose text does
  not end in a newline is a partial line (Docker's json-file marks them so too),
  so output without any newline costs the daemon 16 KiB, not everything;
- the file rotates: at ``max-size`` it becomes json.log.1 (older ones move up to
  json.log.``max-file - 1``, the oldest goes). Unless the container says otherwise
  (``--log-opt max-size=… --log-opt max-file=…``) every container gets DEFAULTS;
- ``--tail N`` reads from the end of the files, so a tail costs what it shows.
"""
import os
import time

from .. import cjson
from .options import OptionError, parse_bytes

LOG_NAME = "json.log"
MAX_LINE = 16 * 1024                        # Docker's cut for long lines
DEFAULTS = {"max-size": "20m", "max-file": "5"}   # as Docker's "local" driver's defaults
DRIVERS = ("json-file", "none")
BLOCK = 64 * 1024


class LogOptionError(OptionError):
    pass


def parse_options(driver, opts):
    """(driver, max bytes, number of files) from a LogConfig / --log-driver, --log-opt."""
    driver = driver or "json-file"
    if driver not in DRIVERS:
        raise LogOptionError(f"logger: no log driver named '{driver}' is registered")
    unknown = set(opts) - set(DEFAULTS)
    if unknown:
        raise LogOptionError(f"unknown log opt '{sorted(unknown)[0]}' for {driver} log driver")
    merged = {**DEFAULTS, **opts}
    try:
        size = parse_bytes(str(merged["max-size"]), "--log-opt max-size")
        files = int(merged["max-file"])
    except (OptionError, ValueError):
        raise LogOptionError(f"invalid log opts {opts}") from None
    if size < 1 or files < 1:
        raise LogOptionError("max-size and max-file must be positive")
    return driver, size, files


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


def files(path, max_file):
    """The log's files, oldest first: json.log.N … json.log.1, json.log."""
    return [f"{path}.{n}" for n in range(max_file - 1, 0, -1)] + [path]


class LogFile:
    """The append end of a container's log, rotating at *max_size* into *max_file* files."""

    def __init__(self, path, max_size, max_file):
        self.path, self.max_size, self.max_file = path, max_size, max_file
        self.fd = self._open()
        self.size = os.fstat(self.fd).st_size

    def _open(self):
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def write(self, data):
        """Append whole lines, rotating before a file would pass max-size."""
        while data:
            room = self.max_size - self.size
            if len(data) <= room:
                self._append(data)
                return
            cut = data.rfind(b"\n", 0, room) + 1
            if cut == 0:                            # not one more line fits
                if self.size:
                    self._rotate()
                    continue
                cut = data.find(b"\n") + 1 or len(data)   # a line above max-size: alone
            self._append(data[:cut])
            data = data[cut:]
            self._rotate()

    def _append(self, data):
        while data:
            data = data[os.write(self.fd, data):]
        self.size = os.fstat(self.fd).st_size

    def _rotate(self):
        """json.log → .1 → .2 …, with no moment when one of the names is missing: a reader
        (`logs`) lists the files at any time and would miss lines. Each file is linked under
        a name of its own and that link renamed over the next (rename replaces at once);
        then a new empty file is renamed over json.log. (Dot names: json.log* matches
        neither.) The new file is made first: if that fails (no inode left), nothing has
        moved, the lines at hand are lost (as Docker's json-file loses what it cannot write)
        and the next write tries again; never is a line written into a file that is also
        json.log.1, or to a descriptor already closed."""
        if self.max_file == 1:
            os.truncate(self.path, 0)
            self.size = 0
            return
        directory, name = os.path.split(self.path)
        link, fresh = (os.path.join(directory, f".{name}.{part}") for part in ("link", "new"))
        fd = os.open(fresh, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                     0o600)
        try:
            names = files(self.path, self.max_file)
            for older, newer in zip(names, names[1:]):   # .3 ← .2 ← .1 ← json.log
                try:
                    os.unlink(link)                      # a rotation cut short before
                except FileNotFoundError:
                    pass
                try:
                    os.link(newer, link)
                except FileNotFoundError:
                    continue
                os.rename(link, older)
            os.rename(fresh, self.path)
        except BaseException:
            os.close(fd)
            raise
        os.close(self.fd)
        self.fd, self.size = fd, 0

    def close(self):
        os.close(self.fd)


class NoLog:
    """--log-driver none: output is read (so the container never blocks) and dropped."""

    def write(self, data):
        pass

    def close(self):
        pass


class LineWriter:
    """Splits one stream's bytes into entries (lines, or 16 KiB pieces) for the log."""

    def __init__(self, log, stream):
        self.log = log
        self.stream = stream
        self.partial = b""

    def feed(self, data):
        data = self.partial + data
        *lines, rest = data.split(b"\n")
        entries = [l + b"\n" for l in lines]
        while len(rest) >= MAX_LINE:                  # no newline for 16 KiB: a partial entry
            entries.append(rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        self.partial = rest
        if entries:
            self._write(_split_long(entries))

    def flush(self):
        if self.partial:
            self._write([self.partial])
            self.partial = b""

    def _write(self, entries):
        now = timestamp()
        self.log.write("".join(cjson.dumps({"log": e.decode("utf-8", "replace"),
                                           "stream": self.stream, "time": now}) + "\n"
                               for e in entries).encode())


def _split_long(entries):
    out = []
    for e in entries:
        while len(e) > MAX_LINE:
            out.append(e[:MAX_LINE])
            e = e[MAX_LINE:]
        out.append(e)
    return out


def _entry(line, stdout, stderr, since, until):
    try:
        entry = cjson.loads(line)
    except ValueError:
        return None                      # a line cut short by a crash
    if (entry["stream"] == "stdout" and not stdout) or \
            (entry["stream"] == "stderr" and not stderr):
        return None
    if since or until:
        t = parse_timestamp(entry["time"])
        if (since and t < since) or (until and t > until):
            return None
    return entry["stream"], entry["log"], entry["time"]


def _open(name, path, follower):
    """The log file *name* for reading; the current one (*path*) is the one *follower* holds
    (it is that file's first part that is read: the follower has the rest, even once the
    container and its log are removed). None if gone, or if it is the held file rotated."""
    held = follower is not None and follower.file is not None
    if held and name == path:
        return open(f"/proc/self/fd/{follower.file.fileno()}", "rb")
    try:
        f = open(name, "rb")
    except FileNotFoundError:
        return None
    if held and os.fstat(f.fileno()).st_ino == follower.inode:
        f.close()
        return None
    return f


def _lines_backwards(f, limit=None):
    """The complete lines of the file *f* (of its first *limit* bytes), last first, reading
    blocks from its end; closes it."""
    with f:
        end = f.seek(0, os.SEEK_END) if limit is None else limit
        rest = b""
        while end > 0:
            start = max(0, end - BLOCK)
            f.seek(start)
            block = f.read(end - start) + rest
            end = start
            lines = block.split(b"\n")
            rest = lines.pop(0) if start > 0 else b""
            for line in reversed(lines):
                if line:
                    yield line
        if rest:
            yield rest


def read(path, stdout=True, stderr=True, since=0, until=0, tail=None, max_file=None,
         follower=None):
    """Entries (stream, text, time) of a log and its rotated files, oldest first, filtered;
    with *tail* only the last *tail*, read from the end. With a *follower* (made before), what
    it will deliver is left to it: ``logs -f`` sent lines written meanwhile twice."""
    max_file = max_file or int(DEFAULTS["max-file"])
    names = files(path, max_file)
    # With a follower, the current file up to where the follower starts (nothing, if there
    # was none when it was made).
    limit = None if follower is None else follower.offset if follower.file else 0
    if tail is not None and tail >= 0:
        picked = []
        for name in reversed(names):
            f = _open(name, path, follower)
            if f is None:
                continue
            for line in _lines_backwards(f, limit if name == path else None):
                if len(picked) >= tail:
                    break
                e = _entry(line, stdout, stderr, since, until)
                if e:
                    picked.append(e)
        return picked[::-1]
    return _forwards(names, path, follower, stdout, stderr, since, until, limit)


def _forwards(names, path, follower, stdout, stderr, since, until, limit):
    for name in names:
        f = _open(name, path, follower)
        if f is None:
            continue
        limit_here, done = (limit if name == path else None), 0
        with f:
            for line in f:
                done += len(line)
                if limit_here is not None and done > limit_here:
                    break
                e = _entry(line, stdout, stderr, since, until)
                if e:
                    yield e


class Follower:
    """New entries as they are appended, across rotations (``logs -f``).

    It holds the log file open: a container removed right after it exited (docker-py's
    ``run()`` removes it before reading the log stream it follows) takes its log's name
    with it, and what the follower had not read yet must still reach the client."""

    def __init__(self, path):
        self.path = path
        self.file, self.inode, self.offset = None, None, 0
        self._open(at_end=True)

    def _open(self, at_end):
        try:
            self.file = open(self.path, "rb")
        except FileNotFoundError:
            return
        st = os.fstat(self.file.fileno())
        self.inode, self.offset = st.st_ino, st.st_size if at_end else 0

    def poll(self, stdout=True, stderr=True):
        if self.file is None:
            self._open(at_end=False)           # made since: all of it is new
            if self.file is None:
                return []
        out = self._rest(stdout, stderr)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return out                          # removed: what it held is read
        if st.st_ino != self.inode:
            # Rotated: the file we hold is json.log.1 now, read to its end above (if it
            # rotated twice since the last poll, 0.1 s ago, what lay between is skipped).
            self.file.close()
            self._open(at_end=False)
            out += self._rest(stdout, stderr)
        elif st.st_size < self.offset:          # max-file 1: truncated in place
            self.offset = 0
            out += self._rest(stdout, stderr)
        return out

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None

    def _rest(self, stdout, stderr):
        if self.file is None:
            return []
        self.file.seek(self.offset)
        chunk = self.file.read(8 << 20)
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [e for e in (_entry(l, stdout, stderr, 0, 0) for l in complete.splitlines())
                if e]
