"""Events: what happened to containers, images, networks and volumes (``docker events``).

Each event is appended to ``events.jsonl`` under the state root and handed to the
clients following the stream. The file is the memory across daemon restarts,
for a bounded window: when it passes MAX_BYTES the older half is dropped, so
``events --since`` reaches back as far as the last few thousand events.

Docker's shape, old fields and new:

    {"Type": "container", "Action": "die", "Actor": {"ID": "…", "Attributes":
     {"exitCode": "3", "image": "busybox", "name": "web"}}, "scope": "local",
     "time": 1733200000, "timeNano": 1733200000123456789,
     "status": "die", "id": "…", "from": "busybox"}
"""
import json
import os
import threading
import time

MAX_BYTES = 1 << 20        # the file is halved past this (a few thousand events)
KEPT = 256                 # events kept in memory for followers, as moby's (eventsLimit):
                           # a follower further behind than that loses the oldest, as in
                           # Docker; 1000 cost ~1.5 kB per container at 300 containers
TYPES = ("container", "image", "network", "volume", "daemon")


class EventLog:
    def __init__(self, root):
        self.path = os.path.join(root, "events.jsonl")
        self.changed = threading.Condition()
        self.recent = []                   # events of this daemon's life, for followers
        self.serial = 0

    def emit(self, kind, action, actor_id, attributes=None):
        now = time.time_ns()
        event = {"Type": kind, "Action": action,
                 "Actor": {"ID": actor_id, "Attributes": dict(attributes or {})},
                 "scope": "local", "time": now // 1_000_000_000, "timeNano": now}
        if kind == "container":            # the fields of API < 1.22, which clients still read
            event.update(status=action, id=actor_id,
                         **({"from": attributes["image"]} if attributes and
                            "image" in attributes else {}))
        line = json.dumps(event) + "\n"
        with self.changed:
            try:
                with open(self.path, "a") as f:
                    f.write(line)
                    size = f.tell()
                if size > MAX_BYTES:
                    self._halve()
            except OSError:
                pass                       # a full disk loses history, not the event
            self.serial += 1
            self.recent.append((self.serial, event))
            del self.recent[:-KEPT]
            self.changed.notify_all()

    def _halve(self):
        with open(self.path, "rb") as f:
            data = f.read()
        keep = data[len(data) // 2:]
        keep = keep[keep.find(b"\n") + 1:]
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(keep)
        os.replace(tmp, self.path)

    def past(self, since, until):
        """Events recorded between *since* and *until* (seconds; None: open)."""
        try:
            with open(self.path) as f:
                lines = f.readlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue                   # a line cut short by a crash
            t = event["timeNano"] / 1e9
            if (since is None or t >= since) and (until is None or t <= until):
                out.append(event)
        return out

    def follow(self, after_serial, wait):
        """Events after *after_serial*: (their serial, events); waits up to *wait* seconds."""
        with self.changed:
            if not self.recent or self.recent[-1][0] <= after_serial:
                self.changed.wait(wait)
            new = [(s, e) for s, e in self.recent if s > after_serial]
        return (new[-1][0] if new else after_serial), [e for _, e in new]

    def mark(self):
        with self.changed:
            return self.serial


def matches(event, filters):
    """Docker's event filters: type, container, image, event, label, network, volume."""
    actor = event["Actor"]
    attrs = actor["Attributes"]
    for key, wanted in filters.items():
        if key == "type" and event["Type"] not in wanted:
            return False
        if key == "event" and event["Action"].split(":")[0] not in wanted \
                and event["Action"] not in wanted:
            return False
        if key in ("container", "network", "volume") and (
                event["Type"] != key or not any(
                    actor["ID"].startswith(w) or attrs.get("name") == w for w in wanted)):
            return False
        if key == "image" and not any(attrs.get("image") == w or attrs.get("name") == w
                                      or actor["ID"] == w for w in wanted):
            return False
        if key == "label" and not all(_label(attrs, w) for w in wanted):
            return False
        if key not in ("type", "event", "container", "network", "volume", "image", "label"):
            raise ValueError(f"invalid filter '{key}'")
    return True


def _label(attrs, wanted):
    k, eq, v = wanted.partition("=")
    return k in attrs and (not eq or attrs[k] == v)
