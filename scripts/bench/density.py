"""Benchmark: N detached containers through minirund vs crun (see scripts/bench/density)."""
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (BREAKDOWN, REPO, bundle_copy, load_busybox, memory_kb,  # noqa: E402
                    prepare_bundle, remove_bench_cgroups)

WORK = "/var/tmp/minirun-bench/density"
ROOT = os.path.join(WORK, "minirun-root")
SOCK = os.path.join(WORK, "minirund.sock")


STABLE_KB = 1024      # "used" moving less than this in a second: the kernel is done freeing


def settle(seconds, limit=60):
    """Memory after *seconds*, and after what is still being freed is freed: the kernel tears
    down a removed container's network namespace and cgroups in the background, for seconds
    after 1000 removals, and a row measured from a baseline still falling looks cheaper than
    it is."""
    time.sleep(seconds)
    now = memory_kb()
    for _ in range(limit):
        time.sleep(1)
        now, before = memory_kb(), now
        if abs(now["used"] - before["used"]) < STABLE_KB:
            break
    return now


def rss_kb(pid):
    """Resident memory of *pid* and its children (minirund and its fork server, not the
    containers: those are the fork server's children)."""
    total = 0
    for p in [pid] + [int(c) for t in os.listdir(f"/proc/{pid}/task")
                      for c in open(f"/proc/{pid}/task/{t}/children").read().split()]:
        with open(f"/proc/{p}/status") as f:
            total += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return total


def measure(name, start_one, remove_all, n, own=None):
    """Start n containers one after another, sample memory, remove them all. *own()*: the
    engine's own resident memory (minirund's), apart from the containers'."""
    before = settle(2)
    own_before = own() if own else 0
    t = time.perf_counter()
    for i in range(n):
        start_one(i)
    start_s = time.perf_counter() - t
    running = settle(5)
    own_running = own() if own else 0
    t = time.perf_counter()
    remove_all()
    rm_s = time.perf_counter() - t
    after = settle(3)
    return {"runtime": name, "n": n, "start_ms": start_s * 1000 / n, "rm_ms": rm_s * 1000 / n,
            "kb": (running["used"] - before["used"]) / n,
            "kept_kb": (after["used"] - before["used"]) / n, "total_s": start_s,
            "parts": {k: (running[k] - before[k]) / n for k in BREAKDOWN},
            "own_kb": (own_running - own_before) / n if own else None}


def minirund(n, seccomp=True):
    """Through the API, as a client would; without *seccomp*, with seccomp=unconfined: the
    share of Docker's filter (crun's bundle, runc's default spec, has none)."""
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
        body = {"Image": "busybox", "Cmd": ["sleep", "3600"], "HostConfig": {
            "NetworkMode": "none", "SecurityOpt": [] if seccomp else ["seccomp=unconfined"]}}

        def start_one(i):
            cid = client.call("POST", "/containers/create", body)["Id"]
            client.call("POST", f"/containers/{cid}/start")

        def remove_all():
            for c in client.call("GET", "/containers/json", all=1):
                client.call("DELETE", f"/containers/{c['Id']}", force=1)
        return measure("minirund (API)" if seccomp else "… no seccomp", start_one,
                       remove_all, n, own=lambda: rss_kb(daemon.pid))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        # the daemon made its default bridge (and NAT rules) in this state root
        subprocess.run([os.path.join(REPO, ".venv", "bin", "minirun"), "network", "reset"],
                       env=env, check=False)


def crun(n, seccomp=False):
    """crun of runc's default bundle (no seccomp filter); with *seccomp*, Docker's default
    profile as it applies to Docker's default capabilities: the filter minirun loads."""
    profile = None
    if seccomp:
        sys.path.insert(0, REPO)
        from minirun.runtime.seccomp import as_oci
        from minirun.runtime.seccomp_default import PROFILE
        from minirun.runtime.spec import DEFAULT_CAPS
        profile = as_oci(PROFILE, DEFAULT_CAPS)
    template = prepare_bundle(ROOT, os.path.join(WORK, "bundle"), args=("sleep", "3600"),
                              seccomp=profile)
    state = os.path.join(WORK, "crun-state")
    bundles = [bundle_copy(template, os.path.join(WORK, "b", f"d{i}"), f"d{i}") for i in range(n)]

    def start_one(i):
        subprocess.run(["crun", "--root", state, "run", "-d", "-b", bundles[i], f"d{i}"],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def remove_all():
        for i in range(n):
            subprocess.run(["crun", "--root", state, "delete", "-f", f"d{i}"], check=True)
    try:
        return measure("crun + seccomp" if seccomp else "crun", start_one, remove_all, n)
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


def average(a, b):
    """One row from two measurements of it."""
    mean = lambda x, y: None if x is None else (x + y) / 2
    return dict(a, **{k: mean(a[k], b[k]) for k in ("start_ms", "rm_ms", "kb", "kept_kb",
                                                    "total_s", "own_kb")},
                parts={k: mean(a["parts"][k], b["parts"][k]) for k in BREAKDOWN})


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    os.makedirs(WORK, exist_ok=True)
    rows = [minirund, lambda n: minirund(n, seccomp=False)]
    if shutil.which("crun") and shutil.which("runc"):
        rows += [crun, lambda n: crun(n, seccomp=True)]
    # Each row twice, in order and then reversed, and the two averaged: whatever drifts over
    # the run (the machine's memory, its page cache) weighs on every row alike. (Three
    # minirund rows of 200 run one after another once gave 209, 258 and 287 kB of slab each.)
    first = [row(n) for row in rows]
    second = [row(n) for row in reversed(rows)][::-1]
    results = [average(a, b) for a, b in zip(first, second)]
    results += [run(n) for run in peers()]                 # slow: once, at the end
    base = next((r for r in results if r["runtime"] == "crun"), None)   # ratios: to plain crun
    print(f"density: {n} detached `sleep 3600` containers, started one after another; memory "
          f"per container in kB (/proc/meminfo deltas: used, then where it went, and held: "
          f"the sum of those columns); minirund and crun rows: the mean of two passes, in "
          f"order and reversed")
    print(f"{'runtime':16} {'start/ctr':>10} {'÷ crun':>7} {'rm/ctr':>8} {'mem/ctr':>8} "
          f"{'÷ crun':>7} {'not ret.':>8} {'held':>6} {'÷ crun':>7}  "
          + " ".join(f"{k:>11}" for k in BREAKDOWN) + f" {'daemon RSS':>10}")
    # "used" (what ../shared/peers counts) also moves with what the kernel holds on its per-CPU
    # free lists and frees in the background: ±40 kB a container from run to run at 1000,
    # ±100 at 300. "held", the columns summed, is what the containers keep: far steadier.
    held = lambda r: sum(r["parts"].values())
    for r in results:
        ratio = lambda f: f"{f(r) / f(base):7.2f}" if base else "      -"
        own = f"{r['own_kb']:10.0f}" if r["own_kb"] is not None else " " * 9 + "-"
        print(f"{r['runtime']:16} {r['start_ms']:8.1f}ms {ratio(lambda x: x['start_ms'])} "
              f"{r['rm_ms']:6.1f}ms {r['kb']:8.0f} {ratio(lambda x: x['kb'])} "
              f"{r['kept_kb']:8.0f} {held(r):6.0f} {ratio(held)}  "
              + " ".join(f"{r['parts'][k]:11.0f}" for k in BREAKDOWN) + f" {own}")


if __name__ == "__main__":
    try:
        main()
    finally:
        remove_bench_cgroups()
