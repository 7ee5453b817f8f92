"""cgroups: each container gets its slice of memory, CPU, PIDs and CPUs.

Two kernel interfaces do the same job:
- v1: one hierarchy per controller (``/sys/fs/cgroup/memory/…``), limits in
  files like ``memory.limit_in_bytes``; also a device allow-list.
- v2: one unified hierarchy (``/sys/fs/cgroup/…``), limits in ``memory.max``,
  ``cpu.max``…; a controller must be enabled in the parent's
  ``cgroup.subtree_control`` before a child can use it.
Hybrid hosts mount both (v1 controllers, a cgroup2 holding leftovers such as
hugetlb); minirun uses whichever hierarchy holds each controller it needs.

Containers live under one ``minirun`` parent at the root of each hierarchy
(``<controller>/minirun/<id>`` on v1, ``minirun/<id>`` on v2): never relative
to the cgroup minirun runs in, never inside one it did not create.

Joining: writing a PID to ``cgroup.procs`` moves a whole process, under a
global lock whose write side first waits for an RCU grace period (10–20 ms
here; runc pays it on every start). A single thread that moves only itself,
``0`` into a v1 hierarchy's ``tasks``, skips that lock (the kernel's
cgroup_procs_write_start locks only for another task or a thread group), so
on v1 a container's first process and exec's joiner, both single-threaded
forks, join by themselves in well under a millisecond (``join_files``,
``join``). v2 has no such door (``cgroup.threads`` cannot take a thread out
of its domain): there the parent moves the child while it builds its root.
Either way a container's cgroups are made while its first process builds its
root (runtime/container.py's ``start``), and it is in them before it goes on
past GO.

Each container's cgroups have an owner record, ``/run/minirun/cgroups/<id>``,
naming what owns them (the container's directory in its state root). Whoever
ends the container removes both; when a crash or a killed daemon leaves them
and the owner is then deleted (a state root removed by hand), ``sweep`` finds
them by that record: otherwise they would stay until the next boot.
"""
import _signal as signal   # signal.py's C core, without its enums (docs/architecture.md)
import errno
import os
import time

from ..config import RUN_DIR
from ..errors import MinirunError
from ..record import Record
from .devices import DEFAULT_RULES, DENY

PARENT = "minirun"
OWNERS = os.path.join(RUN_DIR, "cgroups")
CONTROLLERS = ("memory", "cpu", "pids", "cpuset", "io")     # v2's names
V1_EXTRA = ("cpuacct", "devices", "freezer", "blkio", "hugetlb")   # accounting, devices,
# pause, block I/O, huge pages
CFS_PERIOD = 100_000

class CgroupError(MinirunError):
    pass


class Limits(Record):
    FIELDS = {
        "memory": None,            # bytes
        "cpu_quota": None,         # microseconds per CFS_PERIOD
        "cpu_shares": None,
        "pids": None,              # -1 or None: unlimited
        "cpuset_cpus": None,
        "allow_all_devices": False,
        "blkio_weight": None,      # 10..1000, v1's scale (Docker's --blkio-weight)
        "device_read_bps": [],     # [[major, minor, bytes per second]]
        "device_write_bps": [],
        # What an OCI bundle's linux.resources can say besides (minirun-runc):
        "cpu_period": None,        # microseconds (default CFS_PERIOD)
        "cpu_rt_runtime": None,    # real-time microseconds per cpu_rt_period (v1)
        "cpu_rt_period": None,
        "cpuset_mems": None,
        "memory_reservation": None,
        "memory_swap": None,       # memory + swap, bytes (v1's meaning; -1 unlimited)
        "memory_swappiness": None,
        "oom_kill_disable": False,
        "device_rules": None,      # ["c 1:3 rwm", …] replacing Docker's defaults; None: those
        "hugetlb": [],             # [[page size as "2MB", bytes]]
    }


def shares_to_weight(shares):
    """runc's conversion of v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000)."""
    return 1 + ((shares - 2) * 9999) // 262142


def weight_to_io_weight(weight):
    """runc's conversion of v1 blkio.weight (10..1000) to v2 io.weight (1..10000)."""
    return 1 + ((weight - 10) * 9999) // 990


def _first_present(path, names, what):
    """The first of *names* that the kernel offers under *path*, else a one-line error."""
    for name in names:
        if os.path.exists(os.path.join(path, name)):
            return os.path.join(path, name)
    raise CgroupError(f"this kernel offers no {what} ({' or '.join(names)})")


def _mounts():
    """[(mountpoint, fstype, super options)] of cgroup file systems."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, opts = right.split()[:3]
            if fstype in ("cgroup", "cgroup2"):
                out.append((left.split()[4], fstype, set(opts.split(","))))
    return out


def hierarchies():
    """[(mount point, fstype, super options)] of the host's cgroup file systems (an OCI
    bundle's ``cgroup`` mount shows the container the same ones)."""
    return _mounts()


def detect(trace=None, parent=PARENT, shared_parent=True):
    """The cgroup driver for this host: v2 when unified, else v1 (hybrid included).

    *parent*: the directory, relative to each hierarchy's root, containers go in.
    *shared_parent*: it is the runtime's own (minirun's, minirun-runc's default), made when
    missing and removed once its last container goes. Else it is the caller's (an OCI
    cgroupsPath): a container may join a cgroup that exists (a Kubernetes pod's), and of the
    parent only the levels this create made (``made``) are removed, by remove(made=…)."""
    mounts = _mounts()
    v1 = {}
    for point, fstype, opts in mounts:
        if fstype == "cgroup":
            for c in opts & set(CONTROLLERS + V1_EXTRA):
                v1.setdefault(c, point)
    if not v1:
        for point, fstype, _ in mounts:
            if fstype == "cgroup2":
                return CgroupV2(point, trace, parent, shared_parent)
        raise CgroupError("no cgroup file system is mounted")
    return CgroupV1(v1, trace, parent, shared_parent)


def _record_owner(cid, owner):
    """A symlink to the owner: one stat tells whether it is still there."""
    if owner:
        os.makedirs(OWNERS, mode=0o700, exist_ok=True)
        record = os.path.join(OWNERS, cid)
        try:
            os.symlink(owner, record)
        except FileExistsError:               # the same container, started again
            pass


def _forget_owner(cid):
    try:
        os.unlink(os.path.join(OWNERS, cid))
    except FileNotFoundError:
        pass


def sweep(trace=None):
    """Kill and remove the cgroups of containers whose owner is gone; return their ids."""
    try:
        cids = os.listdir(OWNERS)
    except FileNotFoundError:
        return []
    driver, gone = None, []
    for cid in cids:
        record = os.path.join(OWNERS, cid)
        if os.path.exists(record) or not os.path.lexists(record):
            continue                      # its owner is there, or it ended meanwhile
        driver = driver or detect()
        driver.kill_all(cid)
        driver.remove(cid)                # the record goes with them
        gone.append(cid)
        if trace:
            trace(f"removed the cgroups of container {cid[:12]}", "its state root is gone")
    return gone


def _write(path, value, trace, why, gone_ok=False):
    if trace:
        trace(f"write {path} = {value}", why)
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except OSError as e:
        if gone_ok and e.errno in (errno.ENOENT, errno.ENODEV):
            return            # the cgroup was removed meanwhile (its container exited)
        raise CgroupError(f"cannot set {os.path.basename(path)} to {value}: {e.strerror}") from None


def join(files, trace=None, fds=None):
    """Move the calling (single-threaded) process into the cgroups of *files*, a driver's
    ``join_files``: the first process of a container and exec's joiner do it themselves, by
    writing 0 to each. *fds*: the same files, opened by the parent (a container's first
    process joins once its cgroups exist, after it has left the host's /sys for its root)."""
    for fd in open_join_files(files) if fds is None else fds:
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
    if trace and files:
        trace(f"write 0 > {len(files)} {os.path.basename(files[0])} files",
              "this process joins the container's cgroups; its children inherit them")


def open_join_files(files):
    """*files* (a driver's ``join_files``) open for writing 0 to: all of them, or none."""
    fds = []
    try:
        for path in files:
            fds.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds


def _mkdir_under_parent(path, make_parent, exist_ok=False):
    """mkdir a container's cgroup, (re)making minirun's parent when it is missing.

    The parent goes away with its last container, so another minirun may remove
    it between our making it and our mkdir: then make it again. *exist_ok*: an OCI
    caller may name a cgroup it made itself (a Kubernetes pod's): the container joins it.
    """
    for _ in range(5):
        if not os.path.isdir(os.path.dirname(path)):
            make_parent()
        try:
            os.mkdir(path)
            return
        except FileNotFoundError:
            continue
        except FileExistsError:
            if exist_ok:
                return
            raise
    os.mkdir(path)


def _remove_if_empty(parent):
    """minirun's parent cgroup, once no container is left in it."""
    try:
        os.rmdir(parent)
    except OSError:
        pass                  # still holds containers (EBUSY), or already gone


def _remove_empty(dirs):
    """Parent levels a create made, deepest first, where no cgroup is left in them."""
    for path in sorted(dirs, key=lambda d: -d.count("/")):
        _remove_if_empty(path)


def _rmdir(path):
    """Remove a cgroup directory; the kernel says EBUSY until its last task is reaped (and,
    on v1, for a moment after: the exited task leaves its cgroup asynchronously)."""
    for n in range(150):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            time.sleep(0.001 if n < 50 else 0.01)     # usually free within a millisecond
    os.rmdir(path)


class CgroupV1:
    version = 1

    def __init__(self, controllers, trace=None, parent=PARENT, shared_parent=True):
        self.controllers = controllers    # name -> hierarchy mount point
        self.trace = trace
        self.parent = parent              # where containers go: "a/b" for an OCI "/a/b/<id>"
        self.shared = shared_parent       # (see detect)
        self.made = []                    # the parent's levels create made

    def dirs(self, cid):
        """Directory of the container in each hierarchy (one per mount point)."""
        return {c: os.path.join(p, self.parent, cid) for c, p in self.controllers.items()}

    def create(self, cid, limits, owner=None):
        """The container's cgroups with *limits*; *owner*: a path that exists as long as the
        container does (see sweep)."""
        made = []
        try:
            for point in dict.fromkeys(self.controllers.values()):
                parent = os.path.join(point, self.parent)
                path = os.path.join(parent, cid)
                _mkdir_under_parent(path, lambda: self._make_parent(point, parent),
                                    exist_ok=not self.shared)
                made.append(path)
                if point == self.controllers.get("cpuset"):
                    # Another minirun may have made the parent a moment ago and not yet given
                    # it CPUs: fill it (same values, so racing writers agree), then the child.
                    self._inherit_cpuset(point, parent, only_if_empty=True)
                    self._inherit_cpuset(parent, path)
            self._apply(cid, limits)
            _record_owner(cid, owner)
        except BaseException:
            for path in reversed(made):
                _rmdir(path)
            raise
        return self

    def _make_parent(self, point, parent):
        # Level by level: each new v1 cpuset starts empty and takes its parent's CPUs.
        level = point
        for name in os.path.relpath(parent, point).split(os.sep):
            above, level = level, os.path.join(level, name)
            try:
                os.mkdir(level)
                if level not in self.made:        # minirund's one driver makes it again
                    self.made.append(level)       # after its last container went
            except FileExistsError:
                continue
            if point == self.controllers.get("cpuset"):
                self._inherit_cpuset(above, level)

    @staticmethod
    def _inherit_cpuset(src, dst, only_if_empty=False):
        # A new v1 cpuset starts empty and refuses tasks until it has CPUs and memory nodes.
        for name in ("cpuset.cpus", "cpuset.mems"):
            if only_if_empty:
                with open(os.path.join(dst, name)) as f:
                    if f.read().strip():
                        continue
            with open(os.path.join(src, name)) as f:
                value = f.read().strip()
            with open(os.path.join(dst, name), "w") as f:
                f.write(value)

    def update(self, cid, limits):
        """New limits for a running container (``docker update``): only those given."""
        self._apply(cid, limits, devices=False)

    def _apply(self, cid, limits, devices=True):
        d = self.dirs(cid)
        t = self.trace
        if limits.memory and "memory" in d:
            _write(f"{d['memory']}/memory.limit_in_bytes", limits.memory, t,
                   "the kernel reclaims, then OOM-kills, past this much memory")
        if "memory" in d:
            for name, value, why in (
                    ("memory.soft_limit_in_bytes", limits.memory_reservation,
                     "reclaimed down to this first when memory is short"),
                    ("memory.memsw.limit_in_bytes", limits.memory_swap, "memory and swap together"),
                    ("memory.swappiness", limits.memory_swappiness, "how eagerly to swap"),
                    ("memory.oom_control", 1 if limits.oom_kill_disable else None,
                     "no OOM kill: tasks wait for memory instead")):
                if value is not None:
                    _write(f"{d['memory']}/{name}", value, t, why)
        if (limits.cpu_quota or limits.cpu_period) and "cpu" in d:
            _write(f"{d['cpu']}/cpu.cfs_period_us", limits.cpu_period or CFS_PERIOD, t,
                   "CPU time is counted per period (100 ms unless given)")
        if limits.cpu_quota and "cpu" in d:
            _write(f"{d['cpu']}/cpu.cfs_quota_us", limits.cpu_quota, t,
                   "at most this much CPU time per period, across all CPUs")
        if limits.cpu_shares and "cpu" in d:
            _write(f"{d['cpu']}/cpu.shares", limits.cpu_shares, t,
                   "relative CPU weight when CPUs are contended")
        for name, value in (("cpu.rt_period_us", limits.cpu_rt_period),
                            ("cpu.rt_runtime_us", limits.cpu_rt_runtime)):
            if value is not None and "cpu" in d:
                _write(f"{d['cpu']}/{name}", value, t, "real-time scheduling budget")
        if limits.pids and limits.pids > 0 and "pids" in d:
            _write(f"{d['pids']}/pids.max", limits.pids, t, "fork() fails past this many tasks")
        if limits.cpuset_cpus and "cpuset" in d:
            _write(f"{d['cpuset']}/cpuset.cpus", limits.cpuset_cpus, t, "run only on these CPUs")
        if limits.cpuset_mems and "cpuset" in d:
            _write(f"{d['cpuset']}/cpuset.mems", limits.cpuset_mems, t,
                   "allocate memory only on these NUMA nodes")
        for size, value in limits.hugetlb:
            if "hugetlb" not in d:
                raise CgroupError("huge page limits need the hugetlb cgroup controller")
            _write(f"{d['hugetlb']}/hugetlb.{size}.limit_in_bytes", value, t,
                   f"at most this much memory in {size} huge pages")
        if limits.blkio_weight or limits.device_read_bps or limits.device_write_bps:
            if "blkio" not in d:
                raise CgroupError("block I/O limits need the blkio cgroup controller")
            if limits.blkio_weight:        # CFQ's blkio.weight went with CFQ (5.0); BFQ's stays
                _write(_first_present(d["blkio"], ("blkio.bfq.weight", "blkio.weight"),
                                      "block I/O weight (the BFQ scheduler's)"),
                       limits.blkio_weight, t, "relative share of disk time when contended")
            for name, rates in (("read", limits.device_read_bps),
                                ("write", limits.device_write_bps)):
                for major, minor, rate in rates:
                    _write(f"{d['blkio']}/blkio.throttle.{name}_bps_device",
                           f"{major}:{minor} {rate}", t, f"at most this many bytes/s {name} "
                           "on this device (direct I/O; v1 cannot throttle the page cache)")
        if "devices" in d and devices:
            if limits.allow_all_devices:
                _write(f"{d['devices']}/devices.allow", "a", t, "privileged: every device")
            else:
                _write(f"{d['devices']}/devices.deny", "a", t, "no device unless allowed below")
                for rule in _device_rules(limits):
                    deny = rule.startswith(DENY)
                    _write(f"{d['devices']}/devices.{'deny' if deny else 'allow'}",
                           rule.removeprefix(DENY), t, "in order: the last match decides")

    def add(self, cid, pid):
        for point in dict.fromkeys(self.dirs(cid).values()):
            _write(f"{point}/cgroup.procs", pid, self.trace,
                   "the container's first process joins this hierarchy; children inherit it")

    def procs_file(self, cid):
        d = self.dirs(cid)
        return os.path.join(d.get("pids") or d.get("memory") or next(iter(d.values())),
                            "cgroup.procs")

    def first_process_files(self, cid):
        """What a new container's first process writes 0 to, joining by itself: join_files
        (on v2: nothing; the parent moves it, ``add``)."""
        return self.join_files(cid)

    def join_files(self, cid):
        """``tasks`` of every hierarchy: a single-threaded process joins the container by
        writing 0 to them, with no wait (see the module's docstring)."""
        # (a container made by an older minirun has no directory in a hierarchy added since)
        return [f"{p}/tasks" for p in dict.fromkeys(self.dirs(cid).values())
                if os.path.isdir(p)]

    def kill_all(self, cid):
        self.freeze(cid, False)          # a frozen task cannot die
        _kill_all(self.procs_file(cid))

    def freeze(self, cid, frozen):
        path = self.dirs(cid).get("freezer")
        if path and os.path.isdir(path):
            _write(f"{path}/freezer.state", "FROZEN" if frozen else "THAWED", self.trace,
                   "pause: the container's tasks stop being scheduled", gone_ok=not frozen)

    def is_frozen(self, cid):
        path = self.dirs(cid).get("freezer")
        try:
            with open(f"{path}/freezer.state") as f:
                return f.read().strip() != "THAWED"
        except (OSError, TypeError):
            return False

    def usage(self, cid):
        """(memory bytes, memory limit, cpu ns, pids) for stats."""
        d = self.dirs(cid)
        return (_read_int(f"{d.get('memory')}/memory.usage_in_bytes"),
                _read_int(f"{d.get('memory')}/memory.limit_in_bytes"),
                _read_int(f"{d.get('cpuacct')}/cpuacct.usage"),
                _read_int(f"{d.get('pids')}/pids.current"))

    def oom_killed(self, cid):
        path = self.dirs(cid).get("memory")
        return bool(path) and _counter(os.path.join(path, "memory.oom_control"), "oom_kill") > 0

    def remove(self, cid, made=()):
        """The container's cgroups; a shared parent once empty, else the levels *made*."""
        for path in dict.fromkeys(self.dirs(cid).values()):
            _rmdir(path)
            if self.shared:
                _remove_if_empty(os.path.dirname(path))
        _remove_empty(made)
        if self.parent == PARENT:         # owner records name minirun's own containers
            _forget_owner(cid)


def _device_rules(limits):
    return DEFAULT_RULES if limits.device_rules is None else limits.device_rules


class CgroupV2:
    version = 2

    def __init__(self, root="/sys/fs/cgroup", trace=None, parent=PARENT, shared_parent=True):
        self.root = root
        self.trace = trace
        self.parent = parent
        self.shared = shared_parent
        self.made = []

    def path(self, cid):
        return os.path.join(self.root, self.parent, cid)

    def _available(self, path):
        try:
            with open(os.path.join(path, "cgroup.controllers")) as f:
                return set(f.read().split())
        except FileNotFoundError:
            return set()

    def _enable(self, path, wanted):
        """Delegate *wanted* controllers from *path* to its children."""
        have = self._available(path) & wanted
        if have:
            _write(os.path.join(path, "cgroup.subtree_control"),
                   " ".join("+" + c for c in sorted(have)), self.trace,
                   "let child cgroups use these controllers")
        return have

    def create(self, cid, limits, owner=None):
        def make_parent():
            have, level = self._enable(self.root, set(CONTROLLERS)), self.root
            for name in self.parent.split(os.sep):
                level = os.path.join(level, name)
                try:
                    os.mkdir(level)
                    if level not in self.made:    # (as CgroupV1's)
                        self.made.append(level)
                except FileExistsError:
                    pass
                have = self._enable(level, have)
        make_parent()              # (again: enabling is idempotent, and a parent may predate it)
        path = self.path(cid)
        _mkdir_under_parent(path, make_parent, exist_ok=not self.shared)
        try:
            self._apply(path, limits)
            if not limits.allow_all_devices:
                from .devices import attach_allow_list   # bpf only where v2 needs it
                attach_allow_list(path, _device_rules(limits))
                if self.trace:
                    self.trace(f"bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE, {path})",
                               "v2's device allow-list: an eBPF program checks every open/mknod")
            _record_owner(cid, owner)
        except BaseException:
            _rmdir(path)
            raise
        return self

    def update(self, cid, limits):
        """New limits for a running container (``docker update``): only those given."""
        self._apply(self.path(cid), limits)

    def _apply(self, path, limits):
        t = self.trace
        if limits.memory:
            _write(f"{path}/memory.max", limits.memory, t,
                   "the kernel reclaims, then OOM-kills, past this much memory")
            if os.path.exists(f"{path}/memory.swap.max"):
                _write(f"{path}/memory.swap.max", 0, t, "and no swap to escape to")
        if limits.memory_reservation:
            _write(f"{path}/memory.low", limits.memory_reservation, t,
                   "kept from reclaim up to this much")
        if limits.memory_swap and os.path.exists(f"{path}/memory.swap.max"):
            # v1's figure counts memory and swap together; v2's swap alone
            swap = "max" if limits.memory_swap == -1 else limits.memory_swap - (limits.memory or 0)
            _write(f"{path}/memory.swap.max", swap, t, "at most this much swap")
        if limits.cpu_quota or limits.cpu_period:
            quota = "max" if (limits.cpu_quota or -1) < 0 else limits.cpu_quota
            _write(f"{path}/cpu.max", f"{quota} {limits.cpu_period or CFS_PERIOD}", t,
                   "at most this much CPU time per period")
        if limits.cpu_shares:
            _write(f"{path}/cpu.weight", shares_to_weight(limits.cpu_shares), t,
                   "relative CPU weight when CPUs are contended")
        if limits.pids and limits.pids > 0:
            _write(f"{path}/pids.max", limits.pids, t, "fork() fails past this many tasks")
        if limits.cpuset_cpus:
            _write(f"{path}/cpuset.cpus", limits.cpuset_cpus, t, "run only on these CPUs")
        if limits.cpuset_mems:
            _write(f"{path}/cpuset.mems", limits.cpuset_mems, t, "memory only on these nodes")
        for size, value in limits.hugetlb:
            _write(f"{path}/hugetlb.{size}.max", value, t, f"at most this much in {size} pages")
        if limits.blkio_weight:            # iocost's io.weight, else BFQ's (v1's scale)
            weight = _first_present(path, ("io.weight", "io.bfq.weight"), "block I/O weight")
            _write(weight, f"default {weight_to_io_weight(limits.blkio_weight)}"
                   if weight.endswith("/io.weight") else limits.blkio_weight, t,
                   "relative share of disk time when contended")
        rates = {}
        for key, entries in (("rbps", limits.device_read_bps), ("wbps", limits.device_write_bps)):
            for major, minor, rate in entries:
                rates.setdefault(f"{major}:{minor}", []).append(f"{key}={rate}")
        io_max = rates and _first_present(path, ("io.max",), "block I/O throttling (io.max)")
        for device, limit in rates.items():
            _write(io_max, f"{device} {' '.join(limit)}", t,
                   "at most this many bytes/s on this device, page cache writeback included")

    def add(self, cid, pid):
        _write(f"{self.path(cid)}/cgroup.procs", pid, self.trace,
               "the container's first process joins its cgroup; children inherit it")

    def procs_file(self, cid):
        return os.path.join(self.path(cid), "cgroup.procs")

    def first_process_files(self, cid):
        return []             # no self-join without the wait: the parent moves it (add)

    def join_files(self, cid):
        return [self.procs_file(cid)]

    def freeze(self, cid, frozen):
        if os.path.isdir(self.path(cid)):
            _write(f"{self.path(cid)}/cgroup.freeze", int(frozen), self.trace,
                   "pause: the container's tasks stop being scheduled", gone_ok=not frozen)

    def is_frozen(self, cid):
        return _counter(os.path.join(self.path(cid), "cgroup.events"), "frozen") == 1

    def usage(self, cid):
        """(memory bytes, memory limit, cpu ns, pids) for stats."""
        p = self.path(cid)
        limit = _read_int(f"{p}/memory.max")
        return (_read_int(f"{p}/memory.current"), limit,
                _counter(f"{p}/cpu.stat", "usage_usec") * 1000, _read_int(f"{p}/pids.current"))

    def kill_all(self, cid):
        if os.path.isdir(self.path(cid)) and os.path.exists(f"{self.path(cid)}/cgroup.freeze"):
            self.freeze(cid, False)
        kill = os.path.join(self.path(cid), "cgroup.kill")   # Linux 5.14+: one write
        if os.path.exists(kill):
            _write(kill, 1, None, "", gone_ok=True)
        _kill_all(self.procs_file(cid))

    def oom_killed(self, cid):
        return _counter(os.path.join(self.path(cid), "memory.events"), "oom_kill") > 0

    def remove(self, cid, made=()):
        _rmdir(self.path(cid))
        if self.shared:
            _remove_if_empty(os.path.dirname(self.path(cid)))
        _remove_empty(made)
        if self.parent == PARENT:
            _forget_owner(cid)


def _kill_all(procs_file):
    """SIGKILL every process in a cgroup, until none is left."""
    for _ in range(100):
        try:
            with open(procs_file) as f:
                pids = [int(p) for p in f.read().split()]
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENODEV):   # removed meanwhile
                return
            raise
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def _read_int(path):
    """An integer cgroup file; 0 when missing or "max"."""
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def _counter(path, key):
    """A ``key value`` line of a cgroup stat file, 0 when absent."""
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.partition(" ")
                if k == key:
                    return int(v)
    except (OSError, ValueError):
        pass
    return 0
