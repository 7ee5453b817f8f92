"""docker load reads what minirun save writes, and minirun loads what docker save writes.

Starts its own containerd + dockerd (no bridge, no iptables: nothing on the host's
network changes) with all state in a temporary directory, when they are installed.
"""
import glob
import json
import os
import shutil
import subprocess
import time

import pytest
from conftest import remove_new_cgroups, scratch_containerd, stop

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not (shutil.which("dockerd") and shutil.which("containerd")
                                      and os.path.exists("/usr/bin/docker")),
                                 reason="docker.io and containerd not installed")]


@pytest.fixture(scope="module")
def docker(tmp_path_factory):
    d = tmp_path_factory.mktemp("docker")
    host = f"unix://{d}/docker.sock"
    with scratch_containerd(d) as containerd_sock:
        dockerd = subprocess.Popen(
            ["dockerd", "--containerd", containerd_sock, "-H", host,
             "--data-root", f"{d}/data", "--exec-root", f"{d}/exec", "--pidfile", f"{d}/pid",
             "--bridge=none", "--iptables=false", "--ip6tables=false",
             "--exec-opt", "native.cgroupdriver=cgroupfs"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def run(*a):
            return subprocess.run(["/usr/bin/docker", "-H", host, *a], check=True,
                                  capture_output=True, text=True)
        run.host = host
        try:
            for _ in range(100):
                if subprocess.run(["/usr/bin/docker", "-H", host, "info"],
                                  capture_output=True).returncode == 0:
                    break
                time.sleep(0.2)
            yield run
        finally:
            stop(dockerd)


def test_docker_loads_minirun_save_and_minirun_loads_docker_save(loaded, docker, tmp_path):
    ours = str(tmp_path / "ours.tar")
    loaded("save", "-o", ours, "busybox")
    docker("load", "-i", ours)
    iid = json.loads(loaded("image", "inspect", "busybox").stdout)[0]["Id"]
    assert docker("image", "inspect", "busybox", "--format", "{{.Id}}").stdout.strip() == iid
    docker("tag", "busybox", "example.com/from/docker:v1")
    theirs = str(tmp_path / "theirs.tar")
    docker("save", "-o", theirs, "example.com/from/docker:v1")
    other = type(loaded)(str(tmp_path / "other"))
    assert "Loaded image: example.com/from/docker:v1" in other("load", "-i", theirs).stdout
    assert json.loads(other("image", "inspect", "example.com/from/docker:v1").stdout)[0]["Id"] == iid


def test_docker_runs_an_image_minirun_built(loaded, docker, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text('FROM busybox\nRUN rm /bin/ls && echo built > /x\n'
                                    'CMD ["cat", "/x"]\n')
    loaded("build", "-t", "built:1", str(ctx))
    ours = str(tmp_path / "built.tar")
    loaded("save", "-o", ours, "built:1")
    docker("load", "-i", ours)
    iid = json.loads(loaded("image", "inspect", "built:1").stdout)[0]["Id"]
    assert docker("image", "inspect", "built:1", "--format", "{{.Id}}").stdout.strip() == iid
    cgroups = set(glob.glob("/sys/fs/cgroup/*/docker"))
    run = lambda image, *cmd: subprocess.run(["/usr/bin/docker", "-H", docker.host, "run",
                                              "--rm", "--network", "none", image, *cmd],
                                             capture_output=True, text=True)
    try:
        base = str(tmp_path / "busybox.tar")              # can this dockerd run anything?
        loaded("save", "-o", base, "busybox")
        docker("load", "-i", base)
        probe = run("busybox", "true")
        if probe.returncode != 0:                          # (a guest without apparmor_parser)
            pytest.skip(f"this dockerd runs no container: {probe.stderr.strip()[:200]}")
        p = run("built:1", "sh", "-c", "cat /x; test -e /bin/ls || echo no-ls")
    finally:
        remove_new_cgroups("docker", cgroups)
    assert (p.returncode, p.stdout) == (0, "built\nno-ls\n"), p.stderr
