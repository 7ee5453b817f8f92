"""Named volumes: directories minirun owns, mounted into containers, that outlive them.

A volume is ``volumes/<name>/_data`` under the state root (as Docker's local
driver keeps them) and a row in the database; which containers use it is
recorded too (a container's rows go with it), so a volume in use cannot be
removed and ``rm -v`` / ``--rm`` remove a container's anonymous volumes.
Nothing but an explicit ``volume rm``/``prune`` (or ``rm -v`` of an anonymous
one) deletes a volume's data: not a crash, not a restart. A removal moves the
directory aside before it forgets the row, so a crash half way leaves either
the volume or nothing, never a volume whose data is half gone.
"""
import os
import time

from .. import cjson, statedb
from ..errors import Conflict, NotFound
from ..fsutil import rmtree, tree_size
from .containers import valid_name
from .options import OptionError

DIR_MODE = 0o701        # as Docker's /var/lib/docker/volumes: root lists it, others pass


class VolumeNotFound(NotFound):
    pass


def check_name(name):
    if not valid_name(name) or name.startswith("/"):
        raise OptionError(f'"{name}" includes invalid characters for a local volume name, '
                          f'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to '
                          f'pass a host directory, use absolute path')


class VolumeStore:
    def __init__(self, root, db=None):
        self.dir = os.path.join(root, "volumes")
        os.makedirs(self.dir, mode=DIR_MODE, exist_ok=True)
        self.db = db or statedb.open_db(root)

    def path(self, name):
        """Where a volume's data is (what a container mounts)."""
        return os.path.join(self.dir, name, "_data")

    def create(self, name=None, labels=None, anonymous=False):
        """The volume *name* (made if missing, as Docker does); returns (row, made now)."""
        if name is None:
            name, anonymous = os.urandom(32).hex(), True
        check_name(name)
        with statedb.transaction(self.db) as db:
            made = db.execute("INSERT OR IGNORE INTO volumes (name, created, labels, anonymous)"
                              " VALUES (?, ?, ?, ?)", (name, time.time(),
                                                       cjson.dumps(labels or {}),
                                                       int(anonymous))).rowcount == 1
        os.makedirs(self.path(name), exist_ok=True)
        return self.get(name), made

    def get(self, name):
        row = self.db.execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise VolumeNotFound(f"get {name}: no such volume")
        return row

    def list(self):
        return self.db.execute("SELECT * FROM volumes ORDER BY name").fetchall()

    def users(self, name):
        return [r["container_id"] for r in self.db.execute(
            "SELECT container_id FROM volume_users WHERE volume = ?", (name,))]

    def use(self, name, cid):
        """Record that container *cid* mounts volume *name*."""
        try:
            self.db.execute("INSERT OR IGNORE INTO volume_users (volume, container_id) "
                            "VALUES (?, ?)", (name, cid))
        except statedb.IntegrityError:
            raise VolumeNotFound(f"get {name}: no such volume") from None

    def anonymous_of(self, cid):
        """The anonymous volumes container *cid* uses (``rm -v`` removes them)."""
        return [r["name"] for r in self.db.execute(
            "SELECT v.name FROM volumes v JOIN volume_users u ON u.volume = v.name "
            "WHERE u.container_id = ? AND v.anonymous = 1", (cid,))]

    def remove(self, name, force=False, ignore_users=()):
        """Delete a volume and its data; refused while a container (other than
        *ignore_users*, which are going) uses it. *force*: a missing one is no error."""
        try:
            self.get(name)
        except VolumeNotFound:
            if force:
                return
            raise
        users = [u for u in self.users(name) if u not in ignore_users]
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        trash = os.path.join(self.dir, f".removing-{name}")
        try:
            os.rename(os.path.join(self.dir, name), trash)
        except FileNotFoundError:
            trash = None
        with statedb.transaction(self.db) as db:
            db.execute("DELETE FROM volume_users WHERE volume = ?", (name,))
            db.execute("DELETE FROM volumes WHERE name = ?", (name,))
        if trash:
            rmtree(trash)

    def clean(self):
        """What a removal cut short by a crash left aside."""
        for entry in os.listdir(self.dir):
            if entry.startswith(".removing-"):
                rmtree(os.path.join(self.dir, entry))

    def size(self, name):
        return tree_size(self.path(name))


def remove_container(containers, cid, volumes=False, made=()):
    """Forget a container (its record, directory, volume uses); with *volumes* (``rm -v``,
    ``--rm``) its anonymous volumes go too, and the named ones in *made* (made for a run that
    failed to start) — except one another container still uses."""
    store = VolumeStore(containers.root, db=containers.db) if volumes else None
    anonymous = store.anonymous_of(cid) if store else []
    containers.remove(cid)
    for name in dict.fromkeys([*anonymous, *made]):
        try:
            store.remove(name, force=True)
        except Conflict:
            pass
