"""HTTP over a unix socket, the way dockerd serves its API.

A thread per connection (http.server), HTTP/1.1 with keep-alive, JSON in
and out. Handlers return a value (sent as JSON), a Stream (sent as it is
produced, the connection closed at its end) or raise ApiError. Paths may
carry a version prefix (``/v1.44/containers/json``); it is stripped.
"""
import fcntl
import json
import os
import re
import select
import socket
import socketserver
import struct
import termios
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

from ..config import API_VERSION, api_idle_timeout
from ..errors import Conflict, MinirunError, NotFound, NotModified
from ..httpbody import body_reader

MAX_BODY = 16 << 20
IDLE_TIMEOUT = api_idle_timeout(os.environ)
VERSION_PREFIX = re.compile(r"^/v(\d+\.\d+)(/.*)$")


class ApiError(MinirunError):
    """A request the API refuses, with the HTTP status to answer."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def find_route(routes, method, path):
    """(handler, path parameters) for a request; ApiError 404/405 if none serves it."""
    for verb, pattern, fn in routes:
        match = pattern.fullmatch(path)
        if match and verb == method:
            return fn, match.groupdict()
    if any(p.fullmatch(path) for _, p, _ in routes):
        raise ApiError(405, f"method {method} not allowed on {path}")
    raise ApiError(404, f"page not found: {path}")


class Stream:
    """A streamed response: *chunks* yields bytes. ``upgrade``: a hijacked connection (True:
    ``Upgrade: tcp``; or the protocol's name, "websocket").
    ``chunked``: HTTP/1.1 chunked encoding (docker-py reads JSON progress streams so)."""

    def __init__(self, chunks, content_type="application/octet-stream", upgrade=False,
                 status=200, chunked=False, headers=()):
        self.chunks, self.content_type, self.upgrade, self.status = \
            chunks, content_type, upgrade, status
        self.chunked, self.headers = chunked, list(headers)


class Request:
    def __init__(self, method, path, query, body, headers, handler, version=None):
        self.method, self.path, self.query, self.body = method, path, query, body
        self.headers = headers
        self.handler = handler            # for hijacked streams: the raw connection
        # the client's API version (its path's /v1.xx prefix; without one, the newest)
        self.version = tuple(map(int, (version or API_VERSION).split(".")))

    def arg(self, name, default=None):
        return self.query.get(name, [default])[-1]

    def flag(self, name, default=False):
        v = self.arg(name)
        if v is None:
            return default
        return v.lower() in ("1", "true", "yes")

    def int(self, name, default=None):
        return self._parsed(name, default, int)

    def number(self, name, default=None):
        """A query value that may have a fraction (since=1733140000.5)."""
        return self._parsed(name, default, float)

    def _parsed(self, name, default, kind):
        v = self.arg(name)
        if v in (None, ""):
            return default
        try:
            return kind(v)
        except ValueError:
            raise ApiError(400, f"invalid value for {name}: {v!r}") from None

    def peer_gone(self):
        """Has the client closed its end? (A stream that waits for news — logs -f, wait,
        stats, attach — asks between waits, so an abandoned request does not keep its thread.)

        On a unix socket only a hang-up counts: the docker CLI shuts down its sending side as
        soon as it has no input to send (``docker run`` without -i), and still reads; a
        container slow to start (the first one of a daemon, on a slow machine) then lost its
        whole output to an attach that took the half-close for a departure."""
        conn = self.handler.connection
        try:
            poller = select.poll()
            poller.register(conn, select.POLLIN | select.POLLRDHUP)
            events = poller.poll(0)
            if not events:
                return False
            mask = events[0][1]
            if mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                return True
            if conn.family == socket.AF_UNIX:
                return False          # readable, or half-closed: still there to read
            return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def take_input(self):
        """(socket, bytes the client sent after its request) of a hijacked connection.

        Whatever follows is read from the socket itself: a thread blocked inside the
        buffered reader would hold its lock, and closing the request would wait on it.
        """
        conn = self.handler.connection
        conn.setblocking(False)
        try:
            first = self.handler.rfile.read1(65536) or b""
        except OSError:
            first = b""
        finally:
            conn.setblocking(True)
        return conn, first

    def json(self):
        if not self.body:
            return {}
        try:
            doc = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"malformed JSON body: {e}") from None
        if doc is None:                   # `null`: what docker 20.10's commit sends without a
            return {}                     # config, and what Go decodes as an empty struct
        if not isinstance(doc, dict):
            raise ApiError(400, "the request body must be a JSON object")
        return doc


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "minirund"

    def version_string(self):             # the one Server header: not "minirund Python/3.x"
        return self.server_version
    # A client that connects and says nothing (or stops half way through a request) holds
    # a thread: after this many idle seconds it is let go. Streams clear it (_send_stream).
    timeout = IDLE_TIMEOUT
    routes = []        # set by the server: [(method, regex, function)]

    def log_message(self, fmt, *args):
        self.server.log.debug("%s %s", self.command, fmt % args)

    def address_string(self):
        return "unix"

    def _dispatch(self):
        url = urlsplit(self.path)
        path = unquote(url.path)
        m = VERSION_PREFIX.match(path)
        version = m.group(1) if m else None
        if m:
            if tuple(map(int, m.group(1).split("."))) > tuple(map(int, API_VERSION.split("."))):
                return self._send_error(400, f"client version {m.group(1)} is too new. "
                                             f"Maximum supported API version is {API_VERSION}")
            path = m.group(2)
        try:
            fn, params = find_route(self.routes, self.command, path)
        except ApiError as e:
            self.close_connection = True          # its body, if any, is left unread
            return self._send_error(e.status, str(e))
        if getattr(fn, "streams_body", False):    # a tar to unpack: read as it is used
            reader = body_reader(self.headers, self.rfile)
            if reader is None:
                return self._send_error(400, "invalid Content-Length")
            req = Request(self.command, path, parse_qs(url.query), b"", self.headers, self,
                          version)
            req.stream = reader

            def reading_the_rest(engine, req, **params):
                # What the handler left unread (a tar's trailing zero blocks, the chunked
                # end; or all of it after a refusal) is read before the answer: closing a
                # socket with unread bytes resets it, and the client sees no answer at all.
                try:
                    return fn(engine, req, **params)
                finally:
                    _drain(reader)
            try:
                return self._respond(reading_the_rest, req, params)
            finally:
                if not reader.done:
                    self.close_connection = True  # what is left of it is not a request
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            return self._send_error(400, "invalid Content-Length (or a chunked body where "
                                         "none is streamed)")
        if length > MAX_BODY:
            self.close_connection = True
            return self._send_error(413, "request body too large")
        body = self.rfile.read(length) if length else b""
        req = Request(self.command, path, parse_qs(url.query), body, self.headers, self,
                      version)
        return self._respond(fn, req, params)

    do_GET = do_POST = do_DELETE = do_PUT = do_HEAD = _dispatch

    def _respond(self, fn, req, params):
        try:
            result = fn(self.server.engine, req, **params)
        except MinirunError as e:
            if getattr(e, "detail", ""):
                self.server.log.error("%s %s: %s\n%s", req.method, req.path, e, e.detail)
            return self._send_error(status_of(e), str(e))
        except Exception as e:
            self.server.log.exception("%s %s", req.method, req.path)
            return self._send_error(500, f"{type(e).__name__}: {e}")
        if isinstance(result, Stream):
            return self._send_stream(result)
        if result is None:
            return self._send(204, b"")
        if isinstance(result, tuple):
            status, result = result
            return self._send(status, json.dumps(result).encode())
        return self._send(200, json.dumps(result).encode())

    def _headers(self, status, content_type, length=None, extra=()):
        self.send_response(status)
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Docker-Experimental", "false")
        self.send_header("Ostype", "linux")
        if content_type:
            self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()

    def _send(self, status, body, content_type="application/json"):
        self._headers(status, content_type if body or status != 204 else None,
                      None if status in (204, 304) else len(body))
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def _send_error(self, status, message):
        """One line, whatever the error carried (never a traceback)."""
        lines = str(message).strip().splitlines()
        self._send(status, json.dumps({"message": lines[0] if lines else ""}).encode())

    def _send_stream(self, stream):
        self.connection.settimeout(None)   # a stream may rightly be quiet for long
        if stream.upgrade:
            protocol = stream.upgrade if isinstance(stream.upgrade, str) else "tcp"
            self._headers(101, stream.content_type, extra=[("Connection", "Upgrade"),
                                                             ("Upgrade", protocol),
                                                             *stream.headers])
        else:
            extra = [("Connection", "close"), *stream.headers]
            if stream.chunked:
                extra.append(("Transfer-Encoding", "chunked"))
            self._headers(stream.status, stream.content_type, extra=extra)
        self.wfile.flush()                 # headers at once: /wait and followers depend on it
        if stream.upgrade:
            _wait_until_read(self.connection)
        self.close_connection = True
        try:
            for chunk in stream.chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if stream.chunked
                                     else chunk)
                    self.wfile.flush()
            if stream.chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except MinirunError as e:          # the status is sent: all a client sees is the cut
            self.server.log.error("%s %s: cut short: %s", self.command, self.path, e)
        except Exception:
            self.server.log.exception("%s %s: cut short", self.command, self.path)
        finally:
            close = getattr(stream.chunks, "close", None)
            if close:
                close()


DRAIN_LIMIT = 64 << 20     # body bytes read after a refusal, so that the client sees it


def _drain(reader):
    left = DRAIN_LIMIT
    try:
        while left > 0 and (data := reader.read(min(left, 1 << 20))):
            left -= len(data)
    except OSError:
        pass


HEADERS_READ_WAIT = 5.0     # seconds a hijacked stream waits for its headers to be read


def _wait_until_read(conn):
    """Wait (a while) until the client has read everything sent so far: the headers.

    A client that takes over the raw socket of a hijacked connection (docker-py does, for exec
    and attach) reads the headers through a buffered reader first; output that arrived with
    them lands in that buffer and is lost (exec_run got its exit code and no output, on a
    loaded machine). On a unix socket the bytes a peer has not read yet still count against
    the sender, and SIOCOUTQ says how many: the stream starts when they are none."""
    if conn.family != socket.AF_UNIX:
        return
    end = time.monotonic() + HEADERS_READ_WAIT
    left = struct.pack("i", 0)
    while time.monotonic() < end:
        if struct.unpack("i", fcntl.ioctl(conn.fileno(), termios.TIOCOUTQ, left))[0] == 0:
            return
        time.sleep(0.001)


def status_of(error):
    """HTTP status for a user's error, by its kind; anything else they asked wrongly is 400."""
    if isinstance(error, ApiError):
        return error.status
    for kind, status in ((NotFound, 404), (Conflict, 409), (NotModified, 304)):
        if isinstance(error, kind):
            return status
    return 400


def somaxconn():
    """The kernel's ceiling for a listen backlog, which dockerd (Go) uses as its backlog: a
    burst of clients (``docker rm -f`` of many containers) must not be refused."""
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return int(f.read())
    except (OSError, ValueError):
        return socket.SOMAXCONN


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = somaxconn()

    def __init__(self, path, engine, routes, log):
        self.engine, self.log = engine, log
        handler = type("BoundHandler", (Handler,), {"routes": routes})
        # bound now, listening once the caller has set its owner and mode (server_activate)
        socketserver.UnixStreamServer.__init__(self, path, handler, bind_and_activate=False)
        self.server_bind()
