"""Schema 6: register writes stored per event and (scope, section), in one B-tree.

``reg_writes`` held a row per register write, twelve columns in a rowid table with three
indexes (primary key, origin, clock): a one-change commit cost 2.3 rows in four B-trees, and
rewriting them was most of a full rebuild of the views. ``section_writes`` holds one row per
event and (scope, section), ``WITHOUT ROWID``, keyed by ``(scope, section, clock, origin,
event)`` (a register's writes between two orders are one key range, with no index beside the
table); the rest is one column, ``writes``, the canonical JSON of
``[seq, user, wall, base, sets, unsets, bases]``: the present fields' values, the absent
fields, the first field's base (in sorted order) and the bases that differ from it.
``origin_sections`` lists the (scope, section) pairs each origin wrote, where the registers it
wrote are found (the origin index answered that before). evstore/storage/views.py reads and
writes both.

The rows are converted here, not recomputed: a home keeps exactly its views. Never edit once
released: add a new step instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from evstore.core import encoding

CREATE = (
    """CREATE TABLE section_writes (
  scope TEXT NOT NULL, section TEXT NOT NULL, clock INTEGER NOT NULL, origin TEXT NOT NULL,
  event TEXT NOT NULL, writes TEXT NOT NULL,
  PRIMARY KEY (scope, section, clock, origin, event)
) WITHOUT ROWID""",
    """CREATE TABLE origin_sections (
  origin TEXT NOT NULL, scope TEXT NOT NULL, section TEXT NOT NULL,
  PRIMARY KEY (origin, scope, section)
) WITHOUT ROWID""",
)

_OLD = (
    "SELECT scope, section, event, field, clock, origin, seq, present, value, base, user, wall"
    " FROM reg_writes ORDER BY scope, section, event, field"
)


def _text(value: Any) -> str:
    return encoding.encode(value).decode()


def _row(group: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """One new row from the old rows of one event and (scope, section), sorted by field.

    The old texts are canonical already, so the new one is assembled from them; fields sort
    by their UTF-8 bytes (SQLite's BINARY order), as canonical object keys do.
    """
    scope, section, event, _, clock, origin, seq, _, _, base, user, wall = group[0]
    sets = ",".join(f"{_text(r[3])}:{r[8]}" for r in group if r[7])
    unsets = ",".join(_text(r[3]) for r in group if not r[7])
    bases = ",".join(f"{_text(r[3])}:{r[9] or 'null'}" for r in group if r[9] != base)
    writes = (f"[{seq},{_text(user)},{wall},{base or 'null'},{{{sets}}},[{unsets}],"
              f"{{{bases}}}]")
    return (scope, section, clock, origin, event, writes)


def _groups(conn: sqlite3.Connection) -> Iterator[list[tuple[Any, ...]]]:
    group: list[tuple[Any, ...]] = []
    for r in conn.execute(_OLD):
        if group and r[:3] != group[0][:3]:
            yield group
            group = []
        group.append(r)
    if group:
        yield group


def apply(conn: sqlite3.Connection) -> None:
    for statement in CREATE:
        conn.execute(statement)
    conn.executemany("INSERT INTO section_writes VALUES (?,?,?,?,?,?)",
                     (_row(g) for g in _groups(conn)))
    conn.execute(
        "INSERT INTO origin_sections SELECT DISTINCT origin, scope, section FROM reg_writes"
    )
    conn.execute("DROP TABLE reg_writes")
