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
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evstore.core import clock, events, placement
from evstore.core.errors import InvalidInput, OperationalError, VerificationError
from evstore.core.events import Event
from evstore.storage import alerts, checking, notify
from evstore.storage.connect import transaction

if TYPE_CHECKING:  # PyNaCl is loaded where a key signs (core/events.py), not by reading
    import nacl.signing

ANCHOR_KINDS = frozenset(
    {"node.init", "cluster.create", "cluster.join", "node.rekey", "node.standalone"}
)

_BROKEN_CHAIN = "broken hash chain"

# Caps on what one origin (and everyone together) may park here (issue 15, item 6): a member
# could otherwise fill the disk with events stamped far ahead (``held``) or above a gap it
# never fills (``pending``). An event past a cap is refused, not stored: anti-entropy offers
# it again once there is room (the version vector still lacks it), so nothing is lost.
MAX_HELD_PER_ORIGIN = 1_000
MAX_PENDING_PER_ORIGIN = 50_000
MAX_PENDING_TOTAL = 200_000
# ``rejected`` keeps validly signed events of non-members as evidence (and a fork's losing
# branch, uncapped); past these caps a non-member's event is still refused but not kept.
MAX_REJECTED_PER_ORIGIN = 1_000
MAX_REJECTED_TOTAL = 20_000

Admit = Callable[[sqlite3.Connection, Event], bool | None]
OnApply = Callable[[sqlite3.Connection, list[Event]], None]
OnRewind = Callable[[sqlite3.Connection], None]
Settles = Callable[[str], bool]

_HWM = (
    "MAX(COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'hlc_hwm'), 0), "
    "COALESCE((SELECT MAX(clock) FROM events), 0))"
)
"""The clock's high-water mark: its floor in ``meta`` or the highest clock applied."""
_EVENT_COLS = "id, origin, seq, prev, clock, wall, user, kind, raw, sig"

# Where an event comes from when it is placed; also the table it leaves when it moves on.
_NEW, _PENDING, _HELD = "new", "pending", "held"
_REJECTED = "rejected"


def _home_of(conn: sqlite3.Connection) -> str:
    """The folder of the connection's main database file ("" for an in-memory one)."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main" and file:
            return os.path.dirname(str(file))
    return ""


def is_anchor(event: Event) -> bool:
    """May ``event`` start its origin's chain here, without its predecessor?"""
    return event.seq == 1 or event.kind in ANCHOR_KINDS


@dataclass(frozen=True)
class Rejected:
    """An event refused by ``ingest``; nothing of it was applied."""

    id: str
    reason: str
    origin: str | None = None
    seq: int | None = None


@dataclass
class IngestResult:
    """What one ``ingest`` (or ``release_held``) call did with each event it saw."""

    applied: list[Event] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    forks: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    rewound: list[str] = field(default_factory=list)  # applied here once, now fork evidence
    # Origins one of whose events named as its predecessor another event than the one applied
    # here: the author signed two events at one seq below it, a fork this node has not seen.
    diverged: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "applied": len(self.applied),
            "duplicates": len(self.duplicates),
            "pending": len(self.pending),
            "held": len(self.held),
            "forks": len(self.forks),
            "rejected": len(self.rejected),
            "rewound": len(self.rewound),
        }


@dataclass(frozen=True)
class HeldEvent:
    """An event waiting for local time to reach its clock."""

    event: Event
    received_at: int
    reason: str


@dataclass(frozen=True)
class ForkEvidence:
    """Two different signed events by one origin at one seq: the applied one and the other."""

    origin: str
    seq: int
    applied: Event
    forked: Event
    detected_at: int


@dataclass
class _Head:
    """An origin's row of ``anchors``, as this transaction has left it."""

    first_seq: int
    first_id: str
    last_seq: int
    last_id: str
    dirty: bool = False  # last_seq/last_id moved; written to ``anchors`` by ``_write_heads``


class _Tx:
    """The state of one write transaction.

    The write lock is held from BEGIN IMMEDIATE to COMMIT and the hooks never write the log's
    tables, so what this transaction read from them stays true unless it changes them itself:
    the chain heads it has read are kept in ``heads`` (and written through), and the
    ``has_*`` flags say which of the side tables held anything at all. An empty ``pending``
    (the common case) spares every event the probes for conflicting and waiting events.
    (A plain class with slots: one is made per write, and a dataclass's ``__init__`` with
    factories cost as much as a statement.)
    """

    __slots__ = ("now_ms", "hwm", "has_pending", "has_held", "has_forks", "heads", "rewound",
                 "unflushed_inert", "result", "unflushed", "parked")

    def __init__(self, now_ms: int, hwm: int, has_pending: bool = True,
                 has_held: bool = True, has_forks: bool = True) -> None:
        self.now_ms = now_ms
        self.hwm = hwm
        self.has_pending = has_pending
        self.has_held = has_held
        self.has_forks = has_forks
        self.heads: dict[str, _Head | None] = {}
        self.rewound = False
        self.unflushed_inert = True  # no unflushed event can change admission (``_ask_admit``)
        self.result = IngestResult()
        self.unflushed: list[Event] = []
        self.parked: dict[tuple[str, str], int] = {}  # (table, origin or "*"): rows, read once


def _trusted(event_id: str, raw: bytes, sig: bytes) -> Event:
    """Rebuild an event that was verified before it was stored (no signature check)."""
    return events.trusted(raw, sig, event_id)


def _verified(row: tuple[Any, ...]) -> Event:
    """Re-verify a stored event: signature, id and every column derived from its bytes."""
    event_id, origin, seq, prev, clk, wall, user, kind, raw, sig = row
    event = events.parse(raw, sig)
    stored = (event_id, origin, seq, prev, clk, wall, user, kind)
    derived = (event.id, event.origin, event.seq, event.prev, event.clock, event.wall,
               event.user, event.kind)
    if stored != derived:
        raise VerificationError(
            f"altered event {event_id[:16]}…: its stored columns do not match its signed bytes"
        )
    return event


def _from_row(row: tuple[Any, ...], verify: bool) -> Event:
    return _verified(row) if verify else _trusted(row[0], row[8], row[9])


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
        self._admit = admit
        self._on_apply = on_apply
        self._settle_forks = settle_forks
        self._on_rewind = on_rewind
        self._inert = cannot_affect_admission
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
            tx = self._begin(now_ms, origin)
            if tx.has_held or tx.has_pending:  # (the checks, not calls: this runs per write)
                self._release(tx)
            event = self._new_local_event(tx, signing_key, origin, user, kind, payload)
            if self._admit is not None:
                self._admit_local(tx, event)
            self._apply(tx, event, now_ms, _NEW)
            if tx.has_pending:
                self._drain(tx)
            if self._on_apply is not None:
                self._flush(tx)
            if also is not None:
                self._write_heads(tx)
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
            tx = self._begin(now_ms)
            self._release(tx)
            for (raw, _sig), checked in zip(batch, checking.check_all(batch), strict=True):
                self._receive(tx, raw, checked)
            self._drain(tx)
            self._finish(tx)
        self._announce(bool(tx.result.applied or tx.result.rewound))
        return tx.result

    def release_held(self, now_ms: int) -> list[Event]:
        """Apply held events whose time has come, and whatever that unblocks."""
        with transaction(self.conn):
            tx = self._begin(now_ms)
            self._release(tx)
            self._finish(tx)
        self._announce(bool(tx.result.applied))
        return tx.result.applied

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

    # ------------------------------------------------------------------ reads

    def version_vector(self) -> dict[str, int]:
        """{origin: last contiguous applied seq}, in origin order."""
        rows = self.conn.execute("SELECT origin, last_seq FROM anchors ORDER BY origin")
        return dict(rows)

    def first_seq(self, origin: str) -> int | None:
        """The seq where ``origin``'s contiguous chain held here starts (an anchor), or None.

        Anti-entropy sends ranges ``[first_seq, last]``; every applied event of the origin
        from there to its head is present.
        """
        row = self.conn.execute(
            "SELECT first_seq FROM anchors WHERE origin = ?", (origin,)
        ).fetchone()
        return None if row is None else int(row[0])

    def latest_anchor(self, origin: str) -> int | None:
        """The seq of ``origin``'s most recent anchor in the chain held here, or None.

        This is where the origin's current scope starts (e.g. a machine's own events since it
        last became standalone), whereas ``first_seq`` is where the contiguous chain starts and
        is what anti-entropy sends from: a new member needs every event the others applied.
        """
        marks = ", ".join("?" * len(ANCHOR_KINDS))
        row = self.conn.execute(
            "SELECT MAX(e.seq) FROM events AS e JOIN anchors AS a ON a.origin = e.origin "
            f"WHERE e.origin = ? AND e.seq >= a.first_seq AND (e.seq = 1 OR e.kind IN ({marks}))",
            (origin, *sorted(ANCHOR_KINDS)),
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def read_range(
        self, origin: str, first: int, last: int, *, verify: bool = False
    ) -> list[Event]:
        """Applied events of ``origin`` with ``first <= seq <= last``, in seq order."""
        rows = self.conn.execute(
            f"SELECT {_EVENT_COLS} FROM events WHERE origin = ? AND seq BETWEEN ? AND ? "
            "ORDER BY seq",
            (origin, first, last),
        )
        return [_from_row(r, verify) for r in rows]

    def read_raw_range(self, origin: str, first: int, last: int) -> list[tuple[bytes, bytes]]:
        """``read_range`` as stored (raw bytes, signature): for sending, with nothing decoded."""
        rows = self.conn.execute(
            "SELECT raw, sig FROM events WHERE origin = ? AND seq BETWEEN ? AND ? ORDER BY seq",
            (origin, first, last),
        )
        return [(bytes(raw), bytes(sig)) for raw, sig in rows]

    def set_aside(self, origin: str, first: int, limit: int) -> list[tuple[bytes, bytes]]:
        """``origin``'s events from seq ``first`` on that this log keeps without applying them
        (fork evidence, and refused events kept as evidence), by seq: the other branch of a
        fork, for a rekey that issues its changes again."""
        rows = self.conn.execute(
            "SELECT raw, sig FROM (SELECT seq, id, raw, sig FROM forks WHERE origin = ?1 AND "
            "seq >= ?2 UNION SELECT seq, id, raw, sig FROM rejected WHERE origin = ?1 AND "
            "seq >= ?2) ORDER BY seq, id LIMIT ?3", (origin, first, limit),
        )
        return [(bytes(raw), bytes(sig)) for raw, sig in rows]

    def get(self, event_id: str, *, verify: bool = False) -> Event | None:
        """The applied event with this id, or None."""
        row = self.conn.execute(
            f"SELECT {_EVENT_COLS} FROM events WHERE id = ?", (event_id,)
        ).fetchone()
        return None if row is None else _from_row(row, verify)

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def iter_all(self, *, verify: bool = False) -> Iterator[Event]:
        """Every applied event in the one total order, ``Event.order_key``."""
        rows = self.conn.execute(
            f"SELECT {_EVENT_COLS} FROM events ORDER BY clock, origin, id"
        )
        for row in rows:
            yield _from_row(row, verify)

    def pending_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM pending").fetchone()[0])

    def held(self) -> list[HeldEvent]:
        """Events held back for their clock, earliest first."""
        rows = self.conn.execute(
            "SELECT id, raw, sig, received_at, reason FROM held ORDER BY clock, origin, id"
        )
        return [HeldEvent(_trusted(i, raw, sig), at, why) for i, raw, sig, at, why in rows]

    def forks(self) -> list[ForkEvidence]:
        """Every fork found: the applied event and the other one at the same position."""
        rows = self.conn.execute(
            "SELECT f.origin, f.seq, e.id, e.raw, e.sig, f.id, f.raw, f.sig, f.detected_at "
            "FROM forks AS f JOIN events AS e ON e.id = f.applied_id ORDER BY f.origin, f.seq, f.id"
        )
        return [
            ForkEvidence(o, s, _trusted(ai, ar, asg), _trusted(fi, fr, fsg), at)
            for o, s, ai, ar, asg, fi, fr, fsg, at in rows
        ]

    def hlc_hwm(self) -> int:
        """The highest clock value this node has stamped or applied."""
        return int(self.conn.execute(f"SELECT {_HWM}").fetchone()[0])

    def keep_clock(self) -> None:
        """Write the clock's floor: before applied events are deleted (see ``meta``)."""
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES ('hlc_hwm', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (self.hlc_hwm(),),
        )

    # ------------------------------------------------------------------ adopting a branch

    def head(self, origin: str) -> tuple[int, str]:
        """The newest applied event of ``origin`` as ``(seq, id)``; ``(0, "")`` for none."""
        row = self.conn.execute(
            "SELECT last_seq, last_id FROM anchors WHERE origin = ?", (origin,)
        ).fetchone()
        return (0, "") if row is None else (int(row[0]), str(row[1]))

    def id_at(self, origin: str, seq: int) -> str | None:
        """The id of the event applied at ``(origin, seq)``, or None."""
        row = self.conn.execute(
            "SELECT id FROM events WHERE origin = ? AND seq = ?", (origin, seq)
        ).fetchone()
        return None if row is None else str(row[0])

    def drop_after(self, origin: str, seq: int) -> None:
        """Take ``origin``'s events after ``seq`` out of the log, with its fork evidence and its
        waiting events, and end its chain at ``seq`` (inside the caller's transaction; the
        views are the caller's to rebuild). A restored home adopting a member's branch of its
        own origin does this before ingesting that branch (net/restore.py)."""
        self.conn.execute("DELETE FROM forks WHERE origin = ?", (origin,))
        for table in (_PENDING, _HELD):
            self.conn.execute(f"DELETE FROM {table} WHERE origin = ?", (origin,))
        last = self.id_at(origin, seq)
        if last is None:
            self.conn.execute("DELETE FROM anchors WHERE origin = ?", (origin,))
        else:
            self.conn.execute(
                "UPDATE anchors SET last_seq = ?, last_id = ? WHERE origin = ?", (seq, last, origin)
            )
        self.keep_clock()  # the clock stays past the events deleted here
        self.conn.execute("DELETE FROM events WHERE origin = ? AND seq > ?", (origin, seq))

    def keep_as_evidence(self, event: Event, *, reason: str, now_ms: int) -> None:
        """Keep ``event`` of another branch (inside the caller's transaction): as fork evidence
        beside the event applied at its ``(origin, seq)``, or in ``rejected`` (for ``reason``)
        where nothing is applied there."""
        tx = _Tx(now_ms, 0)
        applied = self.id_at(event.origin, event.seq)
        if applied is None:
            self._keep_rejected(tx, event, reason)
        else:
            self._record_fork(tx, event, applied, _NEW)

    # ------------------------------------------------------------------ transaction steps

    def _begin(self, now_ms: int, origin: str = "") -> _Tx:
        """What a transaction reads first, in one statement: the clock, which side tables
        hold anything, and the chain head of ``origin`` (the local one, for an append)."""
        hwm, has_pending, has_held, has_forks, *head = self.conn.execute(
            f"SELECT {_HWM}, EXISTS (SELECT 1 FROM pending), EXISTS (SELECT 1 FROM held), "
            "EXISTS (SELECT 1 FROM forks), a.first_seq, a.first_id, a.last_seq, a.last_id "
            "FROM (SELECT 1) LEFT JOIN anchors AS a ON a.origin = ?",
            (origin,),
        ).fetchone()
        tx = _Tx(now_ms, int(hwm), bool(has_pending), bool(has_held), bool(has_forks))
        if origin:
            tx.heads[origin] = None if head[0] is None else _Head(*head)
        return tx

    def _finish(self, tx: _Tx) -> None:
        """Hand the last applied events to the views, before COMMIT. (The clock needs no
        write: the events hold it; see ``meta``.)"""
        self._write_heads(tx)
        self._flush(tx)
        if tx.rewound and self._on_rewind is not None:
            self._on_rewind(self.conn)
        if tx.result.pending:
            tx.result.pending = [i for i in tx.result.pending if self._in_table(_PENDING, i)]

    def _flush(self, tx: _Tx) -> None:
        if tx.unflushed and self._on_apply is not None:
            self._on_apply(self.conn, list(tx.unflushed))
        tx.unflushed.clear()
        tx.unflushed_inert = True

    def _ask_admit(self, tx: _Tx, event: Event) -> bool | None:
        """The membership verdict; the views first see everything applied so far."""
        if self._admit is None:
            return True
        # Events that cannot change anyone's admission (settings changes) may wait, and go to
        # the views together: one projection per batch instead of one per event.
        if not tx.unflushed_inert:
            self._flush(tx)
        return self._admit(self.conn, event)

    def _new_local_event(
        self,
        tx: _Tx,
        key: nacl.signing.SigningKey,
        origin: str,
        user: str,
        kind: str,
        payload: dict[str, Any],
    ) -> Event:
        head = tx.heads[origin]  # read by ``_begin``
        seq, prev = (1, None) if head is None else (head.last_seq + 1, head.last_id)
        stamp = clock.tick(tx.hwm, tx.now_ms)
        if clock.too_far_ahead(stamp, tx.now_ms, self.max_offset_ms):
            ahead = clock.wall_ms_of(stamp) - tx.now_ms
            raise OperationalError(
                f"refusing to write: this node's clock high-water mark is {ahead} ms ahead of "
                f"local time (allowed {self.max_offset_ms} ms); check the system clock"
            )
        return events.create(
            key, seq=seq, prev=prev, clock=stamp, wall=tx.now_ms, user=user, kind=kind,
            payload=payload,
        )

    def _admit_local(self, tx: _Tx, event: Event) -> None:
        """A local event cannot wait for membership: its author is writing now."""
        if self._ask_admit(tx, event) is not True:
            raise OperationalError(
                f"this machine may not write a {event.kind!r} event now: its membership does "
                "not admit it; join or re-join the cluster first"
            )

    def _receive(self, tx: _Tx, raw: object, checked: checking.Checked) -> None:
        """Place one verified remote event; a refused one is listed, nothing stored."""
        if isinstance(checked, InvalidInput):
            event_id = events.event_id(raw) if isinstance(raw, bytes) else ""
            tx.result.rejected.append(Rejected(event_id, str(checked)))
            return
        event = checked
        if self._is_known(tx, event):
            tx.result.duplicates.append(event.id)
            return
        self._place(tx, event, tx.now_ms, _NEW)

    def _release(self, tx: _Tx) -> None:
        """Apply held events that are no longer too far ahead, earliest clock first."""
        if not tx.has_held:
            self._drain(tx)
            return
        rows = self.conn.execute(
            "SELECT id, raw, sig, received_at FROM held ORDER BY clock, origin, id"
        ).fetchall()
        for event_id, raw, sig, received_at in rows:
            event = _trusted(event_id, raw, sig)
            if clock.too_far_ahead(event.clock, tx.now_ms, self.max_offset_ms):
                break
            self._place(tx, event, received_at, _HELD)
        self._drain(tx)

    # ------------------------------------------------------------------ placing one event

    def _place(self, tx: _Tx, event: Event, received_at: int, source: str) -> str:
        """Decide where an event not yet applied goes; return where it went."""
        taken = self._applied_id(tx, event.origin, event.seq)
        evidence = None
        if taken is not None and self._wins_fork(tx, event, taken):
            evidence = self._rewind(tx, event, taken)
        elif taken is not None:
            self._record_fork(tx, event, taken, source)
            return "fork"
        if source == _NEW and clock.too_far_ahead(event.clock, tx.now_ms, self.max_offset_ms):
            if not self._room(tx, _HELD, event):
                return "rejected"
            self._hold(tx, event)
            return "held"
        chain = self._chain_state(tx, event)
        if chain not in ("ready", "wait"):
            if chain.startswith(_BROKEN_CHAIN) and event.origin not in tx.result.diverged:
                tx.result.diverged.append(event.origin)
            self._reject(tx, event, chain, source, keep=False)
            return "rejected"
        if chain == "wait":
            if source != _PENDING and not self._room(tx, _PENDING, event):
                return "rejected"
            self._keep_pending(tx, event, received_at, "predecessor", source)
            return "pending"
        where = self._admit_and_apply(tx, event, received_at, source)
        if evidence is not None:
            self._settled(tx, event, where, evidence)
        return where

    def _admit_and_apply(self, tx: _Tx, event: Event, received_at: int, source: str) -> str:
        verdict = self._ask_admit(tx, event)
        if verdict is None:
            if source != _PENDING and not self._room(tx, _PENDING, event):
                return "rejected"
            self._keep_pending(tx, event, received_at, "membership", source)
            return "pending"
        if not verdict:
            reason = f"author {event.origin[:16]}… is not a member allowed to write {event.kind!r}"
            self._reject(tx, event, reason, source, keep=True)
            return "rejected"
        self._apply(tx, event, received_at, source)
        return "applied"

    def _chain_state(self, tx: _Tx, event: Event) -> str:
        """'ready', 'wait' (predecessor missing) or the reason the chain is broken (the rule:
        evstore/core/placement.py)."""
        pred = None if event.seq == 1 else self._applied_id(tx, event.origin, event.seq - 1)
        outcome = placement.chain(event.seq, event.prev, pred, anchor=is_anchor(event))
        if outcome is not placement.Outcome.BROKEN:
            return "ready" if outcome is placement.Outcome.APPEND else "wait"
        where = f"origin {event.origin[:16]}… seq {event.seq}"
        if self._in_table("forks", event.prev or ""):
            return f"{where} chains onto the forked branch; it is never applied"
        return f"{_BROKEN_CHAIN} at {where}: prev does not name the applied seq {event.seq - 1}"

    def _apply(self, tx: _Tx, event: Event, received_at: int, source: str) -> None:
        if source is not _NEW:
            self._leave(source, event.id, tx, event.origin)
        self.conn.execute(
            "INSERT INTO events (id, origin, seq, prev, clock, wall, user, kind, raw, sig, "
            "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event.id, event.origin, event.seq, event.prev, event.clock, event.wall,
             event.user, event.kind, event.raw, event.sig, received_at),
        )
        head = tx.heads.get(event.origin)
        if head is not None and event.seq == head.last_seq + 1:  # the common case, inline
            head.last_seq, head.last_id, head.dirty = event.seq, event.id, True
        else:
            self._advance_anchor(tx, event)
        if tx.has_pending:
            self._evict_conflicts(tx, event)
        tx.hwm = clock.observe(tx.hwm, event.clock)
        tx.result.applied.append(event)
        tx.unflushed.append(event)
        if tx.unflushed_inert and (self._inert is None or not self._inert(event)):
            tx.unflushed_inert = False

    def _record_fork(self, tx: _Tx, event: Event, applied_id: str, source: str) -> None:
        self._leave(source, event.id, tx, event.origin)
        self.conn.execute(
            "INSERT OR IGNORE INTO forks (id, origin, seq, applied_id, raw, sig, detected_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.id, event.origin, event.seq, applied_id, event.raw, event.sig, tx.now_ms),
        )
        self.conn.execute("UPDATE events SET status = 'forked' WHERE id = ?", (applied_id,))
        tx.has_forks = True
        tx.result.forks.append(event.id)

    # ------------------------------------------------------------------ settling forks

    def _wins_fork(self, tx: _Tx, event: Event, applied_id: str) -> bool:
        """Does ``event`` displace the applied event at its position (the settling rule)?

        Two signed events at one (origin, seq) are a fork. Where ``settle_forks(origin)``
        allows it, every node keeps the same one, whatever order the branches arrived in: the
        lower (clock, id). The earlier write is the one most peers hold (a machine restored
        from an old copy stamps its new branch later than the events it lost), and the later
        branch's changes are issued again under a fresh key by ``clusterconfig rekey``.
        Without ``settle_forks`` (or for the node's own origin, whose losing branch ``rekey``
        needs in its own log), the first one applied stays: the older behaviour.
        """
        if self._settle_forks is None or event.id == applied_id:
            return False
        if not self._settle_forks(event.origin):
            return False
        if self._chain_state(tx, event) != "ready":
            return False  # decided where the branches part, never deeper (same everywhere)
        if clock.too_far_ahead(event.clock, tx.now_ms, self.max_offset_ms):
            return False  # it would be held, not applied: nothing is taken out for it now
        row = self.conn.execute("SELECT clock FROM events WHERE id = ?", (applied_id,)).fetchone()
        return row is not None and (event.clock, event.id) < (int(row[0]), applied_id)

    def _rewind(self, tx: _Tx, winner: Event, applied_id: str) -> list[tuple[Any, ...]]:
        """Take the losing branch (``applied_id`` and its successors) out of ``events``.

        Returns the fork evidence at the winner's position (the displaced event, and any
        kept against it), to be recorded once the winner is applied (``_settled``). The
        displaced event's successors go to ``rejected`` as evidence (their positions belong to
        the winning branch, whose events arrive by anti-entropy); events kept as evidence
        above the fork may continue the winning branch and wait in ``pending`` again. The
        views are rebuilt before COMMIT (``on_rewind``): they hold what the branch changed.
        Foreign keys point at ``events``, so references go before the rows they name.
        """
        self._flush(tx)
        origin, seq = winner.origin, winner.seq
        losing = self.conn.execute(
            "SELECT id, raw, sig FROM events WHERE origin = ? AND seq >= ? ORDER BY seq",
            (origin, seq),
        ).fetchall()
        evidence = self.conn.execute(
            "SELECT id, raw, sig FROM forks WHERE origin = ? AND seq = ? ORDER BY id",
            (origin, seq),
        ).fetchall()
        above = self.conn.execute(
            "SELECT id, raw, sig FROM forks WHERE origin = ? AND seq > ? ORDER BY seq, id",
            (origin, seq),
        ).fetchall()
        self.conn.execute("DELETE FROM forks WHERE origin = ? AND seq >= ?", (origin, seq))
        self._cut_head(tx, origin, seq)
        self.keep_clock()
        self.conn.execute("DELETE FROM events WHERE origin = ? AND seq >= ?", (origin, seq))
        displaced = [row for row in losing if row[0] == applied_id]
        for lid, raw, sig in losing:
            tx.result.rewound.append(lid)
            if lid != applied_id:
                lost = _trusted(lid, raw, sig)
                self._keep_rejected(tx, lost, f"on the losing branch of a fork at seq {seq}")
        for fid, raw, sig in above:
            self._keep_pending(tx, _trusted(fid, raw, sig), tx.now_ms, "predecessor", _NEW)
        gone = set(tx.result.rewound)
        tx.result.applied = [e for e in tx.result.applied if e.id not in gone]
        tx.has_forks = tx.rewound = True
        tx.result.forks.append(applied_id)
        return displaced + evidence

    def _settled(self, tx: _Tx, winner: Event, where: str, evidence: list[tuple[Any, ...]]
                 ) -> None:
        """Record the fork evidence against the winner (or keep it, if the winner waits)."""
        for fid, raw, sig in evidence:
            lost = _trusted(fid, raw, sig)
            if where == "applied":
                self.conn.execute(
                    "INSERT OR IGNORE INTO forks (id, origin, seq, applied_id, raw, sig, "
                    "detected_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (lost.id, lost.origin, lost.seq, winner.id, lost.raw, lost.sig, tx.now_ms),
                )
            else:
                self._keep_rejected(tx, lost, f"displaced at seq {lost.seq} by {winner.id[:16]}…, "
                                    f"which is {where}")
        if where == "applied":
            self.conn.execute("UPDATE events SET status = 'forked' WHERE id = ?", (winner.id,))

    def _keep_rejected(self, tx: _Tx, event: Event, reason: str, *, capped: bool = False) -> None:
        """Keep a refused event as evidence. ``capped`` (a non-member's event): within the caps
        (per origin and overall), past which it is not kept and an alert names the origin (not
        repeated while unchanged). A fork's losing branch is always kept: a rekey issues this
        machine's own again from it (``set_aside``)."""
        known = self.conn.execute("SELECT 1 FROM rejected WHERE id = ?", (event.id,)).fetchone()
        if known is not None:
            pass
        elif not capped:
            self._count_parked(tx, _REJECTED, event.origin, 1)
        else:
            mine = self._parked(tx, _REJECTED, event.origin)
            total = self._parked(tx, _REJECTED, "*")
            if mine >= self.rejected_cap or total >= self.rejected_total_cap:
                limit = self.rejected_cap if mine >= self.rejected_cap \
                    else self.rejected_total_cap
                whose = f"origin {self.who(event.origin)}" if mine >= self.rejected_cap \
                    else "every origin together"  # not naming each: one alert, not one per key
                self._alert_once(tx, "rejected_cap", f"rejected events kept as evidence of "
                                 f"{whose} reached the cap of {limit}; later ones are refused "
                                 "without being kept")
                return
            self._count_parked(tx, _REJECTED, event.origin, 1)
        self.conn.execute(
            "INSERT OR REPLACE INTO rejected (id, origin, seq, reason, raw, sig, rejected_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.id, event.origin, event.seq, reason, event.raw, event.sig, tx.now_ms),
        )

    def _cut_head(self, tx: _Tx, origin: str, seq: int) -> None:
        """The origin's chain now ends below ``seq``."""
        self._write_heads(tx)
        head = self._head(tx, origin)
        if head is None:
            return
        if seq <= head.first_seq:
            self.conn.execute("DELETE FROM anchors WHERE origin = ?", (origin,))
            tx.heads[origin] = None
            return
        row = self.conn.execute(
            "SELECT id FROM events WHERE origin = ? AND seq = ?", (origin, seq - 1)
        ).fetchone()
        self.conn.execute(
            "UPDATE anchors SET last_seq = ?, last_id = ? WHERE origin = ?",
            (seq - 1, row[0], origin),
        )
        head.last_seq, head.last_id = seq - 1, str(row[0])

    def _parked(self, tx: _Tx, table: str, origin: str) -> int:
        """Rows of ``table`` from ``origin`` (``"*"``: from anyone), counted once a transaction
        and kept up to date by ``_hold``, ``_keep_pending`` and ``_leave``."""
        key = (table, origin)
        n = tx.parked.get(key)
        if n is None:
            if origin == "*":
                n = self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            else:
                n = self.conn.execute(f"SELECT COUNT(*) FROM {table} WHERE origin = ?",
                                      (origin,)).fetchone()[0]
            tx.parked[key] = n = int(n)
        return n

    def _count_parked(self, tx: _Tx, table: str, origin: str, step: int) -> None:
        for key in ((table, origin), (table, "*")):
            if key in tx.parked:
                tx.parked[key] += step

    def who(self, origin: str) -> str:
        """A machine's hostname for an alert (from the views, when they know the key), else
        the key's fingerprint."""
        try:
            row = self.conn.execute(
                "SELECT h.value FROM reg_winners AS k JOIN reg_winners AS h ON h.scope = k.scope"
                " AND h.section = k.section AND h.field = 'hostname' WHERE k.section = "
                "'@structure' AND k.field IN ('key', 'mid') AND k.value = ? LIMIT 1",
                (f'"{origin}"',),
            ).fetchone()
        except sqlite3.OperationalError:  # a log without views (tests, tools)
            row = None
        name = str(row[0]).strip('"') if row else ""
        return f"{name} ({events.fingerprint(origin)[:23]})" if name else \
            f"key {events.fingerprint(origin)[:23]}"

    def _room(self, tx: _Tx, table: str, event: Event) -> bool:
        """Is there room in ``table`` for one more event of ``event.origin``? When there is
        not, the event is refused (not stored: it is offered again later) and, the first time
        in this transaction, an alert names the member."""
        cap = self.held_cap if table == _HELD else self.pending_cap
        mine = self._parked(tx, table, event.origin)
        total = self._parked(tx, table, "*") if table == _PENDING else 0
        if mine < cap and (table != _PENDING or total < self.pending_total_cap):
            return True
        whose = "every origin together" if mine < cap else f"member {self.who(event.origin)}"
        limit = self.pending_total_cap if mine < cap else cap
        reason = (f"{table} events of {whose} reached the cap of {limit}; refused for now "
                  "(offered again once there is room)")
        first = not any(r.reason == reason for r in tx.result.rejected)
        tx.result.rejected.append(Rejected(event.id, reason, event.origin, event.seq))
        if first:
            self._alert_once(tx, f"{table}_cap", reason)
        return False

    def _alert_once(self, tx: _Tx, kind: str, detail: str) -> None:
        """Add an alert unless the newest one of its kind says the same (a cap stays reached
        while the member keeps sending, and held events are retried every second)."""
        last = self.conn.execute("SELECT detail FROM alerts WHERE kind = ? ORDER BY id DESC "
                                 "LIMIT 1", (kind,)).fetchone()
        if last is None or last[0] != detail:
            alerts.add(self.conn, tx.now_ms, kind, detail)

    def _hold(self, tx: _Tx, event: Event) -> None:
        ahead = clock.wall_ms_of(event.clock) - tx.now_ms
        reason = (
            f"stamped {ahead} ms ahead of local time (allowed {self.max_offset_ms} ms); "
            "applied when local time reaches it"
        )
        if self._parked(tx, _HELD, event.origin) == 0:  # the first of a run: say whose
            alerts.add(self.conn, tx.now_ms, "clock_ahead",
                       f"events of member {self.who(event.origin)} are held back: {reason}; "
                       "its clock runs ahead of this machine's")
        self._count_parked(tx, _HELD, event.origin, 1)
        self.conn.execute(
            "INSERT INTO held (id, origin, seq, clock, raw, sig, received_at, reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (event.id, event.origin, event.seq, event.clock, event.raw, event.sig,
             tx.now_ms, reason),
        )
        tx.has_held = True
        tx.result.held.append(event.id)

    def _keep_pending(
        self, tx: _Tx, event: Event, received_at: int, reason: str, source: str
    ) -> None:
        if source == _PENDING:
            self.conn.execute("UPDATE pending SET reason = ? WHERE id = ?", (reason, event.id))
            return
        self._leave(source, event.id, tx, event.origin)
        tx.has_pending = True
        self._count_parked(tx, _PENDING, event.origin, 1)
        self.conn.execute(
            "INSERT INTO pending (id, origin, seq, prev, clock, kind, raw, sig, received_at, "
            "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event.id, event.origin, event.seq, event.prev, event.clock, event.kind,
             event.raw, event.sig, received_at, reason),
        )
        tx.result.pending.append(event.id)

    def _reject(self, tx: _Tx, event: Event, reason: str, source: str, *, keep: bool) -> None:
        """Refuse an event; ``keep`` stores it as evidence (non-members), never applied."""
        self._leave(source, event.id, tx, event.origin)
        if keep:
            self._keep_rejected(tx, event, reason, capped=True)
        tx.result.rejected.append(Rejected(event.id, reason, event.origin, event.seq))

    def _leave(self, source: str, event_id: str, tx: _Tx, origin: str) -> None:
        if source in (_PENDING, _HELD):
            self.conn.execute(f"DELETE FROM {source} WHERE id = ?", (event_id,))
            self._count_parked(tx, source, origin, -1)

    # ------------------------------------------------------------------ chains

    def _head(self, tx: _Tx, origin: str) -> _Head | None:
        """``origin``'s row of ``anchors`` (None: nothing of it applied), read once per tx."""
        if origin not in tx.heads:
            row = self.conn.execute(
                "SELECT first_seq, first_id, last_seq, last_id FROM anchors WHERE origin = ?",
                (origin,),
            ).fetchone()
            tx.heads[origin] = None if row is None else _Head(*row)
        return tx.heads[origin]

    def _advance_anchor(self, tx: _Tx, event: Event) -> None:
        """Keep ``anchors`` at the chain ending in the origin's highest applied seq."""
        head = self._head(tx, event.origin)
        if head is None or event.seq > head.last_seq + 1:
            self._set_anchor(tx, event.origin, "first", event.seq, event.id, insert=True)
        elif event.seq == head.last_seq + 1:
            self._set_anchor(tx, event.origin, "last", event.seq, event.id)
        elif event.seq == head.first_seq - 1:
            start = self._run_start(tx, event.origin, event.seq)
            start_id = self._applied_id(tx, event.origin, start)
            self._set_anchor(tx, event.origin, "first", start, start_id or event.id)

    def _set_anchor(
        self, tx: _Tx, origin: str, end: str, seq: int, event_id: str, *, insert: bool = False
    ) -> None:
        if insert:
            self.conn.execute(
                "INSERT OR REPLACE INTO anchors (origin, first_seq, first_id, last_seq, last_id)"
                " VALUES (?, ?, ?, ?, ?)",
                (origin, seq, event_id, seq, event_id),
            )
            tx.heads[origin] = _Head(seq, event_id, seq, event_id)
            return
        head = tx.heads[origin]
        assert head is not None  # read by _advance_anchor just before
        if end == "first":
            self.conn.execute(
                "UPDATE anchors SET first_seq = ?, first_id = ? WHERE origin = ?",
                (seq, event_id, origin),
            )
            head.first_seq, head.first_id = seq, event_id
        else:  # the common case, once per event: written once per origin, before COMMIT
            head.last_seq, head.last_id, head.dirty = seq, event_id, True

    def _write_heads(self, tx: _Tx) -> None:
        """Write the chain heads this transaction moved (before anything else reads them)."""
        for origin, head in tx.heads.items():
            if head is not None and head.dirty:
                self.conn.execute(
                    "UPDATE anchors SET last_seq = ?, last_id = ? WHERE origin = ?",
                    (head.last_seq, head.last_id, origin),
                )
                head.dirty = False

    def _run_start(self, tx: _Tx, origin: str, seq: int) -> int:
        """The lowest seq from which every seq up to ``seq`` is applied."""
        while self._applied_id(tx, origin, seq - 1) is not None:
            seq -= 1
        return seq

    def _evict_conflicts(self, tx: _Tx, event: Event) -> None:
        """Pending events that the newly applied ``event`` makes forks or broken chains."""
        rivals = self.conn.execute(
            "SELECT id, raw, sig FROM pending WHERE origin = ? AND seq = ? AND id != ? "
            "ORDER BY id",
            (event.origin, event.seq, event.id),
        ).fetchall()
        for rid, raw, sig in rivals:
            rival = _trusted(rid, raw, sig)
            if self._wins_fork(tx, rival, event.id):
                continue  # it stays pending: ``_drain`` places it, and ``_place`` settles
            self._record_fork(tx, rival, event.id, _PENDING)
        orphans = self.conn.execute(
            "SELECT id, raw, sig FROM pending WHERE origin = ? AND seq = ? "
            "AND prev IS NOT ? ORDER BY id",
            (event.origin, event.seq + 1, event.id),
        ).fetchall()
        for oid, raw, sig in orphans:
            orphan = _trusted(oid, raw, sig)
            self._reject(tx, orphan, self._chain_state(tx, orphan), _PENDING, keep=False)

    # ------------------------------------------------------------------ pending

    def _drain(self, tx: _Tx) -> None:
        """Apply pending events until none becomes appliable (gaps filled, members admitted)."""
        while tx.has_pending:
            moved = False
            for event, received_at in self._ready_pending():
                if self._in_table(_PENDING, event.id):
                    moved |= self._settle(tx, event, received_at)
            if not moved:
                return

    def _settle(self, tx: _Tx, event: Event, received_at: int) -> bool:
        """Place one pending event, then follow its chain upwards; True when it moved."""
        if self._place(tx, event, received_at, _PENDING) != "applied":
            return not self._in_table(_PENDING, event.id)
        while (nxt := self._pending_successor(event)) is not None:
            event, received_at = nxt
            if self._place(tx, event, received_at, _PENDING) != "applied":
                break
        return True

    def _ready_pending(self) -> list[tuple[Event, int]]:
        """Pending events worth another look: chain-ready, or waiting only for membership."""
        rows = self.conn.execute(
            "SELECT p.id, p.raw, p.sig, p.received_at FROM pending AS p "
            "WHERE p.reason = 'membership' OR EXISTS (SELECT 1 FROM events AS e "
            "WHERE e.origin = p.origin AND e.seq = p.seq - 1) "
            "ORDER BY p.origin, p.seq, p.id"
        ).fetchall()
        return [(_trusted(i, raw, sig), at) for i, raw, sig, at in rows]

    def _pending_successor(self, event: Event) -> tuple[Event, int] | None:
        row = self.conn.execute(
            "SELECT id, raw, sig, received_at FROM pending WHERE origin = ? AND seq = ? "
            "AND prev = ? ORDER BY id LIMIT 1",
            (event.origin, event.seq + 1, event.id),
        ).fetchone()
        return None if row is None else (_trusted(row[0], row[1], row[2]), row[3])

    # ------------------------------------------------------------------ lookups

    def _applied_id(self, tx: _Tx, origin: str, seq: int) -> str | None:
        """The id of the applied event at (origin, seq), or None.

        Applied events never lie above the origin's head, and the head is known: the common
        questions (is the next seq taken? is its predecessor the head?) need no query. An
        origin without a head is asked of ``events`` (a restore may leave older events).
        """
        head = self._head(tx, origin)
        if head is not None and seq > head.last_seq:
            return None
        if head is not None and seq == head.last_seq:
            return head.last_id
        row = self.conn.execute(
            "SELECT id FROM events WHERE origin = ? AND seq = ?", (origin, seq)
        ).fetchone()
        return None if row is None else str(row[0])

    def _in_table(self, table: str, event_id: str) -> bool:
        row = self.conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (event_id,)).fetchone()
        return row is not None

    def _is_known(self, tx: _Tx, event: Event) -> bool:
        """Already applied, pending, held or kept as fork evidence: a duplicate."""
        head = self._head(tx, event.origin)
        above_head = head is not None and event.seq > head.last_seq  # so not applied
        tables = [] if above_head else ["events"]
        tables += [t for t, has in ((_PENDING, tx.has_pending), (_HELD, tx.has_held),
                                    ("forks", tx.has_forks)) if has]
        return any(self._in_table(t, event.id) for t in tables)
