"""Talking to minirund: HTTP over its unix socket, Docker's API."""
import http.client
import json
import socket
import struct
from urllib.parse import quote, urlencode

from ..config import API_VERSION, DEFAULT_HOST, socket_path
from ..errors import MinirunError


class DaemonError(MinirunError):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=None):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(self.path)
        except OSError:
            self.sock.close()
            raise MinirunError(f"Cannot connect to the minirun daemon at unix://{self.path}. "
                               f"Is minirund running?") from None


class Client:
    def __init__(self, host):
        self.path = socket_path(host or DEFAULT_HOST)

    def request(self, method, endpoint, body=None, headers=None, chunks=None, **query):
        """*body*: JSON; *chunks*: bytes sent as they come (Transfer-Encoding: chunked)."""
        query = {k: v for k, v in query.items() if v is not None}
        url = f"/v{API_VERSION}" + quote(endpoint) + ("?" + urlencode(query, doseq=True) if query
                                                        else "")
        conn = _UnixConnection(self.path)
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        if chunks is not None:
            conn.request(method, url, body=chunks, headers=hdrs, encode_chunked=True)
        else:
            conn.request(method, url, body=data, headers=hdrs)
        sock = conn.sock                 # http.client lets go of it on "Connection: close"
        resp = conn.getresponse()
        if resp.status >= 400:
            raw = resp.read()
            try:
                message = json.loads(raw)["message"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode(errors="replace") or resp.reason
            raise DaemonError(resp.status, message)
        resp.conn, resp.sock = conn, sock
        return resp

    def call(self, method, endpoint, body=None, **query):
        """A request whose answer is JSON (or nothing)."""
        resp = self.request(method, endpoint, body, **query)
        raw = resp.read()
        resp.conn.close()
        return json.loads(raw) if raw else None


def frames(resp):
    """Demultiplex Docker's stream: yields (stream number, bytes)."""
    while True:
        header = resp.read(8)
        if len(header) < 8:
            return
        stream, size = struct.unpack(">BxxxI", header)
        yield stream, resp.read(size)
