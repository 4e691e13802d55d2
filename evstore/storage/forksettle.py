"""Forks: recording a second event at an applied position, and settling which one stays.

Two signed events at one (origin, seq) are a fork. The applied one is flagged
``status='forked'`` and the other kept in ``forks`` as evidence (``record_fork``). Where the
log's ``settle_forks(origin)`` allows it, every node keeps the same one, whatever order the
branches arrived in (``wins_fork``): the loser and its successors are taken out of ``events``
(``rewind``) and kept as evidence once the winner is placed (``settled``).
"""

from __future__ import annotations

from typing import Any

from evstore.core import clock
from evstore.core.events import Event
from evstore.storage import chains, parking
from evstore.storage.logrecords import NEW, trusted
from evstore.storage.logtx import Tx, flush, keep_clock

Evidence = list[tuple[Any, ...]]
"""(id, raw, sig) rows of the events a winner displaced at its position."""


def record_fork(tx: Tx, event: Event, applied_id: str, source: str) -> None:
    """Keep ``event`` as fork evidence against the applied ``applied_id``."""
    parking.leave(tx, source, event.id, event.origin)
    tx.conn.execute(
        "INSERT OR IGNORE INTO forks (id, origin, seq, applied_id, raw, sig, detected_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (event.id, event.origin, event.seq, applied_id, event.raw, event.sig, tx.now_ms),
    )
    tx.conn.execute("UPDATE events SET status = 'forked' WHERE id = ?", (applied_id,))
    tx.has_forks = True
    tx.result.forks.append(event.id)


def wins_fork(tx: Tx, event: Event, applied_id: str) -> bool:
    """Does ``event`` displace the applied event at its position (the settling rule)?

    Where ``settle_forks(origin)`` allows it, every node keeps the same one, whatever order
    the branches arrived in: the lower (clock, id). The earlier write is the one most peers
    hold (a machine restored from an old copy stamps its new branch later than the events it
    lost), and the later branch's changes are issued again under a fresh key by
    ``clusterconfig rekey``. Without ``settle_forks`` (or for the node's own origin, whose
    losing branch ``rekey`` needs in its own log), the first one applied stays: the older
    behaviour.
    """
    settles = tx.log.hooks.settle_forks
    if settles is None or event.id == applied_id:
        return False
    if not settles(event.origin):
        return False
    if chains.chain_state(tx, event) != "ready":
        return False  # decided where the branches part, never deeper (same everywhere)
    if clock.too_far_ahead(event.clock, tx.now_ms, tx.log.max_offset_ms):
        return False  # it would be held, not applied: nothing is taken out for it now
    row = tx.conn.execute("SELECT clock FROM events WHERE id = ?", (applied_id,)).fetchone()
    return row is not None and (event.clock, event.id) < (int(row[0]), applied_id)


def rewind(tx: Tx, winner: Event, applied_id: str) -> Evidence:
    """Take the losing branch (``applied_id`` and its successors) out of ``events``.

    Returns the fork evidence at the winner's position (the displaced event, and any
    kept against it), to be recorded once the winner is applied (``settled``). The
    displaced event's successors go to ``rejected`` as evidence (their positions belong to
    the winning branch, whose events arrive by anti-entropy); events kept as evidence
    above the fork may continue the winning branch and wait in ``pending`` again. The
    views are rebuilt before COMMIT (``on_rewind``): they hold what the branch changed.
    Foreign keys point at ``events``, so references go before the rows they name.
    """
    flush(tx)
    origin, seq = winner.origin, winner.seq
    losing = tx.conn.execute(
        "SELECT id, raw, sig FROM events WHERE origin = ? AND seq >= ? ORDER BY seq",
        (origin, seq),
    ).fetchall()
    evidence = tx.conn.execute(
        "SELECT id, raw, sig FROM forks WHERE origin = ? AND seq = ? ORDER BY id",
        (origin, seq),
    ).fetchall()
    above = tx.conn.execute(
        "SELECT id, raw, sig FROM forks WHERE origin = ? AND seq > ? ORDER BY seq, id",
        (origin, seq),
    ).fetchall()
    tx.conn.execute("DELETE FROM forks WHERE origin = ? AND seq >= ?", (origin, seq))
    chains.cut_head(tx, origin, seq)
    keep_clock(tx.conn)
    tx.conn.execute("DELETE FROM events WHERE origin = ? AND seq >= ?", (origin, seq))
    _set_aside_losers(tx, losing, above, applied_id, seq)
    tx.has_forks = tx.rewound = True
    tx.result.forks.append(applied_id)
    return [row for row in losing if row[0] == applied_id] + evidence


def _set_aside_losers(tx: Tx, losing: Evidence, above: Evidence, applied_id: str,
                      seq: int) -> None:
    """The losing branch above the fork to ``rejected``; the evidence above it to
    ``pending`` (it may continue the winning branch); none of it counts as applied now."""
    for lid, raw, sig in losing:
        tx.result.rewound.append(lid)
        if lid != applied_id:
            lost = trusted(lid, raw, sig)
            parking.keep_rejected(tx, lost, f"on the losing branch of a fork at seq {seq}")
    for fid, raw, sig in above:
        parking.keep_pending(tx, trusted(fid, raw, sig), tx.now_ms, "predecessor", NEW)
    gone = set(tx.result.rewound)
    tx.result.applied = [e for e in tx.result.applied if e.id not in gone]


def settled(tx: Tx, winner: Event, where: str, evidence: Evidence) -> None:
    """Record the fork evidence against the winner (or keep it, if the winner waits)."""
    for fid, raw, sig in evidence:
        lost = trusted(fid, raw, sig)
        if where == "applied":
            tx.conn.execute(
                "INSERT OR IGNORE INTO forks (id, origin, seq, applied_id, raw, sig, "
                "detected_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (lost.id, lost.origin, lost.seq, winner.id, lost.raw, lost.sig, tx.now_ms),
            )
        else:
            parking.keep_rejected(tx, lost, f"displaced at seq {lost.seq} by "
                                  f"{winner.id[:16]}…, which is {where}")
    if where == "applied":
        tx.conn.execute("UPDATE events SET status = 'forked' WHERE id = ?", (winner.id,))
