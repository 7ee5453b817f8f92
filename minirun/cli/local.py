"""The API served in this process, for image and network commands when no daemon runs.

As with docker, when a daemon is named (-H, MINIRUN_HOST) or serves the state
root, every command asks it; without one, the commands that need no running
process (images, tag, rmi, image inspect/prune, network …, volume …) still work: they call
the same API handlers here, on the state root directly. One code path, two
doors: the answer is the same JSON either way.
"""
import json
from urllib.parse import urlencode, parse_qs

from ..api.routes import ROUTES
from ..api.server import Request, Stream, find_route
from ..engine.containers import ContainerStore
from ..engine.networking import Networking
from ..engine.events import EventLog
from ..engine.volumes import VolumeStore
from ..image.store import ImageStore


class LocalEngine:
    """What the image and network handlers use of minirund's Engine: its stores."""
    restarting = frozenset()          # restart policies are minirund's: none waits here

    def __init__(self, root):
        self.root = root
        self.images = ImageStore(root)
        self.containers = ContainerStore(root, db=self.images.db)
        self.networking = Networking(root, self.containers)
        self.volumes = VolumeStore(root, db=self.images.db)
        self.events = EventLog(root)

    def emit(self, kind, action, actor, attributes=None):
        """Events of what this process did (minirund's readers see them in the file)."""
        self.events.emit(kind, action, actor, attributes)

    def get(self, ref):
        return self.containers.get(ref)


class LocalClient:
    """Client.call's twin: the request handled in this process."""

    def __init__(self, root):
        self.engine = LocalEngine(root)

    def call(self, method, endpoint, body=None, **query):
        fn, params = find_route(ROUTES, method, endpoint)
        query = parse_qs(urlencode({k: v for k, v in query.items() if v is not None}))
        data = json.dumps(body).encode() if body is not None else b""
        result = fn(self.engine, Request(method, endpoint, query, data, {}, None), **params)
        if isinstance(result, Stream):
            raise TypeError(f"{method} {endpoint} streams: it needs minirund")
        if isinstance(result, tuple):
            result = result[1]
        return json.loads(json.dumps(result)) if result is not None else None
