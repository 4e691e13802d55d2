"""The signed event log over one SQLite connection: local appends and remote ingest.

Theory of operation
-------------------
Every event is stored as its signed bytes verbatim (``raw``) beside its signature; the other
columns are derived from those bytes for queries. Where an event sits says what this node
knows about it (tables are created by migrations m0001/m0002):

``events``   applied: part of this node's history, fed to the views. UNIQUE(origin, seq).
``pending``  verified, waiting for its predecessor or for its author's admission.
``held``     verified, stamped more than ``max_offset_ms`` ahead of local time; applied once
             local time catches up (refusing it would make replicas with different clocks
             diverge; docs/PITFALLS #2).
``forks``    a second, different event at an (origin, seq) already applied: evidence of
             equivocation, never applied; the applied one is flagged ``status='forked'``.
``rejected`` validly signed events whose author ``admit`` refused.
``anchors``  per origin, the chain held here: ``first_seq`` (its anchor) .. ``last_seq``.
``meta``     ``hlc_hwm``: a floor for the clock, written only before applied events are
             deleted (a fork's losing branch, a restore). The clock's high-water mark is
             the larger of that floor and the highest clock in ``events`` (one index probe),
             so an append or ingest persists the clock by storing its events, with no write
             of its own, and the clock never goes back, across restarts too.

Chains and anchors. An origin's chain in a cluster starts at an *anchor* (seq 1 or a kind in
``ANCHOR_KINDS``): its predecessor stays in that machine's own log, so the anchor is accepted
without it. Every other event is applied only on top of its applied predecessor with the id it
names in ``prev``; a different applied predecessor is a broken chain, refused. Hence the
applied events above an origin's anchor are contiguous, and the version vector is simply each
origin's head.

Transactions. ``append``, ``ingest`` and ``release_held`` each run in one ``BEGIN IMMEDIATE``
transaction that also calls ``on_apply`` (the materialized views), so a crash leaves log,
views and clock together at a commit boundary; callers acknowledge only
after the method returns, i.e. after COMMIT.

Where the parts are. This module is the log's face: ``EventLog``, its three write
transactions and the steps that open and close one. The rest, each named by what it holds:

``logrecords.py``  the results (``IngestResult``, ``Rejected``...), caps, stored rows as events
``logreads.py``    queries over the log (version vector, ranges, counts, the clock's mark)
``logtx.py``       one write transaction's state (``Tx``) and the hooks it calls
``placing.py``     where one event goes (applied, pending, held, fork, refused); draining
``chains.py``      each origin's chain head and anchors, and the chain rule's verdict
``parking.py``     the ``pending``, ``held`` and ``rejected`` tables and their caps
``forksettle.py``  recording forks and settling which branch stays
``branches.py``    another branch of an origin: a restore's drop, a rekey's evidence
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from evstore.core import clock, events
from evstore.core.errors import InvalidInput, OperationalError
from evstore.core.events import Event
from evstore.storage import branches, chains, checking, logreads, notify, placing
from evstore.storage.connect import transaction
from evstore.storage.logrecords import (
    ANCHOR_KINDS,
    HELD,
    HWM,
    MAX_HELD_PER_ORIGIN,
    MAX_PENDING_PER_ORIGIN,
    MAX_PENDING_TOTAL,
    MAX_REJECTED_PER_ORIGIN,
    MAX_REJECTED_TOTAL,
    NEW,
    PENDING,
    ForkEvidence,
    HeldEvent,
    IngestResult,
    Rejected,
    is_anchor,
    trusted,
)
from evstore.storage.logtx import (
    Admit,
    Head,
    Hooks,
    OnApply,
    OnRewind,
    Settles,
    Tx,
    ask_admit,
    flush,
    in_table,
    keep_clock,
)

if TYPE_CHECKING:  # PyNaCl is loaded where a key signs (core/events.py), not by reading
    import nacl.signing

__all__ = [
    "ANCHOR_KINDS", "MAX_HELD_PER_ORIGIN", "MAX_PENDING_PER_ORIGIN", "MAX_PENDING_TOTAL",
    "MAX_REJECTED_PER_ORIGIN", "MAX_REJECTED_TOTAL", "Admit", "EventLog", "ForkEvidence",
    "HeldEvent", "IngestResult", "OnApply", "OnRewind", "Rejected", "Settles", "is_anchor",
]


class EventLog:
    """The event log of one database connection; see the module docstring.

    ``admit(conn, event)`` is the membership seam, asked before any event is applied: True
    applies it, None keeps it pending (the event that admits its author has not arrived),
    False refuses it (kept in ``rejected`` as evidence). It must depend only on the event and
    what is already applied, never on local time, or replicas diverge. ``on_apply(conn,
    events)`` feeds the materialized views inside the log's transaction; both hooks see every
    event applied earlier in the same transaction.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        max_offset_ms: int = clock.DEFAULT_MAX_OFFSET_MS,
        admit: Admit | None = None,
        on_apply: OnApply | None = None,
        settle_forks: Settles | None = None,
        on_rewind: OnRewind | None = None,
        cannot_affect_admission: Callable[[Event], bool] | None = None,
    ) -> None:
        self.conn = conn
        self.max_offset_ms = max_offset_ms
        self.hooks = Hooks(admit, on_apply, settle_forks, on_rewind, cannot_affect_admission)
        self._home: str | None = None  # where to announce commits ("": nowhere, in memory)
        self.held_cap = MAX_HELD_PER_ORIGIN
        self.pending_cap = MAX_PENDING_PER_ORIGIN
        self.pending_total_cap = MAX_PENDING_TOTAL
        self.rejected_cap = MAX_REJECTED_PER_ORIGIN
        self.rejected_total_cap = MAX_REJECTED_TOTAL

    # ------------------------------------------------------------------ writes

    def append(
        self,
        signing_key: nacl.signing.SigningKey,
        *,
        user: str,
        kind: str,
        payload: dict[str, Any],
        now_ms: int,
        also: Callable[[], None] | None = None,
    ) -> Event:
        """Create, sign and apply a local event; it is durable when this returns.

        ``also`` runs in the same transaction once the event is applied and the views are
        updated, for local bookkeeping that must commit with the event or not at all (e.g.
        dropping the staged changes a commit event carries).

        Raises ``OperationalError`` when the clock high-water mark is more than
        ``max_offset_ms`` ahead of ``now_ms`` or ``admit`` does not admit the event, and
        ``InvalidInput`` for a payload that cannot be encoded; nothing is stored then.
        """
        origin = events.origin_of(signing_key)
        with transaction(self.conn):
            tx = _begin(self, now_ms, origin)
            if tx.has_held or tx.has_pending:  # (the checks, not calls: this runs per write)
                _release(tx)
            event = _new_local_event(tx, signing_key, origin, user, kind, payload)
            if self.hooks.admit is not None:
                _admit_local(tx, event)
            placing.apply(tx, event, now_ms, NEW)
            if tx.has_pending:
                placing.drain(tx)
            if self.hooks.on_apply is not None:
                flush(tx)
            if also is not None:
                chains.write_heads(tx)
                also()
            self._finish(tx)
        self._announce(True)
        return event

    def ingest(self, items: Iterable[tuple[bytes, bytes]], *, now_ms: int) -> IngestResult:
        """Verify and place remote events given as (raw, sig), in one transaction.

        A bad event is refused (listed in ``rejected``) and the rest of the batch goes on.
        Signatures are checked on every core (storage/checking.py), the later events of a
        large batch while the earlier ones are placed.
        """
        batch = list(items)
        with transaction(self.conn):
            tx = _begin(self, now_ms)
            _release(tx)
            for (raw, _sig), checked in zip(batch, checking.check_all(batch), strict=True):
                _receive(tx, raw, checked)
            placing.drain(tx)
            self._finish(tx)
        self._announce(bool(tx.result.applied or tx.result.rewound))
        return tx.result

    def release_held(self, now_ms: int) -> list[Event]:
        """Apply held events whose time has come, and whatever that unblocks."""
        with transaction(self.conn):
            tx = _begin(self, now_ms)
            _release(tx)
            self._finish(tx)
        self._announce(bool(tx.result.applied))
        return tx.result.applied

    def _finish(self, tx: Tx) -> None:
        """Hand the last applied events to the views, before COMMIT. (The clock needs no
        write: the events hold it; see ``meta``.)"""
        chains.write_heads(tx)
        flush(tx)
        if tx.rewound and self.hooks.on_rewind is not None:
            self.hooks.on_rewind(self.conn)
        if tx.result.pending:
            tx.result.pending = [i for i in tx.result.pending
                                 if in_table(self.conn, PENDING, i)]

    def _announce(self, changed: bool) -> None:
        """After COMMIT: tell the home's listeners (watchers, ``evstore run``) that events
        were applied (storage/notify.py). Inside a caller's transaction nothing is durable
        yet, and the caller announces after its own COMMIT."""
        if not changed or self.conn.in_transaction:
            return
        if self._home is None:
            self._home = _home_of(self.conn)
        if self._home:
            notify.announce(self._home)

    # ------------------------------------------------------------------ reads (logreads.py)

    def version_vector(self) -> dict[str, int]:
        return logreads.version_vector(self.conn)

    def first_seq(self, origin: str) -> int | None:
        return logreads.first_seq(self.conn, origin)

    def latest_anchor(self, origin: str) -> int | None:
        return logreads.latest_anchor(self.conn, origin)

    def read_range(
        self, origin: str, first: int, last: int, *, verify: bool = False
    ) -> list[Event]:
        return logreads.read_range(self.conn, origin, first, last, verify=verify)

    def read_raw_range(self, origin: str, first: int, last: int) -> list[tuple[bytes, bytes]]:
        return logreads.read_raw_range(self.conn, origin, first, last)

    def get(self, event_id: str, *, verify: bool = False) -> Event | None:
        return logreads.get(self.conn, event_id, verify=verify)

    def count(self) -> int:
        return logreads.count(self.conn)

    def iter_all(self, *, verify: bool = False) -> Iterator[Event]:
        return logreads.iter_all(self.conn, verify=verify)

    def pending_count(self) -> int:
        return logreads.pending_count(self.conn)

    def held(self) -> list[HeldEvent]:
        return logreads.held(self.conn)

    def forks(self) -> list[ForkEvidence]:
        return logreads.forks(self.conn)

    def hlc_hwm(self) -> int:
        return logreads.hlc_hwm(self.conn)

    def head(self, origin: str) -> tuple[int, str]:
        return logreads.head(self.conn, origin)

    def id_at(self, origin: str, seq: int) -> str | None:
        return logreads.id_at(self.conn, origin, seq)

    def who(self, origin: str) -> str:
        return logreads.who(self.conn, origin)

    # ------------------------------------------------------------------ branches.py

    def keep_clock(self) -> None:
        """Write the clock's floor: before applied events are deleted (see ``meta``)."""
        keep_clock(self.conn)

    def set_aside(self, origin: str, first: int, limit: int) -> list[tuple[bytes, bytes]]:
        return branches.set_aside(self.conn, origin, first, limit)

    def drop_after(self, origin: str, seq: int) -> None:
        """Inside the caller's transaction (net/restore.py); see ``branches.drop_after``."""
        branches.drop_after(self.conn, origin, seq)

    def keep_as_evidence(self, event: Event, *, reason: str, now_ms: int) -> None:
        """Inside the caller's transaction; see ``branches.keep_as_evidence``."""
        branches.keep_as_evidence(self.conn, self, event, reason=reason, now_ms=now_ms)


# ---------------------------------------------------------------------- transaction steps


def _home_of(conn: sqlite3.Connection) -> str:
    """The folder of the connection's main database file ("" for an in-memory one)."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main" and file:
            return os.path.dirname(str(file))
    return ""


def _begin(log: EventLog, now_ms: int, origin: str = "") -> Tx:
    """What a transaction reads first, in one statement: the clock, which side tables
    hold anything, and the chain head of ``origin`` (the local one, for an append)."""
    hwm, has_pending, has_held, has_forks, *head = log.conn.execute(
        f"SELECT {HWM}, EXISTS (SELECT 1 FROM pending), EXISTS (SELECT 1 FROM held), "
        "EXISTS (SELECT 1 FROM forks), a.first_seq, a.first_id, a.last_seq, a.last_id "
        "FROM (SELECT 1) LEFT JOIN anchors AS a ON a.origin = ?",
        (origin,),
    ).fetchone()
    tx = Tx(log.conn, log, now_ms, int(hwm), bool(has_pending), bool(has_held),
            bool(has_forks))
    if origin:
        tx.heads[origin] = None if head[0] is None else Head(*head)
    return tx


def _new_local_event(
    tx: Tx,
    key: nacl.signing.SigningKey,
    origin: str,
    user: str,
    kind: str,
    payload: dict[str, Any],
) -> Event:
    head = tx.heads[origin]  # read by ``_begin``
    seq, prev = (1, None) if head is None else (head.last_seq + 1, head.last_id)
    stamp = clock.tick(tx.hwm, tx.now_ms)
    if clock.too_far_ahead(stamp, tx.now_ms, tx.log.max_offset_ms):
        ahead = clock.wall_ms_of(stamp) - tx.now_ms
        raise OperationalError(
            f"refusing to write: this node's clock high-water mark is {ahead} ms ahead of "
            f"local time (allowed {tx.log.max_offset_ms} ms); check the system clock"
        )
    return events.create(
        key, seq=seq, prev=prev, clock=stamp, wall=tx.now_ms, user=user, kind=kind,
        payload=payload,
    )


def _admit_local(tx: Tx, event: Event) -> None:
    """A local event cannot wait for membership: its author is writing now."""
    if ask_admit(tx, event) is not True:
        raise OperationalError(
            f"this machine may not write a {event.kind!r} event now: its membership does "
            "not admit it; join or re-join the cluster first"
        )


def _receive(tx: Tx, raw: object, checked: checking.Checked) -> None:
    """Place one verified remote event; a refused one is listed, nothing stored."""
    if isinstance(checked, InvalidInput):
        event_id = events.event_id(raw) if isinstance(raw, bytes) else ""
        tx.result.rejected.append(Rejected(event_id, str(checked)))
        return
    event = checked
    if placing.is_known(tx, event):
        tx.result.duplicates.append(event.id)
        return
    placing.place(tx, event, tx.now_ms, NEW)


def _release(tx: Tx) -> None:
    """Apply held events that are no longer too far ahead, earliest clock first."""
    if not tx.has_held:
        placing.drain(tx)
        return
    rows = tx.conn.execute(
        "SELECT id, raw, sig, received_at FROM held ORDER BY clock, origin, id"
    ).fetchall()
    for event_id, raw, sig, received_at in rows:
        event = trusted(event_id, raw, sig)
        if clock.too_far_ahead(event.clock, tx.now_ms, tx.log.max_offset_ms):
            break
        placing.place(tx, event, received_at, HELD)
    placing.drain(tx)
