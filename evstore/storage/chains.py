"""Each origin's chain and its anchors, as one write transaction sees and moves them.

``anchors`` holds, per origin, the contiguous chain applied here: ``first_seq`` (its anchor)
to ``last_seq`` (its head). A transaction reads an origin's row once (``head``), moves the
head in memory as events are applied, and writes it back once (``write_heads``) before
anything else may read it. Whether an event may join its chain is the pure rule of
evstore/core/placement.py (``chain_state``).
"""

from __future__ import annotations

from evstore.core import placement
from evstore.core.events import Event
from evstore.storage.logrecords import is_anchor
from evstore.storage.logtx import Head, Tx, in_table

BROKEN_CHAIN = "broken hash chain"


def head(tx: Tx, origin: str) -> Head | None:
    """``origin``'s row of ``anchors`` (None: nothing of it applied), read once per tx."""
    if origin not in tx.heads:
        row = tx.conn.execute(
            "SELECT first_seq, first_id, last_seq, last_id FROM anchors WHERE origin = ?",
            (origin,),
        ).fetchone()
        tx.heads[origin] = None if row is None else Head(*row)
    return tx.heads[origin]


def applied_id(tx: Tx, origin: str, seq: int) -> str | None:
    """The id of the applied event at (origin, seq), or None.

    Applied events never lie above the origin's head, and the head is known: the common
    questions (is the next seq taken? is its predecessor the head?) need no query. An
    origin without a head is asked of ``events`` (a restore may leave older events).
    """
    h = head(tx, origin)
    if h is not None and seq > h.last_seq:
        return None
    if h is not None and seq == h.last_seq:
        return h.last_id
    row = tx.conn.execute(
        "SELECT id FROM events WHERE origin = ? AND seq = ?", (origin, seq)
    ).fetchone()
    return None if row is None else str(row[0])


def chain_state(tx: Tx, event: Event) -> str:
    """'ready', 'wait' (predecessor missing) or the reason the chain is broken (the rule:
    evstore/core/placement.py)."""
    pred = None if event.seq == 1 else applied_id(tx, event.origin, event.seq - 1)
    outcome = placement.chain(event.seq, event.prev, pred, anchor=is_anchor(event))
    if outcome is not placement.Outcome.BROKEN:
        return "ready" if outcome is placement.Outcome.APPEND else "wait"
    where = f"origin {event.origin[:16]}… seq {event.seq}"
    if in_table(tx.conn, "forks", event.prev or ""):
        return f"{where} chains onto the forked branch; it is never applied"
    return f"{BROKEN_CHAIN} at {where}: prev does not name the applied seq {event.seq - 1}"


def advance_anchor(tx: Tx, event: Event) -> None:
    """Keep ``anchors`` at the chain ending in the origin's highest applied seq."""
    h = head(tx, event.origin)
    if h is None or event.seq > h.last_seq + 1:
        _set_anchor(tx, event.origin, "first", event.seq, event.id, insert=True)
    elif event.seq == h.last_seq + 1:
        _set_anchor(tx, event.origin, "last", event.seq, event.id)
    elif event.seq == h.first_seq - 1:
        start = _run_start(tx, event.origin, event.seq)
        start_id = applied_id(tx, event.origin, start)
        _set_anchor(tx, event.origin, "first", start, start_id or event.id)


def _set_anchor(
    tx: Tx, origin: str, end: str, seq: int, event_id: str, *, insert: bool = False
) -> None:
    if insert:
        tx.conn.execute(
            "INSERT OR REPLACE INTO anchors (origin, first_seq, first_id, last_seq, last_id)"
            " VALUES (?, ?, ?, ?, ?)",
            (origin, seq, event_id, seq, event_id),
        )
        tx.heads[origin] = Head(seq, event_id, seq, event_id)
        return
    h = tx.heads[origin]
    assert h is not None  # read by advance_anchor just before
    if end == "first":
        tx.conn.execute(
            "UPDATE anchors SET first_seq = ?, first_id = ? WHERE origin = ?",
            (seq, event_id, origin),
        )
        h.first_seq, h.first_id = seq, event_id
    else:  # the common case, once per event: written once per origin, before COMMIT
        h.last_seq, h.last_id, h.dirty = seq, event_id, True


def write_heads(tx: Tx) -> None:
    """Write the chain heads this transaction moved (before anything else reads them)."""
    for origin, h in tx.heads.items():
        if h is not None and h.dirty:
            tx.conn.execute(
                "UPDATE anchors SET last_seq = ?, last_id = ? WHERE origin = ?",
                (h.last_seq, h.last_id, origin),
            )
            h.dirty = False


def _run_start(tx: Tx, origin: str, seq: int) -> int:
    """The lowest seq from which every seq up to ``seq`` is applied."""
    while applied_id(tx, origin, seq - 1) is not None:
        seq -= 1
    return seq


def cut_head(tx: Tx, origin: str, seq: int) -> None:
    """The origin's chain now ends below ``seq``."""
    write_heads(tx)
    h = head(tx, origin)
    if h is None:
        return
    if seq <= h.first_seq:
        tx.conn.execute("DELETE FROM anchors WHERE origin = ?", (origin,))
        tx.heads[origin] = None
        return
    row = tx.conn.execute(
        "SELECT id FROM events WHERE origin = ? AND seq = ?", (origin, seq - 1)
    ).fetchone()
    tx.conn.execute(
        "UPDATE anchors SET last_seq = ?, last_id = ? WHERE origin = ?",
        (seq - 1, row[0], origin),
    )
    h.last_seq, h.last_id = seq - 1, str(row[0])
