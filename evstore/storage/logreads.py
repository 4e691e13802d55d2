"""Queries over the event log: plain functions of a connection, none of which writes.

What anti-entropy asks (the version vector, each origin's chain and its ranges of events),
what the commands show (counts, held events, forks) and the clock's high-water mark.
``EventLog`` (evstore/storage/log.py) offers each of them as a method of the same name.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from evstore.core import events
from evstore.core.events import Event
from evstore.storage.logrecords import (
    ANCHOR_KINDS,
    EVENT_COLS,
    HWM,
    ForkEvidence,
    HeldEvent,
    from_row,
    trusted,
)


def version_vector(conn: sqlite3.Connection) -> dict[str, int]:
    """{origin: last contiguous applied seq}, in origin order."""
    rows = conn.execute("SELECT origin, last_seq FROM anchors ORDER BY origin")
    return dict(rows)


def first_seq(conn: sqlite3.Connection, origin: str) -> int | None:
    """The seq where ``origin``'s contiguous chain held here starts (an anchor), or None.

    Anti-entropy sends ranges ``[first_seq, last]``; every applied event of the origin
    from there to its head is present.
    """
    row = conn.execute("SELECT first_seq FROM anchors WHERE origin = ?", (origin,)).fetchone()
    return None if row is None else int(row[0])


def latest_anchor(conn: sqlite3.Connection, origin: str) -> int | None:
    """The seq of ``origin``'s most recent anchor in the chain held here, or None.

    This is where the origin's current scope starts (e.g. a machine's own events since it
    last became standalone), whereas ``first_seq`` is where the contiguous chain starts and
    is what anti-entropy sends from: a new member needs every event the others applied.
    """
    marks = ", ".join("?" * len(ANCHOR_KINDS))
    row = conn.execute(
        "SELECT MAX(e.seq) FROM events AS e JOIN anchors AS a ON a.origin = e.origin "
        f"WHERE e.origin = ? AND e.seq >= a.first_seq AND (e.seq = 1 OR e.kind IN ({marks}))",
        (origin, *sorted(ANCHOR_KINDS)),
    ).fetchone()
    return None if row[0] is None else int(row[0])


def read_range(
    conn: sqlite3.Connection, origin: str, first: int, last: int, *, verify: bool = False
) -> list[Event]:
    """Applied events of ``origin`` with ``first <= seq <= last``, in seq order."""
    rows = conn.execute(
        f"SELECT {EVENT_COLS} FROM events WHERE origin = ? AND seq BETWEEN ? AND ? "
        "ORDER BY seq",
        (origin, first, last),
    )
    return [from_row(r, verify) for r in rows]


def read_raw_range(
    conn: sqlite3.Connection, origin: str, first: int, last: int
) -> list[tuple[bytes, bytes]]:
    """``read_range`` as stored (raw bytes, signature): for sending, with nothing decoded."""
    rows = conn.execute(
        "SELECT raw, sig FROM events WHERE origin = ? AND seq BETWEEN ? AND ? ORDER BY seq",
        (origin, first, last),
    )
    return [(bytes(raw), bytes(sig)) for raw, sig in rows]


def get(conn: sqlite3.Connection, event_id: str, *, verify: bool = False) -> Event | None:
    """The applied event with this id, or None."""
    row = conn.execute(f"SELECT {EVENT_COLS} FROM events WHERE id = ?", (event_id,)).fetchone()
    return None if row is None else from_row(row, verify)


def count(conn: sqlite3.Connection) -> int:
    """How many events are applied."""
    return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def iter_all(conn: sqlite3.Connection, *, verify: bool = False) -> Iterator[Event]:
    """Every applied event in the one total order, ``Event.order_key``."""
    rows = conn.execute(f"SELECT {EVENT_COLS} FROM events ORDER BY clock, origin, id")
    for row in rows:
        yield from_row(row, verify)


def pending_count(conn: sqlite3.Connection) -> int:
    """How many verified events wait for a predecessor or for their author's admission."""
    return int(conn.execute("SELECT COUNT(*) FROM pending").fetchone()[0])


def held(conn: sqlite3.Connection) -> list[HeldEvent]:
    """Events held back for their clock, earliest first."""
    rows = conn.execute(
        "SELECT id, raw, sig, received_at, reason FROM held ORDER BY clock, origin, id"
    )
    return [HeldEvent(trusted(i, raw, sig), at, why) for i, raw, sig, at, why in rows]


def forks(conn: sqlite3.Connection) -> list[ForkEvidence]:
    """Every fork found: the applied event and the other one at the same position."""
    rows = conn.execute(
        "SELECT f.origin, f.seq, e.id, e.raw, e.sig, f.id, f.raw, f.sig, f.detected_at "
        "FROM forks AS f JOIN events AS e ON e.id = f.applied_id ORDER BY f.origin, f.seq, f.id"
    )
    return [
        ForkEvidence(o, s, trusted(ai, ar, asg), trusted(fi, fr, fsg), at)
        for o, s, ai, ar, asg, fi, fr, fsg, at in rows
    ]


def hlc_hwm(conn: sqlite3.Connection) -> int:
    """The highest clock value this node has stamped or applied."""
    return int(conn.execute(f"SELECT {HWM}").fetchone()[0])


def head(conn: sqlite3.Connection, origin: str) -> tuple[int, str]:
    """The newest applied event of ``origin`` as ``(seq, id)``; ``(0, "")`` for none."""
    row = conn.execute(
        "SELECT last_seq, last_id FROM anchors WHERE origin = ?", (origin,)
    ).fetchone()
    return (0, "") if row is None else (int(row[0]), str(row[1]))


def id_at(conn: sqlite3.Connection, origin: str, seq: int) -> str | None:
    """The id of the event applied at ``(origin, seq)``, or None."""
    row = conn.execute(
        "SELECT id FROM events WHERE origin = ? AND seq = ?", (origin, seq)
    ).fetchone()
    return None if row is None else str(row[0])


def who(conn: sqlite3.Connection, origin: str) -> str:
    """A machine's hostname for an alert (from the views, when they know the key), else
    the key's fingerprint."""
    try:
        row = conn.execute(
            "SELECT h.value FROM reg_winners AS k JOIN reg_winners AS h ON h.scope = k.scope"
            " AND h.section = k.section AND h.field = 'hostname' WHERE k.section = "
            "'@structure' AND k.field IN ('key', 'mid') AND k.value = ? LIMIT 1",
            (f'"{origin}"',),
        ).fetchone()
    except sqlite3.OperationalError:  # a log without views (tests, tools)
        row = None
    name = str(row[0]).strip('"') if row else ""
    key = events.fingerprint(origin)[:23]
    return f"{name} ({key})" if name else f"key {key}"
