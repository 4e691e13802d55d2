"""The reads ``evstore verify`` makes (evstore/ops/verify.py): every table of a home, as it
is, for the checks to judge. Nothing here decides anything or writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["VIEW_TABLES", "count_events", "events_in_chain_order", "events_of_kinds",
           "fork_rows", "forked_without_evidence", "heads_against_events", "view_rows",
           "waiting_rows"]

_ROWS_SQL = ("SELECT id, origin, seq, prev, clock, wall, user, kind, raw, sig FROM events "
             "ORDER BY origin, seq")
_VIEW_SQL = {
    "reg_winners": "SELECT scope, section, field, event, clock, origin, seq, present, value, "
                   "base, user, wall FROM reg_winners ORDER BY 1, 2, 3",
    "mode_sections": "SELECT mode, section, value, event FROM mode_sections ORDER BY 1, 2",
    "effective": "SELECT machine, section, value, source, event FROM effective ORDER BY 1, 2",
    "superseded": "SELECT scope, section, field, loser, winner FROM superseded "
                  "ORDER BY 1, 2, 3, 4",
    "section_events": "SELECT scope, section, clock, event FROM section_events "
                      "ORDER BY 1, 2, 3, 4",
    "inadmissible": "SELECT event, clock, reason FROM inadmissible ORDER BY 1",
}
VIEW_TABLES = tuple(_VIEW_SQL)  # the views verify compares with a rebuild, in this order


def count_events(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def events_in_chain_order(conn: sqlite3.Connection) -> Iterator[tuple[Any, ...]]:
    """Every event's columns (id, origin, seq, prev, clock, wall, user, kind, raw, sig), by
    origin then seq."""
    yield from conn.execute(_ROWS_SQL)


def events_of_kinds(conn: sqlite3.Connection, kinds: Sequence[str]
                    ) -> Iterator[tuple[str, str, bytes]]:
    """``(origin, kind, raw)`` of each event of these kinds."""
    marks = ",".join("?" * len(kinds))
    yield from conn.execute(f"SELECT origin, kind, raw FROM events WHERE kind IN ({marks})",
                            tuple(kinds))


def heads_against_events(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """Per origin of ``anchors``: (origin, first_seq, last_seq, lowest and highest seq held)."""
    return conn.execute(
        "SELECT a.origin, a.first_seq, a.last_seq, MIN(e.seq), MAX(e.seq) FROM anchors AS a "
        "LEFT JOIN events AS e ON e.origin = a.origin GROUP BY a.origin"
    ).fetchall()


def fork_rows(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """The fork evidence: (id, origin, seq, applied_id, raw, sig), by origin then seq."""
    return conn.execute(
        "SELECT f.id, f.origin, f.seq, f.applied_id, f.raw, f.sig FROM forks AS f ORDER BY 2, 3"
    ).fetchall()


def forked_without_evidence(conn: sqlite3.Connection) -> Iterator[tuple[str, int]]:
    """``(origin, seq)`` of events flagged forked that no fork evidence names."""
    yield from conn.execute(
        "SELECT origin, seq FROM events WHERE status = 'forked' "
        "AND id NOT IN (SELECT applied_id FROM forks) ORDER BY 1, 2"
    )


def waiting_rows(conn: sqlite3.Connection, table: str) -> Iterator[tuple[Any, ...]]:
    """(id, origin, seq, raw, sig) of the events waiting in ``pending`` or ``held``."""
    if table not in ("pending", "held"):
        raise ValueError(table)
    yield from conn.execute(f"SELECT id, origin, seq, raw, sig FROM {table} ORDER BY origin, seq")


def view_rows(conn: sqlite3.Connection, table: str) -> Iterator[tuple[Any, ...]]:
    """Every row of one of ``VIEW_TABLES``, in a fixed order."""
    yield from conn.execute(_VIEW_SQL[table])
