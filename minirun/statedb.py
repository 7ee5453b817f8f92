"""The one state store: sqlite3 in WAL mode under the state root.

Every command and the daemon open the same file; sqlite's locking keeps
concurrent writers from corrupting it, and BEGIN IMMEDIATE makes
read-check-write sequences (a name in use?) atomic.
"""
import os
import zlib

# sqlite3's C core, all that minirun uses: the package around it adds date adapters whose
# datetime import costs ~2 ms of every start (docs/architecture.md, "What a start imports").
import _sqlite3 as sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,            -- config digest, as Docker's image ID
    manifest_digest TEXT NOT NULL,
    created TEXT,
    size INTEGER NOT NULL,
    added REAL NOT NULL,
    parent TEXT NOT NULL DEFAULT ''  -- the local image a commit (or build) was made from
);
CREATE TABLE IF NOT EXISTS tags (
    repository TEXT NOT NULL,       -- fully qualified: docker.io/library/busybox
    tag TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images(id),
    PRIMARY KEY (repository, tag)
);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,            -- 64 hex
    name TEXT NOT NULL UNIQUE,
    image_id TEXT NOT NULL,
    image TEXT NOT NULL,            -- as the user named it
    created REAL NOT NULL,
    state TEXT NOT NULL,            -- created, running, exited
    pid INTEGER,
    exit_code INTEGER,
    oom_killed INTEGER NOT NULL DEFAULT 0,
    started REAL,
    finished REAL,
    owner TEXT,                     -- "pid:start time" of the process supervising it
    restart_count INTEGER NOT NULL DEFAULT 0,
    paused INTEGER NOT NULL DEFAULT 0,
    config TEXT NOT NULL            -- JSON: what it runs and how (the engine's spec)
);
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,            -- 64 hex
    name TEXT NOT NULL UNIQUE,
    bridge TEXT NOT NULL UNIQUE,    -- the Linux bridge device (made while containers use it)
    subnet TEXT NOT NULL UNIQUE,    -- e.g. 10.89.0.0/24
    gateway TEXT NOT NULL,          -- the bridge's own address
    created REAL NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    internal INTEGER NOT NULL DEFAULT 0,  -- --internal: no route, NAT or forwarding out
    subnet6 TEXT,                   -- --ipv6: e.g. fd6f:…:1::/64 (NULL: IPv4 only)
    gateway6 TEXT,
    ipam TEXT NOT NULL DEFAULT '{}' -- JSON {"4"|"6": {IPRange, AuxiliaryAddresses}}
);
CREATE TABLE IF NOT EXISTS endpoints (
    network_id TEXT NOT NULL REFERENCES networks(id),
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    ip TEXT NOT NULL,               -- held from create (or connect) until rm (or disconnect)
    ip6 TEXT,                       -- on an IPv6 network, likewise
    mac TEXT NOT NULL,
    ifname TEXT NOT NULL,           -- eth0, eth1, … inside the container
    aliases TEXT NOT NULL DEFAULT '[]',
    ipam_config TEXT NOT NULL DEFAULT '{}',  -- JSON: the addresses asked for (--ip, --ip6)
    veth TEXT,                      -- the host end while wired; NULL while the container is down
    PRIMARY KEY (network_id, container_id),
    UNIQUE (network_id, ip)
);
CREATE TABLE IF NOT EXISTS idranges (
    container_id TEXT PRIMARY KEY REFERENCES containers(id) ON DELETE CASCADE,
    slot INTEGER NOT NULL UNIQUE    -- --userns=auto: host ids start + slot * 65536, 65536 of them
);
CREATE TABLE IF NOT EXISTS ports (
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    proto TEXT NOT NULL,            -- tcp or udp
    host_ip TEXT NOT NULL,          -- 0.0.0.0: every address of the host
    host_port INTEGER NOT NULL,
    container_ip TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    UNIQUE (proto, host_port, host_ip)
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,          -- its directory: volumes/<name>/_data
    created REAL NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    anonymous INTEGER NOT NULL DEFAULT 0   -- made for one container (-v /path, image VOLUME)
);
CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,           -- sha256 of (parent image, instruction, config, sources)
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS volume_users (
    volume TEXT NOT NULL REFERENCES volumes(name),
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    PRIMARY KEY (volume, container_id)
);
"""


IntegrityError = sqlite3.IntegrityError      # a UNIQUE or foreign key broken: name in use, …

ROOT_MODE = 0o710     # as Docker's /var/lib/docker: nobody but root looks in
PRIVATE = 0o600       # the database holds every container's environment (-e PASSWORD=…)


def private_root(root):
    """Make the state root, or repair its mode: a state root holds secrets (container configs,
    logs, credentials), so only root may read it."""
    os.makedirs(root, mode=ROOT_MODE, exist_ok=True)
    if os.stat(root).st_mode & 0o7777 != ROOT_MODE:
        os.chmod(root, ROOT_MODE)


def open_db(root, check_same_thread=True):
    private_root(root)
    db = sqlite3.connect(os.path.join(root, "state.db"), timeout=30, isolation_level=None,
                         check_same_thread=check_same_thread)
    db.row_factory = sqlite3.Row
    if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
        _set_up(db, root)
    else:
        _private_files(root)             # an older minirun's, or someone's chmod: repaired
    # WAL with synchronous=NORMAL cannot corrupt; a power cut may lose the last commits.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
    db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    db.execute("PRAGMA foreign_keys=ON")
    return db


# A run ends without closing the database (main._exit_now), so the next command to open it,
# finding no other process that has it open, reads the whole WAL back to index it: ~1.5 ms
# at sqlite's default of 1000 pages before a checkpoint. At 200 that stays ~0.3 ms, for a
# checkpoint (two fsyncs, 2–3 ms) every ~10 runs.
WAL_PAGES = 200

# sqlite caches up to 2000 KiB of pages per connection by default, and minirund keeps several
# (ConnectionPool): as the containers table grows each fills, ~2 kB per container at 1000
# containers (scripts/bench/density). A page not cached comes back from the kernel's page
# cache in a pread of a few µs.
CACHE_KIB = 128

SCHEMA_VERSION = zlib.crc32(SCHEMA.encode()) & 0x7fffffff    # changes whenever SCHEMA does


def _set_up(db, root):
    """WAL mode, the schema and the files' modes, once per root (and again after an upgrade).

    Under an flock on the root directory: two processes on a fresh root that switch the journal
    mode to WAL at once get "database is locked" at once — sqlite's busy handler is not called
    for that switch (six concurrent `minirun load`s on a fresh root hit it). Not a lock on
    state.db itself: see _private_files."""
    import fcntl
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return                            # another process did it while this one waited
        db.execute("PRAGMA journal_mode=WAL")         # the files exist from here on
        _private_files(root)                          # before anything is written to them
        with transaction(db):             # not executescript: it would COMMIT at once
            for statement in _statements(SCHEMA):
                db.execute(statement)
            _add_missing_columns(db)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    finally:
        os.close(fd)


def _private_files(root):
    """0600 for the database and its WAL files. Only chmod: opening and closing the file here
    would drop this process's POSIX locks on it — sqlite's own locks — and let two
    connections write at once."""
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        try:
            if os.stat(os.path.join(root, name)).st_mode & 0o077:
                os.chmod(os.path.join(root, name), PRIVATE)
        except FileNotFoundError:
            pass


def _statements(script):
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""


CONSTRAINTS = ("PRIMARY", "UNIQUE", "FOREIGN")


def _add_missing_columns(db):
    """A state root made by an older minirun gets the columns added since (NULL or default)."""
    import re          # only for an old state root's schema
    for table, body in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);", SCHEMA, re.S):
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for line in body.splitlines():
            line = line.split("--")[0].strip().rstrip(",")
            name = line.split(" ", 1)[0]
            if line and name.isidentifier() and name not in have and name not in CONSTRAINTS:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {line.replace('PRIMARY KEY', '')}")


class transaction:
    """``with transaction(db) as db:`` BEGIN IMMEDIATE … COMMIT: one writer at a time, rolled
    back on error. (A class, not a contextlib generator: docs/architecture.md, "What a start
    imports".)"""

    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, error, *_):
        self.db.execute("ROLLBACK" if error else "COMMIT")


IDLE_KEPT = 4     # connections kept for later threads: a burst of many clients at once
                  # leaves no more than these open (each may cache up to 2 MB of pages)


class LocalDB:
    """The daemon's connections: one per thread (a connection must not serve two threads at
    once), each handed on to a later thread once its thread ends. The daemon runs a thread per
    API connection, and opening a connection costs ~0.3 ms: two of them for every container
    started through the API (scripts/bench/density)."""

    def __init__(self, root):
        import threading   # only the daemon has threads (and so this class)
        self.root = root
        self._local = threading.local()
        self._lock = threading.RLock()     # a lease's __del__ may run where it is held
        self._idle = []            # connections whose thread has ended

    def execute(self, *args):
        lease = getattr(self._local, "lease", None)
        if lease is None:
            lease = self._local.lease = _Lease(self)
        return lease.conn.execute(*args)


class _Lease:
    """A thread's connection. The thread's thread-local values go when it ends, and with them
    this lease, which hands the connection back; one left inside a transaction (a COMMIT that
    failed) is closed instead, which rolls it back, and so is one beyond IDLE_KEPT."""

    def __init__(self, pool):
        self.pool = pool
        with pool._lock:
            self.conn = pool._idle.pop() if pool._idle else None
        if self.conn is None:
            self.conn = open_db(pool.root, check_same_thread=False)

    def __del__(self):
        with self.pool._lock:
            if not self.conn.in_transaction and len(self.pool._idle) < IDLE_KEPT:
                self.pool._idle.append(self.conn)
                return
        self.conn.close()
