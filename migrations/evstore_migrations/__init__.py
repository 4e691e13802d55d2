"""Numbered schema migrations of evstore's SQLite database, shipped inside the wheel.

One module per step, ``mNNNN_what_it_does.py``; NNNN is the schema version the step produces
and the module name is recorded in ``schema_migrations``, so a released module is never edited
or renamed (evstore/storage/migrate.py runs them). A module defines either
``apply(conn: sqlite3.Connection) -> None`` or ``SQL: str``; both run inside the runner's
transaction, so never call ``conn.executescript`` or COMMIT from a step.

Each schema an evstore release shipped has a database file under tests/storage/data/
(made by tests/storage/make_fixtures.py) that the tests upgrade to the newest version.
"""
