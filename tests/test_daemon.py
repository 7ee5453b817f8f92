"""minirund: the Docker Engine API with docker-py as a real client, and the CLI through it."""
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import SLACK, wait_for

pytestmark = pytest.mark.root


# -- docker-py ---------------------------------------------------------------------------

def test_docker_py_version_and_images(daemon):
    client = daemon.client()
    assert client.version()["ApiVersion"] >= "1.44"
    assert client.ping()
    assert [i.tags for i in client.images.list()] == [["busybox:latest"]]
    assert client.images.get("busybox").attrs["Config"]["Cmd"] == ["sh"]


def test_docker_py_run_and_lifecycle(daemon):
    import docker
    client = daemon.client()
    assert client.containers.run("busybox", ["echo", "hi"], remove=True) == b"hi\n"
    c = client.containers.run("busybox", ["sh", "-c", "echo started; while :; do sleep 10; done"],
                              detach=True, name="dp", labels={"team": "a"})
    assert c.name == "dp" and c.status in ("created", "running")
    c.reload()
    assert c.status == "running" and c.labels == {"team": "a"}
    assert client.containers.get("dp").id == c.id
    assert [x.id for x in client.containers.list(filters={"label": "team=a"})] == [c.id]
    assert wait_for(lambda: b"started" in c.logs())
    stream = c.logs(stream=True, follow=True)
    assert next(stream) == b"started\n"
    result = c.exec_run(["sh", "-c", "echo $HOSTNAME-$$; exit 3"])
    assert result.exit_code == 3 and result.output.startswith(c.id[:12].encode())
    assert c.top()["Titles"][1] == "PID" and len(c.top()["Processes"]) >= 2
    stats = c.stats(stream=False)
    assert stats["memory_stats"]["usage"] > 0 and stats["pids_stats"]["current"] >= 1
    c.stop(timeout=1)                        # sh as PID 1 ignores SIGTERM: SIGKILL after 1 s
    assert c.wait()["StatusCode"] == 137
    c.start()
    c.kill(signal="SIGKILL")
    assert c.wait()["StatusCode"] == 137
    c.remove()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("dp")


def test_docker_py_errors_map_to_its_exceptions(daemon):
    import docker
    client = daemon.client()
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("nosuchimage:1")
    with pytest.raises(docker.errors.APIError):     # pulled first: from nowhere, on loopback
        client.containers.run("127.0.0.1:1/nosuchimage:1", "true")
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("nosuchcontainer")
    c = client.containers.run("busybox", ["sleep", "30"], detach=True, name="busy")
    with pytest.raises(docker.errors.APIError) as e:
        client.containers.run("busybox", ["true"], detach=True, name="busy")
    assert e.value.status_code == 409
    with pytest.raises(docker.errors.APIError) as e:
        c.remove()
    assert e.value.status_code == 409
    c.remove(force=True)


# -- the CLI through the daemon ------------------------------------------------------------

def test_cli_lifecycle(daemon):
    cid = daemon.cli("run", "-d", "--name", "web", "busybox", "sh", "-c",
                     "trap 'exit 0' TERM; echo hello; echo oops >&2; "
                     "while :; do sleep 0.1; done").stdout.strip()
    assert len(cid) == 64
    ps = daemon.cli("ps").stdout
    assert "web" in ps and "Up " in ps
    assert wait_for(lambda: "hello" in daemon.cli("logs", "web").stdout)
    p = daemon.cli("logs", "-t", "web")
    assert p.stdout.split(" ", 1)[1] == "hello\n" and "oops" in p.stderr
    assert daemon.cli("exec", "web", "cat", "/etc/hostname").stdout.strip() == cid[:12]
    assert daemon.cli("exec", "web", "sh", "-c", "exit 7", check=False).returncode == 7
    daemon.cli("pause", "web")
    assert "(Paused)" in daemon.cli("ps").stdout
    daemon.cli("unpause", "web")
    daemon.cli("rename", "web", "site")
    assert "site" in daemon.cli("ps", "--format", "{{.Names}}").stdout
    assert daemon.cli("stop", "site").stdout.strip() == "site"
    assert daemon.cli("wait", "site").stdout.strip() == "0"
    assert "Exited (0)" in daemon.cli("ps", "-a").stdout
    daemon.cli("start", "site")
    assert "Up " in daemon.cli("ps").stdout
    daemon.cli("restart", "-t", "1", "site")
    daemon.cli("kill", "site")
    assert daemon.cli("wait", "site").stdout.strip() == "137"
    info = json.loads(daemon.cli("inspect", "site").stdout)[0]
    assert info["State"]["ExitCode"] == 137 and info["RestartCount"] == 0
    assert "Total reclaimed space" in daemon.cli("container", "prune", "-f").stdout
    assert daemon.cli("ps", "-aq").stdout == ""


def test_the_cli_client_keeps_its_connection_until_minirund_lets_it_go(daemon):
    """minirun's client sends its next request on the last one's connection (keep-alive, as
    docker-py does); one minirund closed after its idle timeout is replaced, unseen."""
    from minirun.cli.client import Client
    daemon.stop()
    daemon.start(env={"MINIRUN_API_IDLE_TIMEOUT": "1"})
    client = Client("unix://" + daemon.sock)
    inodes = set()
    for _ in range(3):
        assert client.call("GET", "/version")["ApiVersion"]
        inodes.add(os.fstat(client.idle.sock.fileno()).st_ino)
    assert len(inodes) == 1
    time.sleep(2)                               # minirund closes it meanwhile
    cid = client.call("POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"]})["Id"]
    assert os.fstat(client.idle.sock.fileno()).st_ino not in inodes
    assert client.call("GET", "/containers/json", all=1)[0]["Id"] == cid   # created once
    client.call("DELETE", f"/containers/{cid}")


def test_the_client_keeps_its_connection_in_a_process_with_many_files(daemon):
    """A client in a busy process (a benchmark, a tool holding a thousand containers' fds)
    gets a socket numbered past select()'s 1024; its idle check must still work."""
    import resource
    from minirun.cli.client import Client
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), max(hard, 2048)))
    held = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open("/dev/null", os.O_RDONLY))
        client = Client("unix://" + daemon.sock)
        for _ in range(2):
            assert client.call("GET", "/version")["ApiVersion"]
        assert client.idle.sock.fileno() > 1024
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_request_on_a_connection_closed_as_it_went_is_sent_again(tmp_path):
    """The race the idle check cannot see: the server closes as the request goes out. A
    server that reads the second request and hangs up stands in for it."""
    import threading
    from minirun.cli.client import Client
    path = str(tmp_path / "s.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(2)
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
              b"Content-Length: 8\r\n\r\n{\"n\": %d}")
    served = []

    def serve():
        for n in (1, 2):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(answer % n)
                served.append(n)
                if n == 1:
                    conn.recv(65536)            # the second request: read, and no answer
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    client = Client("unix://" + path)
    assert client.call("GET", "/version") == {"n": 1}
    assert client.call("GET", "/version") == {"n": 2}
    t.join(10)
    listener.close()
    assert served == [1, 2]


def test_a_program_the_kernel_refuses_is_a_started_container_that_exits_126(daemon, tmp_path):
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00\x01 not a program")
    garbage.chmod(0o755)
    p = daemon.cli("run", "--rm", "-v", f"{garbage}:/bad", "busybox", "/bad", check=False)
    assert p.returncode == 126 and 'exec: "/bad": exec format error' in p.stderr, p.stderr
    cid = daemon.cli("run", "-d", "-v", f"{garbage}:/bad", "busybox", "/bad").stdout.strip()
    assert daemon.cli("wait", cid).stdout.strip() == "126"
    assert 'exec: "/bad": exec format error' in daemon.cli("logs", cid).stderr
    daemon.cli("rm", cid)


RUNS_THAT_FAIL = [          # (run's arguments, exit code, what the one error line says)
    (["busybox", "nosuchcommand"], 127, 'exec: "nosuchcommand": executable file not found'),
    (["busybox", "/no/such"], 127, 'exec: "/no/such": stat /no/such: no such file or directory'),
    (["busybox", "/etc/passwd"], 126, 'exec: "/etc/passwd": permission denied'),
    (["busybox", "/etc"], 126, 'exec: "/etc": permission denied'),   # (every docker CLI's)
    (["-v", "/no/such/dir:/x:nocopy,bogus", "busybox", "true"], 125, "bogus"),
    (["localhost:1/nosuch"], 125, "localhost:1"),         # no registry listens there
]


@pytest.mark.parametrize("cli", ["minirun", "docker"])
def test_a_run_that_cannot_start_exits_as_dockers_does(daemon, cli):
    """125 when the engine failed, 126 when the command cannot be run, 127 when it is not
    there: through minirund the API carries only the message, and the docker CLI reads the
    code from its words, case-sensitively; minirun's CLI reads it alike. Nothing is left
    running."""
    import shutil
    if cli == "docker" and not shutil.which("docker"):
        pytest.skip("the docker CLI (docker.io) is not installed")
    env = {**os.environ, "DOCKER_HOST": "unix://" + daemon.sock}
    for args, code, words in RUNS_THAT_FAIL:
        for detach in ([], ["-d"]):
            if cli == "minirun":
                p = daemon.cli("run", *detach, *args, check=False)
            else:
                p = subprocess.run(["docker", "run", *detach, *args], env=env,
                                   capture_output=True, text=True, timeout=60 * SLACK)
            assert (p.returncode, words in p.stderr) == (code, True), (args, p.stderr)
    assert not any(c["State"] == "running" for c in daemon.client().api.containers(all=True))


def test_cli_top_stats_and_errors(daemon):
    daemon.cli("run", "-d", "--name", "st", "busybox", "sleep", "30")
    assert "sleep 30" in daemon.cli("top", "st").stdout
    stats = daemon.cli("stats", "--no-stream", "st").stdout.splitlines()
    assert stats[0].split()[:3] == ["CONTAINER", "ID", "NAME"] and "st" in stats[1]
    p = daemon.cli("rm", "st", check=False)
    assert p.returncode == 1 and "cannot remove a running container" in p.stderr
    p = daemon.cli("stop", "nosuch", check=False)
    assert p.returncode == 1 and "No such container: nosuch" in p.stderr
    daemon.cli("rm", "-f", "st")


def test_run_rm_detached_removes_itself(daemon):
    daemon.cli("run", "-d", "--rm", "--name", "gone", "busybox", "true")
    assert wait_for(lambda: "gone" not in daemon.cli("ps", "-a").stdout)


def test_restart_policies(daemon):
    daemon.cli("run", "-d", "--name", "fails", "--restart", "on-failure:2", "busybox",
               "sh", "-c", "exit 3")
    inspect = lambda n: json.loads(daemon.cli("inspect", n).stdout)[0]
    assert wait_for(lambda: inspect("fails")["RestartCount"] == 2
                    and inspect("fails")["State"]["Status"] == "exited", 15)
    time.sleep(1)
    assert inspect("fails")["RestartCount"] == 2            # no third try
    daemon.cli("run", "-d", "--name", "again", "--restart", "always", "busybox", "true")
    assert wait_for(lambda: inspect("again")["RestartCount"] >= 2, 15)
    daemon.cli("stop", "again")
    count = inspect("again")["RestartCount"]
    time.sleep(1)
    assert inspect("again")["RestartCount"] == count         # stopped by the user: stays
    assert inspect("again")["State"]["Status"] == "exited"
    # between an exit and its restart (the back-off grows to 10 s) it is restarting: rm
    # refuses as for a running one, rm -f ends the wait
    # (caught once the back-off is 1.6 s or more: the first ones, from 0.1 s, pass before
    # the next command could see them)
    daemon.cli("run", "-d", "--name", "loop", "--restart", "always", "busybox", "true")

    def restarting():
        state = inspect("loop")
        assert state["State"]["Restarting"] == (state["State"]["Status"] == "restarting")
        return state["State"]["Restarting"] and state["RestartCount"] >= 4
    assert wait_for(restarting, 20)
    p = daemon.cli("rm", "loop", check=False)
    assert p.returncode != 0 and "You cannot remove a restarting container" in p.stderr
    daemon.cli("rm", "-f", "loop")
    assert "loop" not in daemon.cli("ps", "-a").stdout


def test_exec_sees_the_containers_namespaces(daemon):
    daemon.cli("run", "-d", "--name", "ns", "--hostname", "inside", "busybox", "sh", "-c",
               "echo made > /tmp/file; sleep 30")
    assert wait_for(lambda: daemon.cli("exec", "ns", "cat", "/tmp/file", check=False).stdout
                    == "made\n")
    text = daemon.cli("exec", "ns", "sh", "-c", "hostname; ps -o pid,comm; "
                                                "readlink /proc/1/ns/mnt").stdout.split("\n")
    assert text[0] == "inside"
    assert any(l.split() == ["1", "sleep"] for l in text)     # sh exec'd its last command
    pid = json.loads(daemon.cli("inspect", "ns").stdout)[0]["State"]["Pid"]
    assert text[-2] == os.readlink(f"/proc/{pid}/ns/mnt")
    assert daemon.cli("exec", "-u", "nobody", "ns", "id", "-u").stdout.strip() == "65534"
    assert daemon.cli("exec", "-w", "/tmp", "-e", "X=1", "ns", "sh", "-c",
                      "echo $X $PWD").stdout.strip() == "1 /tmp"
    assert daemon.cli("exec", "-i", "ns", "cat", input="piped\n").stdout == "piped\n"


def test_killed_daemon_restarts_and_readopts(daemon):
    daemon.cli("run", "-d", "--name", "keeps", "busybox", "sh", "-c",
               "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done")
    daemon.cli("run", "-d", "--name", "ends", "busybox", "sh", "-c", "sleep 1")
    daemon.stop(signal.SIGKILL)
    time.sleep(1.5)                                   # "ends" exits while nobody watches
    daemon.start()
    ps = daemon.cli("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout
    assert "keeps running" in ps and "ends exited" in ps
    before = daemon.cli("logs", "keeps").stdout.count("tick")
    assert wait_for(lambda: daemon.cli("logs", "keeps").stdout.count("tick") > before + 3)
    assert daemon.cli("exec", "keeps", "echo", "still").stdout == "still\n"
    daemon.cli("stop", "-t", "1", "keeps")
    assert "keeps exited" in daemon.cli("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout


def test_fifty_concurrent_runs_with_distinct_and_clashing_names(daemon):
    def run(i):                  # each lives until all are started, however slow the host
        return daemon.cli("run", "-d", "--name", f"c{i % 40}", "busybox", "sleep",
                          str(int(60 * SLACK)), check=False)
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(run, range(50)))
    ok = [r for r in results if r.returncode == 0]
    clashes = [r for r in results if r.returncode != 0]
    assert len(ok) == 40 and len(clashes) == 10
    assert all("already in use" in r.stderr for r in clashes), [r.stderr for r in clashes]
    names = daemon.cli("ps", "--format", "{{.Names}}").stdout.split()
    assert sorted(names) == sorted(f"c{i}" for i in range(40))


def test_daemon_refuses_a_second_instance_on_the_same_root(daemon, tmp_path):
    p = daemon.minirun("daemon", "-H", f"unix://{tmp_path}/other.sock", check=False, timeout=20)
    assert p.returncode == 1 and "already running" in p.stderr


def test_bad_requests_get_4xx_not_crashes(daemon):
    import http.client

    class Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(daemon.sock)

    def call(method, path, body=None):
        c = Conn("localhost")
        c.request(method, path, body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        return r.status, r.getheader("Content-Type"), data

    cases = [
        ("POST", "/containers/create", b"{not json", 400),
        ("POST", "/containers/create", b"[]", 400),
        ("POST", "/containers/create", json.dumps({"Image": 5}).encode(), 400),
        ("POST", "/containers/create", json.dumps({"Image": "busybox",
                                                    "HostConfig": {"Memory": "lots"}}).encode(), 400),
        ("POST", "/containers/create", json.dumps({"Image": "busybox",
                                                    "HostConfig": {"Memory": -5}}).encode(), 400),
        ("POST", "/containers/create", json.dumps({"Image": "busybox", "Cmd": [1, 2]}).encode(),
         400),
        ("POST", "/containers/create", json.dumps({"Image": "nosuch"}).encode(), 404),
        ("GET", "/containers/nosuch/json", None, 404),
        ("POST", "/containers/nosuch/kill?signal=SIGKILL", None, 404),
        ("GET", "/v1.44/images/nosuch/json", None, 404),
        ("GET", "/v9.99/version", None, 400),
        ("GET", "/nowhere", None, 404),
    ]
    for method, path, body, status in cases:
        got, ctype, data = call(method, path, body)
        assert got == status, (path, body, got, data)
        assert ctype == "application/json" and "message" in json.loads(data)
    cid = json.loads(call("POST", "/containers/create",
                          json.dumps({"Image": "busybox", "Cmd": ["sleep", "20"]}).encode())[2])["Id"]
    assert call("POST", f"/containers/{cid}/start")[0] == 204
    assert call("POST", f"/containers/{cid}/kill?signal=SIGBOGUS")[0] == 400
    assert call("GET", "/_ping")[2] == b"OK"


def test_exec_joins_only_its_containers_process(daemon):
    """Should the row's PID name another process (PID 1 ended, and its number went to a host
    process before minirund heard), exec refuses to join that process's namespaces."""
    from minirun.engine.exec import namespaces_of
    from minirun.errors import Conflict
    cid = daemon.cli("run", "-d", "busybox", "sleep", "600").stdout.strip()
    pid = json.loads(daemon.cli("inspect", cid).stdout)[0]["State"]["Pid"]
    before = sorted(os.listdir("/proc/self/fd"))
    for fd in namespaces_of({"id": cid, "pid": pid}):        # its own PID 1: joined
        os.close(fd)
    host = subprocess.Popen(["sleep", "600"])
    try:
        with pytest.raises(Conflict, match="is not running"):
            namespaces_of({"id": cid, "pid": host.pid})      # a host process under its PID
    finally:
        host.kill()
        host.wait()
    with pytest.raises(Conflict, match="is not running"):
        namespaces_of({"id": cid, "pid": host.pid})          # no process at all
    assert sorted(os.listdir("/proc/self/fd")) == before      # nothing left open
    daemon.cli("rm", "-f", cid)


def test_exec_with_a_terminal(daemon):
    import fcntl
    import pty
    import struct
    import termios
    daemon.cli("run", "-d", "--name", "term", "busybox", "sleep", "30")
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 27, 91, 0, 0))
        os.execve(sys.executable, [sys.executable, "-m", "minirun", "exec", "-it", "term", "sh",
                                   "-c", "tty; stty size; read x; echo got-$x"],
                  daemon.minirun.env({"MINIRUN_HOST": "unix://" + daemon.sock}))
    data = b""
    end = time.monotonic() + 15
    sent = False
    while time.monotonic() < end and b"got-abc" not in data:
        try:
            data += os.read(fd, 4096)
        except OSError:
            break
        if b"27 91" in data and not sent:
            os.write(fd, b"abc\r")
            sent = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = data.decode(errors="replace")
    assert "/dev/pts/" in text and "27 91" in text and "got-abc" in text, text
    assert os.waitstatus_to_exitcode(status) == 0


def test_wait_conditions(daemon):
    client = daemon.client()
    c = client.containers.run("busybox", ["sh", "-c", "sleep 0.3; exit 2"], detach=True)
    assert c.wait(condition="not-running")["StatusCode"] == 2
    import threading
    result = {}
    t = threading.Thread(target=lambda: result.update(c.wait(condition="removed")))
    t.start()
    time.sleep(0.3)
    assert t.is_alive()                          # it waits for the removal, not the exit
    c.remove()
    t.join(10)
    assert result["StatusCode"] == 2
    c = client.containers.run("busybox", ["sh", "-c", "exit 4"], detach=True)
    c.wait()
    t = threading.Thread(target=lambda: result.update(c.wait(condition="next-exit")))
    t.start()
    time.sleep(0.3)
    assert t.is_alive()                          # already exited: waits for the next exit
    c.start()
    t.join(10)
    assert result["StatusCode"] == 4
    c.remove()


def test_socket_is_root_only(daemon):
    st = os.stat(daemon.sock)
    assert st.st_uid == 0 and (st.st_mode & 0o777) == 0o660


def test_a_half_made_container_is_cleaned_at_daemon_start(daemon):
    """A create cut short (no spec) or a start cut short (cgroup, no process): gone after
    the next minirund start."""
    from minirun.runtime import cgroups
    from minirun.runtime.cgroups import Limits
    daemon.stop(signal.SIGKILL)
    store = daemon.minirun.containers()
    image = daemon.minirun.store().resolve("busybox")
    half, _ = store.create(image, "busybox", {"options": {}}, "half")
    store.update(half, owner="1:0")                # its creator is gone
    daemon.start()
    daemon.cli("run", "-d", "--name", "started", "busybox", "true")
    started = json.loads(daemon.cli("inspect", "started").stdout)[0]["Id"]
    daemon.cli("wait", "started")
    daemon.stop(signal.SIGKILL)
    cgroups.detect().create(started, Limits(allow_all_devices=True))   # as if start died
    store.update(started, state="created")
    daemon.start()
    names = daemon.cli("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert "half" not in names and "started" in names
    assert not os.path.exists(store.path(half))
    assert not os.path.exists(cgroups.detect().procs_file(started))


def test_detached_tty_container_logs_its_terminal(daemon):
    daemon.cli("run", "-d", "-t", "--name", "tty", "busybox", "sh", "-c",
               "tty; echo done; sleep 30")
    assert wait_for(lambda: "done" in daemon.cli("logs", "tty").stdout)
    assert daemon.cli("logs", "tty").stdout.startswith("/dev/pts/0")
    assert json.loads(daemon.cli("inspect", "tty").stdout)[0]["Config"]["Tty"] is True


# -- networks through the API ------------------------------------------------------------
from test_network import http_get  # noqa: E402  (as test_run takes test_cgroups' helper)

HTTPD = ["sh", "-c", "mkdir /w && echo hello-from-$HOSTNAME > /w/index.html && "
         "exec httpd -f -p 80 -h /w"]


def test_docker_py_run_gets_the_output_of_a_container_it_removes_at_once(daemon):
    """docker-py's run() follows the log, waits, removes the container and only then reads
    the log stream: the follower must still deliver what the removed log held."""
    client = daemon.client()
    for _ in range(3):
        assert client.containers.run("busybox", ["sh", "-c", "sleep 0.3; echo said"],
                                     remove=True) == b"said\n"


def test_docker_py_networks_ports_and_names(daemon):
    import docker
    client = daemon.client()
    net = client.networks.create("svc", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.125.0.0/24")]))
    assert {n.name for n in client.networks.list()} >= {"bridge", "host", "none", "svc"}
    web = client.containers.run("busybox", HTTPD, detach=True, name="web", hostname="web",
                                network="svc", ports={"80/tcp": None})
    web.reload()
    settings = web.attrs["NetworkSettings"]
    assert settings["Networks"]["svc"]["IPAddress"].startswith("10.125.0.")
    host_port = settings["Ports"]["80/tcp"][0]["HostPort"]
    assert web.ports["80/tcp"][0]["HostIp"] == "0.0.0.0"
    assert web.attrs["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "",
                                                                   "HostPort": ""}]}
    assert http_get(f"http://127.0.0.1:{host_port}/") == "hello-from-web\n"
    listed = client.api.containers(filters={"name": "web"})[0]
    assert listed["Ports"][0]["PublicPort"] == int(host_port)
    got = client.containers.run("busybox", ["wget", "-q", "-O-", "http://web/"], remove=True,
                                network="svc")
    assert got == b"hello-from-web\n"
    client.networks.get("svc").reload()
    assert list(client.networks.get("svc").attrs["Containers"]) == [web.id]
    other = client.networks.create("other")
    other.connect(web, aliases=["www"])
    web.reload()
    assert set(web.attrs["NetworkSettings"]["Networks"]) == {"svc", "other"}
    assert client.containers.run("busybox", ["wget", "-q", "-O-", "http://www/"], remove=True,
                                 network="other") == b"hello-from-web\n"
    other.disconnect(web)
    with pytest.raises(docker.errors.APIError) as e:
        net.remove()                                       # web still holds an address
    assert e.value.status_code == 409
    web.remove(force=True)
    net.remove()
    other.remove()
    with pytest.raises(docker.errors.NotFound):
        client.networks.get("svc")
    with pytest.raises(docker.errors.APIError) as e:
        client.networks.get("bridge").remove()
    assert e.value.status_code in (403, 409)


def test_a_restarted_daemon_keeps_addresses_and_published_ports(daemon):
    daemon.cli("run", "-d", "--name", "web", "-p", "127.0.0.1::80", "busybox", *HTTPD)
    before = json.loads(daemon.cli("inspect", "web").stdout)[0]["NetworkSettings"]
    port = before["Ports"]["80/tcp"][0]["HostPort"]
    assert http_get(f"http://127.0.0.1:{port}/").startswith("hello-from-")
    daemon.stop(signal.SIGKILL)
    daemon.start()
    after = json.loads(daemon.cli("inspect", "web").stdout)[0]["NetworkSettings"]
    assert after["IPAddress"] == before["IPAddress"] and after["Ports"] == before["Ports"]
    assert http_get(f"http://127.0.0.1:{port}/").startswith("hello-from-")
    assert "127.0.0.1:" + port + "->80/tcp" in daemon.cli("ps").stdout
    daemon.cli("rm", "-f", "web")


def test_a_named_daemon_serves_every_command_never_another_root(daemon, tmp_path):
    """-H names the daemon: image and network commands act on its store, not on the local
    state root (which here is another, empty one); commands that cannot go through it say so."""
    other = {"MINIRUN_HOST": "unix://" + daemon.sock, "MINIRUN_ROOT": str(tmp_path / "other")}
    images = daemon.minirun("images", env=other).stdout
    assert "busybox" in images
    daemon.minirun("tag", "busybox", "copy:1", env=other)
    assert "copy" in daemon.cli("images").stdout
    assert "Untagged: copy:1" in daemon.minirun("rmi", "copy:1", env=other).stdout
    assert "copy" not in daemon.cli("images").stdout
    daemon.minirun("network", "create", "viahost", env=other)
    assert "viahost" in daemon.cli("network", "ls").stdout
    daemon.minirun("network", "rm", "viahost", env=other)
    p = daemon.minirun("load", "-i", "/nonexistent", env=other, check=False)
    assert p.returncode == 2 and "cannot go through minirund" in p.stderr
    # a foreground run goes through it too (as docker run): its image, its containers
    p = daemon.minirun("run", "--name", "fg", "busybox", "hostname", env=other)
    assert "fg" in daemon.cli("ps", "-a").stdout
    assert p.stdout.strip() == json.loads(daemon.cli("inspect", "fg").stdout)[0]["Id"][:12]
    daemon.cli("rm", "fg")
    assert not os.path.exists(tmp_path / "other" / "state.db")       # never touched


def test_a_running_daemon_serves_its_roots_commands(daemon):
    """Given only the state root, image commands find the daemon serving it."""
    env = {"MINIRUN_HOST": ""}
    os.rename(daemon.sock, daemon.sock + ".moved")    # only the daemon's lock file knows it
    try:
        p = daemon.minirun("images", env=env, check=False)
        assert "Cannot connect" in p.stderr           # it asked the daemon, not the store
    finally:
        os.rename(daemon.sock + ".moved", daemon.sock)
    assert "busybox" in daemon.minirun("images", env=env).stdout


def test_exec_output_is_not_lost_by_a_client_slow_to_read_the_headers(daemon):
    """docker-py reads a hijacked stream's headers through a buffered reader, then the raw
    socket: output that arrived with the headers was lost in that buffer (exec_run gave its
    exit code and no output, on a loaded machine). This client is slow on purpose."""
    cid = daemon.cli("run", "-d", "busybox", "sleep", "60").stdout.strip()
    api = daemon.client().api
    eid = api.exec_create(cid, ["echo", "hello"])["Id"]
    body = json.dumps({"Detach": False, "Tty": False}).encode()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(daemon.sock)
        sock.sendall(b"POST /v1.44/exec/%s/start HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\n"
                     b"Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: %d"
                     b"\r\n\r\n%s" % (eid.encode(), len(body), body))
        time.sleep(1)                        # the process would have run and written by now
        headers = sock.makefile("rb")        # buffered, as http.client reads them
        assert headers.readline().startswith(b"HTTP/1.1 101")
        while headers.readline() not in (b"\r\n", b""):
            pass
        data = b""
        while chunk := sock.recv(65536):     # then the raw socket, as docker-py does
            data += chunk
    assert data == b"\x01\x00\x00\x00\x00\x00\x00\x06hello\n"
    assert wait_for(lambda: api.exec_inspect(eid)["ExitCode"] == 0)
