"""Helpers shared by the benchmarks: a runc/crun bundle of the bundled busybox, cleanup."""
import glob
import json
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sh(*cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout}{p.stderr}")
    return p


def load_busybox(root):
    env = dict(os.environ, MINIRUN_ROOT=root)
    minirun = os.path.join(REPO, ".venv", "bin", "minirun")
    sh(minirun, "load", "-q", "-i", os.path.join(REPO, "images", "busybox", "build", "oci"),
       env=env)
    return minirun, env


def prepare_bundle(root, bundle, args=("true",), seccomp=None):
    """The same busybox rootfs (the image's layers, copied in order) as an OCI bundle;
    *seccomp*, a linux.seccomp section, if given."""
    sys.path.insert(0, REPO)
    from minirun.image.store import ImageStore
    store = ImageStore(root)
    shutil.rmtree(bundle, ignore_errors=True)
    os.makedirs(os.path.join(bundle, "rootfs"))
    for layer in store.layer_dirs(store.resolve("busybox")):
        sh("cp", "-a", layer + "/.", os.path.join(bundle, "rootfs"))
    sh("runc", "spec", cwd=bundle)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["process"]["terminal"] = False
    config["process"]["args"] = list(args)
    config["root"] = {"path": os.path.join(bundle, "rootfs"), "readonly": True}
    # Absolute: runc would otherwise nest the cgroup under the caller's own.
    config["linux"]["cgroupsPath"] = "/minirun-bench/bundle"
    if seccomp is not None:
        config["linux"]["seccomp"] = seccomp
    with open(path, "w") as f:
        json.dump(config, f)
    return bundle


def bundle_copy(template, directory, cid):
    """A per-container config.json (own cgroup path) sharing the template's rootfs."""
    with open(os.path.join(template, "config.json")) as f:
        config = json.load(f)
    config["linux"]["cgroupsPath"] = f"/minirun-bench/{cid}"
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    return directory


def remove_bench_cgroups():
    """runc and crun remove their containers' cgroups but not the parent named in the bundle."""
    for d in glob.glob("/sys/fs/cgroup/*/minirun-bench") + glob.glob("/sys/fs/cgroup/minirun-bench"):
        try:
            os.rmdir(d)
        except OSError:
            pass


# Where a container's memory goes, from /proc/meminfo (kB): its processes' own pages, the
# kernel objects of its namespaces, mounts and cgroups, the per-CPU counters of its cgroups
# (memcg's are the big ones), vmalloc'ed memory (BPF programs: a seccomp filter), page
# tables and kernel stacks.
BREAKDOWN = ("AnonPages", "SUnreclaim", "Percpu", "VmallocUsed", "PageTables", "KernelStack")


def memory_kb():
    """{"used": MemTotal - MemFree - Buffers - Cached - SReclaimable (as
    ../shared/peers/memstat.py), and the BREAKDOWN fields}."""
    mi = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":")
            mi[k] = int(v.split()[0])
    used = mi["MemTotal"] - mi["MemFree"] - mi["Buffers"] - mi["Cached"] - mi["SReclaimable"]
    return dict({k: mi.get(k, 0) for k in BREAKDOWN}, used=used)
