"""The shape of a home's schema, read with sqlite-utils: tables, their columns and indexes.

For checks that two databases hold the same schema whatever text made it: a home upgraded
step by step and a new one (tests/storage/test_migrations.py), and `evstore verify --views`,
which reports a database whose tables, columns or indexes are not this release's (a table
dropped or an index lost by hand, a damaged copy). SQLite keeps each table's
``CREATE`` text as written (and edits it when ALTER TABLE adds a column), so two alike schemas
may differ in text; what sqlite-utils reads back (``PRAGMA table_info``, ``index_list``,
``index_info``) does not. Not on any frequent command's path: sqlite-utils is imported
inside the function.
"""

from __future__ import annotations

import sqlite3
from typing import Any

Shape = dict[str, dict[str, Any]]


def shape(conn: sqlite3.Connection) -> Shape:
    """Per table (sqlite's own left out): its columns (name, type, not null, default,
    primary-key position) in order, and its named indexes (columns, unique)."""
    import sqlite_utils

    db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
    out: Shape = {}
    for name in sorted(db.table_names()):
        if name.startswith("sqlite_"):
            continue
        table = db.table(name)
        out[name] = {
            "columns": [(c.name, c.type.upper(), bool(c.notnull), c.default_value, c.is_pk)
                        for c in table.columns],
            "indexes": sorted((i.name, tuple(i.columns), bool(i.unique))
                              for i in table.indexes if not i.name.startswith("sqlite_")),
        }
    return out


def expected() -> Shape:
    """The shape this release's migrations give a new database (made in memory)."""
    from evstore.storage.migrate import migrate

    mem = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate(mem, label="an in-memory database (the expected schema)")
        return shape(mem)
    finally:
        mem.close()


def differences(have: Shape, want: Shape) -> list[str]:
    """What keeps ``have`` from being ``want``, one line per table, in table order."""
    out = []
    for table in sorted(set(have) | set(want)):
        if table not in have:
            out.append(f"table {table} is missing")
        elif table not in want:
            out.append(f"table {table} is not one of this release's")
        elif have[table]["columns"] != want[table]["columns"]:
            got = ", ".join(c[0] for c in have[table]["columns"])
            wanted = ", ".join(c[0] for c in want[table]["columns"])
            out.append(f"table {table}: columns ({got}) where this release has ({wanted}), "
                       "or their types, defaults or keys differ")
        elif have[table]["indexes"] != want[table]["indexes"]:
            got = ", ".join(i[0] for i in have[table]["indexes"]) or "none"
            wanted = ", ".join(i[0] for i in want[table]["indexes"]) or "none"
            out.append(f"table {table}: indexes {got} where this release has {wanted}")
    return out
