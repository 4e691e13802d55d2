"""One write transaction of the event log: its state, and the seams it calls.

``append``, ``ingest`` and ``release_held`` (evstore/storage/log.py) each open one
``BEGIN IMMEDIATE`` transaction and make one ``Tx``, which every step of placing events
(chains.py, parking.py, forksettle.py, placing.py) is given. It carries the connection, the
log's rules (``Policy``: the hooks and the caps, read where they are used, so a test may
change a cap on a live log) and what the transaction has learnt so far.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from evstore.core.events import Event
from evstore.storage import logreads
from evstore.storage.logrecords import IngestResult

Admit = Callable[[sqlite3.Connection, Event], bool | None]
OnApply = Callable[[sqlite3.Connection, list[Event]], None]
OnRewind = Callable[[sqlite3.Connection], None]
Settles = Callable[[str], bool]


@dataclass(frozen=True)
class Hooks:
    """The seams a log is made with (see ``EventLog``); None: not wired."""

    admit: Admit | None = None
    on_apply: OnApply | None = None
    settle_forks: Settles | None = None
    on_rewind: OnRewind | None = None
    inert: Callable[[Event], bool] | None = None  # cannot change anyone's admission


class Policy(Protocol):
    """What placing an event reads of the log it runs for (an ``EventLog``)."""

    hooks: Hooks
    max_offset_ms: int
    held_cap: int
    pending_cap: int
    pending_total_cap: int
    rejected_cap: int
    rejected_total_cap: int


@dataclass
class Head:
    """An origin's row of ``anchors``, as this transaction has left it."""

    first_seq: int
    first_id: str
    last_seq: int
    last_id: str
    dirty: bool = False  # last_seq/last_id moved; written to ``anchors`` by ``write_heads``


class Tx:
    """The state of one write transaction.

    The write lock is held from BEGIN IMMEDIATE to COMMIT and the hooks never write the log's
    tables, so what this transaction read from them stays true unless it changes them itself:
    the chain heads it has read are kept in ``heads`` (and written through), and the
    ``has_*`` flags say which of the side tables held anything at all. An empty ``pending``
    (the common case) spares every event the probes for conflicting and waiting events.
    (A plain class with slots: one is made per write, and a dataclass's ``__init__`` with
    factories cost as much as a statement.)
    """

    __slots__ = ("conn", "log", "now_ms", "hwm", "has_pending", "has_held", "has_forks",
                 "heads", "rewound", "unflushed_inert", "result", "unflushed", "parked")

    def __init__(self, conn: sqlite3.Connection, log: Policy, now_ms: int, hwm: int,
                 has_pending: bool = True, has_held: bool = True,
                 has_forks: bool = True) -> None:
        self.conn = conn
        self.log = log
        self.now_ms = now_ms
        self.hwm = hwm
        self.has_pending = has_pending
        self.has_held = has_held
        self.has_forks = has_forks
        self.heads: dict[str, Head | None] = {}
        self.rewound = False
        self.unflushed_inert = True  # no unflushed event can change admission (``ask_admit``)
        self.result = IngestResult()
        self.unflushed: list[Event] = []
        self.parked: dict[tuple[str, str], int] = {}  # (table, origin or "*"): rows, read once


def flush(tx: Tx) -> None:
    """Hand the events applied since the last flush to the views (``on_apply``)."""
    on_apply = tx.log.hooks.on_apply
    if tx.unflushed and on_apply is not None:
        on_apply(tx.conn, list(tx.unflushed))
    tx.unflushed.clear()
    tx.unflushed_inert = True


def ask_admit(tx: Tx, event: Event) -> bool | None:
    """The membership verdict; the views first see everything applied so far."""
    admit = tx.log.hooks.admit
    if admit is None:
        return True
    # Events that cannot change anyone's admission (settings changes) may wait, and go to
    # the views together: one projection per batch instead of one per event.
    if not tx.unflushed_inert:
        flush(tx)
    return admit(tx.conn, event)


def in_table(conn: sqlite3.Connection, table: str, event_id: str) -> bool:
    """Does ``table`` (events, pending, held, forks) hold the event ``event_id``?"""
    row = conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (event_id,)).fetchone()
    return row is not None


def keep_clock(conn: sqlite3.Connection) -> None:
    """Write the clock's floor: before applied events are deleted (see ``meta`` in log.py)."""
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('hlc_hwm', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (logreads.hlc_hwm(conn),),
    )
