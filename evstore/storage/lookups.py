"""Read-only questions about the event log that the operations ask (history, membership,
forensics, the networked commands): each statement on ``events`` outside the log's own
writing, named for what it answers. Nothing here writes or decides; the caller interprets
the rows (payloads stay raw bytes, decoded where they are judged).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator
from typing import Any

__all__ = [
    "applied_in_range", "count_from", "has_events_of", "ids_between", "ids_of_kinds_until",
    "init_events", "max_seq", "newest_id_of", "newest_of_kinds", "newest_scope_anchors",
    "raw_of_kind", "raws_of_kinds", "received_at", "rows_of_kind", "scope_marks",
]


def _marks(values: Collection[Any]) -> str:
    return ",".join("?" * len(values))


def ids_between(conn: sqlite3.Connection, low: str, high: str, limit: int) -> list[str]:
    """Event ids in ``[low, high]``, smallest first (an id prefix lookup)."""
    rows = conn.execute("SELECT id FROM events WHERE id BETWEEN ? AND ? ORDER BY id LIMIT ?",
                        (low, high, limit)).fetchall()
    return [r[0] for r in rows]


def newest_id_of(conn: sqlite3.Connection, origin: str) -> str | None:
    """The id of ``origin``'s event with the highest seq held."""
    row = conn.execute("SELECT id FROM events WHERE origin = ? ORDER BY seq DESC LIMIT 1",
                       (origin,)).fetchone()
    return None if row is None else row[0]


def has_events_of(conn: sqlite3.Connection, origin: str) -> bool:
    return conn.execute("SELECT 1 FROM events WHERE origin = ? LIMIT 1",
                        (origin,)).fetchone() is not None


def received_at(conn: sqlite3.Connection, event_id: str) -> int | None:
    """When this home stored the event (ms), or None when it does not hold it."""
    row = conn.execute("SELECT received_at FROM events WHERE id = ?", (event_id,)).fetchone()
    return None if row is None else int(row[0])


def max_seq(conn: sqlite3.Connection, origin: str) -> int:
    """The highest seq of ``origin`` held (0 for none)."""
    row = conn.execute("SELECT MAX(seq) FROM events WHERE origin = ?", (origin,)).fetchone()
    return int(row[0] or 0)


def count_from(conn: sqlite3.Connection, origin: str, first: int, max_clock: int) -> int:
    """How many events of ``origin`` from seq ``first`` on are stamped at most ``max_clock``."""
    row = conn.execute(
        "SELECT COUNT(*) FROM events WHERE origin = ? AND seq >= ? AND clock <= ?",
        (origin, first, max_clock)).fetchone()
    return int(row[0])


def applied_in_range(conn: sqlite3.Connection, origin: str, first: int, last: int
                     ) -> Iterator[tuple[Any, ...]]:
    """(id, origin, seq, prev, clock, wall, user, kind, raw, sig) of ``origin``'s events
    from seq ``first`` to ``last``, by seq."""
    yield from conn.execute(
        "SELECT id, origin, seq, prev, clock, wall, user, kind, raw, sig FROM events "
        "WHERE origin = ? AND seq BETWEEN ? AND ? ORDER BY seq", (origin, first, last))


def init_events(conn: sqlite3.Connection) -> list[tuple[str, bytes]]:
    """(origin, raw) of every ``node.init`` at seq 1, in the order they were stored."""
    return conn.execute(
        "SELECT origin, raw FROM events WHERE seq = 1 AND kind = 'node.init' ORDER BY rowid"
    ).fetchall()


def raws_of_kinds(conn: sqlite3.Connection, kinds: Collection[str]
                  ) -> Iterator[tuple[str, str, bytes]]:
    """(origin, kind, raw) of the events of these kinds, in the order they were stored."""
    yield from conn.execute(
        f"SELECT origin, kind, raw FROM events WHERE kind IN ({_marks(kinds)}) ORDER BY rowid",
        tuple(kinds))


def rows_of_kind(conn: sqlite3.Connection, kind: str, *, newest_first: bool = False
                 ) -> Iterator[tuple[str, bytes]]:
    """(id, raw) of the events of one kind, in the order they were stored (or the reverse)."""
    order = "DESC" if newest_first else "ASC"
    yield from conn.execute(f"SELECT id, raw FROM events WHERE kind = ? ORDER BY rowid {order}",
                            (kind,))


def raw_of_kind(conn: sqlite3.Connection, kind: str) -> Iterator[bytes]:
    """The raw bytes of each event of one kind."""
    for (raw,) in conn.execute("SELECT raw FROM events WHERE kind = ?", (kind,)):
        yield raw


def newest_scope_anchors(conn: sqlite3.Connection, origins: Collection[str],
                         kinds: Collection[str], max_clock: int
                         ) -> Iterator[tuple[str, int, str]]:
    """(id, clock, origin) of the events of ``kinds`` by ``origins`` stamped at most
    ``max_clock``, the newest in the log's total order first."""
    yield from conn.execute(
        f"SELECT id, clock, origin FROM events WHERE origin IN ({_marks(origins)}) AND kind IN "
        f"({_marks(kinds)}) AND clock <= ? ORDER BY clock DESC, origin DESC, id DESC",
        (*sorted(origins), *kinds, max_clock))


def ids_of_kinds_until(conn: sqlite3.Connection, kinds: Collection[str], max_clock: int
                       ) -> list[str]:
    """Ids of the events of ``kinds`` stamped at most ``max_clock``."""
    rows = conn.execute(
        f"SELECT id FROM events WHERE kind IN ({_marks(kinds)}) AND clock <= ?",
        (*kinds, max_clock)).fetchall()
    return [r[0] for r in rows]


def newest_of_kinds(conn: sqlite3.Connection, kinds: Collection[str]) -> str | None:
    """The id of the newest event of ``kinds`` in the log's total order."""
    row = conn.execute(
        f"SELECT id FROM events WHERE kind IN ({_marks(kinds)}) ORDER BY clock DESC, "
        "origin DESC, id DESC LIMIT 1", tuple(kinds)).fetchone()
    return None if row is None else row[0]


def scope_marks(conn: sqlite3.Connection) -> Iterator[tuple[str, int, bytes]]:
    """(origin, seq, raw) of every ``cluster.join`` and ``node.rekey``, in the total order."""
    yield from conn.execute(
        "SELECT origin, seq, raw FROM events WHERE kind IN ('cluster.join', 'node.rekey') "
        "ORDER BY clock, origin, id")
