"""``minirun registry serve``: an OCI Distribution Spec v1.1 registry.

One thread per connection (HTTP/1.1 keep-alive), bodies streamed in 1 MiB
pieces in both directions, blobs sent with sendfile. Every route is a small
method below; storage.py owns the files and every check of what is stored.
"""
import base64
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..httpbody import ChunkedReader
from ..image.manifest import OCI_INDEX
from .errors import RegistryError
from .storage import MAX_MANIFEST, Storage, check_digest

ROUTES = [                                   # (pattern, handler-method prefix)
    (r"/v2/?", "base"),
    (r"/v2/_catalog", "catalog"),
    (r"/v2/(?P<name>.+)/tags/list", "tags"),
    (r"/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)", "manifest"),
    (r"/v2/(?P<name>.+)/blobs/uploads/?", "uploads"),
    (r"/v2/(?P<name>.+)/blobs/uploads/(?P<upload>[^/]+)", "upload"),
    (r"/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)", "blob"),
    (r"/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)", "referrers"),
]
ROUTES = [(re.compile(p), h) for p, h in ROUTES]
REALM = "minirun registry"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "minirun-registry"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            super().log_message(fmt, *args)

    # -- dispatch ----------------------------------------------------------------------
    def _handle(self):
        url = urllib.parse.urlsplit(self.path)
        self.query = dict(urllib.parse.parse_qsl(url.query))
        try:
            self._authorize()
            for pattern, name in ROUTES:
                m = pattern.fullmatch(url.path)
                if m:
                    method = getattr(self, f"{name}_{self.command.lower()}", None)
                    if method is None:
                        raise RegistryError("UNSUPPORTED", f"{self.command} is not supported "
                                            f"here", status=405)
                    if self.server.read_only and self.command not in ("GET", "HEAD"):
                        raise RegistryError("UNSUPPORTED", "the registry is read-only",
                                            status=405)
                    return method(**m.groupdict())
            raise RegistryError("NAME_UNKNOWN", f"no route for {url.path}", status=404)
        except RegistryError as e:
            self._drain()
            self._error(e)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as e:              # a bug or the disk: 500, and the server lives on
            self.log_error("%s %s: %r", self.command, self.path, e)
            self.close_connection = True
            self._error(RegistryError("UNKNOWN", f"{type(e).__name__}: {e}", status=500))

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

    def _authorize(self):
        users = self.server.users
        if users is None:
            return
        kind, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if kind.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user = password = ""
            if users.check(user, password):
                return
        raise RegistryError("UNAUTHORIZED", "authentication required")

    # -- replies -------------------------------------------------------------------------
    def _reply(self, status, body=b"", headers=(), content_type=None, length=None):
        self.send_response(status)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status, doc, headers=(), content_type="application/json"):
        self._reply(status, json.dumps(doc).encode(), headers, content_type)

    def _error(self, e):
        headers = []
        if e.status == 401:
            headers.append(("WWW-Authenticate", f'Basic realm="{REALM}"'))
        if e.range_end is not None:
            headers.append(("Range", f"0-{max(e.range_end - 1, 0)}"))
        self._json(e.status, e.body(), headers)

    def _drain(self):
        """Read what is left of a refused request's body, or close, so keep-alive stays sane."""
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= (1 << 20) and not getattr(
                self, "_body_read", False):
            self.rfile.read(int(length))
        elif self.headers.get("Transfer-Encoding") or (length and length != "0"):
            self.close_connection = True

    def _body(self):
        """The request body as a stream, and its length (None when chunked)."""
        self._body_read = True
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return ChunkedReader(self.rfile), None   # docker push streams so
        length = self.headers.get("Content-Length") or "0"
        if not length.isdigit():
            raise RegistryError("SIZE_INVALID", f"bad Content-Length: {length!r}")
        return self.rfile, int(length)

    # -- /v2/ and the catalog --------------------------------------------------------------
    def base_get(self):
        self._json(200, {})

    base_head = base_get

    def catalog_get(self):
        names = self._page(self.server.storage.catalog())
        self._json(200, {"repositories": names[0]}, names[1])

    def _page(self, items, path="/v2/_catalog"):
        """?n=&last= pagination, with a Link header when more follow."""
        last, n = self.query.get("last"), self.query.get("n")
        if last:
            items = [i for i in items if i > last]
        if n is not None:
            if not n.isdigit():
                raise RegistryError("UNSUPPORTED", f"bad n: {n!r}", status=400)
            more = len(items) > int(n)
            items = items[:int(n)]
            if more and items:
                return items, [("Link", f'<{path}?n={n}&last={urllib.parse.quote(items[-1])}>; '
                                        f'rel="next"')]
        return items, []

    def tags_get(self, name):
        tags, headers = self._page(self.server.storage.tags(name), f"/v2/{name}/tags/list")
        self._json(200, {"name": name, "tags": tags}, headers)

    # -- manifests ---------------------------------------------------------------------------
    def manifest_get(self, name, ref):
        data, media_type, digest = self.server.storage.get_manifest(name, ref)
        self._reply(200, data, [("Docker-Content-Digest", digest)], media_type)

    manifest_head = manifest_get

    def manifest_put(self, name, ref):
        stream, length = self._body()
        if length is None or length > MAX_MANIFEST:
            raise RegistryError("SIZE_INVALID", "manifest too large or of unknown size",
                                status=413)
        data = stream.read(length)
        digest, subject = self.server.storage.put_manifest(
            name, ref, data, (self.headers.get("Content-Type") or "").split(";")[0].strip())
        headers = [("Location", f"/v2/{name}/manifests/{digest}"),
                   ("Docker-Content-Digest", digest)]
        if subject:
            headers.append(("OCI-Subject", subject))
        self._reply(201, headers=headers)

    def manifest_delete(self, name, ref):
        self.server.storage.delete_manifest(name, ref)
        self._reply(202)

    # -- blobs ---------------------------------------------------------------------------------
    def blob_get(self, name, digest):
        path = self.server.storage.blob_path(name, digest)
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            start, end = self._range(size)
            headers = [("Docker-Content-Digest", digest), ("Accept-Ranges", "bytes")]
            if (start, end) != (0, size - 1) and size:
                headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
                status = 206
            else:
                status = 200
            self._reply(status, headers=headers, content_type="application/octet-stream",
                        length=end - start + 1 if size else 0)
            if self.command == "GET" and size:
                self.wfile.flush()
                self.connection.sendfile(f, start, end - start + 1)

    blob_head = blob_get

    def _range(self, size):
        text = self.headers.get("Range")
        if not text:
            return 0, size - 1
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", text.strip())
        if not m or (not m.group(1) and not m.group(2)):
            raise RegistryError("BLOB_UNKNOWN", f"bad Range: {text}", status=416)
        if not m.group(1):                                  # the last N bytes
            return max(size - int(m.group(2)), 0), size - 1
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        if start >= size or start > end:
            raise RegistryError("BLOB_UNKNOWN", f"range {text} not satisfiable (size {size})",
                                status=416)
        return start, end

    def blob_delete(self, name, digest):
        self.server.storage.delete_blob(name, digest)
        self._reply(202)

    # -- uploads -------------------------------------------------------------------------------
    def uploads_post(self, name):
        storage = self.server.storage
        mount, source = self.query.get("mount"), self.query.get("from")
        if mount and source and storage.mount(name, check_digest(mount), source):
            return self._created(name, mount)
        digest = self.query.get("digest")
        upload = storage.start_upload(name)
        if digest:                                      # monolithic: POST ?digest= with the body
            check_digest(digest)
            stream, length = self._body()
            try:
                storage.append(name, upload, stream, length)
            except BaseException:
                storage.cancel(name, upload)
                raise
            storage.finish(name, upload, digest)
            return self._created(name, digest)
        self._upload_reply(202, name, upload, 0)

    def _created(self, name, digest):
        self._reply(201, headers=[("Location", f"/v2/{name}/blobs/{digest}"),
                                  ("Docker-Content-Digest", digest)])

    def _upload_reply(self, status, name, upload, size):
        self._reply(status, headers=[("Location", f"/v2/{name}/blobs/uploads/{upload}"),
                                     ("Range", f"0-{max(size - 1, 0)}"),
                                     ("Docker-Upload-UUID", upload)])

    def upload_patch(self, name, upload):
        stream, length = self._body()
        start = None
        content_range = self.headers.get("Content-Range")
        if content_range:
            m = re.fullmatch(r"(?:bytes )?(\d+)-(\d+)", content_range.strip())
            if not m or (length is not None and int(m.group(2)) - int(m.group(1)) + 1 != length):
                size = self.server.storage.upload_size(name, upload)
                raise RegistryError("BLOB_UPLOAD_INVALID", f"bad Content-Range: {content_range}",
                                    status=416, range_end=size)
            start = int(m.group(1))
        size = self.server.storage.append(name, upload, stream, length, start)
        self._upload_reply(202, name, upload, size)

    def upload_put(self, name, upload):
        digest = check_digest(self.query.get("digest"))
        stream, length = self._body()
        if length is None or length:
            self.server.storage.append(name, upload, stream, length)
        self.server.storage.finish(name, upload, digest)
        self._created(name, digest)

    def upload_get(self, name, upload):
        self._upload_reply(204, name, upload, self.server.storage.upload_size(name, upload))

    def upload_delete(self, name, upload):
        self.server.storage.cancel(name, upload)
        self._reply(204)

    # -- referrers -----------------------------------------------------------------------------
    def referrers_get(self, name, digest):
        manifests = self.server.storage.referrers(name, digest)
        headers = []
        wanted = self.query.get("artifactType")
        if wanted:
            manifests = [m for m in manifests if m.get("artifactType") == wanted]
            headers.append(("OCI-Filters-Applied", "artifactType"))
        self._json(200, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests},
                   headers, OCI_INDEX)


class Users:
    """htpasswd users (bcrypt entries, as distribution's htpasswd auth takes)."""

    def __init__(self, path):
        self.hashes = {}
        with open(path) as f:
            for line in f:
                user, _, hashed = line.strip().partition(":")
                if user and hashed:
                    if not hashed.startswith(("$2y$", "$2a$", "$2b$")):
                        raise ValueError(f"{path}: {user}'s password is not a bcrypt hash "
                                         f"(htpasswd -B)")
                    self.hashes[user] = hashed.encode()
        self.verified = set()      # bcrypt is slow on purpose: check each pair once
        self.lock = threading.Lock()

    def check(self, user, password):
        key = (user, password)
        with self.lock:
            if key in self.verified:
                return True
        hashed = self.hashes.get(user)
        if hashed is None:
            return False
        import bcrypt      # only a registry with --htpasswd needs it
        if not bcrypt.checkpw(password.encode(), hashed.replace(b"$2y$", b"$2b$", 1)):
            return False
        with self.lock:
            self.verified.add(key)
        return True


HANDSHAKE_TIMEOUT = 10     # seconds a client gets to finish its TLS handshake


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, storage, users=None, read_only=False, verbose=False, tls=None):
        self.storage, self.users, self.read_only, self.verbose = storage, users, read_only, verbose
        self.tls = tls             # an ssl.SSLContext, or None for plain HTTP
        super().__init__(address, Handler)

    def finish_request(self, request, client_address):
        """In the connection's own thread: the TLS handshake (with a timeout), then HTTP.
        Done in the accept loop, one client that never starts its handshake would stop the
        registry answering everyone."""
        if self.tls is None:
            return super().finish_request(request, client_address)
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            conn.settimeout(None)
            super().finish_request(conn, client_address)
        finally:
            conn.close()

    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        super().server_bind()


def parse_listen(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen {text}: use HOST:PORT, e.g. 127.0.0.1:5000")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve(root, listen="127.0.0.1:5000", tls_cert=None, tls_key=None, htpasswd=None,
          read_only=False, verbose=False):
    context = None
    if tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls_cert, tls_key)
    server = Server(parse_listen(listen), Storage(root), Users(htpasswd) if htpasswd else None,
                    read_only, verbose, context)
    scheme = "https" if context else "http"
    host, port = server.server_address[:2]
    print(f"minirun registry: serving {root} on {scheme}://{host}:{port}", file=sys.stderr,
          flush=True)
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    finally:
        server.server_close()
