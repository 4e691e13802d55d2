"""Another branch of an origin's chain: what a restored home and a rekey need of the log.

A restored home adopting a member's branch of its own origin first drops its own events
after the point where the branches part (``drop_after``, evstore/net/restore.py) and keeps
the events of the other branch as evidence (``keep_as_evidence``); a rekey reads the other
branch of a fork back (``set_aside``) to issue its changes again under a fresh key. Each runs
inside the caller's transaction; the views are the caller's to rebuild.
"""

from __future__ import annotations

import sqlite3

from evstore.core.events import Event
from evstore.storage import forksettle, logreads, parking
from evstore.storage.logrecords import HELD, NEW, PENDING
from evstore.storage.logtx import Policy, Tx, keep_clock


def set_aside(conn: sqlite3.Connection, origin: str, first: int,
              limit: int) -> list[tuple[bytes, bytes]]:
    """``origin``'s events from seq ``first`` on that this log keeps without applying them
    (fork evidence, and refused events kept as evidence), by seq: the other branch of a
    fork, for a rekey that issues its changes again."""
    rows = conn.execute(
        "SELECT raw, sig FROM (SELECT seq, id, raw, sig FROM forks WHERE origin = ?1 AND "
        "seq >= ?2 UNION SELECT seq, id, raw, sig FROM rejected WHERE origin = ?1 AND "
        "seq >= ?2) ORDER BY seq, id LIMIT ?3", (origin, first, limit),
    )
    return [(bytes(raw), bytes(sig)) for raw, sig in rows]


def drop_after(conn: sqlite3.Connection, origin: str, seq: int) -> None:
    """Take ``origin``'s events after ``seq`` out of the log, with its fork evidence and its
    waiting events, and end its chain at ``seq``."""
    conn.execute("DELETE FROM forks WHERE origin = ?", (origin,))
    for table in (PENDING, HELD):
        conn.execute(f"DELETE FROM {table} WHERE origin = ?", (origin,))
    last = logreads.id_at(conn, origin, seq)
    if last is None:
        conn.execute("DELETE FROM anchors WHERE origin = ?", (origin,))
    else:
        conn.execute(
            "UPDATE anchors SET last_seq = ?, last_id = ? WHERE origin = ?", (seq, last, origin)
        )
    keep_clock(conn)  # the clock stays past the events deleted here
    conn.execute("DELETE FROM events WHERE origin = ? AND seq > ?", (origin, seq))


def keep_as_evidence(conn: sqlite3.Connection, log: Policy, event: Event, *, reason: str,
                     now_ms: int) -> None:
    """Keep ``event`` of another branch: as fork evidence beside the event applied at its
    ``(origin, seq)``, or in ``rejected`` (for ``reason``) where nothing is applied there."""
    tx = Tx(conn, log, now_ms, 0)
    applied = logreads.id_at(conn, event.origin, event.seq)
    if applied is None:
        parking.keep_rejected(tx, event, reason)
    else:
        forksettle.record_fork(tx, event, applied, NEW)
