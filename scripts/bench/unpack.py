"""Benchmark: minirun's layer unpack vs tar -xzf (see scripts/bench/unpack)."""
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time

from minirun.fsutil import spread_subdirs

WORK = "/var/tmp/minirun-bench/unpack"   # not /tmp: some hosts watch it, and it is slow
LAYER = os.path.join(WORK, "layer.tar.gz")
REAL = ["usr/lib/python3.11", "usr/share/perl", "usr/sbin", "usr/share/zoneinfo"]
RANDOM_MB = 150          # incompressible files: with the real ones, ~200 MB of gzip
UNPACK = """
import sys
from minirun.image.layers import LayerStore
LayerStore(sys.argv[1]).unpack(sys.argv[2], sys.argv[3], "gzip")
"""


def build_layer():
    """A gzip layer of real files (many small) and random ones (a few large)."""
    if os.path.exists(LAYER):
        return
    src = os.path.join(WORK, "src")
    shutil.rmtree(src, ignore_errors=True)
    os.makedirs(os.path.join(src, "random"))
    for i in range(RANDOM_MB // 5):              # 5 MB each, plus a spread of small ones
        with open(os.path.join(src, "random", f"big{i}"), "wb") as f:
            f.write(os.urandom(5 << 20))
    for i in range(2000):
        with open(os.path.join(src, "random", f"small{i}"), "wb") as f:
            f.write(os.urandom(1 + (i * 37) % 8192))
    subprocess.run(["tar", "-C", "/", "-cf", os.path.join(WORK, "real.tar")]
                   + [p for p in REAL if os.path.exists("/" + p)], check=True)
    subprocess.run(["tar", "-C", src, "-xf", os.path.join(WORK, "real.tar")], check=True)
    os.unlink(os.path.join(WORK, "real.tar"))
    subprocess.run(f"tar -C {src} -cf - . | gzip -6 > {LAYER}.tmp", shell=True, check=True)
    os.rename(LAYER + ".tmp", LAYER)
    shutil.rmtree(src)


def diff_id():
    h = hashlib.sha256()
    with subprocess.Popen(["gzip", "-dc", LAYER], stdout=subprocess.PIPE) as p:
        for chunk in iter(lambda: p.stdout.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest(), p.returncode


def timed(cmd):
    subprocess.run(["sync"], check=True)
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    os.makedirs(WORK, exist_ok=True)
    build_layer()
    did, _ = diff_id()
    size_mb = os.path.getsize(LAYER) / 1e6
    files = int(subprocess.run(f"tar -tzf {LAYER} | wc -l", shell=True, check=True,
                               capture_output=True, text=True).stdout)
    print(f"layer: {size_mb:.0f} MB gzip, {files} entries; {reps} interleaved runs each")
    # Every run extracts into a fresh directory and nothing is deleted until the end:
    # deleting hundreds of MB between runs (ext4 with discard) slows the next run's writes.
    shutil.rmtree(os.path.join(WORK, "dest"), ignore_errors=True)
    os.makedirs(os.path.join(WORK, "dest"))
    spread_subdirs(os.path.join(WORK, "dest"))   # tar's trees placed as minirun's layers are
    dest = None
    methods = {
        "tar -xzf": lambda: ["tar", "-xzf", LAYER, "-C", dest],
        "minirun unpack": lambda: [sys.executable, "-c", UNPACK, dest, did, LAYER],
    }
    times = {m: [] for m in methods}
    for rep in range(reps + 1):                  # the first round warms the caches
        for i, (m, cmd) in enumerate(methods.items() if rep % 2 else reversed(methods.items())):
            dest = os.path.join(WORK, "dest", os.urandom(8).hex())   # the allocator hashes it
            os.makedirs(dest)
            t = timed(cmd())
            if rep:
                times[m].append(t)
    shutil.rmtree(os.path.join(WORK, "dest"))
    base = statistics.median(times["tar -xzf"])
    print(f"{'method':16} {'median s':>9} {'min s':>7} {'MB/s':>7} {'ratio to tar':>13}")
    for m, v in times.items():
        med = statistics.median(v)
        print(f"{m:16} {med:9.2f} {min(v):7.2f} {size_mb / med:7.0f} {med / base:13.2f}")


if __name__ == "__main__":
    main()
