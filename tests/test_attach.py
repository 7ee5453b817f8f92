"""Attach: docker run in the foreground, -i, -it, start -a, docker attach and its detach keys,
through the real docker CLI, docker-py and minirun's own CLI against minirund."""
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest
from conftest import SLACK, wait_for

pytestmark = pytest.mark.root

DOCKER = shutil.which("docker")
needs_docker = pytest.mark.skipif(not DOCKER, reason="the docker CLI (docker.io) is not installed")
SCRIPT = shutil.which("script")


def docker(daemon, *args, input=None, check=False, timeout=30):
    return subprocess.run([DOCKER, *args], input=input, capture_output=True,
                          timeout=timeout * SLACK, check=check,
                          env={**os.environ, "DOCKER_HOST": "unix://" + daemon.sock})


def in_terminal(daemon, command, feed=b"", rows=33, cols=91, timeout=30, steps=()):
    """Run *command* on a terminal of its own (script(1)), typing *feed* into it, or each
    of *steps* (seconds to wait, bytes to type) in turn before the input ends."""
    env = {**os.environ, "DOCKER_HOST": "unix://" + daemon.sock,
           "MINIRUN_HOST": "unix://" + daemon.sock}
    p = subprocess.Popen([SCRIPT, "-qec", f"stty rows {rows} cols {cols}; {command}",
                          "/dev/null"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    for delay, data in steps:
        time.sleep(delay * SLACK)
        p.stdin.write(data)
        p.stdin.flush()
    out, err = p.communicate(feed, timeout=timeout * SLACK)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def state(daemon, name):
    return json.loads(daemon.cli("inspect", name).stdout)[0]["State"]


@needs_docker
def test_docker_run_in_the_foreground_separates_streams_and_exits_with_the_code(daemon):
    p = docker(daemon, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (p.returncode, p.stdout, p.stderr) == (3, b"out\n", b"err\n")
    assert daemon.cli("ps", "-aq").stdout == ""                 # --rm
    p = docker(daemon, "run", "busybox", "echo", "hi")
    assert (p.returncode, p.stdout) == (0, b"hi\n")


@needs_docker
def test_docker_run_i_pipes_stdin_to_the_end(daemon):
    assert docker(daemon, "run", "-i", "--rm", "busybox", "cat", input=b"hello\n").stdout \
        == b"hello\n"
    lines = b"".join(b"%d\n" % i for i in range(100000))       # more than any pipe holds
    p = docker(daemon, "run", "-i", "--rm", "busybox", "sh", "-c", "wc -l; exit 4",
               input=lines)
    assert (p.returncode, p.stdout.strip()) == (4, b"100000")


@needs_docker
@pytest.mark.skipif(not SCRIPT, reason="script(1) is not installed")
def test_docker_run_it_gets_a_terminal_of_the_callers_size(daemon):
    # docker ≥ 23 sends the size with the create (ConsoleSize): the first program sees it;
    # older CLIs resize after the start, so the check waits a moment for them
    p = in_terminal(daemon, "docker run -it --rm busybox sh -c 'tty; sleep 1; stty size; "
                            "exit 4'")
    assert p.returncode == 4
    out = p.stdout.replace(b"\r", b"")
    assert b"/dev/pts/0\n" in out and b"33 91\n" in out
    p = in_terminal(daemon, "docker run -it --rm busybox sh",
                    feed=b"echo in-shell $((6*7))\nexit 5\n")
    assert p.returncode == 5 and b"in-shell 42" in p.stdout


@needs_docker
def test_docker_start_a_attaches_before_the_start_and_returns_the_code(daemon):
    daemon.cli("create", "--name", "once", "busybox", "sh", "-c", "echo started; exit 7")
    for _ in range(2):                                           # a stopped one starts again
        p = docker(daemon, "start", "-a", "once")
        assert (p.returncode, p.stdout) == (7, b"started\n")
    p = daemon.cli("start", "-a", "once", check=False)           # minirun's own CLI
    assert (p.returncode, p.stdout) == (7, "started\n")


@needs_docker
def test_stdin_stays_open_without_a_client_even_across_a_daemon_restart(daemon):
    assert docker(daemon, "run", "-di", "--name", "cat", "busybox", "cat").returncode == 0
    assert daemon.cli("exec", "cat", "echo", "alive").stdout == "alive\n"
    assert state(daemon, "cat")["Running"]
    daemon.stop()
    daemon.start()
    assert daemon.cli("exec", "cat", "echo", "alive").stdout == "alive\n"
    time.sleep(0.5)
    assert state(daemon, "cat")["Running"]                        # its stdin did not end
    api = daemon.client().api
    sock = api.attach_socket("cat", params={"stdin": 1, "stdout": 1, "stream": 1})
    raw = sock._sock
    raw.sendall(b"through the restart\n")
    header = _recv_exactly(raw, 8)
    assert header[0] == 1
    assert _recv_exactly(raw, struct.unpack(">I", header[4:])[0]) == b"through the restart\n"
    raw.close()
    assert wait_for(lambda: "through the restart" in daemon.cli("logs", "cat").stdout)
    assert state(daemon, "cat")["Running"]                        # no StdinOnce: still open


def test_a_terminal_container_survives_a_daemon_restart(daemon):
    """-t: minirund reads the terminal's master, and the fork server holds a copy; without
    it a minirund that stops hangs the terminal up and the kernel's SIGHUP ends the shell.
    The next minirund gets the master back: typing into the terminal still works."""
    cid = daemon.cli("run", "-dit", "busybox", "sh").stdout.strip()
    assert wait_for(lambda: "built-in" in daemon.cli("logs", cid).stdout)     # its banner
    for _ in range(2):                         # stopped (SIGTERM), and killed
        daemon.stop(signal.SIGTERM if _ == 0 else signal.SIGKILL)
        time.sleep(0.5)
        daemon.start()
        assert state(daemon, cid)["Running"]
    sock = daemon.client().api.attach_socket(cid, params={"stdin": 1, "stdout": 1,
                                                          "stream": 1})._sock
    _shell_answers(sock)
    sock.close()
    assert wait_for(lambda: "42x" in daemon.cli("logs", cid).stdout)
    daemon.cli("kill", cid)                                         # and its exit is heard
    assert wait_for(lambda: not state(daemon, cid)["Running"])


def _shell_answers(sock):
    """Type a sum into the shell on the other end of a terminal stream; wait for its answer."""
    sock.sendall(b"echo $((6 * 7))x\n")
    seen = b""
    sock.settimeout(10 * SLACK)
    while b"42x" not in seen:
        chunk = sock.recv(4096)
        assert chunk, seen
        seen += chunk


def _recv_exactly(sock, n):
    data = b""
    sock.settimeout(10 * SLACK)
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "the stream ended early"
        data += chunk
    return data


@needs_docker
@pytest.mark.skipif(not SCRIPT, reason="script(1) is not installed")
@pytest.mark.parametrize("client", ["docker", "minirun"])
def test_detach_keys_leave_the_container_running(daemon, client):
    daemon.cli("run", "-dit", "--name", "sh", "busybox", "sh")
    command = "docker attach sh" if client == "docker" else \
        shlex.join(daemon.minirun.argv("attach", "sh"))
    p = in_terminal(daemon, command, steps=[(1, b"echo typed-$((2*21))\n"), (1, b"\x10\x11"),
                                            (3, b"")])
    assert p.returncode == 1 and b"read escape sequence" in p.stdout + p.stderr
    assert b"typed-42" in p.stdout
    assert state(daemon, "sh")["Running"]
    assert "typed-42" in daemon.cli("logs", "sh").stdout


def test_the_daemon_detaches_an_api_client_on_its_keys(daemon):
    """docker-py has no key handling of its own: minirund watches the input for them."""
    daemon.cli("run", "-di", "--name", "cat", "busybox", "cat")
    api = daemon.client().api
    sock = api.attach_socket("cat", params={"stdin": 1, "stdout": 1, "stream": 1,
                                            "detachKeys": "ctrl-a,x"})._sock
    sock.sendall(b"before\n\x01")                               # half the keys: held
    assert _recv_exactly(sock, 8 + 7)[8:] == b"before\n"
    sock.sendall(b"y\n")                                        # not the keys: both pass
    assert _recv_exactly(sock, 8 + 3)[8:] == b"\x01y\n"
    sock.sendall(b"\x01x")
    sock.settimeout(10 * SLACK)
    assert sock.recv(100) == b""                                 # the daemon ended the stream
    sock.close()
    assert state(daemon, "cat")["Running"]
    with pytest.raises(Exception) as e:
        api.attach_socket("cat", params={"stdin": 1, "stream": 1, "detachKeys": "ctrl-1"})
    assert "Invalid detach keys" in str(e.value)


def test_docker_py_attach_with_logs_gets_the_past_then_the_rest(daemon):
    client = daemon.client()
    c = client.containers.run("busybox", ["sh", "-c", "echo first; read x; echo second $x"],
                              detach=True, stdin_open=True, name="talk")
    assert wait_for(lambda: b"first" in c.logs())
    sock = client.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "logs": 1,
                                                  "stream": 1})._sock
    sock.sendall(b"now\n")
    data = b""
    sock.settimeout(10 * SLACK)
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    frames = []
    while data:
        size = struct.unpack(">I", data[4:8])[0]
        frames.append(data[8:8 + size])
        data = data[8 + size:]
    assert b"".join(frames) == b"first\nsecond now\n"            # once each, in order
    assert c.wait()["StatusCode"] == 0


def test_a_client_that_does_not_read_holds_its_container_not_the_daemon(daemon):
    """An attached client that stops reading makes its container wait (as a slow terminal
    would), not minirund buffer without bound; and it loses nothing."""
    size = 256 << 20
    cid = daemon.cli("create", "busybox", "sh", "-c",
                     f"head -c {size} /dev/zero; echo END").stdout.strip()
    other = daemon.cli("run", "-d", "busybox", "sh", "-c",
                       "i=0; while :; do i=$((i+1)); echo $i; sleep 0.01; done").stdout.strip()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(daemon.sock)
        sock.sendall(b"POST /v1.44/containers/%s/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                     b"Host: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n" % cid.encode())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        daemon.cli("start", cid)
        time.sleep(3 * SLACK)
        rss = _rss_kib(daemon.proc.pid)
        assert rss < 150 * 1024, f"minirund holds {rss} KiB for a client that does not read"
        assert state(daemon, cid)["Running"]                       # waiting for the client
        last = daemon.cli("logs", "--tail", "1", other).stdout      # the others go on
        time.sleep(0.5)
        assert daemon.cli("logs", "--tail", "1", other).stdout != last
        got, end = 0, b""
        f = sock.makefile("rb")
        while f.readline() not in (b"\r\n", b""):
            pass
        while True:
            header = f.read(8)
            if len(header) < 8:
                break
            chunk = f.read(struct.unpack(">I", header[4:])[0])
            got += len(chunk)
            end = (end + chunk)[-4:]
    assert (got, end) == (size + 4, b"END\n")
    assert wait_for(lambda: not state(daemon, cid)["Running"])


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def test_attach_and_resize_refusals(daemon):
    daemon.cli("create", "--name", "idle", "busybox", "true")
    p = daemon.cli("attach", "idle", check=False)
    assert p.returncode != 0 and p.stderr.strip().endswith(
        "You cannot attach to a stopped container, start it first")
    api = daemon.client().api
    with pytest.raises(Exception) as e:
        api.resize("idle", 10, 10)
    assert "is not running" in str(e.value)
    daemon.cli("run", "-d", "--name", "paused", "busybox", "sleep", "60")
    daemon.cli("pause", "paused")
    p = daemon.cli("attach", "paused", check=False)
    assert "unpause it first" in p.stderr
    daemon.cli("unpause", "paused")


def test_minirun_run_in_the_foreground_through_minirund(daemon):
    """With -H (MINIRUN_HOST) a foreground run goes through the daemon, as docker run does."""
    p = daemon.cli("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3",
                   check=False)
    assert (p.returncode, p.stdout, p.stderr) == (3, "out\n", "err\n")
    p = daemon.cli("run", "--rm", "-i", "busybox", "sh", "-c", "wc -l", input="a\nb\n")
    assert p.stdout.strip() == "2"
    assert daemon.cli("ps", "-aq").stdout == ""                   # --rm, through the daemon
    p = daemon.cli("run", "--rm", "--trace", "busybox", "true", check=False)
    assert p.returncode == 2 and "drop -H" in p.stderr


@needs_docker
def test_the_docker_clis_lifecycle_commands(daemon):
    """The rows of the README's table that the tests above do not cover, with the docker CLI."""
    def ok(*args):
        p = docker(daemon, *args)
        assert p.returncode == 0, (args, p.stderr)
        return p.stdout.decode()
    cid = ok("run", "-d", "--name", "life", "-p", "127.0.0.1::80", "-l", "k=v", "busybox",
             "sh", "-c", "echo started; exec sleep 600").strip()
    assert ok("ps", "--filter", "label=k=v", "--format", "{{.Names}}") == "life\n"
    assert ok("port", "life", "80").startswith("127.0.0.1:")
    assert "sleep 600" in ok("top", "life")
    assert "life" in ok("stats", "--no-stream", "life")
    ok("pause", "life")
    assert "(Paused)" in ok("ps", "--format", "{{.Status}}")
    ok("unpause", "life")
    ok("rename", "life", "life2")
    assert ok("logs", "life2") == "started\n"
    ok("restart", "-t", "1", "life2")
    assert json.loads(ok("inspect", "life2"))[0]["State"]["Running"]
    ok("kill", "life2")
    assert ok("wait", "life2").strip() == "137"
    ok("rm", "life2")
    assert ok("ps", "-aq") == "" and cid


def test_console_size_is_the_terminals_size_before_its_command_runs(daemon):
    """HostConfig.ConsoleSize (API ≥ 1.42): the first program already sees it."""
    api = daemon.client().api
    res = api._post_json(api._url("/containers/create"), data={
        "Image": "busybox", "Cmd": ["stty", "size"], "Tty": True,
        "HostConfig": {"ConsoleSize": [21, 77]}})
    cid = api._result(res, True)["Id"]
    api.start(cid)
    assert api.wait(cid)["StatusCode"] == 0
    assert api.logs(cid).replace(b"\r", b"") == b"21 77\n"


def _websocket(daemon, cid, query, version="1.44"):
    import websocket
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(daemon.sock)
    return websocket.create_connection(
        f"ws://localhost/v{version}/containers/{cid}/attach/ws?{query}", socket=sock,
        timeout=10 * SLACK)


def test_attach_over_a_websocket(daemon):
    """/attach/ws: the output as binary frames (text before API 1.28, and every stream
    attached before 1.42), the client's frames as input; a frame that breaks the rules
    (unmasked, or claiming 2^62 bytes) ends that client's input and nothing else."""
    import websocket
    cid = daemon.cli("run", "-di", "busybox", "cat").stdout.strip()
    ws = _websocket(daemon, cid, "stream=1&stdin=1&stdout=1")
    ws.send_binary(b"hello over a websocket\n")
    assert ws.recv_data() == (websocket.ABNF.OPCODE_BINARY, b"hello over a websocket\n")
    ws.sock.sendall(b"\x82\x05evil\n")                           # unmasked: refused
    ws.sock.sendall(b"\x82\xff" + struct.pack("!Q", 1 << 62) + b"mask")
    ws.close()
    old = _websocket(daemon, cid, "stream=1", version="1.27")   # stdin too, as dockerd
    old.send("typed\n")
    assert old.recv_data() == (websocket.ABNF.OPCODE_TEXT, b"typed\n")
    old.close()
    assert state(daemon, cid)["Running"]
    api = daemon.client().api
    assert api.logs(cid) == b"hello over a websocket\ntyped\n"     # nothing of the attacks
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(daemon.sock)
    sock.sendall(f"GET /v1.44/containers/{cid}/attach/ws?stream=1 HTTP/1.1\r\n"
                 f"Host: x\r\n\r\n".encode())
    answer = b""
    while b"}" not in answer and (data := sock.recv(4096)):
        answer += data
    assert answer.startswith(b"HTTP/1.1 400") and b"not a WebSocket upgrade" in answer
    sock.close()


def test_exec_detach_keys_end_the_stream_and_the_process_runs_on(daemon):
    """docker exec -it's ctrl-p ctrl-q (or DetachKeys): the client's stream ends, the
    process keeps running (its output dropped), and its exit is still recorded."""
    cid = daemon.cli("run", "-d", "busybox", "sleep", "600").stdout.strip()
    api = daemon.client().api
    for keys, typed in ((None, b"\x10\x11"), ("ctrl-x", b"\x18")):
        eid = api.exec_create(cid, "sh", stdin=True, tty=True,
                              **({"detach_keys": keys} if keys else {}))["Id"]
        sock = api.exec_start(eid, tty=True, socket=True)._sock
        _shell_answers(sock)
        sock.sendall(typed)
        while sock.recv(4096):                  # the daemon ends the stream
            pass
        sock.close()
        assert api.exec_inspect(eid)["Running"]                 # the shell runs on
        os.kill(api.exec_inspect(eid)["Pid"], signal.SIGKILL)  # (a host PID, as Docker's)
        assert wait_for(lambda: api.exec_inspect(eid)["ExitCode"] == 137)
    with pytest.raises(Exception) as e:
        api.exec_create(cid, "true", detach_keys="ctrl-1")
    assert "Invalid detach keys" in str(e.value)


def test_an_attach_whose_client_has_nothing_to_send_still_gets_the_output(daemon):
    """The docker CLI shuts down its sending side at once when it has no input (`docker run`
    without -i): a half-closed connection still reads. Output that comes after a quiet second
    (a container slow to start, or to speak) was lost on a slow machine's first start."""
    cid = daemon.cli("create", "busybox", "sh", "-c", "sleep 2; echo late").stdout.strip()
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(daemon.sock)
    sock.sendall(f"POST /v1.44/containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                 f"Host: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())
    head = b""
    sock.settimeout(10 * SLACK)
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    sock.shutdown(socket.SHUT_WR)
    daemon.cli("start", cid)
    got = b""
    while chunk := sock.recv(4096):
        got += chunk
    sock.close()
    assert got == b"\x01\x00\x00\x00\x00\x00\x00\x05late\n"
