"""Per-layer progress, as ``docker pull`` shows it: bars on a terminal, plain lines otherwise,
or (for minirund) Docker's JSON progress messages."""
import json
import sys
import threading
import time

from ..humanize import human_size


class Progress:
    def __init__(self, out=sys.stdout, quiet=False):
        self.out, self.quiet = out, quiet
        self.tty = out.isatty() and not quiet
        self.lines = {}               # layer id -> text, in first-seen order
        self.drawn = 0
        self.last = 0.0
        self.lock = threading.Lock()

    def __call__(self, layer, status, current=None, total=None):
        if self.quiet:
            return
        with self.lock:
            if not self.tty:
                if status != "Downloading" and status != "Pushing":
                    print(f"{layer}: {status}", file=self.out, flush=True)
                return
            self.lines[layer] = f"{layer}: {status}" + (_bar(current, total) if current is not None
                                                         else "")
            now = time.monotonic()
            if status in ("Downloading", "Pushing") and now - self.last < 0.1:
                return
            self.last = now
            self._draw()

    def _draw(self):
        up = f"\x1b[{self.drawn}A" if self.drawn else ""
        self.out.write(up + "".join(f"\x1b[2K{line}\n" for line in self.lines.values()))
        self.out.flush()
        self.drawn = len(self.lines)

    def say(self, text, id=None, aux=None):
        """A line of its own (below the bars); *aux* is for the API's stream only."""
        if id:
            text = f"{id}: {text}"
        if not self.quiet:
            with self.lock:
                if self.tty and self.lines:
                    self._draw()            # the bars' final state, then text below them
                    self.lines, self.drawn = {}, 0
                print(text, file=self.out, flush=True)


def _bar(current, total, width=40):
    if not total:
        return f"  {human_size(current)}"
    done = int(width * min(current / total, 1))
    return f"  [{'=' * max(done - 1, 0)}{'>' if done else ''}{' ' * (width - done)}]  " \
           f"{human_size(current)}/{human_size(total)}"


class JsonProgress:
    """Docker's JSON progress stream for the API: one {"status", "id", …} object per line."""

    def __init__(self, emit):
        self.emit = emit                # called with each encoded line

    def __call__(self, layer, status, current=None, total=None):
        message = {"status": status, "id": layer, "progressDetail": {}}
        if current is not None:
            message["progressDetail"] = {"current": current, "total": total or 0}
        self.emit(json.dumps(message).encode() + b"\n")

    def say(self, text, id=None, aux=None):
        self.emit(json.dumps({"status": text, **({"id": id} if id else {})}).encode() + b"\n")
        if aux is not None:             # docker push reads the pushed digest from here
            self.emit(json.dumps({"progressDetail": {}, "aux": aux}).encode() + b"\n")
