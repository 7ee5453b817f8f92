"""minirund's containers are born in its fork server, not in the threaded API process.

Each test here attacks what forking from a threaded daemon broke: a start that
inherits another thread's lock (a hang), daemon descriptors reaching an exec'd
process, exit codes lost while the daemon was down; and what a busy daemon
broke: a burst of clients refused, a kill answered before the exit was seen.
"""
import concurrent.futures
import json
import os
import signal
import socket
import time

import pytest
from conftest import SLACK, wait_for

pytestmark = pytest.mark.root


def _forked_from_forkserver(root):
    """PIDs with the command line of *root*'s fork server: the fork servers, and the
    children they forked that have not exec'd (the PID 1 waiting ahead)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if b"minirun.engine.forkserver" in argv and root.encode() in argv:
                pids.append(int(entry))
    return pids


def _leads_session(pid):
    try:
        return os.getsid(pid) == pid
    except ProcessLookupError:
        return False


def forkserver_pids(root):
    """PIDs of fork servers serving *root*: each leads a session of its own."""
    return [p for p in _forked_from_forkserver(root) if _leads_session(p)]


def waiting_ahead(root):
    """PIDs of the PID 1s *root*'s fork servers forked ahead: their children that are not
    containers yet."""
    servers = forkserver_pids(root)
    return [p for p in _forked_from_forkserver(root) if _ppid(p) in servers]


def inspect(daemon, name):
    return json.loads(daemon.cli("inspect", name).stdout)[0]


@pytest.mark.timeout(300)
def test_starts_never_hang_while_other_containers_are_unwired(daemon):
    """The deadlock: a container forked while another thread held network.lock kept the lock
    in its set-up child, and every later start waited for ever."""
    client = daemon.client()
    net = client.networks.create("busy")
    try:
        def start(i):
            c = client.containers.run("busybox", ["sleep", "60"], detach=True, name=f"s{i}",
                                      network="busy", ports={"80/tcp": None})
            return c

        def churn(c):
            net.disconnect(c)
            c.remove(force=True)
        first = [start(i) for i in range(4)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            started = [pool.submit(start, i) for i in range(4, 28)]
            removed = [pool.submit(churn, c) for c in first]
            for f in removed:
                f.result(timeout=120 * SLACK)
            later = [f.result(timeout=120 * SLACK) for f in started]
        for c in later:
            c.reload()
            assert c.status == "running"
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda c: c.remove(force=True), later))
    finally:
        net.remove()


def test_exit_code_of_a_container_that_ends_while_minirund_is_down(daemon):
    daemon.cli("run", "-d", "--name", "three", "busybox", "sh", "-c", "sleep 1; exit 3")
    daemon.stop(signal.SIGKILL)
    time.sleep(2)                                   # it exits now, with nobody to tell
    daemon.start()
    assert daemon.cli("wait", "three").stdout.strip() == "3"
    state = inspect(daemon, "three")["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 3


def test_containers_outlive_a_crashed_fork_server(daemon):
    daemon.cli("run", "-d", "--name", "lives", "busybox", "sleep", "300")
    [server] = forkserver_pids(daemon.minirun.root)
    os.kill(server, signal.SIGKILL)
    time.sleep(0.5)
    assert inspect(daemon, "lives")["State"]["Status"] == "running"
    # A new fork server comes for the next start and exec; the old container is reachable.
    assert daemon.cli("exec", "lives", "echo", "still here").stdout == "still here\n"
    daemon.cli("run", "-d", "--name", "after", "busybox", "sh", "-c", "exit 4")
    assert daemon.cli("wait", "after").stdout.strip() == "4"
    # What is lost, and said so: the exit code of a container nobody could reap.
    daemon.cli("kill", "lives")
    assert wait_for(lambda: inspect(daemon, "lives")["State"]["Status"] == "exited")
    assert inspect(daemon, "lives")["State"]["ExitCode"] == 255
    assert "fork server is gone" in open(daemon.log).read()


def test_the_fork_server_goes_when_minirund_and_its_containers_are_gone(daemon):
    daemon.cli("run", "--rm", "-d", "--name", "brief", "busybox", "true")
    assert wait_for(lambda: "brief" not in daemon.cli("ps", "-a").stdout)
    assert forkserver_pids(daemon.minirun.root)
    ahead = _one_waiting_ahead(daemon)
    daemon.stop()
    assert wait_for(lambda: not forkserver_pids(daemon.minirun.root))
    assert not os.path.exists(f"/proc/{ahead}")           # the PID 1 it forked ahead too
    daemon.start()


def _ns(pid, kind):
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def _one_waiting_ahead(daemon, other_than=None):
    """The PID 1 the fork server forked ahead, once there is one (and it is not
    *other_than*, which a start has taken)."""
    root = daemon.minirun.root
    assert wait_for(lambda: len(waiting_ahead(root)) == 1 and waiting_ahead(root) != [other_than])
    return waiting_ahead(root)[0]


def test_a_start_takes_the_pid_1_forked_ahead(daemon):
    """While minirund is connected, its fork server keeps the next container's PID 1 forked,
    in PID, UTS, IPC and network namespaces of its own. A start takes it and the next is
    forked. It holds nothing of the fork server's but stdio and its socket."""
    ahead = _one_waiting_ahead(daemon)
    [server] = forkserver_pids(daemon.minirun.root)
    for kind in ("pid", "uts", "ipc", "net"):
        assert _ns(ahead, kind) != _ns(server, kind), kind
    assert _ns(ahead, "mnt") == _ns(server, "mnt")     # made once its spec has come
    assert sorted(os.listdir(f"/proc/{ahead}/fd"), key=int) == ["0", "1", "2", "3"]
    assert os.readlink(f"/proc/{ahead}/fd/3").startswith("socket:")
    net = _ns(ahead, "net")
    cid = daemon.cli("run", "-d", "--network", "none", "busybox", "sleep", "300").stdout.strip()
    assert inspect(daemon, cid)["State"]["Pid"] == ahead
    assert _ns(ahead, "net") == net and _ns(ahead, "mnt") != _ns(server, "mnt")
    assert sorted(os.listdir(f"/proc/{ahead}/fd"), key=int) == ["0", "1", "2"]
    # Its hostname was set after its UTS namespace was made, and lo is up in its network.
    assert daemon.cli("exec", cid, "hostname").stdout.strip() == cid[:12]
    assert "UP" in daemon.cli("exec", cid, "ip", "link", "show", "lo").stdout
    _one_waiting_ahead(daemon, other_than=ahead)


def test_a_mount_the_host_made_after_the_fork_ahead_is_a_volume_source(daemon, tmp_path):
    """The PID 1 forked ahead makes its mount namespace only when its spec comes: a copy of
    the host's mounts made ahead would miss a mount made since below a private one."""
    import subprocess
    outer, src = tmp_path / "outer", tmp_path / "outer" / "src"
    outer.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "outer", str(outer)], check=True)
    try:
        subprocess.run(["mount", "--make-private", str(outer)], check=True)
        first = _one_waiting_ahead(daemon)
        daemon.cli("run", "--rm", "--network", "none", "busybox", "true")    # takes it
        ahead = _one_waiting_ahead(daemon, other_than=first)         # forked after outer
        src.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "src", str(src)], check=True)
        try:
            (src / "file").write_text("mounted later\n")
            cid = daemon.cli("run", "-d", "--network", "none", "-v", f"{src}:/data", "busybox",
                             "sh", "-c", "cat /data/file; exec sleep 300").stdout.strip()
            assert inspect(daemon, cid)["State"]["Pid"] == ahead
            assert wait_for(lambda: daemon.cli("logs", cid).stdout == "mounted later\n")
            daemon.cli("rm", "-f", cid)
        finally:
            subprocess.run(["umount", str(src)], check=True)
    finally:
        subprocess.run(["umount", str(outer)], check=True)


def test_a_container_that_keeps_or_joins_a_network_is_forked_for_it(daemon):
    """--network host and container:NAME make no network namespace: the PID 1 forked ahead
    (which has made one) waits on for the next start."""
    ahead = _one_waiting_ahead(daemon)
    host = daemon.cli("run", "-d", "--network", "host", "busybox", "sleep", "300").stdout.strip()
    pid = inspect(daemon, host)["State"]["Pid"]
    assert pid != ahead and _ns(pid, "net") == _ns("self", "net")
    joined = daemon.cli("run", "-d", "--network", f"container:{host}", "busybox", "sleep",
                        "300").stdout.strip()
    assert _ns(inspect(daemon, joined)["State"]["Pid"], "net") == _ns("self", "net")
    assert waiting_ahead(daemon.minirun.root) == [ahead]


def test_starts_go_on_when_the_pid_1_forked_ahead_dies(daemon):
    """One killed while it waits is reaped, and from then on each start forks its own."""
    ahead = _one_waiting_ahead(daemon)
    os.kill(ahead, signal.SIGKILL)
    assert wait_for(lambda: not os.path.exists(f"/proc/{ahead}"))      # reaped, no zombie
    assert daemon.cli("run", "--rm", "--network", "none", "busybox", "echo", "ok").stdout == "ok\n"
    assert "forking each one at its start from now on" in open(daemon.log).read()
    assert waiting_ahead(daemon.minirun.root) == []


def test_exec_holds_no_daemon_descriptor_and_the_containers_limits(daemon):
    daemon.cli("run", "-d", "--name", "fds", "--ulimit", "nofile=123:456", "busybox",
               "sleep", "300")
    # Keep the daemon busy with other descriptors: log followers and starts.
    follow = [daemon.client().api.logs("fds", stream=True, follow=True) for _ in range(4)]
    for i in range(3):
        daemon.cli("run", "-d", "--name", f"other{i}", "busybox", "sleep", "300")
    for _ in range(5):
        fds = daemon.cli("exec", "fds", "ls", "/proc/self/fd").stdout.split()
        assert fds == ["0", "1", "2", "3"]                   # 3: ls's own directory
    assert daemon.cli("exec", "fds", "sh", "-c", "ulimit -n; ulimit -Hn").stdout.split() == \
        ["123", "456"]
    p = daemon.cli("exec", "-w", "/proc/self/fd/7", "fds", "ls", check=False)
    assert p.returncode != 0 and "chdir" in p.stderr
    for stream in follow:
        stream.close()


def test_no_process_in_the_container_reaches_a_joining_process(daemon):
    """A scanner inside races 50 execs: it must never open a joining process's executable
    (the host's python) or any of its descriptors (CVE-2019-5736's precondition). (The
    container's own stdout and stderr are its log FIFOs, opened on the host: allowed.)"""
    scan = ("while :; do for p in /proc/[0-9]*; do "
            "e=$(readlink $p/exe 2>/dev/null) && case $e in /bin/busybox|'') ;; "
            "*) echo LEAK exe $e;; esac; "
            "for f in $p/fd/*; do l=$(readlink $f 2>/dev/null) || continue; "
            "case $l in /dev/*|pipe:*|socket:*|anon_inode:*|/proc/*|/|*/std???.fifo) ;; "
            "*) echo LEAK fd $l;; esac; done; done; done")
    daemon.cli("run", "-d", "--name", "scan", "busybox", "sh", "-c", scan)
    for _ in range(50):
        daemon.cli("exec", "scan", "true")
    time.sleep(0.5)
    logs = daemon.cli("logs", "scan").stdout + daemon.cli("logs", "scan").stderr
    assert "LEAK" not in logs, logs


def test_pid_1_and_an_exec_are_in_the_containers_cgroup_in_every_hierarchy(daemon):
    """On cgroup v1 both join by themselves (a single thread writing 0 to `tasks` moves only
    itself): the host must see the whole process, PID 1's and exec's, in every hierarchy."""
    from minirun.runtime import cgroups
    cid = daemon.cli("run", "-d", "--name", "joined", "busybox", "sleep", "300").stdout.strip()
    daemon.cli("exec", "-d", "joined", "sleep", "300")
    drv = cgroups.detect()
    procs = [os.path.join(os.path.dirname(f), "cgroup.procs") for f in drv.join_files(cid)]
    assert procs

    def members():
        return [set(open(f).read().split()) for f in procs]
    assert wait_for(lambda: all(len(m) == 2 for m in members())), members()
    sets = members()
    assert all(m == sets[0] for m in sets)
    pid = str(inspect(daemon, "joined")["State"]["Pid"])
    assert pid in sets[0]
    for p in sets[0] if drv.version == 1 else ():   # every thread is there too (v1's tasks)
        threads = set(os.listdir(f"/proc/{p}/task"))
        for f in procs:
            tasks = os.path.join(os.path.dirname(f), "tasks")
            assert threads <= set(open(tasks).read().split()), (p, f)


def test_exec_trace_shows_each_step(daemon):
    daemon.cli("run", "-d", "--name", "traced", "busybox", "sleep", "300")
    p = daemon.cli("exec", "--trace", "traced", "true")
    steps = [l.split("] ", 1)[1] for l in p.stderr.splitlines() if l.startswith("[trace")]
    pid = inspect(daemon, "traced")["State"]["Pid"]
    for name in ("ipc", "uts", "net", "cgroup", "mnt"):
        assert any(s.startswith(f"setns(/proc/{pid}/ns/{name},") for s in steps), steps
    assert any(s.startswith("chdir('/')") for s in steps)
    assert steps[-1].startswith("execve('true'")


def test_a_burst_of_clients_is_not_refused(daemon):
    """docker rm -f of many containers at once: each client connects without waiting
    (Go's clients are non-blocking), so a short listen backlog refused most of them."""
    socks = []
    try:
        for _ in range(50):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            socks.append(s)
            s.connect(daemon.sock)                   # EAGAIN here: refused
        for s in socks:
            s.setblocking(True)
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        for s in socks:
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        for s in socks:
            s.close()


def test_after_kill_inspect_wait_and_rm_agree(daemon):
    client = daemon.client()
    for i in range(5):
        c = client.containers.run("busybox", ["sleep", "300"], detach=True, name=f"k{i}")
        c.kill()
        c.reload()
        assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 137
        assert c.wait(timeout=5)["StatusCode"] == 137
        c.remove()


def test_exec_workdir_through_a_leaked_fd_fails_while_the_daemon_removes(daemon):
    """CVE-2024-21626's shape through exec: while minirund held directory fds of a container
    being removed, exec -w /proc/self/fd/N landed in a host directory."""
    daemon.cli("run", "-d", "--name", "big", "busybox", "sh", "-c",
               "mkdir /many; cd /many; i=0; while [ $i -lt 20000 ]; do : > f$i; "
               "i=$((i+1)); done; echo done; sleep 300")
    assert wait_for(lambda: "done" in daemon.cli("logs", "big").stdout, 60)
    daemon.cli("run", "-d", "--name", "target", "busybox", "sleep", "300")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        removal = pool.submit(daemon.cli, "rm", "-f", "big")
        outcomes = []
        while not removal.done() or len(outcomes) < 10:
            for n in range(3, 12):
                p = daemon.cli("exec", "-w", f"/proc/self/fd/{n}", "target", "sh", "-c",
                               "pwd; ls", check=False)
                outcomes.append((n, p.returncode, p.stdout, p.stderr))
        removal.result()
    for n, code, out, err in outcomes:
        assert code != 0 and "chdir" in err and out == "", (n, code, out, err)


def test_a_deleted_root_leaves_no_container_or_cgroup(loaded, busybox_oci, tmp_path):
    """A daemon is killed, its state root deleted (as a test suite's tmp dirs are): its
    containers and their cgroups were left for ever. The next minirun command of any root
    ends them, found by their cgroups' owner records."""
    import glob
    import shutil
    from conftest import Daemon, Minirun
    gone = Minirun(str(tmp_path / "gone"))
    gone("load", "-i", busybox_oci)
    (tmp_path / "d").mkdir()
    d = Daemon(gone, tmp_path / "d").start()
    cid = d.cli("run", "-d", "--network", "none", "busybox", "sleep", "300").stdout.strip()
    pid = inspect(d, cid)["State"]["Pid"]
    d.stop(signal.SIGKILL)
    shutil.rmtree(gone.root)
    assert glob.glob(f"/sys/fs/cgroup/*/minirun/{cid}/") + glob.glob(f"/sys/fs/cgroup/minirun/{cid}/")
    loaded.run("--rm", "--network", "none", "busybox", "true")      # any root's next command
    assert not glob.glob(f"/sys/fs/cgroup/*/minirun/{cid}/")
    assert not glob.glob(f"/sys/fs/cgroup/minirun/{cid}/")
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"))


def test_a_fork_server_refuses_a_minirund_of_another_version(daemon):
    """A fork server outlives minirund, so after an upgrade the new minirund can meet the old
    one's. Their halves of a start differ (where the cgroups are joined): neither may fork
    for the other, or a container could start outside its cgroups."""
    from minirun.engine import forkserver as fs
    daemon.cli("run", "--rm", "busybox", "true")          # its fork server is up
    [server] = forkserver_pids(daemon.minirun.root)
    assert wait_for(lambda: len(waiting_ahead(daemon.minirun.root)) == 1)
    ahead = waiting_ahead(daemon.minirun.root)        # the next start's PID 1, and no other
    before = os.listdir(f"/proc/{server}/task")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    fs._at(os.path.join(daemon.minirun.root, fs.SOCKET_NAME), sock.connect)
    with sock:                                           # START as an older minirund sends it
        fs._send(sock, {"op": fs.START, "tag": "old", "spec": {}, "exit_file": ""})
        reply, fds = fs._recv(sock)
    assert "different minirun versions" in reply["error"] and fds == []
    children = [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(p) == server]
    assert children == ahead and os.listdir(f"/proc/{server}/task") == before


def _ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_minirund_forks_nothing_through_an_older_fork_server(tmp_path):
    """The other way round: a fork server that answers START as an older one does (no
    protocol) gets its child killed and minirund an error, never a GO."""
    import subprocess
    import threading
    from minirun.engine import forkserver as fs
    from minirun.errors import MinirunError
    from minirun.runtime.spec import Spec
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    fs._at(str(tmp_path / fs.SOCKET_NAME), listener.bind)
    listener.listen(1)
    child = subprocess.Popen(["sleep", "60"])
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

    def old_server():
        conn, _ = listener.accept()
        with conn:
            _, fds = fs._recv(conn)
            pidfd = os.pidfd_open(child.pid)
            fs._send(conn, {"pid": child.pid}, [pidfd, theirs.fileno()])
            for fd in (*fds, pidfd):
                os.close(fd)
    t = threading.Thread(target=old_server)
    t.start()
    null = os.open("/dev/null", os.O_RDWR)
    try:
        with pytest.raises(MinirunError, match="different minirun versions"):
            fs.Client(str(tmp_path)).start(Spec(id="a" * 64), [null] * 3, "")
        assert child.wait(10) == -signal.SIGKILL
        t.join(10)
        theirs.close()
        mine.settimeout(5)
        assert mine.recv(100) == b""          # no GO came, and minirund closed its end
    finally:
        t.join(10)
        os.close(null)
        child.kill()
        listener.close()
        mine.close()
        theirs.close()
