"""The registry, both sides: minirun registry serve against skopeo and minirun's client,
minirun's client against Debian's docker-registry (distribution), the spec's upload
flavours and errors over raw HTTP, auth (htpasswd and a bearer-token flow), and a server
killed mid-upload. Everything listens on loopback ports of the test's own."""
import base64
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import SLACK
from test_network import free_port

pytestmark = pytest.mark.root
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
needs_skopeo = pytest.mark.skipif(not shutil.which("skopeo"), reason="skopeo not installed")


def wait_port(port, proc, timeout=10):
    end = time.monotonic() + timeout * SLACK
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()}")
        time.sleep(0.05)
    raise AssertionError("server did not listen")


class Registry:
    """A ``minirun registry serve`` of the test's own."""

    def __init__(self, minirun, root, *flags):
        self.minirun, self.root, self.flags = minirun, root, flags
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.minirun.argv(
            "registry", "serve", "--root", self.root, "--listen", self.host, *self.flags),
            env=self.minirun.env(), stderr=subprocess.PIPE)
        wait_port(self.port, self.proc)
        return self

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        self.proc.wait(10)

    def http(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection(self.host, timeout=30)
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp, data


@pytest.fixture
def registry(minirun, tmp_path):
    r = Registry(minirun, str(tmp_path / "registry")).start()
    yield r
    if r.proc.poll() is None:
        r.stop()


def skopeo(*args):
    p = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120 * SLACK)
    assert p.returncode == 0, p.stderr
    return p.stdout


def error_code(data):
    return json.loads(data)["errors"][0]["code"]


def push_blob(reg, repo, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    resp, _ = reg.http("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data)
    assert resp.status == 201, resp.status
    return digest


def push_manifest(reg, repo, ref, doc):
    data = json.dumps(doc).encode()
    resp, body = reg.http("PUT", f"/v2/{repo}/manifests/{ref}", data,
                          {"Content-Type": doc["mediaType"]})
    assert resp.status == 201, body
    return resp, "sha256:" + hashlib.sha256(data).hexdigest(), len(data)


def image_manifest(reg, repo, payload=b"layer", **extra):
    config = push_blob(reg, repo, b"{}")
    layer = push_blob(reg, repo, payload)
    return dict({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                 "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                            "digest": config, "size": 2},
                 "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                             "digest": layer, "size": len(payload)}]}, **extra)


# -- interop -------------------------------------------------------------------------------

@needs_skopeo
@pytest.mark.parametrize("fmt", ["oci", "v2s2"])
def test_skopeo_copies_in_and_out_byte_identical(registry, busybox_oci, tmp_path, fmt):
    dest = f"docker://{registry.host}/lib/busybox:{fmt}"
    skopeo("copy", "--dest-tls-verify=false", "--format", fmt, f"oci:{busybox_oci}:latest", dest)
    raw = skopeo("inspect", "--raw", "--tls-verify=false", dest)
    back = str(tmp_path / "back")           # dir: keeps the manifest exactly as served
    skopeo("copy", "--src-tls-verify=false", dest, f"dir:{back}")
    assert open(f"{back}/manifest.json").read() == raw
    assert json.loads(raw)["mediaType"] == {
        "oci": OCI_MANIFEST, "v2s2": "application/vnd.docker.distribution.manifest.v2+json"}[fmt]
    for blob in [json.loads(raw)["config"], *json.loads(raw)["layers"]]:
        data = open(f"{back}/{blob['digest'][7:]}", "rb").read()
        assert hashlib.sha256(data).hexdigest() == blob["digest"][7:]
    tags = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{registry.host}/lib/busybox"))
    assert fmt in tags["Tags"]


def test_minirun_pushes_and_pulls_against_its_own_registry(loaded, registry, tmp_path):
    from conftest import Minirun
    name = f"{registry.host}/team/bb:v1"
    loaded("tag", "busybox", name)
    out = loaded("push", name).stdout
    assert "v1: digest: sha256:" in out
    other = Minirun(str(tmp_path / "other"))
    pulled = other("pull", name).stdout
    assert "Status: Downloaded newer image" in pulled and pulled.strip().endswith(name)
    p = other.run("--rm", "--network", "none", name, "echo", "pulled")
    assert p.stdout == "pulled\n", p.stderr
    again = other("pull", name).stdout
    assert "Already exists" in again and "Image is up to date" in again
    p = other.run("--rm", "--network", "none", f"{registry.host}/team/missing:v1", "true")
    assert p.returncode == 125 and "repository name not known to registry" in p.stderr


def test_run_pulls_a_missing_image_first(loaded, registry, tmp_path):
    from conftest import Minirun
    loaded("tag", "busybox", f"{registry.host}/auto/bb:v1")
    loaded("push", f"{registry.host}/auto/bb:v1")
    other = Minirun(str(tmp_path / "other"))
    p = other.run("--rm", "--network", "none", f"{registry.host}/auto/bb:v1", "echo", "ran")
    assert p.returncode == 0 and p.stdout == "ran\n"
    assert f"Unable to find image '{registry.host}/auto/bb:v1' locally" in p.stderr


@pytest.mark.skipif(not shutil.which("docker-registry"), reason="docker-registry not installed")
def test_minirun_client_against_the_reference_registry(loaded, tmp_path):
    from conftest import Minirun
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {tmp_path / 'distribution'}\n  delete:\n"
                      f"    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stderr=subprocess.PIPE)
    try:
        wait_port(port, proc)
        name = f"127.0.0.1:{port}/ref/bb:v1"
        loaded("tag", "busybox", name)
        assert "digest: sha256:" in loaded("push", name).stdout
        other = Minirun(str(tmp_path / "other"))
        other("pull", name)
        assert other.run("--rm", "--network", "none", name, "echo", "ok").stdout == "ok\n"
    finally:
        proc.terminate()
        proc.wait(10)


# -- the spec's upload flavours ------------------------------------------------------------

def test_chunked_upload_in_order_and_out_of_order(registry):
    data = os.urandom(300_000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    resp, _ = registry.http("POST", "/v2/up/chunks/blobs/uploads/")
    assert resp.status == 202
    location = resp.getheader("Location")
    resp, _ = registry.http("PATCH", location, data[:100_000],
                            {"Content-Range": "0-99999", "Content-Type": "application/octet-stream"})
    assert resp.status == 202 and resp.getheader("Range") == "0-99999"
    resp, body = registry.http("PATCH", location, data[200_000:],
                               {"Content-Range": "200000-299999"})
    assert resp.status == 416 and resp.getheader("Range") == "0-99999"
    resp, _ = registry.http("GET", location)
    assert resp.status == 204 and resp.getheader("Range") == "0-99999"
    resp, _ = registry.http("PATCH", location, data[100_000:200_000],
                            {"Content-Range": "100000-199999"})
    assert resp.status == 202
    resp, _ = registry.http("PUT", f"{location}?digest={digest}", data[200_000:])
    assert resp.status == 201 and resp.getheader("Docker-Content-Digest") == digest
    resp, body = registry.http("GET", f"/v2/up/chunks/blobs/{digest}")
    assert resp.status == 200 and body == data


def test_streamed_patch_and_chunked_transfer_encoding(registry):
    data = os.urandom(3 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    resp, _ = registry.http("POST", "/v2/up/stream/blobs/uploads/")
    location = resp.getheader("Location")
    conn = http.client.HTTPConnection(registry.host)
    conn.request("PATCH", location, body=iter([data[:1 << 20], data[1 << 20:]]),
                 encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 202 and resp.getheader("Range") == f"0-{len(data) - 1}"
    resp, _ = registry.http("PUT", f"{location}?digest={digest}")
    assert resp.status == 201
    resp, body = registry.http("GET", f"/v2/up/stream/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert resp.status == 206 and body == data[10:20]
    assert resp.getheader("Content-Range") == f"bytes 10-19/{len(data)}"
    resp, _ = registry.http("GET", f"/v2/up/stream/blobs/{digest}",
                            headers={"Range": f"bytes={len(data) + 5}-"})
    assert resp.status == 416


def test_cross_repository_mount(registry):
    digest = push_blob(registry, "src/repo", b"shared layer")
    resp, _ = registry.http("POST", f"/v2/dst/repo/blobs/uploads/?mount={digest}&from=src/repo")
    assert resp.status == 201 and resp.getheader("Location") == f"/v2/dst/repo/blobs/{digest}"
    assert registry.http("HEAD", f"/v2/dst/repo/blobs/{digest}")[0].status == 200
    missing = "sha256:" + "0" * 64
    resp, _ = registry.http("POST", f"/v2/dst/repo/blobs/uploads/?mount={missing}&from=src/repo")
    assert resp.status == 202                   # not there: an ordinary upload session instead


def test_a_blob_is_only_in_the_repositories_it_was_pushed_to(registry):
    digest = push_blob(registry, "one/repo", b"mine")
    resp, data = registry.http("GET", f"/v2/two/repo/blobs/{digest}")
    assert resp.status == 404 and error_code(data) == "BLOB_UNKNOWN"


# -- manifests, tags, referrers, deletes ---------------------------------------------------

def test_tags_are_listed_in_pages_with_a_link_header(registry):
    doc = image_manifest(registry, "paged/repo")
    for tag in ["c", "a", "e", "b", "d"]:
        push_manifest(registry, "paged/repo", tag, doc)
    resp, data = registry.http("GET", "/v2/paged/repo/tags/list?n=2")
    assert json.loads(data) == {"name": "paged/repo", "tags": ["a", "b"]}
    assert resp.getheader("Link") == '</v2/paged/repo/tags/list?n=2&last=b>; rel="next"'
    resp, data = registry.http("GET", "/v2/paged/repo/tags/list?n=2&last=d")
    assert json.loads(data)["tags"] == ["e"] and resp.getheader("Link") is None


def test_manifests_by_tag_and_digest_and_deletes(registry):
    doc = image_manifest(registry, "del/repo")
    resp, digest, size = push_manifest(registry, "del/repo", "v1", doc)
    assert resp.getheader("Docker-Content-Digest") == digest
    resp, data = registry.http("GET", f"/v2/del/repo/manifests/{digest}")
    assert resp.status == 200 and resp.getheader("Content-Type") == OCI_MANIFEST
    assert hashlib.sha256(data).hexdigest() == digest[7:] and len(data) == size
    resp, _ = registry.http("HEAD", "/v2/del/repo/manifests/v1")
    assert resp.status == 200 and resp.getheader("Docker-Content-Digest") == digest
    assert registry.http("DELETE", "/v2/del/repo/manifests/v1")[0].status == 202      # a tag
    assert registry.http("GET", "/v2/del/repo/manifests/v1")[0].status == 404
    assert registry.http("GET", f"/v2/del/repo/manifests/{digest}")[0].status == 200
    assert registry.http("DELETE", f"/v2/del/repo/manifests/{digest}")[0].status == 202
    resp, data = registry.http("GET", f"/v2/del/repo/manifests/{digest}")
    assert resp.status == 404 and error_code(data) == "MANIFEST_UNKNOWN"
    layer = doc["layers"][0]["digest"]
    assert registry.http("DELETE", f"/v2/del/repo/blobs/{layer}")[0].status == 202
    assert registry.http("GET", f"/v2/del/repo/blobs/{layer}")[0].status == 404


def test_referrers_and_the_subject_header(registry):
    subject_doc = image_manifest(registry, "ref/repo")
    _, subject, size = push_manifest(registry, "ref/repo", "v1", subject_doc)
    sig = image_manifest(registry, "ref/repo", b"signature", artifactType="application/x-sig",
                         subject={"mediaType": OCI_MANIFEST, "digest": subject, "size": size})
    sbom = image_manifest(registry, "ref/repo", b"sbom", artifactType="application/x-sbom",
                          subject={"mediaType": OCI_MANIFEST, "digest": subject, "size": size})
    resp, sig_digest, _ = push_manifest(registry, "ref/repo", "sig", sig)
    assert resp.getheader("OCI-Subject") == subject
    push_manifest(registry, "ref/repo", "sbom", sbom)
    resp, data = registry.http("GET", f"/v2/ref/repo/referrers/{subject}")
    index = json.loads(data)
    assert resp.getheader("Content-Type") == "application/vnd.oci.image.index.v1+json"
    assert {m["artifactType"] for m in index["manifests"]} == {"application/x-sig",
                                                               "application/x-sbom"}
    resp, data = registry.http("GET", f"/v2/ref/repo/referrers/{subject}?artifactType=application/x-sig")
    assert [m["digest"] for m in json.loads(data)["manifests"]] == [sig_digest]
    assert resp.getheader("OCI-Filters-Applied") == "artifactType"


def test_a_4_mib_manifest_is_accepted(registry):
    doc = image_manifest(registry, "big/repo")
    doc["annotations"] = {"filler": "x" * (4 << 20)}
    resp, digest, size = push_manifest(registry, "big/repo", "v1", doc)
    assert size > 4 << 20
    assert len(registry.http("GET", "/v2/big/repo/manifests/v1")[1]) == size


@pytest.mark.parametrize("method, path, body, code", [
    ("POST", "/v2/Bad_Name/blobs/uploads/", None, "NAME_INVALID"),
    ("GET", "/v2/ok/repo/blobs/sha256:nothex", None, "DIGEST_INVALID"),
    ("POST", "/v2/ok/repo/blobs/uploads/?digest=sha256:" + "1" * 64, b"not that", "DIGEST_INVALID"),
    ("GET", "/v2/ok/repo/manifests/v1", None, "NAME_UNKNOWN"),
    ("PUT", "/v2/ok/repo/manifests/v1", b"{not json", "MANIFEST_INVALID"),
    ("PUT", "/v2/ok/repo/manifests/bad:tag", b"{}", "MANIFEST_INVALID"),
    ("PATCH", "/v2/ok/repo/blobs/uploads/" + "0" * 32, b"x", "BLOB_UPLOAD_UNKNOWN"),
    ("GET", "/v2/ok/repo/blobs/uploads/..", None, "BLOB_UPLOAD_UNKNOWN"),
    ("GET", "/v2/ok/repo/manifests/..", None, "NAME_UNKNOWN"),
])
def test_bad_requests_get_the_specs_errors(registry, method, path, body, code):
    resp, data = registry.http(method, path, body, {"Content-Type": OCI_MANIFEST})
    assert resp.status in (400, 404) and error_code(data) == code


def test_a_manifest_naming_missing_blobs_is_refused(registry):
    doc = image_manifest(registry, "miss/repo")
    doc["layers"][0]["digest"] = "sha256:" + "2" * 64
    resp, data = registry.http("PUT", "/v2/miss/repo/manifests/v1", json.dumps(doc).encode(),
                               {"Content-Type": OCI_MANIFEST})
    assert resp.status == 404 and error_code(data) == "MANIFEST_BLOB_UNKNOWN"


def test_a_truncated_upload_leaves_no_blob(registry):
    data = os.urandom(1 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with socket.create_connection(("127.0.0.1", registry.port)) as s:
        s.sendall(f"POST /v2/trunc/repo/blobs/uploads/?digest={digest} HTTP/1.1\r\n"
                  f"Host: x\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data[:1000])
    time.sleep(0.5)
    assert registry.http("HEAD", f"/v2/trunc/repo/blobs/{digest}")[0].status == 404
    assert not os.path.exists(os.path.join(registry.root, "blobs", "sha256", digest[7:]))


def test_a_server_killed_mid_upload_leaves_a_valid_store(registry):
    data = os.urandom(4 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    resp, _ = registry.http("POST", "/v2/kill/repo/blobs/uploads/")
    location = resp.getheader("Location")
    s = socket.create_connection(("127.0.0.1", registry.port))
    s.sendall(f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n\r\n"
              .encode() + data[:len(data) // 2])
    time.sleep(0.3)
    registry.stop(signal.SIGKILL)
    s.close()
    registry.start()
    assert registry.http("HEAD", f"/v2/kill/repo/blobs/{digest}")[0].status == 404
    assert push_blob(registry, "kill/repo", data) == digest             # a clean retry works
    assert registry.http("GET", f"/v2/kill/repo/blobs/{digest}")[1] == data
    resp, _ = registry.http("PUT", f"{location}?digest={digest}")     # the dead session
    assert resp.status == 400                                           # half the bytes: refused


def test_concurrent_pushes_of_the_same_blob(registry):
    data = os.urandom(2 << 20)
    results = []
    threads = [threading.Thread(target=lambda: results.append(push_blob(registry, "same/repo",
                                                                        data)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 8
    assert registry.http("GET", f"/v2/same/repo/blobs/{results[0]}")[1] == data


def test_gc_removes_only_unreferenced_blobs(registry, minirun):
    doc = image_manifest(registry, "gc/repo")
    push_manifest(registry, "gc/repo", "v1", doc)
    orphan = push_blob(registry, "gc/repo", b"nobody needs me")
    registry.stop()
    out = minirun("registry", "gc", "--root", registry.root).stdout
    assert out.split() == ["deleted", orphan]
    registry.start()
    assert registry.http("GET", "/v2/gc/repo/manifests/v1")[0].status == 200
    for desc in [doc["config"], *doc["layers"]]:
        assert registry.http("HEAD", f"/v2/gc/repo/blobs/{desc['digest']}")[0].status == 200


# -- auth ----------------------------------------------------------------------------------

@pytest.fixture
def secured(minirun, tmp_path):
    import bcrypt
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("alice:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode() + "\n")
    r = Registry(minirun, str(tmp_path / "registry"), "--htpasswd", str(htpasswd)).start()
    yield r
    r.stop()


def test_htpasswd_auth_answers_401_and_takes_good_credentials(secured, loaded, tmp_path):
    resp, data = secured.http("GET", "/v2/")
    assert resp.status == 401 and error_code(data) == "UNAUTHORIZED"
    assert resp.getheader("WWW-Authenticate").startswith("Basic realm=")
    bad = {"Authorization": "Basic " + base64.b64encode(b"alice:wrong").decode()}
    assert secured.http("GET", "/v2/", headers=bad)[0].status == 401
    env = {"DOCKER_CONFIG": str(tmp_path / "docker-config")}
    name = f"{secured.host}/private/bb:v1"
    loaded("tag", "busybox", name)
    p = loaded("push", name, check=False, env=env)
    assert p.returncode == 1 and "authentication required" in p.stderr
    p = loaded("login", "-u", "alice", "-p", "wrong", secured.host, check=False, env=env)
    assert p.returncode == 1
    assert loaded("login", "-u", "alice", "-p", "s3cret", secured.host, env=env).stdout == \
        "Login Succeeded\n"
    config = tmp_path / "docker-config" / "config.json"
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    assert json.loads(config.read_text())["auths"][secured.host]["auth"] == \
        base64.b64encode(b"alice:s3cret").decode()
    loaded("push", name, env=env)
    if shutil.which("skopeo"):
        copy = f"docker://{secured.host}/private/copy:v1"
        skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds",
               "alice:s3cret", "--dest-creds", "alice:s3cret", f"docker://{name}", copy)
        raw = skopeo("inspect", "--raw", "--tls-verify=false", "--creds", "alice:s3cret", copy)
        assert raw == secured.http("GET", "/v2/private/bb/manifests/v1", headers={
            "Authorization": "Basic " + base64.b64encode(b"alice:s3cret").decode()})[1].decode()
    loaded("logout", secured.host, env=env)
    assert secured.host not in json.loads(config.read_text())["auths"]


class TokenFront(BaseHTTPRequestHandler):
    """A registry that wants Bearer tokens (in front of a minirun registry), and the token
    service that hands them out for alice's Basic credentials."""
    issued = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/token"):
            creds = base64.b64encode(b"alice:s3cret").decode()
            if self.headers.get("Authorization") != f"Basic {creds}":
                return self._send(401, b"{}")
            token = os.urandom(8).hex()
            self.issued.append((token, self.path))
            return self._send(200, json.dumps({"token": token}).encode())
        if not any(self.headers.get("Authorization") == f"Bearer {t}" for t, _ in self.issued):
            realm = f"http://127.0.0.1:{self.server.server_port}/token"
            return self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', [(
                "WWW-Authenticate", f'Bearer realm="{realm}",service="test",'
                                    f'scope="repository:tok/bb:pull"')])
        self._proxy()

    do_HEAD = do_GET

    def do_POST(self):
        self.do_GET() if not self.headers.get("Authorization", "").startswith("Bearer ") \
            else self._proxy()

    do_PUT = do_PATCH = do_POST

    def _proxy(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection(self.server.backend)
        conn.request(self.command, self.path, body=body,
                     headers={k: v for k, v in self.headers.items() if k != "Authorization"})
        resp = conn.getresponse()
        data = resp.read()
        headers = [(k, v) for k, v in resp.getheaders()
                   if k.lower() not in ("content-length", "connection")]
        self._send(resp.status, data, headers)

    def _send(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


@contextlib.contextmanager
def token_front(backend):
    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenFront)
    server.backend = backend
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_bearer_token_flow(registry, loaded, tmp_path):
    env = {"DOCKER_CONFIG": str(tmp_path / "docker-config")}
    with token_front(registry.host) as front:
        name = f"{front}/tok/bb:v1"
        loaded("tag", "busybox", name)
        p = loaded("push", name, check=False, env=env)
        assert p.returncode == 1 and "token service refused" in p.stderr
        loaded("login", "-u", "alice", "-p", "s3cret", front, env=env)
        loaded("push", name, env=env)
        assert any("scope=repository%3Atok%2Fbb" in path for _, path in TokenFront.issued)
        from conftest import Minirun
        other = Minirun(str(tmp_path / "other"))
        other("pull", name, env=env)
        assert other.run("--rm", "--network", "none", name, "echo", "tok").stdout == "tok\n"


def test_docker_py_pulls_and_pushes_through_minirund(loaded, registry, tmp_path):
    from conftest import Daemon
    daemon = Daemon(loaded, tmp_path).start()
    try:
        client = daemon.client()
        image = client.images.get("busybox")
        assert image.tag(f"{registry.host}/py/bb", "v1")
        lines = list(client.images.push(f"{registry.host}/py/bb", tag="v1", stream=True,
                                        decode=True))
        assert not [l for l in lines if "error" in l], lines
        assert any(l.get("aux", {}).get("Digest", "").startswith("sha256:") for l in lines)
        client.images.remove(f"{registry.host}/py/bb:v1")
        pulled = client.images.pull(f"{registry.host}/py/bb", tag="v1")
        assert pulled.id == image.id and f"{registry.host}/py/bb:v1" in pulled.tags
        with pytest.raises(Exception) as e:
            client.images.pull(f"{registry.host}/py/none", tag="v1")
        assert "not known to registry" in str(e.value)
    finally:
        daemon.stop()


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed")
def self_signed(tmp_path):
    """(certificate, key) for 127.0.0.1, valid for a day."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_tls_and_read_only(minirun, loaded, tmp_path):
    cert, key = self_signed(tmp_path)
    r = Registry(minirun, str(tmp_path / "registry"), "--tls-cert", str(cert), "--tls-key",
                 str(key)).start()
    try:
        import ssl
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        conn = http.client.HTTPSConnection(r.host, context=context)
        conn.request("GET", "/v2/")
        assert conn.getresponse().status == 200
        name = f"{r.host}/tls/bb:v1"
        loaded("tag", "busybox", name)
        loaded("push", name)          # loopback: certificate not checked, as in Docker
    finally:
        r.stop()
    ro = Registry(minirun, r.root, "--read-only").start()
    try:
        resp, data = ro.http("POST", "/v2/tls/bb/blobs/uploads/")
        assert resp.status == 405 and error_code(data) == "UNSUPPORTED"
        assert ro.http("GET", "/v2/tls/bb/manifests/v1")[0].status == 200
    finally:
        ro.stop()


def test_an_index_resolves_to_this_platform(loaded, registry, tmp_path):
    from conftest import Minirun
    from minirun.image.manifest import host_platform
    name = f"{registry.host}/multi/bb"
    loaded("tag", "busybox", f"{name}:amd")
    loaded("push", f"{name}:amd")
    resp, raw = registry.http("GET", "/v2/multi/bb/manifests/amd",
                              headers={"Accept": OCI_MANIFEST})
    desc = {"mediaType": OCI_MANIFEST, "size": len(raw),
            "digest": resp.getheader("Docker-Content-Digest")}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [dict(desc, platform={"os": "linux", "architecture": "s390x"}),
                           dict(desc, platform={"os": "linux", "architecture": host_platform()[1]})]}
    push_manifest(registry, "multi/bb", "multi", index)
    other = Minirun(str(tmp_path / "other"))
    other("pull", f"{name}:multi")
    assert other.run("--rm", "--network", "none", f"{name}:multi", "echo", "ok").stdout == "ok\n"


class RedirectingFront(BaseHTTPRequestHandler):
    """A registry that wants Basic auth and sends blobs to another host (a "CDN"), which
    records whether our Authorization came along."""
    cdn_saw = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        if "/cdn/" in self.path:                          # the other host
            self.cdn_saw.append(self.headers.get("Authorization"))
            return self._forward(self.path.replace("/cdn", "", 1))
        if self.headers.get("Authorization") != "Basic " + base64.b64encode(
                b"alice:s3cret").decode():
            return self._send(401, b"{}", [("WWW-Authenticate", 'Basic realm="front"')])
        if "/blobs/" in self.path:
            return self._send(307, b"", [("Location", f"http://localhost:"
                                                      f"{self.server.server_port}/cdn{self.path}")])
        self._forward(self.path)

    do_HEAD = do_GET

    def _forward(self, path):
        conn = http.client.HTTPConnection(self.server.backend)
        conn.request(self.command, path, headers={"Accept": self.headers.get("Accept", "*/*")})
        resp = conn.getresponse()
        self._send(resp.status, resp.read(), [(k, v) for k, v in resp.getheaders()
                                              if k.lower() not in ("content-length", "connection")])

    _send = TokenFront._send


def test_a_blob_redirect_to_another_host_gets_no_credentials(registry, loaded, tmp_path):
    name = f"{registry.host}/redir/bb:v1"
    loaded("tag", "busybox", name)
    loaded("push", name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), RedirectingFront)
    server.backend = registry.host
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {"DOCKER_CONFIG": str(tmp_path / "docker-config")}
        front = f"127.0.0.1:{server.server_port}"
        loaded("login", "-u", "alice", "-p", "s3cret", front, env=env)
        from conftest import Minirun
        other = Minirun(str(tmp_path / "other"))
        other("pull", f"{front}/redir/bb:v1", env=env)
        assert RedirectingFront.cdn_saw and set(RedirectingFront.cdn_saw) == {None}
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("offset", [
    lambda n: n // 2,     # inside the deflate data: the decompressor fails
    lambda n: 4,          # gzip's mtime: unpacks to the right diff ID, only the digest is wrong
])
def test_a_corrupt_layer_fails_the_pull_and_leaves_nothing(loaded, registry, tmp_path, offset):
    """The registry's file is damaged on disk: the streamed unpack must not publish it."""
    from conftest import Minirun
    name = f"{registry.host}/bad/bb:v1"
    loaded("tag", "busybox", name)
    loaded("push", name)
    manifest = json.loads(registry.http("GET", "/v2/bad/bb/manifests/v1", headers={
        "Accept": OCI_MANIFEST})[1])
    layer = max(manifest["layers"], key=lambda l: l["size"])["digest"]
    path = os.path.join(registry.root, "blobs", "sha256", layer[7:])
    data = bytearray(open(path, "rb").read())
    data[offset(len(data))] ^= 0xFF
    open(path, "wb").write(data)
    other = Minirun(str(tmp_path / "other"))
    p = other("pull", name, check=False)
    assert p.returncode == 1 and len(p.stderr.splitlines()) == 1, p.stderr
    assert p.stderr.startswith("Error: ")
    store = other.store()
    assert store.list() == [] and store.blobs.digests() == []
    assert store.layers.diff_ids() == [] and not os.listdir(store.layers.tmp)
