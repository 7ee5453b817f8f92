"""minirun-runc: runc's command line over a bundle, driven as containerd's shim and conmon do.

Each test makes a bundle (a busybox root file system and the config.json ``minirun-runc
spec`` writes, changed where the test needs) and a state root of its own, and checks
what a caller of runc checks: the state JSON, the statuses, exit codes, the --pid-file,
the terminal over --console-socket, hooks with the state on stdin, cgroups made and
removed, and that a hostile bundle is refused in one line and leaves nothing.
"""
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

pytestmark = pytest.mark.root
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
TOOLS = ("sh", "echo", "cat", "ls", "sleep", "id", "hostname", "true", "tty", "touch",
         "grep", "stat", "readlink", "mount", "ps", "test", "kill")


class Runtime:
    """minirun-runc with its own --root and --log, in a scratch directory."""

    def __init__(self, tmp):
        self.root = str(tmp / "state")
        self.log = str(tmp / "log.json")
        self.tmp = tmp

    def __call__(self, *args, check=True, timeout=60, **kw):
        argv = ["minirun-runc", "--root", self.root, "--log", self.log, "--log-format", "json",
                *map(str, args)]
        if args[0] == "create" or "-d" in args:
            # The container keeps create's stdout and stderr (as the shim's fifos): a pipe
            # would not end while it runs. Its output goes to a file.
            with open(self.tmp / "container.out", "a") as out:
                p = subprocess.run(argv, stdout=out, stderr=out, text=True, timeout=timeout,
                                   **kw)
            p.stdout = p.stderr = ""
        else:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
        if check and p.returncode != 0:
            raise AssertionError(f"minirun-runc {' '.join(map(str, args))} exited "
                                 f"{p.returncode}: {p.stdout}{p.stderr}{self.errors()}")
        return p

    def errors(self):
        try:
            with open(self.log) as f:
                return [json.loads(l)["msg"] for l in f if json.loads(l)["level"] == "error"]
        except FileNotFoundError:
            return []

    def state(self, cid):
        return json.loads(self("state", cid).stdout)

    def bundle(self, name="b", args=("true",), change=None):
        """A bundle: busybox as its root, runc's default config with *args*, no terminal."""
        b = self.tmp / name
        (b / "rootfs" / "bin").mkdir(parents=True)
        shutil.copy(BUSYBOX, b / "rootfs" / "bin" / "busybox")
        for tool in TOOLS:
            os.symlink("busybox", b / "rootfs" / "bin" / tool)
        (b / "rootfs" / "etc").mkdir()
        (b / "rootfs" / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        self("spec", "--bundle", b)
        cfg = json.loads((b / "config.json").read_text())
        cfg["process"].update(terminal=False, args=list(args))
        cfg["root"]["readonly"] = False
        if change:
            change(cfg)
        (b / "config.json").write_text(json.dumps(cfg))
        return b


@pytest.fixture
def rt(tmp_path):
    r = Runtime(tmp_path)
    yield r
    # whatever a failed test left: killed and deleted, and the state root must be empty then
    if os.path.isdir(r.root):
        for cid in os.listdir(r.root):
            r("delete", "--force", cid, check=False)
        assert os.listdir(r.root) == []


def wait_status(rt, cid, want, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if rt.state(cid)["status"] == want:
            return True
        time.sleep(0.05)
    return rt.state(cid)["status"] == want


def test_run_prints_the_output_and_exits_with_the_process_code(rt):
    b = rt.bundle(args=["sh", "-c", "echo hello from $(hostname); exit 3"])
    p = rt("run", "--bundle", b, "c1", check=False)
    assert (p.returncode, p.stdout) == (3, "hello from minirun\n")
    assert rt("list", "-q").stdout == ""          # run without -d deletes what it made


def test_create_waits_for_start_and_state_follows_the_lifecycle(rt):
    b = rt.bundle(args=["sh", "-c", "touch /started; sleep 100"])
    pid_file = rt.tmp / "pid"
    rt("create", "--bundle", b, "--pid-file", pid_file, "c1")
    st = rt.state("c1")
    assert st["status"] == "created" and st["id"] == "c1" and st["bundle"] == str(b)
    # the state holds the process's environment: root's alone to read
    assert os.stat(os.path.join(rt.root, "c1", "state.json")).st_mode & 0o777 == 0o600
    assert st["ociVersion"].startswith("1.") and st["pid"] == int(pid_file.read_text())
    time.sleep(0.3)
    assert not (b / "rootfs" / "started").exists()    # the user's process waits for start
    rt("start", "c1")
    assert wait_status(rt, "c1", "running") and (b / "rootfs" / "started").exists()
    p = rt("start", "c1", check=False)
    assert p.returncode == 1 and "already running" in rt.errors()[-1]
    p = rt("delete", "c1", check=False)
    assert p.returncode == 1 and "not stopped: running" in rt.errors()[-1]
    assert str(st["pid"]) in rt("list").stdout
    rt("kill", "c1", "KILL")
    assert wait_status(rt, "c1", "stopped")
    rt("delete", "c1")
    p = rt("state", "c1", check=False)
    assert p.returncode == 1 and rt.errors()[-1] == "container does not exist: c1"
    rt("delete", "--force", "c1")                      # gone already: --force says done


def test_kill_signals_pause_resume_ps_and_exec(rt):
    b = rt.bundle(args=["sh", "-c", "trap 'echo got-usr1 > /sig' USR1; "
                                    "while true; do sleep 0.1; done"])
    rt("run", "-d", "--bundle", b, "c1")
    assert wait_status(rt, "c1", "running")
    rt("pause", "c1")
    assert rt.state("c1")["status"] == "paused"
    rt("resume", "c1")
    assert rt.state("c1")["status"] == "running"
    pids = json.loads(rt("ps", "--format", "json", "c1").stdout)
    assert rt.state("c1")["pid"] in pids
    rt("kill", "c1", "USR1")
    for _ in range(100):
        if (b / "rootfs" / "sig").exists():
            break
        time.sleep(0.05)
    assert (b / "rootfs" / "sig").read_text() == "got-usr1\n"
    # exec: as the flags say, and as a process.json says (containerd's shim writes one)
    p = rt("exec", "--env", "X=1", "--cwd", "/bin", "c1", "sh", "-c", "echo $X $(pwd); exit 4",
           check=False)
    assert (p.returncode, p.stdout) == (4, "1 /bin\n")
    process = {"args": ["id"], "cwd": "/", "env": ["PATH=/bin"], "terminal": False,
               "user": {"uid": 1000, "gid": 1000, "additionalGids": [7]}}
    (rt.tmp / "process.json").write_text(json.dumps(process))
    p = rt("exec", "--process", rt.tmp / "process.json", "c1")
    assert p.stdout.strip() == "uid=1000 gid=1000 groups=7"
    pid_file = rt.tmp / "exec.pid"
    rt("exec", "-d", "--pid-file", pid_file, "c1", "sleep", "30")
    assert int(pid_file.read_text()) in json.loads(rt("ps", "--format", "json", "c1").stdout)
    rt("kill", "--all", "c1", "KILL")
    assert wait_status(rt, "c1", "stopped")
    rt("delete", "c1")


def test_the_terminal_goes_to_the_console_socket(rt):
    b = rt.bundle(args=["sh", "-c", "tty; echo through-the-pty"],
                  change=lambda c: c["process"].update(terminal=True))
    path = str(rt.tmp / "console.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        p = subprocess.Popen(["minirun-runc", "--root", rt.root, "create", "--bundle", b,
                              "--console-socket", path, "c1"], stdout=subprocess.DEVNULL)
        conn, _ = listener.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 64, 1)
    [master] = fds
    assert p.wait(30) == 0
    rt("start", "c1")
    out = b""
    while b"through-the-pty" not in out:
        try:
            chunk = os.read(master, 1024)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert b"/dev/pts/0" in out and b"through-the-pty" in out
    assert wait_status(rt, "c1", "stopped")
    rt("delete", "c1")
    # create with a terminal and nowhere to send it: runc's error
    p = rt("create", "--bundle", b, "c2", check=False)
    assert p.returncode == 1 and "console socket" in rt.errors()[-1]
    assert rt("list", "-q").stdout == ""


def test_hooks_get_the_state_and_a_failing_prestart_leaves_nothing(rt):
    out = rt.tmp / "hooks.out"
    hook = lambda name: {"path": "/bin/sh", "args": ["sh", "-c", f"echo {name} $(cat) >> {out}"]}
    b = rt.bundle(args=["sh", "-c", "sleep 0.2"],
                  change=lambda c: c.update(hooks={k: [hook(k)] for k in
                                                   ("prestart", "poststart", "poststop")}))
    rt("run", "--bundle", b, "c1")
    lines = out.read_text().splitlines()
    assert [l.split()[0] for l in lines] == ["prestart", "poststart", "poststop"]
    states = [json.loads(l.split(" ", 1)[1]) for l in lines]
    assert [s["status"] for s in states] == ["created", "running", "stopped"]
    assert all(s["id"] == "c1" and s["bundle"] == str(b) for s in states)
    cgroups = set(_cgroup_dirs("c2"))
    bad = rt.bundle("bad", change=lambda c: c.update(
        hooks={"prestart": [{"path": "/bin/false"}]}))
    p = rt("create", "--bundle", bad, "c2", check=False)
    assert p.returncode == 1 and rt.errors()[-1] == "prestart hook /bin/false exited with 1"
    assert rt("list", "-q").stdout == "" and set(_cgroup_dirs("c2")) == cgroups


def _cgroup_dirs(name):
    out = []
    for top in os.listdir("/sys/fs/cgroup"):
        for folder, dirs, _ in os.walk(os.path.join("/sys/fs/cgroup", top)):
            out += [os.path.join(folder, d) for d in dirs if d == name]
    return out


def test_cgroups_path_and_limits_are_applied_then_removed(rt):
    def limits(c):
        c["linux"]["cgroupsPath"] = "/minirun-runc-test/c1"
        c["linux"]["resources"].update(memory={"limit": 64 << 20}, pids={"limit": 42})
    b = rt.bundle(args=["sh", "-c", "cat /proc/self/cgroup; sleep 100"], change=limits)
    rt("run", "-d", "--bundle", b, "c1")
    pid = rt.state("c1")["pid"]
    with open(f"/proc/{pid}/cgroup") as f:            # v1: "N:pids:/path"; v2: "0::/path"
        lines = [l.strip().split(":", 2) for l in f]
    path = next(p for _, names, p in lines if "pids" in names.split(",") or names == "")
    assert path == "/minirun-runc-test/c1"
    pids = next(p for p in ("/sys/fs/cgroup/pids" + path, "/sys/fs/cgroup" + path)
                if os.path.exists(p + "/pids.max"))
    assert open(pids + "/pids.max").read().strip() == "42"
    mem = ("/sys/fs/cgroup/memory" + path + "/memory.limit_in_bytes"
           if os.path.isdir("/sys/fs/cgroup/memory") else "/sys/fs/cgroup" + path + "/memory.max")
    assert int(open(mem).read()) == 64 << 20
    rt("update", "--pids-limit", "7", "c1")
    assert open(pids + "/pids.max").read().strip() == "7"
    rt("delete", "--force", "c1")
    assert not os.path.exists(pids) and _cgroup_dirs("minirun-runc-test") == []


def test_namespaced_sysctls_are_set_in_the_container(rt):
    b = rt.bundle(args=["cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/msgmax"],
                  change=lambda c: c["linux"].update(
                      sysctl={"net.ipv4.ip_forward": "1", "kernel.msgmax": "4242"},
                      readonlyPaths=[]))
    host = open("/proc/sys/kernel/msgmax").read()
    assert rt("run", "--bundle", b, "c1").stdout.split() == ["1", "4242"]
    assert open("/proc/sys/kernel/msgmax").read() == host


def test_features_and_version(rt):
    f = json.loads(rt("features").stdout)
    assert f["ociVersionMin"] == "1.0.0" and "poststop" in f["hooks"]
    assert "user" in f["linux"]["namespaces"] and f["linux"]["seccomp"]["enabled"]
    assert "minirun-runc version" in rt("--version").stdout


# -- hostile bundles and arguments -------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(ociVersion="2.0.0"), "unsupported ociVersion '2.0.0' (1.x is)"),
    (lambda c: c["process"].update(args=[]), "process.args must be a non-empty list of strings"),
    (lambda c: c["process"].update(cwd="relative"), "process.cwd 'relative' is not an absolute path"),
    (lambda c: c["linux"].update(devices=[{"path": "/etc/shadow", "type": "c"}]),
     "device path '/etc/shadow' is not under /dev"),
    (lambda c: c["linux"].update(sysctl={"../../etc": "1"}), "bad sysctl name '../../etc'"),
    (lambda c: c["linux"].update(sysctl={"kernel.panic": "1"}),     # the host's own
     "sysctl 'kernel.panic' is not in a separate kernel namespace"),
    (lambda c: (c["linux"].update(sysctl={"net.ipv4.ip_forward": "1"}),
                c["linux"].update(namespaces=[n for n in c["linux"]["namespaces"]
                                              if n["type"] != "network"])),
     "sysctl 'net.ipv4.ip_forward' is not in a separate kernel namespace"),
    (lambda c: c["linux"].update(cgroupsPath="../../escape"),
     "cgroupsPath '../../escape': a path of a cgroupfs hierarchy is needed (systemd's "
     "slice:prefix:name form is not supported)"),
    (lambda c: c["linux"]["namespaces"].append({"type": "time"}),
     "time namespaces are not supported by minirun-runc"),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "bind",
                                   "source": "/no/such/dir"}),
     "bind mount source /no/such/dir: No such file or directory"),
    (lambda c: c["process"].update(user={"uid": -1}),
     "process.user ids must be numbers from 0 to 2^32-2"),
    (lambda c: c.update(hooks={"prestart": [{"path": "relative"}]}),
     "hooks.prestart: path 'relative' is not absolute"),
])
def test_a_bad_bundle_is_one_error_line_and_leaves_nothing(rt, change, message):
    b = rt.bundle(change=change)
    p = rt("create", "--bundle", b, "c1", check=False)
    assert p.returncode == 1 and rt.errors() == [message]
    assert (rt.tmp / "container.out").read_text() == ""   # nothing on create's stdio
    assert rt("list", "-q").stdout == ""
    assert _cgroup_dirs("c1") == []


def test_not_json_and_bad_ids_are_refused(rt):
    b = rt.bundle()
    (b / "config.json").write_text("{not json")
    assert rt("create", "--bundle", b, "c1", check=False).returncode == 1
    assert rt.errors()[-1].startswith("config.json is not valid JSON")
    for cid in ("../escape", "a/b", ".."):
        assert rt("state", cid, check=False).returncode == 1
        assert rt.errors()[-1] == f"invalid container id format: {cid!r}"
    assert rt("nonsense", check=False).returncode == 1
    assert rt("create", "--no-such-flag", "c1", check=False).returncode == 1
    assert rt.errors()[-1] == "flag provided but not defined: --no-such-flag"


def test_a_symlink_in_the_root_cannot_aim_a_mount_or_device_at_the_host(rt, tmp_path):
    host = tmp_path / "host-dir"
    host.mkdir()
    (host / "keep").write_text("host file\n")

    def evil(c):
        c["mounts"].append({"destination": "/evil/inner", "type": "tmpfs", "source": "tmpfs"})
        c["mounts"].append({"destination": "/dotdot", "type": "tmpfs", "source": "tmpfs"})
    b = rt.bundle(args=["sh", "-c", "touch /evil/inner/x /dotdot/y; ls /evil/inner"],
                  change=evil)
    os.symlink(str(host), b / "rootfs" / "evil")                   # absolute, to the host
    (tmp_path / "other").mkdir()
    os.symlink("../../../../../../../" + str(tmp_path / "other"), b / "rootfs" / "dotdot")
    p = rt("run", "--bundle", b, "c1", check=False)
    assert p.returncode == 0, rt.errors()
    assert sorted(os.listdir(host)) == ["keep"] and not (host / "inner").exists()
    assert os.listdir(tmp_path / "other") == []
    # both resolved inside the root: the mount points were made there
    assert (b / "rootfs" / str(host).lstrip("/") / "inner").is_dir()


def test_preserved_descriptors_reach_the_process_and_others_do_not(rt):
    b = rt.bundle(args=["sh", "-c", "ls /proc/self/fd; echo via-fd3 >&3"])
    r, w = os.pipe()
    opened = os.open("/etc/hostname", os.O_RDONLY)
    leak = os.dup2(opened, 50)                          # inheritable, not preserved
    os.close(opened)
    try:                                                # the pipe's write end as fd 3
        p = subprocess.run(["bash", "-c", f"exec minirun-runc --root {rt.root} run "
                            f"--preserve-fds 1 --bundle {b} c1 3>&{w}"],
                           capture_output=True, text=True, timeout=60, pass_fds=(w, leak))
    finally:
        os.close(w)
        os.close(leak)
    assert p.returncode == 0, p.stderr
    fds = sorted(int(x) for x in p.stdout.split() if x.isdigit())
    assert fds == [0, 1, 2, 3, 4]           # 4: ls's own, reading /proc/self/fd
    assert os.read(r, 100) == b"via-fd3\n"
    os.close(r)


def test_user_namespace_maps_the_ids(rt):
    def userns(c):
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b = rt.bundle(args=["sh", "-c", "cat /proc/self/uid_map; id -u"], change=userns)
    os.chmod(rt.tmp, 0o755)
    p = rt("run", "--bundle", b, "c1")
    assert p.stdout.split() == ["0", "100000", "65536", "0"]


def test_a_foreground_run_forwards_sigterm(rt):
    b = rt.bundle(args=["sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done"])
    p = subprocess.Popen(["minirun-runc", "--root", rt.root, "run", "--bundle", b, "c1"])
    for _ in range(200):
        if os.path.isdir(rt.root) and os.listdir(rt.root) and \
                rt.state("c1")["status"] == "running":
            break
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 7


def test_no_pivot_and_no_new_keyring_still_run_the_container(rt):
    b = rt.bundle(args=["sh", "-c", "cat /etc/passwd; ls /"])
    for flags in (["--no-pivot"], ["--no-new-keyring"]):
        p = rt("run", *flags, "--bundle", b, "c1")
        assert p.stdout.startswith("root:x:0:0:root:/root:/bin/sh\n")
        assert "home" not in p.stdout.split()             # the bundle's root, not the host's
    p = rt("run", "-d", "--bundle", b, "c2")
    assert rt("exec", "--preserve-fds", "1", "c2", "true", check=False).returncode == 1
    assert rt.errors()[-1] == "exec --preserve-fds is not supported by minirun-runc"


def test_an_idmapped_bind_mount_shows_the_owners_through_its_maps(rt):
    # Not under /tmp: tmpfs takes idmapped mounts only since Linux 6.3 (the guest's is 6.1).
    shared = pathlib.Path(tempfile.mkdtemp(dir="/var/tmp"))
    shared.chmod(0o755)
    try:
        (shared / "f").write_text("x")                      # owned by root on disk

        def idmapped(c):
            c["mounts"].append({"destination": "/data", "type": "bind", "source": str(shared),
                                "options": ["bind", "idmap"],
                                "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                                "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]})
            c["mounts"].append({"destination": "/plain", "type": "bind", "source": str(shared),
                                "options": ["bind"]})
        b = rt.bundle(args=["sh", "-c", "stat -c %u:%g /data/f /plain/f"], change=idmapped)
        # The mount's maps take an id on disk (as the container's 0) to the host's 1000: what a
        # container whose root is host uid 1000 would see as its own files.
        assert rt("run", "--bundle", b, "c1").stdout.split() == ["1000:1000", "0:0"]
        assert os.stat(shared / "f").st_uid == 0                # nothing chowned on the host
    finally:
        shutil.rmtree(shared)


def on_a_terminal(rt, *args, typed=b""):
    """Run ``minirun-runc ARGS`` on a pty of its own (typing *typed* once a shell prompts);
    (exit code, everything it wrote)."""
    import pty
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp("minirun-runc", ["minirun-runc", "--root", rt.root, *map(str, args)])
        finally:
            os._exit(127)
    out = b""
    end = time.monotonic() + 30
    while typed and b"# " not in out and time.monotonic() < end:    # the shell's prompt
        out += os.read(fd, 1024)
    os.write(fd, typed)
    while time.monotonic() < end:
        try:
            chunk = os.read(fd, 1024)
        except OSError:                                       # EIO: the terminal closed
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


def test_a_foreground_run_relays_the_terminal_itself(rt):
    """``minirun-runc spec`` asks for a terminal: ``run`` without --console-socket is it."""
    b = rt.bundle(args=["sh"], change=lambda c: c["process"].update(terminal=True))
    code, out = on_a_terminal(rt, "run", "--bundle", b, "c1", typed=b"tty; exit 5\n")
    assert code == 5 and b"/dev/pts/0" in out, out
    assert rt("list", "-q").stdout == ""


def test_exec_t_without_a_console_socket_is_its_terminal(rt):
    b = rt.bundle(args=["sleep", "60"])
    rt("run", "-d", "--bundle", b, "c1")
    code, out = on_a_terminal(rt, "exec", "-t", "c1", "sh", "-c", "tty; exit 6")
    assert code == 6 and b"/dev/pts/" in out, out
    rt("delete", "--force", "c1")


def test_run_loads_none_of_what_a_start_keeps_off(rt):
    """An engine starts minirun-runc several times per container (create, start, state,
    delete): its run path keeps off what ``minirun run``'s does (tests/test_run.py), the
    Python layers over re, json, socket and signal among them."""
    from test_run import COMMAND, NOT_ON_THE_RUN_PATH
    b = rt.bundle()
    script = os.path.join(os.path.dirname(COMMAND), "minirun-runc")   # as pip installs it
    p = subprocess.run([sys.executable, "-X", "importtime", script, "--root", rt.root, "run",
                        "--bundle", b, "c1"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    imported = {l.rsplit("|", 1)[-1].strip() for l in p.stderr.splitlines() if "|" in l}
    assert "minirun.oci.lifecycle" in imported
    assert not {m for m in imported if m.split(".")[0] in NOT_ON_THE_RUN_PATH}
    assert not {"functools", "collections"} & imported     # no database: no _sqlite3 to load them
