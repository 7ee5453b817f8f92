"""``top`` and ``stats``: what runs in a container and what it uses, from /proc and its cgroup."""
import os
import pwd
import time

from ..runtime import cgroups as cg
from .logs import timestamp

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _pids(cid):
    try:
        with open(cg.detect().procs_file(cid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _proc(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    uid = os.stat(f"/proc/{pid}").st_uid
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    cpu = (int(fields[11]) + int(fields[12])) // CLK_TCK      # utime + stime
    return [user, str(pid), fields[1], "0", "-", "?",
            time.strftime("%H:%M:%S", time.gmtime(cpu)), cmd]


def top(engine, row):
    """Docker's ``ps -ef``-style table of the container's processes (host PIDs)."""
    procs = []
    for pid in sorted(_pids(row["id"])):
        try:
            procs.append(_proc(pid))
        except OSError:
            pass                      # gone meanwhile
    return {"Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
            "Processes": procs}


def _system_cpu_ns():
    with open("/proc/stat") as f:
        jiffies = sum(int(x) for x in f.readline().split()[1:8])
    return jiffies * 1_000_000_000 // CLK_TCK


def stats(engine, row, prev=None):
    """One sample in the shape of Docker's /containers/{id}/stats."""
    running = row["state"] == "running"
    mem, limit, cpu, pids = cg.detect().usage(row["id"]) if running else (0, 0, 0, 0)
    if not limit or limit > 1 << 60:
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cpu_stats = {"cpu_usage": {"total_usage": cpu, "usage_in_kernelmode": 0,
                               "usage_in_usermode": 0},
                 "system_cpu_usage": _system_cpu_ns(), "online_cpus": os.cpu_count(),
                 "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    empty = {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0, "online_cpus": 0,
             "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    return {"read": timestamp(), "preread": prev["read"] if prev else "0001-01-01T00:00:00Z",
            "id": row["id"], "name": "/" + row["name"],
            "pids_stats": {"current": pids}, "cpu_stats": cpu_stats,
            "precpu_stats": prev["cpu_stats"] if prev else empty,
            "memory_stats": {"usage": mem, "limit": limit, "stats": {}},
            "blkio_stats": {}, "networks": {}}


def cpu_percent(doc):
    """The CPU % column of ``docker stats``."""
    cpu = doc["cpu_stats"]["cpu_usage"]["total_usage"] - \
        doc["precpu_stats"]["cpu_usage"]["total_usage"]
    system = doc["cpu_stats"]["system_cpu_usage"] - doc["precpu_stats"]["system_cpu_usage"]
    if system <= 0 or cpu < 0:
        return 0.0
    return cpu / system * doc["cpu_stats"]["online_cpus"] * 100
