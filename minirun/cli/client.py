"""Talking to minirund: HTTP over its unix socket, Docker's API."""
import http.client
import json
import socket
import struct
from urllib.parse import quote, urlencode

from ..config import API_VERSION, DEFAULT_HOST, socket_path
from ..errors import MinirunError
from ..fsutil import readable


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
        # The connection of the last call, its answer read to the end: the next request goes
        # on it (HTTP/1.1 keep-alive, as the docker CLI and docker-py do), which halves a
        # short request's round trip (0.37 -> 0.17 ms for /version): no connect, and no
        # thread started for it in minirund. (One thread uses a Client.)
        self.idle = None

    def _connection(self):
        conn, self.idle = self.idle, None
        if conn is not None:
            if not readable(conn.sock.fileno(), 0):
                return conn
            conn.close()        # readable while idle: minirund closed it (its idle timeout)
        return _UnixConnection(self.path)

    def request(self, method, endpoint, body=None, headers=None, chunks=None, **query):
        """*body*: JSON; *chunks*: bytes sent as they come (Transfer-Encoding: chunked)."""
        query = {k: v for k, v in query.items() if v is not None}
        url = f"/v{API_VERSION}" + quote(endpoint) + ("?" + urlencode(query, doseq=True) if query
                                                        else "")
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        conn = self._connection()
        reused = conn.sock is not None
        try:
            resp, sock = _exchange(conn, method, url, data, hdrs, chunks)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # An idle connection minirund closed just as this request went out: it had read
            # none of it (it closes only while waiting for a request), so send it again.
            conn.close()
            if not reused or chunks is not None:
                raise
            conn = _UnixConnection(self.path)
            resp, sock = _exchange(conn, method, url, data, hdrs, chunks)
        if resp.status >= 400:
            raw = resp.read()
            try:
                message = json.loads(raw)["message"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode(errors="replace") or resp.reason
            conn.close()
            raise DaemonError(resp.status, message)
        resp.conn, resp.sock = conn, sock
        return resp

    def call(self, method, endpoint, body=None, **query):
        """A request whose answer is JSON (or nothing)."""
        resp = self.request(method, endpoint, body, **query)
        raw = resp.read()
        if resp.will_close:
            resp.conn.close()
        else:
            self.idle = resp.conn
        return json.loads(raw) if raw else None


def _exchange(conn, method, url, data, headers, chunks):
    """Send one request on *conn*; (its response, once the status line and headers are in,
    and the socket: http.client lets go of it on "Connection: close")."""
    if chunks is not None:
        conn.request(method, url, body=chunks, headers=headers, encode_chunked=True)
    else:
        conn.request(method, url, body=data, headers=headers)
    sock = conn.sock
    return conn.getresponse(), sock


def frames(resp):
    """Demultiplex Docker's stream: yields (stream number, bytes)."""
    while True:
        header = resp.read(8)
        if len(header) < 8:
            return
        stream, size = struct.unpack(">BxxxI", header)
        yield stream, resp.read(size)
