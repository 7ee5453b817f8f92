"""minirund against hostile and careless clients: wrong bodies, crafted filters, clients that
connect and say nothing, or walk away from a stream."""
import concurrent.futures
import http.client
import json
import socket
import time
from urllib.parse import quote

import pytest
from conftest import SLACK, wait_for

pytestmark = pytest.mark.root


class Conn(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout * SLACK)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def call(daemon, method, path, body=None, timeout=30):
    c = Conn(daemon.sock, timeout)
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    c.request(method, path, body=data, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, r.read()


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("Threads:")).split()[1])


def create(body):
    return {"Image": "busybox", "Cmd": ["true"], **body}


BAD = [
    ("POST", "/containers/create", create({"HostConfig": []})),
    ("POST", "/containers/create", create({"Cmd": 5})),
    ("POST", "/containers/create", create({"Env": [1]})),
    ("POST", "/containers/create", create({"Labels": []})),
    ("POST", "/containers/create", create({"Labels": {"a": 1}})),
    ("POST", "/containers/create", create({"NetworkingConfig": {"EndpointsConfig": {
        "bridge": {"Aliases": 5}}}})),
    ("POST", "/containers/create", create({"HostConfig": {"PortBindings": {"80/tcp": 5}}})),
    ("POST", "/containers/create", create({"HostConfig": {"Ulimits": [5]}})),
    ("POST", "/containers/create", create({"HostConfig": {"Ulimits": [
        {"Name": "nofile", "Soft": 1 << 70, "Hard": 1 << 70}]}})),
    ("POST", "/containers/create", create({"HostConfig": {"LogConfig": {"Type": "syslog"}}})),
    ("POST", "/containers/create", create({"HostConfig": {"LogConfig": {
        "Type": "json-file", "Config": {"max-size": 5}}}})),
    ("POST", "/containers/create", create({"HostConfig": {"LogConfig": {
        "Type": "json-file", "Config": {"max-size": "lots"}}}})),
    ("POST", "/containers/create", create({"HostConfig": {"SecurityOpt": ["seccomp={bad"]}})),
    ("GET", "/containers/json?filters=notjson", None),
    ("GET", "/containers/json?filters=[1]", None),
    ("POST", "/networks/create", {"Name": "n", "IPAM": {"Config": 5}}),
    ("POST", "/networks/create", {"Name": 5}),
]


def test_a_bare_env_name_never_takes_the_daemons_value(daemon):
    """"Env": ["NAME"]: the docker CLI puts its own value there; minirund must not fill in
    its own (a daemon's environment holds its secrets). Kept bare, as dockerd keeps it."""
    daemon.stop()
    daemon.start(env={"MINIRUND_SECRET": "leaked"})
    status, body = call(daemon, "POST", "/containers/create?name=envy", create({
        "Cmd": ["env"], "Env": ["MINIRUND_SECRET", "Other=one", "Blank="]}))
    assert status == 201, body
    env = json.loads(call(daemon, "GET", "/containers/envy/json")[1])["Config"]["Env"]
    assert "MINIRUND_SECRET" in env and "Other=one" in env and "Blank=" in env
    assert call(daemon, "POST", "/containers/envy/start")[0] == 204
    assert call(daemon, "POST", "/containers/envy/wait")[0] == 200
    logs = daemon.cli("logs", "envy").stdout
    assert "Other=one" in logs and "MINIRUND_SECRET" not in logs and "leaked" not in logs


def test_a_null_body_is_an_empty_one(daemon):
    """docker 20.10's commit sends `null` when it has no config: Go reads it as an empty
    struct, and so does minirund (anything else that is not an object stays a 400)."""
    assert call(daemon, "POST", "/containers/create?name=cc", create({}))[0] == 201
    status, body = call(daemon, "POST", "/commit?container=cc&repo=nulled", b"null")
    assert status == 201, body
    assert call(daemon, "POST", "/commit?container=cc", b"[]")[0] == 400


def test_wrong_types_are_a_400_with_one_line(daemon):
    for method, path, body in BAD:
        status, data = call(daemon, method, path, body)
        message = json.loads(data).get("message", data)
        assert 400 <= status < 500, (path, body, status, message)
        assert "\n" not in message and "Traceback" not in message, message
    assert call(daemon, "GET", "/_ping")[1] == b"OK"


def test_a_failed_start_is_one_line_never_a_traceback(daemon):
    """A limit above the kernel's ceiling fails in the container's set-up."""
    _, data = call(daemon, "POST", "/containers/create", create({"HostConfig": {"Ulimits": [
        {"Name": "nofile", "Soft": 1 << 40, "Hard": 1 << 40}]}}))
    cid = json.loads(data)["Id"]
    status, data = call(daemon, "POST", f"/containers/{cid}/start")
    message = json.loads(data)["message"]
    assert 400 <= status < 600 and "RLIMIT_NOFILE" in message
    assert "\n" not in message and "Traceback" not in message
    status, data = call(daemon, "GET", f"/containers/{cid}/logs?stdout=1&since=yesterday")
    assert status == 400


def test_a_bad_content_length_gets_an_answer(daemon):
    for length in (b"abc", b"-5"):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(daemon.sock)
            s.sendall(b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: " + length
                      + b"\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 400")


def test_a_crafted_name_filter_does_not_stall_the_daemon(daemon):
    name = "a" * 27
    daemon.cli("run", "-d", "--name", name, "busybox", "sleep", "300")
    filters = quote(json.dumps({"name": ["(a+)+$b"]}))

    def slow():
        return call(daemon, "GET", f"/containers/json?filters={filters}")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        crafted = pool.submit(slow)
        start = time.monotonic()
        assert call(daemon, "GET", "/_ping")[1] == b"OK"
        assert time.monotonic() - start < 2 * SLACK
        status, data = crafted.result(timeout=5)
    assert status == 200 and json.loads(data) == []
    # The filter users write still works: a part of the name, or anchored.
    for pattern, hit in (("aaa", True), ("^aaa", True), (f"^{name}$", True), ("^b", False)):
        status, data = call(daemon, "GET", "/containers/json?filters="
                            + quote(json.dumps({"name": [pattern]})))
        assert (len(json.loads(data)) == 1) is hit, pattern


def test_silent_and_vanished_clients_do_not_keep_threads(daemon):
    daemon.stop()
    daemon.start(env={"MINIRUN_API_IDLE_TIMEOUT": "3"})
    daemon.cli("run", "-d", "--name", "quiet", "busybox", "sleep", "300")
    pid = daemon.proc.pid
    before = threads(pid)
    held = []
    for path in ("/containers/quiet/logs?stdout=1&follow=1", "/containers/quiet/wait",
                 "/containers/quiet/stats"):
        for _ in range(5):
            s = socket.socket(socket.AF_UNIX)
            s.connect(daemon.sock)
            s.sendall(f"{'POST' if path.endswith('wait') else 'GET'} {path} HTTP/1.1\r\n"
                      f"Host: x\r\n\r\n".encode())
            held.append(s)
    for _ in range(5):                       # and clients that connect and say nothing
        s = socket.socket(socket.AF_UNIX)
        s.connect(daemon.sock)
        held.append(s)
    assert wait_for(lambda: threads(pid) >= before + 20)
    for s in held[:-5]:
        s.close()                            # the streams' clients walk away
    assert wait_for(lambda: threads(pid) <= before + 5, 10), threads(pid)
    # The silent ones are let go after the idle timeout (MINIRUN_API_IDLE_TIMEOUT=3 here).
    assert wait_for(lambda: threads(pid) <= before, 10), threads(pid)
    for s in held[-5:]:
        assert s.recv(1) == b""              # closed by the daemon
        s.close()


def test_answers_name_the_server_once_without_the_python_version(daemon):
    c = Conn(daemon.sock)
    c.request("GET", "/_ping")
    r = c.getresponse()
    r.read()
    assert r.status == 200 and r.headers.get_all("Server") == ["minirund"]
