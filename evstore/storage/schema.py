"""The shape of a home's schema, read with sqlite-utils: tables, their columns and indexes.

For checks that two databases hold the same schema whatever text made it: a home upgraded
step by step and a new one (tests/storage/test_migrations.py). SQLite keeps each table's
``CREATE`` text as written (and edits it when ALTER TABLE adds a column), so two alike schemas
may differ in text; what sqlite-utils reads back (``PRAGMA table_info``, ``index_list``,
``index_info``) does not. Not on any command's path:
sqlite-utils is imported inside the function.
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
