"""Pulling from a registry that lies, and pulling onto a full disk; a TLS registry that one
silent client must not stop. Every server here listens on a loopback port of the test's own."""
import contextlib
import hashlib
import io
import json
import os
import resource
import socket
import ssl
import subprocess
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import SLACK
from test_network import free_port
from test_registry import Registry, push_blob, push_manifest, self_signed

pytestmark = pytest.mark.root
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
GIB = 1 << 30
CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'


class Liar(BaseHTTPRequestHandler):
    """/v2/evil/manifests/huge: an endless manifest; .../liar: a manifest whose config is
    served endlessly although its descriptor gives its real (small) size."""
    sent = 0

    def log_message(self, *a):
        pass

    def endless(self, content_type):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(GIB))
        self.end_headers()
        chunk = b" " * 65536
        try:
            for _ in range(GIB // len(chunk)):
                self.wfile.write(chunk)
                type(self).sent += len(chunk)
        except OSError:
            pass

    def do_GET(self):
        digest = "sha256:" + hashlib.sha256(CONFIG).hexdigest()
        if self.path == "/v2/":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path.endswith("/manifests/huge"):
            self.endless(OCI_MANIFEST)
        elif self.path.endswith("/manifests/liar"):
            body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest,
                "size": len(CONFIG)}, "layers": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", OCI_MANIFEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.endswith(f"/blobs/{digest}"):
            self.endless("application/octet-stream")
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()


@pytest.fixture
def liar():
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Liar)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Liar.sent = 0
    yield f"127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


def max_child_rss_kb():
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


@pytest.mark.parametrize("tag,message", [("huge", "over the limit"),
                                         ("liar", f"larger than the {len(CONFIG)} bytes")])
def test_a_lying_registry_costs_what_the_descriptor_says(loaded, liar, tag, message):
    start = time.monotonic()
    p = loaded("pull", f"{liar}/evil:{tag}", check=False, timeout=60)
    assert p.returncode != 0 and message in p.stderr, p.stderr
    assert time.monotonic() - start < 20 * SLACK
    assert Liar.sent < 64 << 20                  # it stopped reading long before 1 GiB
    assert max_child_rss_kb() < 300_000
    assert os.listdir(os.path.join(loaded.root, "tmp")) == []
    assert "evil" not in loaded("images").stdout


def big_image(reg, repo, size):
    """An image whose one layer holds *size* bytes of random data (plain tar)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("big")
        info.size = size
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    layer = buf.getvalue()
    layer_digest = push_blob(reg, repo, layer)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}).encode()
    config_digest = push_blob(reg, repo, config)
    push_manifest(reg, repo, "v1", {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": len(layer)}]})


def test_a_full_disk_is_said_plainly_and_the_store_stays_usable(minirun, busybox_oci, tmp_path):
    from conftest import Minirun
    registry = Registry(minirun, str(tmp_path / "registry")).start()
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(small)], check=True)
    try:
        m = Minirun(str(small / "root"))
        m("load", "-i", busybox_oci)
        big_image(registry, "big", 30 << 20)
        p = m("pull", f"{registry.host}/big:v1", check=False, timeout=120)
        assert p.returncode != 0 and "no space left on device" in p.stderr, p.stderr
        assert "busybox" in m("images").stdout          # the store still works
        assert os.listdir(small / "root" / "tmp") == []  # nothing half-made stays
        assert m("run", "--rm", "--network", "none", "busybox", "echo", "ok").stdout == "ok\n"
    finally:
        registry.stop()
        subprocess.run(["umount", str(small)], check=True)


def test_a_client_that_never_handshakes_does_not_stop_a_tls_registry(minirun, tmp_path):
    cert, key = self_signed(tmp_path)
    r = Registry(minirun, str(tmp_path / "registry"), "--tls-cert", str(cert), "--tls-key",
                 str(key)).start()
    try:
        with contextlib.ExitStack() as stack:
            for _ in range(3):                        # connected, silent
                s = stack.enter_context(socket.create_connection(("127.0.0.1", r.port)))
                s.settimeout(30)
            context = ssl.create_default_context(cafile=str(cert))
            context.check_hostname = False
            start = time.monotonic()
            import http.client
            conn = http.client.HTTPSConnection(r.host, context=context, timeout=10)
            conn.request("GET", "/v2/")
            assert conn.getresponse().status == 200
            assert time.monotonic() - start < 5 * SLACK
    finally:
        r.stop()
