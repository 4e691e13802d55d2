"""sqlite-utils stays off the paths of reading and writing a home: the storage modules, the
migrations package and opening an up-to-date home import none of it (docs/architecture.md,
"sqlite-utils: where and why"); the functions that use it load it when called."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from evstore.storage import schema
from evstore.storage.connect import open_db

_PROGRAM = """
import sys
import evstore_migrations
from evstore.storage import (alerts, audit, backup, branches, chains, checking, connect,
    feed, forksettle, integrity, log, logreads, logrecords, logtx, lookups, migrate, notify,
    parking, placing, rebuild, schema, space, transactions, views)
connect.open_db(sys.argv[1]).close()  # a new home: every step runs
connect.open_db(sys.argv[1]).close()  # up to date
print(sorted(m for m in sys.modules if m.startswith("sqlite_utils")))
"""


def test_storage_and_opening_a_home_do_not_import_sqlite_utils(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-c", _PROGRAM, str(tmp_path / "evstore.db")],
                         capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"


def test_shape_names_every_table_with_its_columns_and_indexes(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "evstore.db")
    got = schema.shape(conn)
    assert {"events", "anchors", "pending", "held", "forks", "rejected"} <= set(got)
    assert [c[0] for c in got["events"]["columns"]][:4] == ["id", "origin", "seq", "prev"]
    assert ("events_order", ("clock", "origin", "id"), False) in got["events"]["indexes"]
    assert not conn.in_transaction
    conn.close()
