"""Benchmark: registry push/pull throughput, minirun vs distribution, podman and docker
(see scripts/bench/registry)."""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

from minirun.fsutil import spread_subdirs

WORK = "/var/tmp/minirun-bench/registry"
BIG = os.path.join(WORK, "oci-big")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MINIRUN = os.path.join(REPO, ".venv", "bin", "minirun")
LAYERS = [(100, 1 << 20), (600, 100 << 10), (4000, 10 << 10)]    # files × size, per layer
SKOPEO_CACHE = "/var/lib/containers/cache"     # skopeo's blob-info cache: would skip blobs


def build_image():
    """3 gzip layers of random (incompressible) files, ~210 MB, as the peers measured."""
    if os.path.exists(os.path.join(BIG, "index.json")):
        return
    sys.path.insert(0, REPO)
    from minirun.image.layout import LayerBuilder, write_layout
    tars = []
    for n, (count, size) in enumerate(LAYERS):
        layer = LayerBuilder()
        if n == 0:
            layer.dir("bin")
            layer.file("bin/busybox", open("/bin/busybox", "rb").read(), 0o755)
            layer.symlink("bin/sh", "busybox")
        layer.dir(f"data{n}")
        for i in range(count):
            layer.file(f"data{n}/f{i:05d}", os.urandom(size))
        tars.append(layer.tar_bytes())
    write_layout(BIG, tars, {"config": {"Cmd": ["sh"]}}, "bench/big:latest")


def layers():
    """The big image's layer descriptors, from its OCI layout."""
    index = json.load(open(os.path.join(BIG, "index.json")))
    digest = index["manifests"][0]["digest"][7:]
    return json.load(open(os.path.join(BIG, "blobs", "sha256", digest)))["layers"]


def layer_bytes():
    return sum(l["size"] for l in layers())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port):
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


class Server:
    def __init__(self, name):
        self.name, self.port, self.proc = name, free_port(), None
        self.root = os.path.join(WORK, name + "-data")

    def start(self):
        shutil.rmtree(self.root, ignore_errors=True)
        if self.name == "minirun":
            argv = [MINIRUN, "registry", "serve", "--root", self.root, "--listen",
                    f"127.0.0.1:{self.port}"]
        else:
            config = os.path.join(WORK, "distribution.yml")
            with open(config, "w") as f:
                f.write(f"version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: "
                        f"{{rootdirectory: {self.root}}}\nhttp: {{addr: 127.0.0.1:{self.port}}}\n")
            argv = ["docker-registry", "serve", config]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


def timed(argv, env=None):
    shutil.rmtree(SKOPEO_CACHE, ignore_errors=True)
    t = time.perf_counter()
    p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode:
        sys.exit(f"{' '.join(argv)} failed: {p.stderr.decode().strip()}")
    return time.perf_counter() - t


def tar_floor():
    """What unpacking alone costs on this file system: GNU tar on each layer blob, all three
    at once, into fresh directories (no download, no digest, no blob kept)."""
    blobs = os.path.join(BIG, "blobs", "sha256")
    out = os.path.join(WORK, "tar-floor")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    spread_subdirs(out)    # each layer's directory placed as minirun places its layers
    t = time.perf_counter()
    procs = []
    for layer in layers():
        into = os.path.join(out, os.urandom(8).hex())    # the allocator hashes the name
        os.mkdir(into)
        procs.append(subprocess.Popen(["tar", "-xzf", os.path.join(blobs, layer["digest"][7:]),
                                       "-C", into]))
    if any(p.wait() for p in procs):
        sys.exit("tar -xzf of a layer failed")
    t = time.perf_counter() - t
    shutil.rmtree(out)
    return t


def peers():
    """podman and docker pull, where ../shared/peers set them up."""
    out = {}
    conf = "/tmp/peers/podman/containers.conf"
    if shutil.which("podman") and os.path.exists(conf):
        env = dict(os.environ, CONTAINERS_CONF=conf,
                   CONTAINERS_STORAGE_CONF="/tmp/peers/podman/storage.conf")
        out["podman pull"] = (lambda ref: ["podman", "pull", "-q", "--tls-verify=false", ref],
                              lambda ref: ["podman", "rmi", "-f", ref], env)
    if os.path.exists("/usr/bin/docker") and subprocess.run(
            ["/usr/bin/docker", "info"], capture_output=True).returncode == 0:
        out["docker pull"] = (lambda ref: ["/usr/bin/docker", "pull", "-q", ref],
                              lambda ref: ["/usr/bin/docker", "rmi", "-f", ref], None)
    return out


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    os.makedirs(WORK, exist_ok=True)
    build_image()
    size = layer_bytes()
    servers = [Server("minirun")] + ([Server("distribution")] if shutil.which("docker-registry")
                                     else [])
    times = {}
    for rep in range(reps):
        for server in servers:
            server.start()
            try:
                ref = f"127.0.0.1:{server.port}/bench/big:latest"
                times.setdefault(f"skopeo push → {server.name}", []).append(timed(
                    ["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{BIG}:latest",
                     f"docker://{ref}"]))
                back = os.path.join(WORK, "pulled")
                shutil.rmtree(back, ignore_errors=True)
                times.setdefault(f"skopeo pull ← {server.name}", []).append(timed(
                    ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}",
                     f"oci:{back}:latest"]))
                shutil.rmtree(back, ignore_errors=True)
                if server.name == "minirun":
                    state = os.path.join(WORK, "minirun-root")
                    shutil.rmtree(state, ignore_errors=True)
                    env = dict(os.environ, MINIRUN_ROOT=state)
                    times.setdefault("minirun pull", []).append(timed(
                        [MINIRUN, "pull", "-q", ref], env))
                    shutil.rmtree(state, ignore_errors=True)
                    times.setdefault("floor: 3 × tar -xzf at once", []).append(tar_floor())
                    for name, (pull, rmi, penv) in peers().items():
                        times.setdefault(name, []).append(timed(pull(ref), penv))
                        subprocess.run(rmi(ref), env=penv, capture_output=True)
            finally:
                server.stop()
    shutil.rmtree(SKOPEO_CACHE, ignore_errors=True)
    report(times, size, reps)


def report(times, size, reps):
    print(f"registry throughput: {size / 1e6:.1f} MB in 3 gzip layers, {reps} runs, "
          f"median, on loopback")
    rate = {n: size / 1e6 / statistics.median(v) for n, v in times.items()}
    print(f"{'operation':28} {'median s':>9} {'MB/s':>8}  ratio")
    for name, v in times.items():
        if name.endswith("minirun"):
            peer = rate.get(name.replace("minirun", "distribution"))
            ratio = f"{rate[name] / peer:.2f}× distribution" if peer else ""
        elif name == "minirun pull" or name.startswith("floor"):
            ratio = f"{rate[name] / rate['docker pull']:.2f}× docker pull" \
                if "docker pull" in rate else ""
        else:
            ratio = ""
        print(f"{name:28} {statistics.median(v):9.2f} {rate[name]:8.1f}  {ratio}")


if __name__ == "__main__":
    main()
