"""Benchmark: image builds, minirun vs docker's classic builder and podman (see
scripts/bench/build)."""
import glob
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

WORK = "/var/tmp/minirun-bench/build"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import load_busybox, sh  # noqa: E402

DOCKERFILE = """\
FROM busybox AS build
WORKDIR /src
COPY src/ ./
RUN for f in *.txt; do tr a-z A-Z < $f > $f.up; done
RUN tar -cf /out.tar .
FROM busybox
COPY --from=build /out.tar /app/out.tar
COPY config/ /etc/app/
RUN tar -xf /app/out.tar -C /app && ls /app > /app/index
CMD ["cat", "/app/index"]
"""
DOCKER = "/usr/bin/docker"


def make_context(ctx):
    shutil.rmtree(ctx, ignore_errors=True)
    os.makedirs(os.path.join(ctx, "src"))
    os.makedirs(os.path.join(ctx, "config"))
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)
    for i in range(200):
        with open(os.path.join(ctx, "src", f"f{i:03d}.txt"), "w") as f:
            f.write(f"file {i}\n" * 50)
    with open(os.path.join(ctx, "src", "blob.bin"), "wb") as f:
        f.write(os.urandom(4 << 20))
    with open(os.path.join(ctx, "config", "app.conf"), "w") as f:
        f.write("setting = 1\n")


def change_one_file(ctx, n):
    with open(os.path.join(ctx, "src", "f100.txt"), "w") as f:
        f.write(f"changed {n}\n")


def start_dockerd(d, procs):
    """containerd + dockerd of our own (no bridge, no iptables), as tests/test_docker_interop;
    their processes go to *procs*."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "ctd.toml"), "w") as f:
        f.write(f'version = 2\nroot = "{d}/ctd-root"\nstate = "{d}/ctd-state"\n'
                f'[grpc]\n  address = "{d}/containerd.sock"\n')
    procs.append(subprocess.Popen(["containerd", "--config", f"{d}/ctd.toml"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for _ in range(100):
        if os.path.exists(f"{d}/containerd.sock"):
            break
        time.sleep(0.1)
    host = f"unix://{d}/docker.sock"
    procs.append(subprocess.Popen(
        ["dockerd", "--containerd", f"{d}/containerd.sock", "-H", host, "--data-root",
         f"{d}/data", "--exec-root", f"{d}/exec", "--pidfile", f"{d}/pid", "--bridge=none",
         "--iptables=false", "--ip6tables=false", "--exec-opt", "native.cgroupdriver=cgroupfs"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for _ in range(150):
        if subprocess.run([DOCKER, "-H", host, "info"], capture_output=True).returncode == 0:
            return host
        time.sleep(0.2)
    sys.exit("dockerd did not start")


def start_minirund(root, sock, env):
    proc = subprocess.Popen([os.path.join(REPO, ".venv", "bin", "minirund"), "-H",
                             "unix://" + sock, "--log-file", os.path.join(WORK, "minirund.log")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(sock)
            return proc
        except OSError:
            time.sleep(0.05)
    sys.exit("minirund did not start")


def stop(procs):
    for p in reversed(procs):
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def builders(ctx, procs):
    """name -> (argv of a build (no_cache), env); the daemons started go to *procs*."""
    out = {}
    root = os.path.join(WORK, "minirun-root")
    shutil.rmtree(root, ignore_errors=True)
    minirun, env = load_busybox(root)
    out["minirun build"] = (lambda nc: [minirun, "build", "-q", "--network", "none",
                                        *(["--no-cache"] if nc else []), "-t", "bench", ctx],
                            env)
    droot = os.path.join(WORK, "minirund-root")       # a root of its own: a daemon serving
    shutil.rmtree(droot, ignore_errors=True)           # `minirun build`'s root would take its
    _, denv0 = load_busybox(droot)                    # builds (the CLI goes to it then)
    sock = os.path.join(WORK, "minirund.sock")
    procs.append(start_minirund(droot, sock, denv0))
    denv = dict(os.environ, DOCKER_HOST="unix://" + sock, DOCKER_BUILDKIT="0")
    out["docker CLI → minirund"] = (lambda nc: [DOCKER, "build", "-q", "--network", "none",
                                                *(["--no-cache"] if nc else []), "-t",
                                                "bench2", ctx], denv)
    if shutil.which("dockerd") and shutil.which("containerd") and os.path.exists(DOCKER):
        host = start_dockerd(os.path.join(WORK, "docker"), procs)
        sh(minirun, "save", "-o", os.path.join(WORK, "busybox.tar"), "busybox", env=env)
        sh(DOCKER, "-H", host, "load", "-q", "-i", os.path.join(WORK, "busybox.tar"))
        genv = dict(os.environ, DOCKER_HOST=host, DOCKER_BUILDKIT="0")
        out["dockerd (classic)"] = (lambda nc: [DOCKER, "build", "-q", "--network", "none",
                                                *(["--no-cache"] if nc else []), "-t",
                                                "bench", ctx], genv)
    if shutil.which("podman"):
        p = os.path.join(WORK, "podman")
        os.makedirs(p, exist_ok=True)
        with open(f"{p}/containers.conf", "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=20000:20000", '
                    '"nproc=32768:32768"]\n[engine]\ncgroup_manager = "cgroupfs"\n'
                    f'events_logger = "file"\nevents_logfile_path = "{p}/events.log"\n'
                    f'tmp_dir = "{p}/tmp"\n'
                    f'runtime = "{"crun" if shutil.which("crun") else "runc"}"\n')
        with open(f"{p}/storage.conf", "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\nrunroot = "{p}/run"\n'
                    f'graphroot = "{p}/storage"\n')
        penv = dict(os.environ, CONTAINERS_CONF=f"{p}/containers.conf",
                    CONTAINERS_STORAGE_CONF=f"{p}/storage.conf")
        sh("podman", "pull", "-q", "oci:" + os.path.join(REPO, "images", "busybox", "build",
                                                         "oci"), env=penv)
        sh("podman", "tag", sh("podman", "images", "-q", env=penv).stdout.split()[0],
           "docker.io/library/busybox:latest", env=penv)
        out["podman build"] = (lambda nc: ["podman", "build", "-q", "--network", "none",
                                           "--pull=never", *(["--no-cache"] if nc else []),
                                           "-t", "bench", ctx], penv)
    return out


def timed(argv, env):
    t = time.perf_counter()
    p = subprocess.run(argv, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{p.stdout}{p.stderr}")
    return time.perf_counter() - t


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    if os.geteuid() != 0:
        sys.exit("run as root")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    ctx = os.path.join(WORK, "context")
    make_context(ctx)
    procs = []
    engines_cgroups = set(glob.glob("/sys/fs/cgroup/*/libpod_parent")
                          + glob.glob("/sys/fs/cgroup/*/docker"))
    try:
        runs = builders(ctx, procs)
        times = {name: {"cold": [], "no change": [], "one file changed": []} for name in runs}
        for n in range(rounds):
            for name, (argv, env) in runs.items():             # interleaved, round by round
                times[name]["cold"].append(timed(argv(True), env))
                times[name]["no change"].append(timed(argv(False), env))
                change_one_file(ctx, f"{n}-{name}")
                times[name]["one file changed"].append(timed(argv(False), env))
    finally:
        stop(procs)
        for root in ("minirun-root", "minirund-root"):
            subprocess.run([os.path.join(REPO, ".venv", "bin", "minirun"), "network", "reset"],
                           env=dict(os.environ, MINIRUN_ROOT=os.path.join(WORK, root)),
                           capture_output=True)
        subprocess.run(["umount", "-R", os.path.join(WORK, "docker")], capture_output=True)
        subprocess.run(["umount", "-R", os.path.join(WORK, "podman")], capture_output=True)
        for top in set(glob.glob("/sys/fs/cgroup/*/libpod_parent")
                       + glob.glob("/sys/fs/cgroup/*/docker")) - engines_cgroups:
            subprocess.run(["find", top, "-depth", "-type", "d", "-exec", "rmdir", "{}", ";"],
                           capture_output=True)          # the peers' cgroups, once empty
    report(times, rounds)


def report(times, rounds):
    print(f"build times, median of {rounds} interleaved rounds, in seconds; (N×): this "
          f"builder's time ÷ minirun build's")
    cols = ["cold", "no change", "one file changed"]
    ours = {c: statistics.median(times["minirun build"][c]) for c in cols}
    print(f"{'builder':24}" + "".join(f"{c:>26}" for c in cols))
    for name, t in times.items():
        cells = []
        for c in cols:
            m = statistics.median(t[c])
            cells.append(f"{m:8.2f}" + (f" ({m / ours[c]:5.2f}×)" if name != "minirun build"
                                       else "         "))
        print(f"{name:24}" + "".join(f"{cell:>26}" for cell in cells))


if __name__ == "__main__":
    main()
