"""Placing one verified event: applied, pending, held, a fork, or refused; then what it frees.

``place`` is the decision for an event not yet applied (the chain rule is
evstore/core/placement.py, shared with the simulator): a taken position is a fork (settled
by forksettle.py where the log allows); an event stamped too far ahead is held; one whose
predecessor is missing, or whose author's admission has not arrived, waits in ``pending``;
a broken chain or an author ``admit`` refuses is refused; the rest is applied (``apply``:
one row of ``events``, the head moved in memory, the views fed at the next flush). ``drain``
then applies whatever waiting events that made appliable.
"""

from __future__ import annotations

from evstore.core import clock
from evstore.core.events import Event
from evstore.storage import chains, forksettle, parking
from evstore.storage.logrecords import HELD, NEW, PENDING, trusted
from evstore.storage.logtx import Tx, ask_admit, in_table


def place(tx: Tx, event: Event, received_at: int, source: str) -> str:
    """Decide where an event not yet applied goes; return where it went."""
    taken = chains.applied_id(tx, event.origin, event.seq)
    evidence = None
    if taken is not None and forksettle.wins_fork(tx, event, taken):
        evidence = forksettle.rewind(tx, event, taken)
    elif taken is not None:
        forksettle.record_fork(tx, event, taken, source)
        return "fork"
    if source == NEW and clock.too_far_ahead(event.clock, tx.now_ms, tx.log.max_offset_ms):
        if not parking.room(tx, HELD, event):
            return "rejected"
        parking.hold(tx, event)
        return "held"
    chain = chains.chain_state(tx, event)
    if chain not in ("ready", "wait"):
        if chain.startswith(chains.BROKEN_CHAIN) and event.origin not in tx.result.diverged:
            tx.result.diverged.append(event.origin)
        parking.reject(tx, event, chain, source, keep=False)
        return "rejected"
    if chain == "wait":
        if source != PENDING and not parking.room(tx, PENDING, event):
            return "rejected"
        parking.keep_pending(tx, event, received_at, "predecessor", source)
        return "pending"
    where = _admit_and_apply(tx, event, received_at, source)
    if evidence is not None:
        forksettle.settled(tx, event, where, evidence)
    return where


def _admit_and_apply(tx: Tx, event: Event, received_at: int, source: str) -> str:
    verdict = ask_admit(tx, event)
    if verdict is None:
        if source != PENDING and not parking.room(tx, PENDING, event):
            return "rejected"
        parking.keep_pending(tx, event, received_at, "membership", source)
        return "pending"
    if not verdict:
        reason = f"author {event.origin[:16]}… is not a member allowed to write {event.kind!r}"
        parking.reject(tx, event, reason, source, keep=True)
        return "rejected"
    apply(tx, event, received_at, source)
    return "applied"


def apply(tx: Tx, event: Event, received_at: int, source: str) -> None:
    """Apply an event whose chain is ready and whose author is admitted."""
    if source is not NEW:
        parking.leave(tx, source, event.id, event.origin)
    tx.conn.execute(
        "INSERT INTO events (id, origin, seq, prev, clock, wall, user, kind, raw, sig, "
        "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (event.id, event.origin, event.seq, event.prev, event.clock, event.wall,
         event.user, event.kind, event.raw, event.sig, received_at),
    )
    head = tx.heads.get(event.origin)
    if head is not None and event.seq == head.last_seq + 1:  # the common case, inline
        head.last_seq, head.last_id, head.dirty = event.seq, event.id, True
    else:
        chains.advance_anchor(tx, event)
    if tx.has_pending:
        _evict_conflicts(tx, event)
    tx.hwm = clock.observe(tx.hwm, event.clock)
    tx.result.applied.append(event)
    tx.unflushed.append(event)
    inert = tx.log.hooks.inert
    if tx.unflushed_inert and (inert is None or not inert(event)):
        tx.unflushed_inert = False


def is_known(tx: Tx, event: Event) -> bool:
    """Already applied, pending, held or kept as fork evidence: a duplicate."""
    head = chains.head(tx, event.origin)
    above_head = head is not None and event.seq > head.last_seq  # so not applied
    tables = [] if above_head else ["events"]
    tables += [t for t, has in ((PENDING, tx.has_pending), (HELD, tx.has_held),
                                ("forks", tx.has_forks)) if has]
    return any(in_table(tx.conn, t, event.id) for t in tables)


def _evict_conflicts(tx: Tx, event: Event) -> None:
    """Pending events that the newly applied ``event`` makes forks or broken chains."""
    rivals = tx.conn.execute(
        "SELECT id, raw, sig FROM pending WHERE origin = ? AND seq = ? AND id != ? "
        "ORDER BY id",
        (event.origin, event.seq, event.id),
    ).fetchall()
    for rid, raw, sig in rivals:
        rival = trusted(rid, raw, sig)
        if forksettle.wins_fork(tx, rival, event.id):
            continue  # it stays pending: ``drain`` places it, and ``place`` settles
        forksettle.record_fork(tx, rival, event.id, PENDING)
    orphans = tx.conn.execute(
        "SELECT id, raw, sig FROM pending WHERE origin = ? AND seq = ? "
        "AND prev IS NOT ? ORDER BY id",
        (event.origin, event.seq + 1, event.id),
    ).fetchall()
    for oid, raw, sig in orphans:
        orphan = trusted(oid, raw, sig)
        parking.reject(tx, orphan, chains.chain_state(tx, orphan), PENDING, keep=False)


# ---------------------------------------------------------------------- pending


def drain(tx: Tx) -> None:
    """Apply pending events until none becomes appliable (gaps filled, members admitted)."""
    while tx.has_pending:
        moved = False
        for event, received_at in _ready_pending(tx):
            if in_table(tx.conn, PENDING, event.id):
                moved |= _settle(tx, event, received_at)
        if not moved:
            return


def _settle(tx: Tx, event: Event, received_at: int) -> bool:
    """Place one pending event, then follow its chain upwards; True when it moved."""
    if place(tx, event, received_at, PENDING) != "applied":
        return not in_table(tx.conn, PENDING, event.id)
    while (nxt := _pending_successor(tx, event)) is not None:
        event, received_at = nxt
        if place(tx, event, received_at, PENDING) != "applied":
            break
    return True


def _ready_pending(tx: Tx) -> list[tuple[Event, int]]:
    """Pending events worth another look: chain-ready, or waiting only for membership."""
    rows = tx.conn.execute(
        "SELECT p.id, p.raw, p.sig, p.received_at FROM pending AS p "
        "WHERE p.reason = 'membership' OR EXISTS (SELECT 1 FROM events AS e "
        "WHERE e.origin = p.origin AND e.seq = p.seq - 1) "
        "ORDER BY p.origin, p.seq, p.id"
    ).fetchall()
    return [(trusted(i, raw, sig), at) for i, raw, sig, at in rows]


def _pending_successor(tx: Tx, event: Event) -> tuple[Event, int] | None:
    row = tx.conn.execute(
        "SELECT id, raw, sig, received_at FROM pending WHERE origin = ? AND seq = ? "
        "AND prev = ? ORDER BY id LIMIT 1",
        (event.origin, event.seq + 1, event.id),
    ).fetchone()
    return None if row is None else (trusted(row[0], row[1], row[2]), row[3])
