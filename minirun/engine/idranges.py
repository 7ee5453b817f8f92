"""Host id ranges for user namespaces: minirun's subordinate ids, a slice per container.

minirun takes its ids as Docker (``dockremap``) and podman (``containers``) do: a
system user ``minirunremap`` (no group of its own: the group ``minirun`` is the one
allowed on minirund's socket) with a range in /etc/subuid and /etc/subgid, added on
first use if missing, after every range already given out. ``--userns=auto`` gives each
container its own 65536 ids (slot 1, 2, … of the range, held in the state database
from create to rm); ``minirund --userns-remap=default`` gives every container the
first slice (slot 0), as Docker's remap does.
"""
import os

from .. import statedb
from ..errors import MinirunError
from ..runtime.userns import RANGE

USER = "minirunremap"
SLOTS = 1024                    # containers with their own slice at once
FILES = ("/etc/subuid", "/etc/subgid")


class NoIdsLeft(MinirunError):
    pass


def _entries(path):
    try:
        with open(path) as f:
            return [l.strip().split(":") for l in f if l.count(":") == 2]
    except FileNotFoundError:
        return []


def subordinate_range():
    """(start, count) of minirun's ids, made (user and both files) if missing."""
    found = [e for e in _entries(FILES[0]) if e[0] == USER]
    if found:
        return int(found[0][1]), int(found[0][2])
    import subprocess          # only here: a start needs none of it
    if subprocess.run(["id", "-u", USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", USER], check=True, capture_output=True)
    taken = [int(e[1]) + int(e[2]) for path in FILES for e in _entries(path)
             if e[1].isdigit() and e[2].isdigit()]
    start = max([100000, *taken])
    start += -start % RANGE                     # aligned, for a reader of uid_map
    count = RANGE * SLOTS
    for path in FILES:
        with open(path, "a") as f:
            f.write(f"{USER}:{start}:{count}\n")
        os.chmod(path, 0o644)
    return start, count


def allocate(db, container_id, mode):
    """[host base, count] for a container: mode "auto" (its own slice) or "remap" (the
    shared first slice)."""
    start, count = subordinate_range()
    if mode == "remap":
        return [start, RANGE]
    with statedb.transaction(db) as tx:
        used = {r[0] for r in tx.execute("SELECT slot FROM idranges")}
        slot = next((s for s in range(1, count // RANGE) if s not in used), None)
        if slot is None:
            raise NoIdsLeft(f"--userns=auto: all {count // RANGE - 1} id ranges are in use")
        tx.execute("INSERT INTO idranges (container_id, slot) VALUES (?, ?)",
                   (container_id, slot))
    return [start + slot * RANGE, RANGE]
