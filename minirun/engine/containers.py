"""Containers as users see them: records in the state store, and their directories.

A container is a row (id, unique name, image, state, exit code, its spec as
JSON) and a directory ``containers/<id>/`` holding its overlay upper and
work dirs and the files bound in as /etc/hostname, /etc/hosts and
/etc/resolv.conf. The row is written first and removed last, so ``rm`` and
``prune`` can always find what a crash left behind.
"""
import os
import time

from .. import cjson, statedb
from ..charsets import ALNUM, LOWER_HEX, only
from ..errors import Conflict, MinirunError, NotFound
from ..fsutil import rmtree, spread_subdirs
from ..runtime.spec import spec_from_dict, spec_to_dict
from .names import random_name

# A build step's container (build/steps.py): it lives only as long as its build, so one that
# outlived it — its builder killed, or minirund stopped mid-build — goes at the next chance.
BUILD_STEP_LABEL = "org.minirun.build-step"


def valid_name(name):
    """Docker's container names: ``[a-zA-Z0-9][a-zA-Z0-9_.-]+``, after an optional ``/``."""
    bare = name.removeprefix("/")
    return len(bare) > 1 and bare[0] in ALNUM and only(bare, ALNUM + "_.-")


def process_identity(pid=None):
    """``pid:start-time``: names a process so that a recycled PID is not mistaken for it."""
    pid = pid or os.getpid()
    with open(f"/proc/{pid}/stat") as f:
        start = f.read().rsplit(")", 1)[1].split()[19]
    return f"{pid}:{start}"


def process_alive(identity):
    if not identity:
        return False
    pid = int(identity.split(":")[0])
    try:
        return process_identity(pid) == identity
    except (OSError, IndexError):
        return False


class ContainerNotFound(NotFound):
    pass


class NameConflict(Conflict):
    pass


class ContainerStore:
    def __init__(self, root, db=None):
        self.root = root
        self.dir = os.path.join(root, "containers")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        spread_subdirs(self.dir)      # each container's files away from removed containers'
        self.db = db or statedb.open_db(root)

    def path(self, cid, *parts):
        return os.path.join(self.dir, cid, *parts)

    def exit_file(self, cid):
        """Where the fork server writes the exit code of the container's last run."""
        return self.path(cid, "exit")

    def create(self, image_id, image, config, name=None):
        """Record a new container and make its directory; returns (id, name)."""
        if name is not None and not valid_name(name):
            raise MinirunError(f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] '
                               f'are allowed')
        name = name.lstrip("/") if name else None
        cid = os.urandom(32).hex()
        for attempt in range(20):
            candidate = name or random_name() + (f"{attempt}" if attempt > 9 else "")
            try:
                with statedb.transaction(self.db) as db:
                    db.execute("INSERT INTO containers (id, name, image_id, image, created, "
                               "state, owner, config) VALUES (?, ?, ?, ?, ?, 'created', ?, ?)",
                               (cid, candidate, image_id, image, time.time(), process_identity(),
                                cjson.dumps(config)))
                break
            except statedb.IntegrityError:
                if name:
                    other = self.db.execute("SELECT id FROM containers WHERE name = ?",
                                            (name,)).fetchone()
                    raise NameConflict(
                        f'Conflict. The container name "/{name}" is already in use by container '
                        f'"{other["id"] if other else "?"}". You have to remove (or rename) that '
                        f'container to be able to reuse that name.') from None
        os.makedirs(self.path(cid))
        for part in ("upper", "work", "rootfs"):
            os.mkdir(self.path(cid, part))
        return cid, candidate

    def get(self, ref):
        """A container row by full ID, unique ID prefix or name."""
        row = self.db.execute("SELECT * FROM containers WHERE id = ? OR name = ?",
                              (ref, ref.lstrip("/"))).fetchone()
        if row is None and 0 < len(ref) <= 64 and only(ref, LOWER_HEX):
            rows = self.db.execute("SELECT * FROM containers WHERE id LIKE ?",
                                   (ref + "%",)).fetchall()
            if len(rows) > 1:
                raise MinirunError(f"multiple containers match ID prefix {ref}")
            row = rows[0] if rows else None
        if row is None:
            raise ContainerNotFound(f"No such container: {ref}")
        return row

    def list(self):
        return self.db.execute("SELECT * FROM containers ORDER BY created DESC").fetchall()

    def save_spec(self, cid, spec, **more):
        """Store what the runtime needs to start (and restart) this container (and *more*:
        the ports it publishes)."""
        config = self.config(self.get(cid))
        config["spec"] = spec_to_dict(spec)
        config.update(more)
        with statedb.transaction(self.db) as db:
            db.execute("UPDATE containers SET config=? WHERE id=?", (cjson.dumps(config), cid))

    @staticmethod
    def config(row):
        """A record's config: {"options": the run options, "spec": the runtime's Spec (once
        created), "ports": what it publishes}. Only this store knows it is JSON."""
        return cjson.loads(row["config"])

    @staticmethod
    def options(row):
        return ContainerStore.config(row)["options"]

    @staticmethod
    def spec(row):
        return spec_from_dict(ContainerStore.config(row)["spec"])

    def mark_running(self, cid, pid):
        with statedb.transaction(self.db) as db:
            db.execute("UPDATE containers SET state='running', pid=?, started=?, owner=?, "
                       "paused=0 WHERE id=?", (pid, time.time(), process_identity(), cid))

    def update(self, cid, **fields):
        sets = ", ".join(f"{k}=?" for k in fields)
        with statedb.transaction(self.db) as db:
            db.execute(f"UPDATE containers SET {sets} WHERE id=?", (*fields.values(), cid))

    def mark_exited(self, cid, code, oom_killed=False):
        with statedb.transaction(self.db) as db:
            db.execute("UPDATE containers SET state='exited', pid=NULL, exit_code=?, "
                       "oom_killed=?, finished=? WHERE id=?",
                       (code, int(oom_killed), time.time(), cid))

    def build_step(self, row):
        return BUILD_STEP_LABEL in (self.options(row).get("labels") or {})

    def orphans(self):
        """Containers whose supervising process is gone (minirun was killed, or crashed),
        each taken over by this process: see adopt."""
        rows = self.db.execute("SELECT * FROM containers WHERE state IN ('created', 'running')")
        return [r for r in rows.fetchall() if not process_alive(r["owner"]) and self.adopt(r)]

    def adopt(self, row):
        """Make this process the owner of *row*'s container, if the record is still as read.
        A minirun that records its container's exit and ends between our read and our look
        at its process is gone, but its container is no orphan: without this check, its
        address went to the next container while it still counted as its own."""
        with statedb.transaction(self.db) as db:
            return db.execute("UPDATE containers SET owner = ? WHERE id = ? AND state = ? AND "
                              "owner IS ?", (process_identity(), row["id"], row["state"],
                                             row["owner"])).rowcount == 1

    def uses_image(self, image_id):
        return self.db.execute("SELECT 1 FROM containers WHERE image_id = ? LIMIT 1",
                               (image_id,)).fetchone() is not None

    def remove(self, cid):
        """Delete the directory, then the row (safe to run twice)."""
        rmtree(self.path(cid))
        with statedb.transaction(self.db) as db:
            db.execute("DELETE FROM containers WHERE id = ?", (cid,))
