"""Where an event waits or is kept without being applied: ``pending``, ``held``, ``rejected``.

Each table is capped per origin (and ``pending`` and ``rejected`` overall; the caps are the
log's, ``Policy``): past a cap an event is refused and not stored, and an alert names the
member, once while nothing changes. Rows are counted once a transaction and the counts kept
up to date as events come and go (``parked``, ``count_parked``).
"""

from __future__ import annotations

from evstore.core import clock
from evstore.core.events import Event
from evstore.storage import alerts, logreads
from evstore.storage.logrecords import HELD, PENDING, REJECTED, Rejected
from evstore.storage.logtx import Tx


def parked(tx: Tx, table: str, origin: str) -> int:
    """Rows of ``table`` from ``origin`` (``"*"``: from anyone), counted once a transaction
    and kept up to date by ``hold``, ``keep_pending`` and ``leave``."""
    key = (table, origin)
    n = tx.parked.get(key)
    if n is None:
        if origin == "*":
            n = tx.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        else:
            n = tx.conn.execute(f"SELECT COUNT(*) FROM {table} WHERE origin = ?",
                                (origin,)).fetchone()[0]
        tx.parked[key] = n = int(n)
    return n


def count_parked(tx: Tx, table: str, origin: str, step: int) -> None:
    for key in ((table, origin), (table, "*")):
        if key in tx.parked:
            tx.parked[key] += step


def room(tx: Tx, table: str, event: Event) -> bool:
    """Is there room in ``table`` for one more event of ``event.origin``? When there is
    not, the event is refused (not stored: it is offered again later) and, the first time
    in this transaction, an alert names the member."""
    log = tx.log
    cap = log.held_cap if table == HELD else log.pending_cap
    mine = parked(tx, table, event.origin)
    total = parked(tx, table, "*") if table == PENDING else 0
    if mine < cap and (table != PENDING or total < log.pending_total_cap):
        return True
    whose = ("every origin together" if mine < cap
             else f"member {logreads.who(tx.conn, event.origin)}")
    limit = log.pending_total_cap if mine < cap else cap
    reason = (f"{table} events of {whose} reached the cap of {limit}; refused for now "
              "(offered again once there is room)")
    first = not any(r.reason == reason for r in tx.result.rejected)
    tx.result.rejected.append(Rejected(event.id, reason, event.origin, event.seq))
    if first:
        alert_once(tx, f"{table}_cap", reason)
    return False


def alert_once(tx: Tx, kind: str, detail: str) -> None:
    """Add an alert unless the newest one of its kind says the same (a cap stays reached
    while the member keeps sending, and held events are retried every second)."""
    last = tx.conn.execute("SELECT detail FROM alerts WHERE kind = ? ORDER BY id DESC "
                           "LIMIT 1", (kind,)).fetchone()
    if last is None or last[0] != detail:
        alerts.add(tx.conn, tx.now_ms, kind, detail)


def hold(tx: Tx, event: Event) -> None:
    """Keep an event stamped too far ahead in ``held`` until local time reaches it."""
    ahead = clock.wall_ms_of(event.clock) - tx.now_ms
    reason = (
        f"stamped {ahead} ms ahead of local time (allowed {tx.log.max_offset_ms} ms); "
        "applied when local time reaches it"
    )
    if parked(tx, HELD, event.origin) == 0:  # the first of a run: say whose
        alerts.add(tx.conn, tx.now_ms, "clock_ahead",
                   f"events of member {logreads.who(tx.conn, event.origin)} are held back: "
                   f"{reason}; its clock runs ahead of this machine's")
    count_parked(tx, HELD, event.origin, 1)
    tx.conn.execute(
        "INSERT INTO held (id, origin, seq, clock, raw, sig, received_at, reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (event.id, event.origin, event.seq, event.clock, event.raw, event.sig,
         tx.now_ms, reason),
    )
    tx.has_held = True
    tx.result.held.append(event.id)


def keep_pending(tx: Tx, event: Event, received_at: int, reason: str, source: str) -> None:
    """Keep an event in ``pending`` (or update why it waits, if it is there already)."""
    if source == PENDING:
        tx.conn.execute("UPDATE pending SET reason = ? WHERE id = ?", (reason, event.id))
        return
    leave(tx, source, event.id, event.origin)
    tx.has_pending = True
    count_parked(tx, PENDING, event.origin, 1)
    tx.conn.execute(
        "INSERT INTO pending (id, origin, seq, prev, clock, kind, raw, sig, received_at, "
        "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (event.id, event.origin, event.seq, event.prev, event.clock, event.kind,
         event.raw, event.sig, received_at, reason),
    )
    tx.result.pending.append(event.id)


def reject(tx: Tx, event: Event, reason: str, source: str, *, keep: bool) -> None:
    """Refuse an event; ``keep`` stores it as evidence (non-members), never applied."""
    leave(tx, source, event.id, event.origin)
    if keep:
        keep_rejected(tx, event, reason, capped=True)
    tx.result.rejected.append(Rejected(event.id, reason, event.origin, event.seq))


def leave(tx: Tx, source: str, event_id: str, origin: str) -> None:
    """The event moves on: out of ``pending`` or ``held`` if it came from there."""
    if source in (PENDING, HELD):
        tx.conn.execute(f"DELETE FROM {source} WHERE id = ?", (event_id,))
        count_parked(tx, source, origin, -1)


def keep_rejected(tx: Tx, event: Event, reason: str, *, capped: bool = False) -> None:
    """Keep a refused event as evidence. ``capped`` (a non-member's event): within the caps
    (per origin and overall), past which it is not kept and an alert names the origin (not
    repeated while unchanged). A fork's losing branch is always kept: a rekey issues this
    machine's own again from it (``branches.set_aside``)."""
    known = tx.conn.execute("SELECT 1 FROM rejected WHERE id = ?", (event.id,)).fetchone()
    if known is None and capped and _rejected_full(tx, event.origin):
        return
    if known is None:
        count_parked(tx, REJECTED, event.origin, 1)
    tx.conn.execute(
        "INSERT OR REPLACE INTO rejected (id, origin, seq, reason, raw, sig, rejected_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (event.id, event.origin, event.seq, reason, event.raw, event.sig, tx.now_ms),
    )


def _rejected_full(tx: Tx, origin: str) -> bool:
    """Is ``rejected`` full for ``origin``'s events? If so, say so in an alert."""
    log = tx.log
    mine = parked(tx, REJECTED, origin)
    total = parked(tx, REJECTED, "*")
    if mine < log.rejected_cap and total < log.rejected_total_cap:
        return False
    limit = log.rejected_cap if mine >= log.rejected_cap else log.rejected_total_cap
    whose = (f"origin {logreads.who(tx.conn, origin)}" if mine >= log.rejected_cap
             else "every origin together")  # not naming each: one alert, not one per key
    alert_once(tx, "rejected_cap", f"rejected events kept as evidence of {whose} reached the "
               f"cap of {limit}; later ones are refused without being kept")
    return True
