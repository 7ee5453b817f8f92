"""The engines people use run busybox through minirun-runc, as they run it through runc.

- containerd: ``ctr run --runc-binary minirun-runc`` goes through containerd's
  io.containerd.runc.v2 shim (the path Kubernetes' CRI takes): with and without -t, exec,
  kill, delete;
- podman: ``podman --runtime minirun-runc`` (conmon calls it; cgroupfs, as this machine's
  hybrid cgroups need);
- Docker: a dockerd with ``--add-runtime minirun=…`` and ``docker run --runtime minirun``.

containerd and dockerd are started here with all their state in a temporary directory (no
bridge, no iptables), as tests/test_docker_interop.py does; podman gets a scratch
storage.conf and containers.conf. The image is minirun's busybox, saved and imported.
"""
import glob
import os
import shutil
import subprocess

import pytest
from conftest import removed_if_new, remove_new_cgroups, scratch_containerd, stop, wait_for

pytestmark = pytest.mark.root
RUNC = shutil.which("minirun-runc")
DOCKER = "/usr/bin/docker"


@pytest.fixture(scope="module")
def image(tmp_path_factory, busybox_oci):
    """busybox as a docker-archive tar (what ctr, podman and docker all import)."""
    d = tmp_path_factory.mktemp("image")
    env = {**os.environ, "MINIRUN_ROOT": str(d / "root")}
    subprocess.run(["minirun", "load", "-i", busybox_oci], env=env, check=True,
                   capture_output=True)
    subprocess.run(["minirun", "save", "-o", str(d / "busybox.tar"), "busybox"], env=env,
                   check=True, capture_output=True)
    return str(d / "busybox.tar")


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    if not (shutil.which("containerd") and shutil.which("ctr")):
        pytest.skip("containerd not installed")
    d = tmp_path_factory.mktemp("ctd")
    cgroups = set(glob.glob("/sys/fs/cgroup/*/default")) | set(glob.glob("/sys/fs/cgroup/*/docker"))
    try:
        with scratch_containerd(d) as sock:
            yield Containerd(d, sock)
    finally:
        remove_new_cgroups("default", cgroups)
        remove_new_cgroups("docker", cgroups)


@pytest.fixture
def default_state_root():
    """conmon names no --root: minirun-runc makes its default state root, as runc /run/runc.
    Gone after the test when it made it (empty: its containers are deleted)."""
    with removed_if_new("/run/minirun-runc"):
        yield


class Containerd:
    def __init__(self, d, sock):
        self.dir = d
        self.sock = sock


def ctr(containerd, *args, check=True, timeout=120):
    p = subprocess.run(["ctr", "-a", containerd.sock, *args], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise AssertionError(f"ctr {' '.join(args)}: {p.returncode} {p.stdout}{p.stderr}")
    return p


def test_containerd_runs_busybox_through_its_runc_shim(containerd, image):
    ctr(containerd, "images", "import", image)
    ref = "docker.io/library/busybox:latest"
    p = ctr(containerd, "run", "--rm", "--runc-binary", RUNC, ref, "c1",
            "sh", "-c", "echo hello from ctr; cat /proc/self/cgroup")
    assert p.stdout.startswith("hello from ctr\n")
    assert "/default/c1" in p.stdout                 # the shim's cgroupsPath, made by us
    p = ctr(containerd, "run", "--rm", "--runc-binary", RUNC, ref, "c2", "sh", "-c", "exit 5",
            check=False)
    assert p.returncode == 5
    # a terminal: the shim's console socket gets the pty master
    t = subprocess.run(["script", "-qec", f"ctr -a {containerd.sock} run --rm -t "
                        f"--runc-binary {RUNC} {ref} c3 sh -c 'tty; echo tty-ok'", "/dev/null"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert "/dev/pts/0" in t.stdout and "tty-ok" in t.stdout, t.stdout + t.stderr
    # detached: exec, ps, pause, kill, delete
    ctr(containerd, "run", "-d", "--runc-binary", RUNC, ref, "c4", "sleep", "300")
    try:
        assert "RUNNING" in ctr(containerd, "task", "ls").stdout
        p = ctr(containerd, "task", "exec", "--exec-id", "e1", "c4", "sh", "-c",
                "echo exec-ok; exit 3", check=False)
        assert (p.returncode, p.stdout) == (3, "exec-ok\n")
        pid = ctr(containerd, "task", "ps", "c4").stdout.split()[2]
        assert os.path.exists(f"/proc/{pid}")
        ctr(containerd, "task", "pause", "c4")
        assert "PAUSED" in ctr(containerd, "task", "ls").stdout
        ctr(containerd, "task", "resume", "c4")
        ctr(containerd, "task", "kill", "-s", "SIGKILL", "c4")
        assert wait_for(lambda: "STOPPED" in ctr(containerd, "task", "ls").stdout, 20)
        ctr(containerd, "task", "delete", "c4")
    finally:
        ctr(containerd, "task", "delete", "-f", "c4", check=False)
        ctr(containerd, "containers", "rm", "c4", check=False)
    assert ctr(containerd, "containers", "ls", "-q").stdout == ""
    assert not os.path.exists(f"/proc/{pid}")


@pytest.mark.skipif(not shutil.which("podman"), reason="podman not installed")
def test_podman_runs_busybox_with_minirun_runc(image, tmp_path, default_state_root):
    (tmp_path / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\nrunroot = "{tmp_path}/run"\ngraphroot = "{tmp_path}/g"\n')
    (tmp_path / "containers.conf").write_text(      # as ../shared/peers/00_env.sh writes it
        '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
        '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        f'events_logfile_path = "{tmp_path}/ev.log"\n')
    env = dict(os.environ, CONTAINERS_STORAGE_CONF=str(tmp_path / "storage.conf"),
               CONTAINERS_CONF=str(tmp_path / "containers.conf"))

    def podman(*a, check=True):
        p = subprocess.run(["podman", "--runtime", RUNC, *a], env=env, capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"podman {' '.join(a)}: {p.returncode} {p.stdout}{p.stderr}")
        return p
    cgroups = set(glob.glob("/sys/fs/cgroup/*/libpod_parent"))
    try:
        podman("load", "-i", image)
        p = podman("run", "--rm", "--network", "none", "busybox", "echo", "hello from podman")
        assert p.stdout == "hello from podman\n"
        assert podman("run", "--rm", "--network", "none", "busybox", "sh", "-c", "exit 6",
                      check=False).returncode == 6
        podman("run", "-d", "--name", "p1", "--network", "none", "busybox", "sleep", "300")
        pid = podman("inspect", "-f", "{{.State.Pid}}", "p1").stdout.strip()
        with open(f"/proc/{pid}/cgroup") as f:                  # as the host sees it
            assert "libpod_parent/libpod-" in f.read()           # conmon's cgroupsPath
        assert podman("exec", "p1", "echo", "exec-ok").stdout == "exec-ok\n"
        podman("pause", "p1")
        assert "paused" in podman("inspect", "-f", "{{.State.Status}}", "p1").stdout
        podman("unpause", "p1")
        podman("rm", "-f", "-t", "0", "p1")
        assert podman("ps", "-aq").stdout == ""
    finally:
        subprocess.run(["podman", "system", "reset", "-f"], env=env, capture_output=True)
        remove_new_cgroups("libpod_parent", cgroups)


@pytest.mark.skipif(not (shutil.which("dockerd") and os.path.exists(DOCKER)),
                    reason="docker.io not installed")
def test_dockerd_runs_busybox_with_runtime_minirun(containerd, image):
    d, sock = containerd.dir, containerd.sock
    host = f"unix://{d}/docker.sock"
    proc = subprocess.Popen(
        ["dockerd", "--containerd", sock, "-H", host, "--data-root", f"{d}/data",
         "--exec-root", f"{d}/exec", "--pidfile", f"{d}/dockerd.pid", "--bridge=none",
         "--iptables=false", "--ip6tables=false", "--exec-opt", "native.cgroupdriver=cgroupfs",
         "--add-runtime", f"minirun={RUNC}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def docker(*a, check=True):
        p = subprocess.run([DOCKER, "-H", host, *a], capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(a)}: {p.returncode} {p.stdout}{p.stderr}")
        return p
    try:
        assert wait_for(lambda: docker("info", check=False).returncode == 0, 40)
        docker("load", "-i", image)
        p = docker("run", "--rm", "--runtime", "minirun", "--network", "none", "busybox",
                   "sh", "-c", "echo hello from docker; cat /proc/self/cgroup", check=False)
        if p.returncode != 0 and "apparmor" in p.stderr.lower():
            pytest.skip(f"this host's dockerd runs no container: {p.stderr.strip()}")
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith("hello from docker\n") and "/docker/" in p.stdout
        assert docker("run", "--rm", "--runtime", "minirun", "--network", "none", "busybox",
                      "sh", "-c", "exit 9", check=False).returncode == 9
        docker("run", "-d", "--name", "d1", "--runtime", "minirun", "--network", "none",
               "busybox", "sleep", "300")
        assert docker("inspect", "-f", "{{.HostConfig.Runtime}}", "d1").stdout == "minirun\n"
        assert docker("exec", "d1", "echo", "exec-ok").stdout == "exec-ok\n"
        docker("rm", "-f", "d1")
    finally:
        stop(proc)
