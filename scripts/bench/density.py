"""Benchmark: N detached containers through minirund vs crun (see scripts/bench/density)."""
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (REPO, bundle_copy, load_busybox, prepare_bundle,  # noqa: E402
                    remove_bench_cgroups, used_kb)

WORK = "/var/tmp/minirun-bench/density"
ROOT = os.path.join(WORK, "minirun-root")
SOCK = os.path.join(WORK, "minirund.sock")


def settle(seconds):
    time.sleep(seconds)
    return used_kb()


def measure(name, start_one, remove_all, n):
    """Start n containers one after another, sample memory, remove them all."""
    before = settle(2)
    t = time.perf_counter()
    for i in range(n):
        start_one(i)
    start_s = time.perf_counter() - t
    running = settle(5)
    t = time.perf_counter()
    remove_all()
    rm_s = time.perf_counter() - t
    after = settle(3)
    return {"runtime": name, "n": n, "start_ms": start_s * 1000 / n, "rm_ms": rm_s * 1000 / n,
            "kb": (running - before) / n, "kept_kb": (after - before) / n, "total_s": start_s}


def minirund(n):
    _, env = load_busybox(ROOT)
    daemon = subprocess.Popen([os.path.join(REPO, ".venv", "bin", "minirun"), "daemon", "-H",
                               "unix://" + SOCK, "--log-file", os.path.join(WORK, "minirund.log")],
                              env=env)
    try:
        sys.path.insert(0, REPO)
        from minirun.cli.client import Client
        for _ in range(100):
            if os.path.exists(SOCK):
                break
            time.sleep(0.1)
        client = Client("unix://" + SOCK)
        body = {"Image": "busybox", "Cmd": ["sleep", "3600"], "HostConfig": {"NetworkMode": "none"}}

        def start_one(i):
            cid = client.call("POST", "/containers/create", body)["Id"]
            client.call("POST", f"/containers/{cid}/start")

        def remove_all():
            for c in client.call("GET", "/containers/json", all=1):
                client.call("DELETE", f"/containers/{c['Id']}", force=1)
        return measure("minirund (API)", start_one, remove_all, n)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)


def crun(n):
    template = prepare_bundle(ROOT, os.path.join(WORK, "bundle"), args=("sleep", "3600"))
    state = os.path.join(WORK, "crun-state")
    bundles = [bundle_copy(template, os.path.join(WORK, "b", f"d{i}"), f"d{i}") for i in range(n)]

    def start_one(i):
        subprocess.run(["crun", "--root", state, "run", "-d", "-b", bundles[i], f"d{i}"],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def remove_all():
        for i in range(n):
            subprocess.run(["crun", "--root", state, "delete", "-f", f"d{i}"], check=True)
    try:
        return measure("crun", start_one, remove_all, n)
    finally:
        shutil.rmtree(os.path.join(WORK, "b"), ignore_errors=True)


def cli_runtime(name, argv_run, argv_rm_all, env=None):
    """podman or docker through their own CLIs (as ../shared/peers/04_density.sh measures)."""
    def start_one(i):
        subprocess.run(argv_run, check=True, env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL)

    def remove_all():
        ids = subprocess.run(argv_rm_all[0], check=True, env=env, capture_output=True,
                             text=True).stdout.split()
        if ids:
            subprocess.run(argv_rm_all[1] + ids, check=True, env=env, stdout=subprocess.DEVNULL)
    return lambda n: measure(name, start_one, remove_all, n)


def peers():
    """podman and docker rows, where ../shared/peers has set them up (00_env.sh, 02_start_docker.sh)."""
    out = []
    conf = "/tmp/peers/podman/containers.conf"
    if shutil.which("podman") and os.path.exists(conf):
        env = dict(os.environ, CONTAINERS_CONF=conf,
                   CONTAINERS_STORAGE_CONF="/tmp/peers/podman/storage.conf")
        out.append(cli_runtime("podman", ["podman", "run", "-d", "--network", "none",
                                          "localhost/busybox", "sleep", "3600"],
                               (["podman", "ps", "-aq"], ["podman", "rm", "-f", "-t", "0"]), env))
    docker = "/usr/bin/docker"
    if os.path.exists(docker) and subprocess.run([docker, "info"], capture_output=True).returncode == 0:
        out.append(cli_runtime("docker", [docker, "run", "-d", "--network", "none", "busybox",
                                          "sleep", "3600"],
                               ([docker, "ps", "-aq"], [docker, "rm", "-f"])))
    return out


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    os.makedirs(WORK, exist_ok=True)
    results = [minirund(n)]
    if shutil.which("crun") and shutil.which("runc"):
        results.append(crun(n))
    results += [run(n) for run in peers()]
    print(f"density: {n} detached `sleep 3600` containers, started one after another")
    print(f"{'runtime':16} {'start/ctr':>10} {'rm/ctr':>8} {'mem/ctr':>9} {'not returned':>13}")
    for r in results:
        print(f"{r['runtime']:16} {r['start_ms']:8.1f}ms {r['rm_ms']:6.1f}ms {r['kb']:7.0f}kB"
              f" {r['kept_kb']:11.0f}kB")


if __name__ == "__main__":
    try:
        main()
    finally:
        remove_bench_cgroups()
