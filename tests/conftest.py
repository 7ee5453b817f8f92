"""Shared fixtures: a throw-away state root per test, the busybox image built once,
a CLI runner, and a leak check after every test."""
import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Liveness checks ("seen within 3 s") scale by this on a slow machine (a TCG guest sets it).
SLACK = float(os.environ.get("MINIRUN_TEST_SLACK") or 1)
sys.path.insert(0, os.path.join(REPO, "images", "busybox"))


def pytest_collection_modifyitems(items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def no_leftovers_of_removed_roots():
    """Bridges and tables of state roots deleted earlier (pytest removes old tmp dirs) go
    before the first test, so no test's leak check sees them vanish."""
    if os.geteuid() == 0:
        from minirun.network import orphans
        from minirun.runtime import cgroups
        orphans.sweep()
        cgroups.sweep()


@pytest.fixture(scope="session")
def busybox_oci(tmp_path_factory):
    """The bundled busybox image as an OCI layout, built once per session."""
    import build
    out = str(tmp_path_factory.mktemp("busybox") / "oci")
    build.build("/bin/busybox", out)
    return out


@pytest.fixture
def state_root(tmp_path):
    root = tmp_path / "state"
    return str(root)


class Minirun:
    """Runs the real ``minirun`` command against one state root."""

    def __init__(self, root):
        self.root = root

    def argv(self, *args):
        return [sys.executable, "-m", "minirun", *map(str, args)]

    def env(self, extra=None):
        return {**os.environ, "MINIRUN_ROOT": self.root, **(extra or {})}

    def __call__(self, *args, check=True, input=None, env=None, timeout=120):
        p = subprocess.run(self.argv(*args), env=self.env(env), input=input,
                           capture_output=True, text=True, timeout=timeout * SLACK)
        if check and p.returncode != 0:
            raise AssertionError(f"minirun {' '.join(map(str, args))} exited {p.returncode}:\n"
                                 f"{p.stdout}{p.stderr}")
        return p

    def store(self):
        from minirun.image.store import ImageStore
        return ImageStore(self.root)

    def containers(self):
        from minirun.engine.containers import ContainerStore
        return ContainerStore(self.root)

    def networking(self):
        from minirun.engine.networking import Networking
        return Networking(self.root, self.containers())

    def reap_orphans(self):
        """What the next minirun command does after a minirun was killed."""
        from minirun.engine.cleanup import reap_orphans
        net = self.networking()
        reap_orphans(net.containers, net)

    def run(self, *args, **kw):
        """``minirun run --rm … busybox``-style helper: args go after ``run``."""
        return self("run", *args, check=kw.pop("check", False), **kw)


@pytest.fixture
def minirun(state_root):
    m = Minirun(state_root)
    yield m
    if os.path.exists(os.path.join(state_root, "state.db")):
        try:
            _no_container_network_left(m)
        except BaseException:          # a failed check must not leave its bridges to others
            m("network", "reset", check=False)
            raise
        m("network", "reset")          # bridges and NAT are kept until then, as docker0 is


def _no_container_network_left(m):
    """What each container adds (veth, published-port rules) must go with it; a network's own
    bridge and rules stay until ``network reset``, which the fixture then runs."""
    from minirun.network.store import NetworkStore
    store = NetworkStore(m.root)
    assert not store.wired() and not store.all_ports()
    for _ in range(int(500 * SLACK)):  # the kernel deletes an exited container's veth pair,
        veths = {l for l in network_state()["links"] if l.startswith("mrv")}
        if not veths:            # with its namespace, a moment after the exit
            break
        time.sleep(0.01)
    assert not veths, f"veth left behind: {veths}"
    names = store.names
    for rules in (_lines("nft", "list", "table", "inet", names.table),
                  _lines("iptables", "-w", "-t", "nat", "-S", f"{names.chain}-DNAT")):
        published = [r for r in rules if "dnat" in r.lower() and (" : " in r or "-A " in r)]
        assert not published, f"published-port rules left behind: {published}"


@pytest.fixture
def loaded(minirun, busybox_oci):
    """A state root with busybox:latest loaded."""
    minirun("load", "-i", busybox_oci)
    return minirun


def _mounts():
    with open("/proc/self/mountinfo") as f:
        return {" ".join(l.split()[3:5]) for l in f}


def _cgroups():
    """Container cgroups under minirun's parent in every hierarchy (v1 and v2)."""
    return set(glob.glob("/sys/fs/cgroup/*/minirun/*/") + glob.glob("/sys/fs/cgroup/minirun/*/"))


def _lines(*argv):
    try:
        res = subprocess.run(argv, capture_output=True, text=True)
    except OSError as e:
        # Once in ~3 full runs the fork for this (every test's leak check runs six) failed
        # with EBADF: a pipe subprocess had just made was closed under it, most likely by a
        # thread an earlier test left in this process. It is this process's own affair, not
        # the host's state under test: say so and look again once.
        import warnings
        warnings.warn(f"{argv[0]}: {e}; trying once more")
        res = subprocess.run(argv, capture_output=True, text=True)
    return set(res.stdout.splitlines()) if res.returncode == 0 else set()




COUNTER = re.compile(r"counter packets \d+ bytes \d+")


def network_state():
    """The host's links, addresses and firewall rules (nftables and iptables)."""
    links = {l.split(":")[1].split("@")[0].strip() for l in _lines("ip", "-o", "link")}
    addrs = {" ".join(l.split()[1:4]) for l in _lines("ip", "-o", "addr")}
    # (iptables-nft's built-in tables count too: minirun deletes those it made)
    # without packet counters: a packet through a chain during a test changes no rule
    nft = {COUNTER.sub("counter", l) for l in _lines("nft", "list", "ruleset") if l.strip()}
    rules = nft | _lines("iptables", "-w", "-S") | _lines("iptables", "-w", "-t", "nat", "-S")
    return {"links": links, "addresses": addrs, "rules": rules}


@pytest.fixture(autouse=True)
def no_leaks():
    """Fails the test that leaves a mount, a cgroup (and so a process), a link, an
    address or a firewall rule behind."""
    before = (_mounts(), _cgroups(), network_state())
    yield
    leaked_mounts = _mounts() - before[0]
    leaked_cgroups = _cgroups() - before[1]
    assert not leaked_mounts, f"test leaked mounts: {sorted(leaked_mounts)}"
    assert not leaked_cgroups, f"test leaked cgroups: {sorted(leaked_cgroups)}"
    after = network_state()
    for kind, items in after.items():
        assert items == before[2][kind], \
            f"test changed the host's {kind}: +{sorted(items - before[2][kind])} " \
            f"-{sorted(before[2][kind] - items)}"


# -- minirund ------------------------------------------------------------------------
class Daemon:
    """A minirund of the test's own: its own state root and socket."""

    def __init__(self, minirun, tmp_path):
        self.minirun = minirun
        self.sock = str(tmp_path / "minirund.sock")
        self.log = str(tmp_path / "minirund.log")
        self.proc = None

    def start(self, env=None):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "minirun", "daemon", "-H", "unix://" + self.sock,
             "--log-file", self.log], env=self.minirun.env(env))
        for _ in range(200):
            if os.path.exists(self.sock):
                try:
                    with socket.socket(socket.AF_UNIX) as s:
                        s.connect(self.sock)
                    return self
                except OSError:
                    pass
            if self.proc.poll() is not None:
                raise AssertionError(f"minirund exited: {open(self.log).read()}")
            time.sleep(0.05)
        raise AssertionError("minirund did not start")

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        self.proc.wait(20)

    def cli(self, *args, check=True, **kw):
        return self.minirun(*args, check=check, env={"MINIRUN_HOST": "unix://" + self.sock}, **kw)

    def client(self):
        import docker
        return docker.DockerClient(base_url="unix://" + self.sock, timeout=30 * SLACK)


@pytest.fixture
def daemon(loaded, tmp_path):
    d = Daemon(loaded, tmp_path).start()
    try:
        yield d
    finally:
        if d.proc.poll() is None:
            ids = d.cli("ps", "-aq", check=False).stdout.split()
            if ids:
                d.cli("rm", "-f", *ids, check=False)
            d.stop()
        else:                                  # a test killed it: clean up as rm -f would
            d.start()
            ids = d.cli("ps", "-aq", check=False).stdout.split()
            if ids:
                d.cli("rm", "-f", *ids, check=False)
            d.stop()


def wait_for(predicate, timeout=10):
    end = time.monotonic() + timeout * SLACK
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def remove_new_cgroups(name, before):
    """rmdir what another engine (podman's libpod_parent, dockerd's docker) left of the
    cgroups named *name* that did not exist *before* (a set of paths): empty ones only,
    children first — never a cgroup this test run did not make."""
    for top in set(glob.glob(f"/sys/fs/cgroup/*/{name}")) - before:
        for folder, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(folder)
            except OSError:
                pass


def stop(proc, seconds=30):
    """A daemon a test started: asked to stop, killed after *seconds*."""
    proc.terminate()
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def removed_if_new(path, tree=False):
    """A directory an engine under test makes outside the test's own (a runtime's default
    state root): removed afterwards when it was not there before — empty, unless *tree*."""
    was_there = os.path.exists(path)
    try:
        yield
    finally:
        if not was_there and os.path.exists(path):
            if tree:
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.rmdir(path)            # not empty: a container of the test was left


@contextlib.contextmanager
def scratch_containerd(d):
    """A containerd with its state under *d*; yields its socket's path. containerd's runc shim
    keeps its sockets, FIFOs and runc's state under /run/containerd whatever the daemon's
    state dir says: made by this test's containerd, that goes with it too."""
    (d / "ctd.toml").write_text(f'version = 2\nroot = "{d}/ctd-root"\nstate = "{d}/ctd-state"\n'
                                f'[grpc]\n  address = "{d}/containerd.sock"\n')
    with removed_if_new("/run/containerd", tree=True):
        proc = subprocess.Popen(["containerd", "--config", str(d / "ctd.toml")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert wait_for(lambda: (d / "containerd.sock").exists()), "containerd did not start"
            yield str(d / "containerd.sock")
        finally:
            stop(proc)
            subprocess.run(["umount", "-R", str(d)], capture_output=True)
