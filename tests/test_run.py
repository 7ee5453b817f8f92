"""``minirun run``: isolation, limits and lock-down, checked from inside the container."""
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
from conftest import SLACK
from test_cgroups import running_id

pytestmark = pytest.mark.root

HERE = os.path.dirname(os.path.abspath(__file__))


def sh(loaded, script, *flags, **kw):
    return loaded.run("--rm", *flags, "busybox", "sh", "-c", script, **kw)


def out(loaded, script, *flags):
    p = sh(loaded, script, *flags)
    assert p.returncode == 0, p.stderr
    return p.stdout


# -- isolation ---------------------------------------------------------------

def test_echo_hi(loaded):
    p = loaded.run("--rm", "busybox", "echo", "hi")
    assert (p.returncode, p.stdout) == (0, "hi\n")


def test_command_is_pid_1_and_ps_shows_only_the_container(loaded):
    text = out(loaded, "echo $$; ps -o pid,comm; true")   # true: sh must not exec ps
    lines = text.splitlines()
    assert lines[0] == "1"
    pids = [l.split()[0] for l in lines[2:]]
    assert pids[0] == "1" and len(pids) == 2     # sh and ps, nothing of the host


def test_hostname_is_the_containers_and_the_hosts_is_unchanged(loaded):
    host = socket.gethostname()
    assert out(loaded, "hostname", "--hostname", "box1").strip() == "box1"
    assert out(loaded, "hostname").strip() != host
    assert socket.gethostname() == host


def test_mounts_do_not_cross_the_boundary(loaded):
    inside = out(loaded, "mkdir -p /mnt; mount -t tmpfs minirun-test-mark /mnt && "
                         "cat /proc/self/mountinfo",
                 "--cap-add", "SYS_ADMIN")
    assert "minirun-test-mark" in inside
    with open("/proc/self/mountinfo") as f:
        assert "minirun-test-mark" not in f.read()
    points = {l.split()[4] for l in inside.splitlines()}
    with open("/proc/self/mountinfo") as f:
        host_only = {l.split()[4] for l in f} - {"/", "/proc", "/sys", "/dev", "/dev/pts",
                                                 "/dev/shm", "/dev/mqueue", "/etc/hosts",
                                                 "/etc/hostname", "/etc/resolv.conf", "/mnt"}
    assert not points & host_only, points & host_only


@pytest.fixture(scope="session")
def breakout(tmp_path_factory):
    exe = tmp_path_factory.mktemp("prog") / "breakout"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(exe),
                    os.path.join(HERE, "programs", "chroot_breakout.c")], check=True)
    return str(exe)


def test_chroot_breakout_fails(loaded, breakout, tmp_path):
    marker = tmp_path / "only-on-the-host"
    marker.write_text("x")
    p = loaded.run("--rm", "-v", f"{breakout}:/breakout-prog:ro", "busybox",
                   "/breakout-prog", str(marker))
    assert p.stdout.strip() == "contained", p.stdout + p.stderr
    # The same program does escape a plain chroot: the test can fail.
    root = tmp_path / "plainroot"
    root.mkdir()
    shutil.copy(breakout, root / "prog")
    esc = subprocess.run(["chroot", str(root), "/prog", str(marker)], capture_output=True,
                         text=True)
    assert esc.stdout.strip() == "escaped"


def test_network_none_has_only_loopback(loaded):
    text = out(loaded, "ls /sys/class/net", "--network", "none")
    assert text.split() == ["lo"]


# -- lock-down -----------------------------------------------------------------

def test_default_capabilities_are_dockers_14(loaded):
    status = dict(l.split(":\t") for l in out(loaded, "cat /proc/self/status").splitlines()
                  if l.startswith("Cap"))
    assert status["CapEff"].strip() == "00000000a80425fb"
    assert status["CapPrm"].strip() == "00000000a80425fb"
    assert status["CapBnd"].strip() == "00000000a80425fb"
    assert status["CapInh"].strip() == status["CapAmb"].strip() == "0000000000000000"


def test_cap_drop_add_and_privileged(loaded):
    eff = lambda *f: out(loaded, "grep CapEff /proc/self/status", *f).split()[1]
    assert int(eff("--cap-drop", "ALL"), 16) == 0
    assert int(eff("--cap-drop", "chown"), 16) == 0xa80425fb & ~1
    assert int(eff("--cap-add", "NET_ADMIN"), 16) == 0xa80425fb | (1 << 12)
    with open("/proc/self/status") as f:     # all that minirun itself may hold
        host = next(l for l in f if l.startswith("CapBnd")).split()[1]
    assert eff("--privileged") == host


def test_mount_sethostname_and_modules_are_refused(loaded):
    p = sh(loaded, "mkdir /mnt; mount -t tmpfs x /mnt; echo mount=$?; hostname other; "
                   "echo host=$?; head -c 4096 /dev/zero > /tmp/m.ko; insmod /tmp/m.ko; echo mod=$?")
    assert "mount=0" not in p.stdout and "host=0" not in p.stdout and "mod=0" not in p.stdout
    assert "mount: permission denied" in p.stderr
    assert "sethostname: Operation not permitted" in p.stderr
    bounding = int(out(loaded, "grep CapBnd /proc/self/status").split()[1], 16)
    assert not bounding & (1 << 16)           # CAP_SYS_MODULE: no module loading, ever


def test_masked_paths_read_empty_and_proc_sys_is_read_only(loaded):
    text = out(loaded, "wc -c < /proc/keys; ls /sys/firmware | wc -l; "
                       "echo 1 > /proc/sys/kernel/domainname; echo w=$?")
    keys, firmware, write = text.split()
    assert (keys, firmware) == ("0", "0")
    assert write != "w=0"


def test_no_new_privileges(loaded):
    assert out(loaded, "grep NoNewPrivs /proc/self/status").split()[1] == "0"
    flags = ("--security-opt", "no-new-privileges")
    assert out(loaded, "grep NoNewPrivs /proc/self/status", *flags).split()[1] == "1"


def test_only_stdio_is_inherited(loaded):
    r, w = os.pipe()          # an inheritable descriptor minirun itself received
    os.set_inheritable(r, True)
    try:
        p = subprocess.run(loaded.argv("run", "--rm", "busybox", "ls", "/proc/self/fd"),
                           env=loaded.env(), capture_output=True, text=True, close_fds=False)
    finally:
        os.close(r)
        os.close(w)
    assert sorted(p.stdout.split()) == ["0", "1", "2", "3"]    # 3: ls's own directory


# -- limits ----------------------------------------------------------------------

def test_memory_hog_is_oom_killed_with_137(loaded):
    p = sh(loaded, "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived", "-m", "16m")
    assert p.returncode == 137
    assert "survived" not in p.stdout
    assert "OOM killed" in p.stderr


def test_fork_bomb_is_stopped_by_pids_limit(loaded):
    bomb = "for i in $(seq 100); do sleep 2 & done; echo survived"
    assert out(loaded, bomb).strip() == "survived"       # 100 processes are fine without
    p = sh(loaded, bomb, "--pids-limit", "20")
    assert p.returncode != 0 and "survived" not in p.stdout
    assert "can't fork" in p.stderr
    assert subprocess.run(["true"]).returncode == 0      # the host still forks


def cpu_usage_seconds(loaded, name):
    """CPU time the container has used so far, read from its cgroup on the host."""
    from minirun.runtime import cgroups
    cid = loaded.containers().get(name)["id"]
    drv = cgroups.detect()
    if drv.version == 2:
        with open(os.path.join(drv.path(cid), "cpu.stat")) as f:
            return int(f.readline().split()[1]) / 1e6
    with open(os.path.join(drv.dirs(cid)["cpuacct"], "cpuacct.usage")) as f:
        return int(f.read()) / 1e9


def test_cpu_quota_holds_a_busy_loop(loaded):
    proc = subprocess.Popen(loaded.argv("run", "--rm", "--name", "spin", "--cpus", "0.5",
                                        "busybox", "sh", "-c", "while :; do :; done"),
                            env=loaded.env())
    try:
        running_id(loaded, "spin")            # (a fixed second was too short in a TCG guest)
        time.sleep(1.0)
        start, t0 = cpu_usage_seconds(loaded, "spin"), time.monotonic()
        time.sleep(2.0)
        used = (cpu_usage_seconds(loaded, "spin") - start) / (time.monotonic() - t0)
    finally:
        proc.kill()           # minirun dies; the container dies with it (PDEATHSIG)…
        proc.wait(10)
    assert 0.3 < used < 0.65, used
    wait_gone(loaded, "spin")


def wait_gone(loaded, name):
    """After minirun was killed: clean what it left, as the next minirun command does."""
    loaded.reap_orphans()
    assert not [r for r in loaded.containers().list() if r["name"] == name]


# -- exit codes, signals, stdio ------------------------------------------------

@pytest.mark.parametrize("cmd,code", [
    (["true"], 0), (["false"], 1), (["sh", "-c", "exit 3"], 3),
    (["/etc/passwd"], 126), (["nosuchcommand"], 127), (["/no/such/path"], 127),
])
def test_exit_codes(loaded, cmd, code):
    assert loaded.run("--rm", "busybox", *cmd).returncode == code


def test_a_program_the_kernel_refuses_ends_the_started_container_saying_why(loaded, tmp_path):
    """The start is done once the command is found (as runc's): what the execve itself then
    refuses reaches the container's stderr, with Docker's exit codes."""
    garbage, script = tmp_path / "garbage", tmp_path / "script"
    garbage.write_bytes(b"\x00\x01 not a program")
    script.write_text("#!/no/such/interpreter\n")
    for f in (garbage, script):
        f.chmod(0o755)
    p = loaded.run("--rm", "-v", f"{garbage}:/bad", "busybox", "/bad")
    assert p.returncode == 126 and 'exec: "/bad": exec format error' in p.stderr, p.stderr
    p = loaded.run("--rm", "-v", f"{script}:/bad", "busybox", "/bad")
    assert p.returncode == 127 and 'exec: "/bad": no such file or directory' in p.stderr
    p = loaded.run("--rm", "busybox", "/etc")            # found, but no program: refused first
    assert p.returncode == 126 and 'exec: "/etc": permission denied' in p.stderr
    p = loaded.run("--rm", "busybox", "/etc/passwd")
    assert p.returncode == 126 and 'exec: "/etc/passwd": permission denied' in p.stderr


def test_exit_code_of_a_signal_is_128_plus_n(loaded):
    # PID 1 cannot be killed by itself; its child can, and sh reports 128+N like Docker.
    assert sh(loaded, "sh -c 'kill -9 $$'; exit $?").returncode == 137
    assert sh(loaded, "kill -TERM $$", "--init").returncode == 143


def test_sigterm_to_minirun_reaches_the_container(loaded):
    proc = subprocess.Popen(loaded.argv("run", "--rm", "busybox", "sh", "-c",
                                        "trap 'exit 42' TERM; echo ready; "
                                        "while :; do sleep 0.1; done"),
                            env=loaded.env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 42


def test_stdin_is_piped_only_with_i(loaded):
    assert loaded.run("--rm", "-i", "busybox", "cat", input="hello\n").stdout == "hello\n"
    assert loaded.run("--rm", "busybox", "cat", input="hello\n").stdout == ""


def test_tty_gives_a_real_terminal(loaded):
    import pty
    import struct
    import termios
    import fcntl
    pid, fd = pty.fork()
    if pid == 0:       # a real terminal has its size before the program starts
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        os.execve(loaded.argv()[0], loaded.argv("run", "--rm", "-it", "busybox", "sh", "-c",
                                               "trap 'echo INT; exit 7' INT; "
                                               "tty; stty size; echo $TERM; read x; "
                                               "echo got-$x; "
                                               "while :; do sleep 0.1; done"), loaded.env())
    data = b""

    def read_until(token, timeout=10):
        nonlocal data
        end = time.monotonic() + timeout
        while token not in data and time.monotonic() < end:
            try:
                data += os.read(fd, 4096)
            except OSError:
                break
    read_until(b"xterm")
    os.write(fd, b"abc\r")
    read_until(b"got-abc")
    os.write(fd, b"\x03")                        # ^C travels as a byte, becomes SIGINT inside
    read_until(b"INT")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = data.decode(errors="replace")
    assert "/dev/pts/0" in text and "33 101" in text and "got-abc" in text, text
    assert os.waitstatus_to_exitcode(status) == 7


@pytest.mark.timeout(60)
def test_a_hung_up_terminal_ends_the_container(loaded):
    """An ssh session drops: the terminal minirun runs in is gone. The container's shell
    (PID 1, which ignores SIGHUP) must not wait for ever: its terminal is hung up too, and it
    is killed after a grace period; --rm then removes it."""
    import pty
    from minirun.runtime.attach import HANGUP_GRACE
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(loaded.argv()[0], loaded.argv("run", "--rm", "-it", "--name", "hup", "busybox",
                                               "sh", "-c", "echo ready; trap '' HUP; "
                                               "while :; do sleep 0.1; done"), loaded.env())
    data = b""
    while b"ready" not in data:
        data += os.read(fd, 4096)
    os.close(fd)                                   # the terminal goes away
    start = time.monotonic()
    _, status = os.waitpid(pid, 0)
    assert time.monotonic() - start < HANGUP_GRACE + 5 * SLACK
    assert os.waitstatus_to_exitcode(status) == 137
    assert loaded.containers().list() == []        # --rm: gone, cgroups too (leak check)


# -- the process: user, env, workdir, entrypoint, volumes, read-only -------------

def test_user_env_workdir_and_entrypoint(loaded, tmp_path):
    assert out(loaded, "id -u; id -g", "-u", "nobody").split() == ["65534", "65534"]
    assert out(loaded, "id -u; id -g", "-u", "1234:55").split() == ["1234", "55"]
    assert int(out(loaded, "grep CapEff /proc/self/status", "-u", "1000").split()[1], 16) == 0
    p = loaded.run("--rm", "-u", "nosuch", "busybox", "true")
    assert p.returncode == 125 and "unable to find user nosuch" in p.stderr
    envfile = tmp_path / "env"
    envfile.write_text("# comment\nFROM_FILE=1\nA=file\n")
    text = out(loaded, 'echo "$A $FROM_FILE $HOME"; pwd', "-e", "A=flag", "--env-file",
               str(envfile), "-w", "/srv/app")
    assert text.split() == ["flag", "1", "/root", "/srv/app"]
    p = loaded.run("--rm", "--entrypoint", "echo", "busybox", "from", "entrypoint")
    assert p.stdout == "from entrypoint\n"


def test_volumes_and_read_only_root(loaded, tmp_path):
    (tmp_path / "vol").mkdir()
    (tmp_path / "vol" / "in").write_text("from host")
    v = f"{tmp_path}/vol:/data"
    assert out(loaded, "cat /data/in; echo out > /data/out", "-v", v) == "from host"
    assert (tmp_path / "vol" / "out").read_text() == "out\n"
    p = sh(loaded, "echo x > /data/nope", "-v", v + ":ro")
    assert p.returncode != 0 and not (tmp_path / "vol" / "nope").exists()
    text = out(loaded, "touch /x 2>&1; echo rc=$?; touch /tmp/t /dev/shm/ok && echo tmpfs-ok",
               "--read-only", "--tmpfs", "/tmp")
    assert "Read-only file system" in text and "tmpfs-ok" in text


def test_hosts_and_resolv_conf_are_provided(loaded):
    text = out(loaded, "cat /etc/hostname /etc/hosts /etc/resolv.conf", "--hostname", "h1")
    assert text.startswith("h1\n") and "localhost" in text


def test_trace_names_each_step(loaded):
    p = loaded.run("--rm", "--trace", "busybox", "true")
    steps = [l.split("] ", 1)[1] for l in p.stderr.splitlines() if l.startswith("[trace")]
    for expected in ("unshare(CLONE_NEWPID)", "unshare(CLONE_NEWNS", "pivot_root(., .)",
                     "umount2(., MNT_DETACH)", "mount(proc", "prctl(PR_CAPBSET_DROP)",
                     "execve("):
        assert any(s.startswith(expected) for s in steps), (expected, steps)
    # the container joins its cgroups: by itself on v1 (tasks), moved by minirun on v2
    assert any(s.startswith("write 0 > ") and " tasks files " in s or "cgroup.procs" in s
               for s in steps), steps


# -- state and cleanup -------------------------------------------------------------

def test_rm_leaves_nothing_and_without_rm_the_container_is_recorded(loaded):
    loaded.run("--rm", "busybox", "true")
    assert loaded.containers().list() == []
    assert os.listdir(os.path.join(loaded.root, "containers")) == []
    loaded.run("--name", "kept", "busybox", "sh", "-c", "exit 4")
    row = loaded.containers().get("kept")
    assert (row["state"], row["exit_code"]) == ("exited", 4)
    p = loaded.run("--name", "kept", "busybox", "true")
    assert p.returncode == 125 and "already in use" in p.stderr
    assert "used by a container" in loaded("rmi", "busybox", check=False).stderr
    loaded.containers().remove(row["id"])


@pytest.mark.parametrize("flags,cmd", [
    ([], "nosuchcommand"), (["-u", "nosuch"], "true"), (["-w", "relative"], "true"),
    (["--memory", "lots"], "true"), (["--network", "bridge9"], "true"),
    (["--cpus", "99"], "true"), (["--ulimit", "bogus=1"], "true"), (["--cap-add", "NOPE"], "true"),
    (["-v", "./relative:/x"], "true"), (["--cpuset-cpus", "0-999"], "true"),
    (["-v", "/anonymous", "-v", "named:/n", "-u", "nosuch"], "true"),
])
def test_failed_start_leaves_nothing(loaded, flags, cmd):
    p = loaded.run("--rm", *flags, "busybox", cmd)
    assert p.returncode in (125, 127), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert loaded.containers().list() == []
    assert os.listdir(os.path.join(loaded.root, "containers")) == []
    volumes = os.path.join(loaded.root, "volumes")
    assert not os.path.exists(volumes) or os.listdir(volumes) == []    # none made for it


def test_an_image_that_cannot_be_pulled_ends_in_one_clear_error_line(minirun):
    # A registry on loopback that is not there (tests send nothing beyond loopback).
    p = minirun.run("--rm", "127.0.0.1:1/nosuchimage", "true")
    assert p.returncode == 125
    lines = p.stderr.strip().splitlines()
    assert lines[0] == "Unable to find image '127.0.0.1:1/nosuchimage' locally"
    assert lines[-1].startswith("Error: cannot reach registry 127.0.0.1:1: ")
    assert [l for l in lines if l.startswith("Error")] == lines[-1:]
    assert minirun.containers().list() == []


def test_a_killed_minirun_is_cleaned_up_by_the_next_command(loaded):
    """SIGKILL to minirun: its container dies with it; the next run removes the rest."""
    proc = subprocess.Popen(loaded.argv("run", "--rm", "--name", "orphan", "busybox",
                                        "sleep", "600"), env=loaded.env())

    from minirun.runtime import cgroups
    cid = running_id(loaded, "orphan")
    proc.kill()
    proc.wait()
    procs = cgroups.detect().procs_file(cid)
    for _ in range(200):                     # PDEATHSIG: PID 1 dies, and the namespace with it
        if open(procs).read() == "":
            break
        time.sleep(0.05)
    assert open(procs).read() == ""
    assert loaded.run("--rm", "busybox", "true").returncode == 0
    assert loaded.containers().list() == []
    assert not os.path.exists(os.path.dirname(procs))
    assert os.listdir(os.path.join(loaded.root, "containers")) == []


def test_device_nodes_outside_the_allow_list_cannot_be_opened(loaded):
    """CAP_MKNOD makes the node; the device cgroup (v1 list or v2 eBPF) refuses to open it."""
    p = sh(loaded, "mknod /tmp/kmsg c 1 11 && echo made; head -c 1 /tmp/kmsg; "
                   "head -c 1 /dev/zero | wc -c")
    assert "made" in p.stdout and p.stdout.split()[-1] == "1"
    assert "Operation not permitted" in p.stderr


def test_ulimit_init_and_host_network(loaded):
    assert out(loaded, "ulimit -n; ulimit -Hn", "--ulimit", "nofile=100:200").split() == \
        ["100", "200"]
    assert "/dev/init" in out(loaded, "cat /proc/1/cmdline | tr '\\0' ' '", "--init")
    with open("/proc/net/dev") as f:
        host_links = sorted(l.split(":")[0].strip() for l in f.readlines()[2:])
    inside = out(loaded, "ls /sys/class/net", "--network", "host").split()
    # (without the host ends of containers' veths: the kernel deletes the last run's a moment
    # after its namespace, so it may be there in one list and gone from the other)
    veth = lambda name: name.startswith("mrv")
    assert sorted(n for n in inside if not veth(n)) == [n for n in host_links if not veth(n)]
    assert out(loaded, "hostname", "--network", "host").strip() == socket.gethostname()


def test_an_image_with_many_layers_runs(minirun, tmp_path):
    """Overlay's mount options fit in one page only with short layer names."""
    from minirun.image.layout import LayerBuilder, write_layout
    with open("/bin/busybox", "rb") as f:
        base = LayerBuilder().dir("bin").file("bin/busybox", f.read(), 0o755) \
            .symlink("bin/sh", "busybox").symlink("bin/cat", "busybox").tar_bytes()
    layers = [base] + [LayerBuilder().file(f"layer{i}", str(i).encode()).tar_bytes()
                       for i in range(150)]
    write_layout(str(tmp_path / "many"), layers, {"config": {"Cmd": ["sh"]}},
                 "docker.io/library/many:1")
    minirun("load", "-i", str(tmp_path / "many"))
    p = minirun.run("--rm", "many:1", "sh", "-c", "cat /layer0 /layer149")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "0149"


COMMAND = os.path.join(os.path.dirname(HERE), "bin", "minirun")   # what pip installs


def _imported(loaded, *flags):
    """The modules a start loads, run as users run it: the command script itself, whose own
    imports count too (pip's entry scripts import re)."""
    p = subprocess.run([loaded.argv()[0], "-X", "importtime", COMMAND, "run", "--rm",
                        *flags, "busybox", "true"], env=loaded.env(), capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    imported = {l.rsplit("|", 1)[-1].strip() for l in p.stderr.splitlines() if "|" in l}
    assert "minirun.engine.run" in imported
    return imported


# The foreground start's import budget (issue 16): none of these, each 1–30 ms here by
# -X importtime, and few modules in all beyond the interpreter's own. What needs one imports
# it where it is used: -p ipaddress, --userns=auto's first use subprocess, the daemon threading.
# The second line are Python layers over C modules the start path uses directly (_json,
# _socket, _signal, _sqlite3): they build enums or compile regular expressions at import,
# ~13 ms together (docs/architecture.md, "What a start imports").
NOT_ON_THE_RUN_PATH = {"click", "ipaddress", "subprocess", "threading", "heapq", "shutil",
                       "tempfile", "tarfile", "hashlib", "http", "urllib", "email", "asyncio",
                       "zstandard", "isal", "pyroute2",
                       "re", "enum", "json", "socket", "signal", "selectors", "datetime",
                       "sqlite3", "termios", "tty", "contextlib", "array"}
MODULE_BUDGET = 85          # beyond `python -c pass`'s: 82 when set (58 of them minirun's)


@pytest.mark.parametrize("network", ["none", "host"])
def test_the_run_fast_path_imports_neither_click_nor_the_network_layer(loaded, network):
    """``minirun run`` is on the clock: click costs more than a start; none and host need
    no bridge, address or firewall (only /etc/hosts' text and -p's parser)."""
    imported = _imported(loaded, "--network", network)
    assert not {m for m in imported if m.split(".")[0] in NOT_ON_THE_RUN_PATH}
    assert not {m for m in imported if m.startswith("minirun.network")} - {
        "minirun.network", "minirun.network.hosts", "minirun.network.ports"}
    p = subprocess.run([loaded.argv()[0], "-X", "importtime", "-c", "pass"],
                       capture_output=True, text=True)
    interpreter = {l.rsplit("|", 1)[-1].strip() for l in p.stderr.splitlines() if "|" in l}
    assert len(imported - interpreter) <= MODULE_BUDGET, sorted(imported - interpreter)


def test_a_run_whose_filter_is_compiled_already_loads_no_compiler(loaded):
    """The seccomp program is compiled once and cached (runtime/seccomp.py); a start after
    that only loads it, and pays nothing for minirun's compiler (linux/seccomp_bpf.py)."""
    loaded.run("--rm", "--network", "none", "busybox", "true")
    imported = _imported(loaded, "--network", "none")
    assert "minirun.linux.seccomp" in imported and "minirun.linux.seccomp_bpf" not in imported


def test_a_bridge_run_imports_the_network_layer_but_not_click(loaded):
    imported = _imported(loaded)
    assert "minirun.network.wiring" in imported
    assert not {m for m in imported if m.split(".")[0] in ("click", "pyroute2")}


def test_a_failed_step_is_named_first_then_the_kernels_reason(loaded):
    """crun's and runc's way: "mounting volumes: Invalid argument", not "Invalid argument: /x"."""
    p = loaded.run("--rm", "--tmpfs", "/x:size=bogus", "busybox", "true")
    assert p.returncode == 125
    assert p.stderr.strip() == "Error: mounting volumes: Invalid argument", p.stderr
    assert loaded.containers().list() == []                 # nothing half-made left
