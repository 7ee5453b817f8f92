"""The state store: a root made by an older minirun still opens, with the new columns; many
processes opening a fresh root at once all get it."""
import multiprocessing
import os
import sqlite3

import pytest

from minirun import statedb


def test_older_state_gets_the_columns_added_since(tmp_path):
    db = sqlite3.connect(os.path.join(tmp_path, "state.db"))
    db.executescript("CREATE TABLE containers (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
                     "image_id TEXT NOT NULL, image TEXT NOT NULL, created REAL NOT NULL, "
                     "state TEXT NOT NULL, pid INTEGER, exit_code INTEGER, config TEXT NOT NULL);"
                     "INSERT INTO containers VALUES ('a', 'old', 'i', 'busybox', 1, 'exited', "
                     "NULL, 0, '{}');")
    db.commit()
    db.close()
    db = statedb.open_db(str(tmp_path))
    row = db.execute("SELECT * FROM containers").fetchone()
    assert row["name"] == "old" and row["restart_count"] == 0 and row["paused"] == 0
    assert row["owner"] is None and row["oom_killed"] == 0


def _open_and_write(root_and_n):
    root, n = root_and_n
    try:
        db = statedb.open_db(root)
        with statedb.transaction(db):
            db.execute("INSERT INTO images (id, manifest_digest, size, added) VALUES (?, 'm', 0, 0)",
                       (str(n),))
        return None
    except Exception as e:           # reported, not raised: a pool worker's traceback is noise
        return repr(e)


def test_processes_opening_a_fresh_root_at_once_all_get_it(tmp_path):
    """Twelve processes open a fresh root at the same instant, thirty times. Each switched the
    journal to WAL, and sqlite answered "database is locked" without waiting to some of them
    (before the set-up took a lock of its own: 4 of 40 rounds failed, and six `minirun load`s
    failed once this way in a slow VM)."""
    with multiprocessing.get_context("fork").Pool(12) as pool:
        for i in range(60):
            root = str(tmp_path / str(i))
            assert [e for e in pool.map(_open_and_write, [(root, n) for n in range(12)],
                                        chunksize=1) if e] == []
            db = statedb.open_db(root)
            assert db.execute("SELECT count(*) FROM images").fetchone()[0] == 12
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert os.stat(os.path.join(root, "state.db")).st_mode & 0o777 == statedb.PRIVATE


def test_the_daemon_hands_a_connection_on_to_later_threads_never_to_two_at_once(tmp_path):
    """minirund serves each API connection in a thread of its own: a thread that ended leaves
    its database connection to the next, and threads running together each have their own
    (sqlite's rule; a shared one would mix their transactions)."""
    import threading
    db = statedb.LocalDB(str(tmp_path))
    used = []

    def query(hold=None):
        db.execute("SELECT 1").fetchone()
        used.append(db._local.lease.conn)
        if hold:
            hold.wait(10)
    for _ in range(5):                                  # one after another
        t = threading.Thread(target=query)
        t.start()
        t.join()
    assert len({id(c) for c in used}) == 1
    used.clear()
    release = threading.Event()
    together = [threading.Thread(target=query, args=(release,)) for _ in range(3)]
    for t in together:
        t.start()
    while len(used) < 3:
        threading.Event().wait(0.01)
    assert len({id(c) for c in used}) == 3              # all alive at once: three connections
    release.set()
    for t in together:
        t.join()
    used.clear()
    release = threading.Event()                         # a burst: more than are kept after
    burst = [threading.Thread(target=query, args=(release,))
             for _ in range(statedb.IDLE_KEPT + 3)]
    for t in burst:
        t.start()
    while len(used) < len(burst):
        threading.Event().wait(0.01)
    release.set()
    for t in burst:
        t.join()
    assert len(db._idle) == statedb.IDLE_KEPT
    closed = [c for c in used if c not in db._idle]
    assert len(closed) == 3
    for c in closed:
        with pytest.raises(sqlite3.ProgrammingError):   # closed, not left open
            c.execute("SELECT 1")
    with statedb.transaction(db):                       # and every one still works
        db.execute("INSERT INTO images (id, manifest_digest, size, added) VALUES ('x', 'm', 0, 0)")
    assert db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 1

    def left_open():                     # a thread whose transaction never ended (a failed
        db.execute("BEGIN IMMEDIATE")    # COMMIT): its connection is not handed on
        db.execute("INSERT INTO images (id, manifest_digest, size, added) VALUES ('y', 'm', 0, 0)")
    t = threading.Thread(target=left_open)
    t.start()
    t.join()
    with statedb.transaction(db):
        db.execute("INSERT INTO images (id, manifest_digest, size, added) VALUES ('z', 'm', 0, 0)")
    assert [r[0] for r in db.execute("SELECT id FROM images ORDER BY id")] == ["x", "z"]
