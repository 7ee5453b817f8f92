"""User namespaces: the container's root is an unprivileged range of host ids, the image's
layers are shared unchanged and shown root-owned through idmapped mounts."""
import json
import os

import pytest
from conftest import wait_for

pytestmark = pytest.mark.root

RANGE = 65536


def uid_map(text):
    return [int(x) for x in text.split()[:3]]


def test_auto_maps_root_to_an_unprivileged_range(loaded, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)             # root-owned and closed, it would be closed to the container
    p = loaded.run("--rm", "--userns=auto", "-v", f"{data}:/data", "--network", "none",
                   "busybox", "sh", "-c",
                   "cat /proc/self/uid_map; id -u; stat -c %u /bin/busybox /; "
                   "touch /data/made /inside && echo wrote")
    lines = p.stdout.splitlines()
    assert p.returncode == 0, p.stderr
    inside, base, count = uid_map(lines[0])
    assert (inside, count) == (0, RANGE) and base >= 100000
    assert lines[1:4] == ["0", "0", "0"]               # root, and the layers look its own
    assert lines[4] == "wrote"
    assert os.stat(data / "made").st_uid == base         # on the host: the mapped uid
    # The shared layers are unchanged on the host: still root's, no copy per container.
    store = loaded.store()
    layer = store.layer_dirs(store.resolve("busybox"))[0]
    assert os.stat(os.path.join(layer, "bin", "busybox")).st_uid == 0


def test_two_containers_get_different_ranges_and_host_opts_out(loaded):
    run = lambda *flags: loaded.run("--rm", *flags, "--network", "none", "busybox",
                                    "cat", "/proc/self/uid_map").stdout
    a, b = uid_map(run("--userns=auto")), uid_map(run("--userns=auto"))
    assert a[1] >= 100000 and b[1] >= 100000
    host = uid_map(run("--userns=host"))
    assert host == [0, 0, 4294967295]
    assert uid_map(run()) == [0, 0, 4294967295]          # the default, without a daemon flag


def test_what_root_in_a_user_namespace_cannot_do(loaded):
    """It is root inside, nobody outside: the host's devices and kernel stay out of reach,
    and ports below 1024 still work (the sysctls Docker sets)."""
    p = loaded.run("--rm", "--userns=auto", "--cap-add", "SYS_ADMIN",
                   "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c",
                   "mknod /dev/x c 1 1 2>/dev/null && echo mknod; "
                   "mount -t tmpfs none /mnt 2>/dev/null && echo mounted; "
                   "nc -l -p 80 & sleep 0.3; kill $! && echo bound")
    assert "mknod" not in p.stdout and "mounted" not in p.stdout
    assert "bound" in p.stdout, p.stderr


def test_exec_joins_the_user_namespace(daemon):
    daemon.cli("run", "-d", "--name", "uns", "--userns=auto", "busybox", "sleep", "300")
    pid = json.loads(daemon.cli("inspect", "uns").stdout)[0]["State"]["Pid"]
    with open(f"/proc/{pid}/uid_map") as f:
        mine = f.read().split()
    p = daemon.cli("exec", "uns", "sh", "-c", "cat /proc/self/uid_map; id -u")
    assert p.stdout.split() == [*mine, "0"]
    assert json.loads(daemon.cli("inspect", "uns").stdout)[0]["HostConfig"]["UsernsMode"] == "auto"


def test_a_daemon_wide_remap(loaded, tmp_path):
    from conftest import Daemon
    d = Daemon(loaded, tmp_path)
    d.proc = None
    import subprocess
    import sys
    d.proc = subprocess.Popen([sys.executable, "-m", "minirun", "daemon", "-H",
                               "unix://" + d.sock, "--log-file", d.log, "--userns-remap",
                               "default"], env=loaded.env())
    assert wait_for(lambda: os.path.exists(d.sock))
    try:
        for name in ("r1", "r2"):
            d.cli("run", "-d", "--name", name, "busybox", "sleep", "300")
        maps = [json.loads(d.cli("inspect", n).stdout)[0]["State"]["Pid"] for n in ("r1", "r2")]
        maps = [open(f"/proc/{pid}/uid_map").read().split() for pid in maps]
        assert maps[0] == maps[1] and int(maps[0][1]) >= 100000
        d.cli("rm", "-f", "r1", "r2")
    finally:
        d.stop()
