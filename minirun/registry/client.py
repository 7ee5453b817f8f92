"""Talking to a registry: HTTP(S) with keep-alive, auth challenges, redirects.

A 401 names how to authenticate: Basic (send the stored credentials) or
Bearer (get a token from the realm it names, anonymously or with Basic
credentials, for the scope it names, and retry). A blob may be redirected to
another host (a CDN); Authorization is never sent there.

Loopback registries are "insecure" as in Docker: HTTPS without checking the
certificate is tried first, then plain HTTP.
"""
import base64
import http.client
import ipaddress
import json
import ssl
import threading
import urllib.parse

from ..errors import MinirunError, NotFound
from ..image import manifest as mf
from . import auth

ACCEPT = ", ".join([mf.OCI_INDEX, mf.OCI_MANIFEST, mf.DOCKER_LIST, mf.DOCKER_MANIFEST])
DOCKER_HUB = "registry-1.docker.io"


class RegistryClientError(MinirunError):
    pass


class Unauthorized(RegistryClientError):
    pass


class ManifestNotFound(RegistryClientError, NotFound):
    pass


def is_loopback(host):
    """host[:port], [v6]:port included."""
    name = urllib.parse.urlsplit("//" + host).hostname or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Client:
    """One registry host; thread-safe (a connection per thread)."""

    def __init__(self, domain, tls_verify=True, credentials=None):
        self.host = DOCKER_HUB if domain in auth.HUB_HOSTS else domain
        self.domain = domain
        self.insecure = not tls_verify or is_loopback(self.host)
        self.scheme = None if self.insecure else "https"
        self.credentials = credentials if credentials is not None else auth.credentials(domain)
        self.tokens = {}                    # scope -> bearer token
        self.basic = False                  # the registry asked for Basic credentials
        self.local = threading.local()

    # -- connections -------------------------------------------------------------------
    def _connection(self, scheme, host):
        key = (scheme, host)
        conns = self.local.__dict__.setdefault("conns", {})
        if key not in conns:
            if scheme == "https":
                context = ssl.create_default_context()
                if self.insecure:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                conns[key] = http.client.HTTPSConnection(host, timeout=60, context=context)
            else:
                conns[key] = http.client.HTTPConnection(host, timeout=60)
        return conns[key]

    def _send(self, scheme, host, method, path, headers, body):
        conn = self._connection(scheme, host)
        for attempt in (1, 2):                   # a kept-alive connection may have been closed
            try:
                conn.request(method, path, body=body, headers=headers)
                return conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if attempt == 2 or (body is not None and hasattr(body, "read")):
                    raise

    def _pick_scheme(self, method, path, headers, body):
        """Insecure hosts: HTTPS (certificate unchecked) if it answers, else HTTP."""
        try:
            resp = self._send("https", self.host, method, path, headers, body)
            self.scheme = "https"
            return resp
        except (ssl.SSLError, ConnectionError, OSError):
            self._connection("https", self.host).close()
            self.scheme = "http"
            if body is not None and hasattr(body, "seek"):
                body.seek(0)
            return self._send("http", self.host, method, path, headers, body)

    # -- requests ------------------------------------------------------------------------
    def request(self, method, path, headers=None, body=None, scope=None, ok=(200,)):
        """Send a request (authenticating as the registry asks); the response if its status
        is in *ok*, else RegistryClientError. Redirects are followed."""
        headers = dict(headers or {})
        for attempt in (1, 2):
            sent = dict(headers, **self._authorization(scope))
            try:
                if self.scheme is None:
                    resp = self._pick_scheme(method, path, sent, body)
                else:
                    resp = self._send(self.scheme, self.host, method, path, sent, body)
            except OSError as e:
                raise RegistryClientError(f"cannot reach registry {self.host}: {e}") from None
            if resp.status == 401 and attempt == 1:
                challenge = resp.getheader("WWW-Authenticate") or ""
                resp.read()
                self._answer(challenge, scope)
                if body is not None and hasattr(body, "seek"):
                    body.seek(0)
                continue
            break
        if resp.status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD"):
            location = resp.getheader("Location")
            resp.read()
            return self._follow(method, location, headers, ok)
        return self._check(resp, ok)

    def _follow(self, method, location, headers, ok, hops=5):
        """A redirect: to another host it goes without our Authorization."""
        for _ in range(hops):
            url = urllib.parse.urlsplit(location)
            if url.netloc and url.netloc != self.host:
                conn = (http.client.HTTPSConnection(url.netloc, timeout=60)
                        if url.scheme == "https" else http.client.HTTPConnection(url.netloc,
                                                                                  timeout=60))
                path = url.path + ("?" + url.query if url.query else "")
                conn.request(method, path, headers=headers)
                resp = conn.getresponse()
            else:
                path = url.path + ("?" + url.query if url.query else "")
                resp = self._send(self.scheme, self.host, method, path,
                                  dict(headers, **self._authorization(None)), None)
            if resp.status not in (301, 302, 303, 307, 308):
                return self._check(resp, ok)
            location = urllib.parse.urljoin(location, resp.getheader("Location"))
            resp.read()
        raise RegistryClientError("too many redirects")

    @staticmethod
    def _check(resp, ok):
        if resp.status in ok:
            return resp
        body = resp.read()
        try:
            errors = json.loads(body).get("errors") or []
            message = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        except (ValueError, AttributeError):
            message = body[:200].decode(errors="replace").strip()
        error = {401: Unauthorized, 404: ManifestNotFound}.get(resp.status, RegistryClientError)
        raise error(message or f"HTTP {resp.status} {resp.reason}")

    def _authorization(self, scope):
        if scope in self.tokens:
            return {"Authorization": f"Bearer {self.tokens[scope]}"}
        if self.basic and self.credentials:
            return {"Authorization": "Basic " + _basic(*self.credentials)}
        return {}

    def _answer(self, challenge, scope):
        scheme, params = auth.parse_challenge(challenge)
        if scheme == "basic":
            if not self.credentials:
                raise Unauthorized(f"{self.domain}: authentication required (minirun login "
                                   f"{self.domain})")
            self.basic = True
        elif scheme == "bearer":
            self.tokens[scope] = self._token(params, params.get("scope") or scope)
        else:
            raise Unauthorized(f"{self.domain}: unsupported authentication {challenge!r}")

    def _token(self, params, scope):
        """A bearer token from the challenge's realm (Docker's token protocol)."""
        realm = params.get("realm")
        if not realm:
            raise Unauthorized("the registry's Bearer challenge names no realm")
        query = {k: v for k, v in (("service", params.get("service")), ("scope", scope)) if v}
        url = urllib.parse.urlsplit(realm)
        conn = (http.client.HTTPSConnection if url.scheme == "https" else
                http.client.HTTPConnection)(url.netloc, timeout=60)
        headers = {"Authorization": "Basic " + _basic(*self.credentials)} \
            if self.credentials else {}
        conn.request("GET", (url.path or "/") + "?" + urllib.parse.urlencode(query),
                     headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        if resp.status != 200:
            raise Unauthorized(f"{self.domain}: the token service refused ({resp.status})")
        doc = json.loads(body)
        token = doc.get("token") or doc.get("access_token")
        if not token:
            raise Unauthorized(f"{self.domain}: the token service gave no token")
        return token

    # -- the API ---------------------------------------------------------------------------
    def ping(self):
        """GET /v2/: checks that the registry answers and that our credentials work."""
        self.request("GET", "/v2/").read()

    def manifest(self, repo, reference):
        """(bytes, media type, digest header) of a manifest or index."""
        resp = self.request("GET", f"/v2/{repo}/manifests/{reference}", {"Accept": ACCEPT},
                            scope=f"repository:{repo}:pull")
        # Never more than a manifest may be: a hostile registry's endless "manifest" would
        # otherwise be read into memory whole before its size is checked.
        length = resp.getheader("Content-Length")
        if length and length.isdigit() and int(length) > mf.MAX_MANIFEST:
            resp.close()
            raise RegistryClientError(f"manifest {repo}:{reference} is {int(length)} bytes, "
                                      f"over the limit of {mf.MAX_MANIFEST}")
        data = resp.read(mf.MAX_MANIFEST + 1)
        if len(data) > mf.MAX_MANIFEST:
            resp.close()
            raise RegistryClientError(f"manifest {repo}:{reference} is over the limit of "
                                      f"{mf.MAX_MANIFEST} bytes")
        return data, (resp.getheader("Content-Type") or "").split(";")[0], \
            resp.getheader("Docker-Content-Digest")

    def blob(self, repo, digest):
        """A streaming response for a blob."""
        return self.request("GET", f"/v2/{repo}/blobs/{digest}",
                            scope=f"repository:{repo}:pull")

    def has_blob(self, repo, digest):
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", ok=(200, 404),
                            scope=f"repository:{repo}:push,pull")
        resp.read()
        return resp.status == 200

    def upload(self, repo, digest, size, open_blob):
        """Monolithic upload: POST a session, PUT the bytes with ?digest=."""
        scope = f"repository:{repo}:push,pull"
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", {"Content-Length": "0"},
                            scope=scope, ok=(202,))
        resp.read()
        location = urllib.parse.urlsplit(resp.getheader("Location"))
        query = (location.query + "&" if location.query else "") + \
            urllib.parse.urlencode({"digest": digest})
        with open_blob() as f:
            resp = self.request("PUT", f"{location.path}?{query}",
                                {"Content-Length": str(size),
                                 "Content-Type": "application/octet-stream"},
                                body=f, scope=scope, ok=(201,))
            resp.read()

    def put_manifest(self, repo, reference, data, media_type):
        resp = self.request("PUT", f"/v2/{repo}/manifests/{reference}",
                            {"Content-Type": media_type}, body=data,
                            scope=f"repository:{repo}:push,pull", ok=(201,))
        resp.read()
        return resp.getheader("Docker-Content-Digest")


def _basic(user, password):
    return base64.b64encode(f"{user}:{password}".encode()).decode()
