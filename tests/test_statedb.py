"""The state store: a root made by an older minirun still opens, with the new columns."""
import os
import sqlite3

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
