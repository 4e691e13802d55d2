"""Numbered schema migrations of evstore's SQLite database, shipped inside the wheel.

One module per step, ``mNNNN_what_it_does.py``; NNNN is the schema version the step produces
and the module name is recorded in ``schema_migrations``, so a released module is never edited
or renamed (evstore/storage/migrate.py runs them). A module defines either
``apply(conn: sqlite3.Connection) -> None`` or ``SQL: str``; both run inside the runner's
transaction, so never call ``conn.executescript`` or COMMIT from a step.

Each schema an evstore release shipped has a database file under tests/storage/data/
(made by tests/storage/make_fixtures.py) that the tests upgrade to the newest version.

A new step that creates or changes tables defines ``apply(conn)`` and says what it wants with
sqlite-utils through ``database(conn)``: ``db[name].create(...)``, ``create_index``,
``add_column``, and ``transform`` for what SQLite's ALTER TABLE cannot do (a column's type,
constraint or position: sqlite-utils rebuilds the table and copies its rows, the twelve steps
SQLite documents). The released steps stay as the SQL they shipped: SQLite keeps each table's
``CREATE`` text as written, and sqlite-utils writes another text (quoted names, its own
layout), so rewriting them would change the schema every existing home records.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils


def database(conn: sqlite3.Connection) -> sqlite_utils.Database:
    """The runner's connection as a sqlite-utils ``Database``, inside its open transaction.

    It changes nothing about the connection (no ``recursive_triggers``, no plugins) and, a
    transaction being open, every statement it runs joins it: a step that fails leaves the
    previous schema. (Imported here, not at the top: opening an up-to-date home loads this
    package and no step.)
    """
    import sqlite_utils

    if not conn.in_transaction:
        raise RuntimeError("a migration step runs inside the runner's transaction")
    return sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
