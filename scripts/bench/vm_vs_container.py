"""The seed's virtual-machine-versus-container table, measured here (scripts/bench/vm-vs-container).

Both sides are the same Debian 12 userland (debootstrap minbase + python3), made from Debian's
packages without the internet by scripts/vm/build-image (VM_IMAGE_KIND=bench): the container
image is that userland as one layer; the VM adds a kernel, systemd and sshd, and boots under
qemu (KVM where the CPU has it, TCG otherwise). Each row is measured, never assumed:

  image         disk used by the VM's image / by the container image's layer
  create        a new image from Debian's packages: the VM's whole build / the userland's
                debootstrap plus `minirun load` (the debootstrap is measured once, shared)
  start         qemu started → a command answered over ssh / `minirun run --rm … true`
  memory        host memory of one idle instance: qemu's PSS / the container's cgroup (its
                processes and their kernel memory) plus the PSS of the minirun process that
                waits for it
  density       how many fit in 80 % of this host's RAM at that cost (arithmetic, not a test
                that fills the machine)
  CPU lost      the same CPU-bound Python loop, timed inside each, against the host
"""
import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VM_DIR = os.environ.get("VM_DIR", "/var/tmp/minirun-vm")
IMG = os.path.join(VM_DIR, "image-bench")
VM_ENV = dict(os.environ, VM_DIR=VM_DIR, VM_IMG=IMG, VM_RUN=os.path.join(VM_DIR, "run-bench"),
              VM_PORT=os.environ.get("VM_BENCH_PORT", "2223"), VM_IMAGE_KIND="bench",
              VM_MEM=os.environ.get("VM_BENCH_MEM", "1024"), VM_CPUS="2")
ROOT = os.path.join(VM_DIR, "bench-root")            # a state root of the bench's own
MINIRUN = [os.path.join(REPO, ".venv", "bin", "minirun"), "--root", ROOT]
IMAGE = "localhost/debian-userland:bench"
# CPU-bound, timed inside so that neither boot nor start counts
LOOP = ("python3 -c 'import time; t = time.perf_counter(); sum(i * i for i in range(3000000)); "
        "print(time.perf_counter() - t)'")

# (row, the seed's claim for a VM, for a container)
SEED = {
    "image": ("tens of GB", "200–300 MB, shared"),
    "create": ("> 2 min", "< 10 s"),
    "start": ("> 30 s", "< 1 s"),
    "memory": ("~200 MB (a guest OS)", "the program only"),
    "density": ("10–100", "1000+"),
    "CPU lost": ("> 15 %", "~0"),
}


def run(*cmd, env=None, check=True, **kw):
    return subprocess.run(cmd, env=env, check=check, capture_output=True, text=True, **kw)


def timed(*cmd, env=None):
    t = time.monotonic()
    run(*cmd, env=env)
    return time.monotonic() - t


def du(path):
    return int(run("du", "-sb", "--apparent-size", path).stdout.split()[0]) \
        if os.path.isdir(path) else os.stat(path).st_blocks * 512


def pss(pid):
    """Proportional set size of a process, bytes (shared pages split among their users)."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def vm(script, *args):
    return run(os.path.join(REPO, "scripts", "vm", script), *args, env=VM_ENV)


def vm_ssh(command):
    return run("bash", "-c", '. scripts/vm/lib.sh; vm_ssh "$@"', "-", command, env=VM_ENV,
               cwd=REPO)


def build_images():
    print("building (or reusing) the images: scripts/vm/build-image, VM_IMAGE_KIND=bench …",
          flush=True)
    vm("build-image")
    timings = dict(line.split() for line in open(os.path.join(IMG, "timings")))
    layout = os.path.join(VM_DIR, "bench-layout")
    t = time.monotonic()
    sys.path.insert(0, REPO)
    from minirun.image.layout import write_layout
    with open(os.path.join(IMG, "userland.tar"), "rb") as f:      # one uncompressed layer
        write_layout(layout, [f.read()], {"config": {"Cmd": ["bash"], "Env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}},
            name=IMAGE, compress=False)
    shutil.rmtree(ROOT, ignore_errors=True)
    run(*MINIRUN, "load", "-q", "-i", layout)
    load = time.monotonic() - t
    shutil.rmtree(layout)
    return float(timings["image"]), float(timings["userland"]) + load


def measure_vm():
    t = time.monotonic()
    vm("start")
    try:
        vm_ssh("true")
        start = time.monotonic() - t
        accel = open(os.path.join(VM_ENV["VM_RUN"], "accel")).read().strip()
        pid = int(open(os.path.join(VM_ENV["VM_RUN"], "qemu.pid")).read())
        time.sleep(5)                              # let the guest settle after boot
        memory = pss(pid)
        guest = int(vm_ssh("awk '/^MemTotal/ {t = $2} /^MemAvailable/ {a = $2} "
                           "END {print (t - a) * 1024}' /proc/meminfo").stdout)
        loops = [float(vm_ssh(LOOP).stdout) for _ in range(3)]
    finally:
        vm("stop")
    return {"start": start, "memory": memory, "guest": guest, "loop": min(loops), "accel": accel}


def measure_container():
    argv = [*MINIRUN, "run", "--rm", "--network", "none", IMAGE]
    starts = []
    for _ in range(5):
        t = time.monotonic()
        run(*argv, "true")
        starts.append(time.monotonic() - t)
    loops = [float(run(*argv, "sh", "-c", LOOP).stdout) for _ in range(3)]
    # one idle instance: the userland's own `sleep`, and the minirun process that waits for it
    # (--init: tini as PID 1, so that SIGTERM ends it at the end)
    proc = subprocess.Popen([*MINIRUN, "run", "--rm", "--init", "--trace", "--network", "none",
                             IMAGE, "sleep", "60"], stderr=subprocess.PIPE, text=True)
    try:
        short = None
        for line in proc.stderr:
            if "mkdir minirun/" in line:
                short = line.split("mkdir minirun/")[1].split()[0]
            if "execve(" in line:
                break
        time.sleep(2)
        cgroup = _cgroup_memory(short)
        memory = cgroup + pss(proc.pid)
    finally:
        proc.terminate()
        proc.wait()
    return {"start": statistics.median(starts), "memory": memory, "cgroup": cgroup,
            "loop": min(loops)}


def _cgroup_memory(short):
    for path in glob.glob(f"/sys/fs/cgroup/minirun/{short}*/memory.current") + \
            glob.glob(f"/sys/fs/cgroup/memory/minirun/{short}*/memory.usage_in_bytes"):
        return int(open(path).read())
    raise SystemExit(f"no memory cgroup found for container {short}")


def host_loop():
    return min(float(run("bash", "-c", LOOP.replace("python3", "/usr/bin/python3")).stdout)
               for _ in range(3))


def mb(n):
    return f"{n / 1e6:,.0f} MB" if n >= 1e7 else f"{n / 1e6:.1f} MB"


def table(r, accel):
    budget = 0.8 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    lost = lambda t: f"{(t / r['host_loop'] - 1) * 100:+.0f} %"
    rows = [
        ("image", mb(r["vm_image"]), mb(r["ct_image"])),
        ("create", f"{r['vm_create']:.0f} s", f"{r['ct_create']:.0f} s"),
        ("start", f"{r['vm']['start']:.1f} s", f"{r['ct']['start'] * 1000:.0f} ms"),
        ("memory", f"{mb(r['vm']['memory'])} (guest OS {mb(r['vm']['guest'])})",
         f"{mb(r['ct']['memory'])} (cgroup {mb(r['ct']['cgroup'])})"),
        ("density", f"{budget / r['vm']['memory']:,.0f}", f"{budget / r['ct']['memory']:,.0f}"),
        ("CPU lost", lost(r["vm"]["loop"]), lost(r["ct"]["loop"])),
    ]
    print("memory: qemu's PSS on the host (and what the guest OS itself uses); the container's "
          "cgroup plus the PSS of the minirun process that waits for it")
    print(f"\nVM: qemu with {accel.upper()}{' (no usable KVM here: every guest instruction is translated)' if accel == 'tcg' else ''}; "
          f"density: instances in 80 % of {mb(budget / 0.8)}\n")
    w = [10, 22, 24, 20, 28]
    head = ("row", "seed: VM", "measured: VM", "seed: container", "measured: container")
    print("  ".join(h.ljust(n) for h, n in zip(head, w)))
    for name, v, c in rows:
        print("  ".join(x.ljust(n) for x, n in zip((name, SEED[name][0], v, SEED[name][1], c), w)))
    return rows


def chart(r, accel, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    budget = 0.8 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    panels = [("image (MB)", r["vm_image"] / 1e6, r["ct_image"] / 1e6),
              ("create (s)", r["vm_create"], r["ct_create"]),
              ("start (s)", r["vm"]["start"], r["ct"]["start"]),
              ("memory per instance (MB)", r["vm"]["memory"] / 1e6, r["ct"]["memory"] / 1e6),
              ("instances in 80 % of RAM", budget / r["vm"]["memory"], budget / r["ct"]["memory"]),
              ("CPU loop vs host (×)", r["vm"]["loop"] / r["host_loop"],
               r["ct"]["loop"] / r["host_loop"])]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for ax, (title, v, c), key in zip(axes.flat, panels, SEED):
        bars = ax.bar([f"VM ({accel})", "container"], [v, c], color=["#c0504d", "#4f81bd"])
        ax.set_title(f"{title}\nseed: VM {SEED[key][0]}, container {SEED[key][1]}", fontsize=9)
        ax.bar_label(bars, fmt="%.3g", fontsize=9)
        ax.margins(y=0.2)
    fig.suptitle("Virtual machine vs container, measured on this machine "
                 "(the same Debian 12 userland)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"\nchart: {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--png", default=os.path.join(VM_DIR, "vm-vs-container.png"))
    args = ap.parse_args()
    vm_create, ct_create = build_images()
    r = {"vm_image": du(os.path.join(IMG, "disk.raw")) + du(os.path.join(IMG, "vmlinuz")),
         "ct_image": sum(du(d) for d in glob.glob(os.path.join(ROOT, "layers", "[0-9a-f]*"))),
         "vm_create": vm_create, "ct_create": ct_create}
    r["host_loop"] = host_loop()                   # first: nothing else running yet
    print("measuring the container …", flush=True)
    r["ct"] = measure_container()
    print("measuring the VM (boot, memory, CPU loop) …", flush=True)
    r["vm"] = measure_vm()
    table(r, r["vm"]["accel"])
    chart(r, r["vm"]["accel"], args.png)
    run(*MINIRUN, "rmi", IMAGE, check=False)
    shutil.rmtree(ROOT, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
