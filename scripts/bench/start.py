"""Benchmark: container start latency, minirun vs runc/crun/podman/docker, without a network and
with each one's default bridge network (see scripts/bench/start); minirun-runc runs the very
bundle runc and crun run."""
import os
import shutil
import statistics
import subprocess
import sys
import time

WORK = "/var/tmp/minirun-bench/start"
ROOT = os.path.join(WORK, "minirun-root")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import load_busybox, prepare_bundle, remove_bench_cgroups  # noqa: E402


def prepare_minirun():
    minirun, env = load_busybox(ROOT)
    return [minirun, "run", "--rm"], env


def variants():
    """name -> (argv for round i, env); "…/bridge" rows use each runtime's default network."""
    out = {}
    cmd, env = prepare_minirun()
    out["minirun"] = (lambda i: cmd + ["--network", "none", "busybox", "true"], env)
    out["minirun/bridge"] = (lambda i: cmd + ["busybox", "true"], env)
    if shutil.which("runc"):
        bundle = prepare_bundle(ROOT, os.path.join(WORK, "bundle"))
        ours = os.path.join(REPO, ".venv", "bin", "minirun-runc")   # the same bundle, as runc
        for rt, binary in (("runc", "runc"), ("crun", "crun"), ("minirun-runc", ours)):
            if shutil.which(binary):
                state = os.path.join(WORK, rt + "-state")
                out[rt] = (lambda i, b=binary, state=state:
                           [b, "--root", state, "run", "-b", bundle, f"bench{i}"], None)
    conf = os.path.join("/tmp/peers/podman/containers.conf")
    if shutil.which("podman") and os.path.exists(conf):   # set up by ../shared/peers/00_env.sh
        penv = dict(os.environ, CONTAINERS_CONF=conf,
                    CONTAINERS_STORAGE_CONF="/tmp/peers/podman/storage.conf")
        out["podman"] = (lambda i: ["podman", "run", "--rm", "--network", "none",
                                    "localhost/busybox", "true"], penv)
        out["podman/bridge"] = (lambda i: ["podman", "run", "--rm", "localhost/busybox", "true"],
                                penv)
    if os.path.exists("/usr/bin/docker") and subprocess.run(
            ["/usr/bin/docker", "info"], capture_output=True).returncode == 0:
        out["docker"] = (lambda i: ["/usr/bin/docker", "run", "--rm", "--network", "none",
                                    "busybox", "true"], None)
        out["docker/bridge"] = (lambda i: ["/usr/bin/docker", "run", "--rm", "busybox", "true"],
                                None)
    return out


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    os.makedirs(WORK, exist_ok=True)
    runs = variants()
    names = list(runs)
    times = {n: [] for n in names}
    for r in range(rounds + 2):                      # two warm-up rounds
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            make, env = runs[n]
            argv = make(r)
            t = time.perf_counter()
            p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            dt = (time.perf_counter() - t) * 1000
            if p.returncode != 0:
                sys.exit(f"{n} failed: {p.stderr.strip()}")
            if r >= 2:
                times[n].append(dt)
    base = statistics.median(times["runc"]) if "runc" in times else None
    docker = statistics.median(times["docker/bridge"]) if "docker/bridge" in times else None
    print(f"start latency, {rounds} interleaved rounds, ms"
          + (" (in a mount namespace without the cgroup2 mount)"
             if os.environ.get("MINIRUN_BENCH_WRAPPED") else ""))
    print("rows without /bridge: --network none (runc/crun: no network namespace set-up at all)")
    print(f"{'runtime':15} {'min':>7} {'median':>7} {'p90':>7} {'max':>7} {'÷ runc':>7} "
          f"{'÷ docker/bridge':>15}")
    for n in names:
        v = sorted(times[n])
        med = statistics.median(v)
        ratio = f"{med / base:7.2f}" if base else "      -"
        vs_docker = f"{med / docker:15.2f}" if docker and n.endswith("/bridge") else " " * 14 + "-"
        print(f"{n:15} {v[0]:7.1f} {med:7.1f} {v[int(len(v) * 0.9) - 1]:7.1f} {v[-1]:7.1f} "
              f"{ratio} {vs_docker}")


def reset_network():
    """The benchmark's own state root keeps a bridge and NAT rules: remove them."""
    subprocess.run([os.path.join(REPO, ".venv", "bin", "minirun"), "network", "reset"],
                   env=dict(os.environ, MINIRUN_ROOT=ROOT), check=False)


if __name__ == "__main__":
    try:
        main()
    finally:
        reset_network()
        remove_bench_cgroups()
