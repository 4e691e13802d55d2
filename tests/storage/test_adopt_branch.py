"""The log's part of adopting a member's branch of this home's own origin (net/restore.py):
cutting the origin's chain after a seq, and keeping the other branch as evidence."""

from __future__ import annotations

import sqlite3

from storage_helpers import T0, key_of, make_chain, wire

from evstore.storage.connect import transaction
from evstore.storage.log import EventLog

A = key_of("alpha")


def _origin() -> str:
    return str(A.verify_key.encode().hex())


def test_drop_after_ends_the_chain_and_keeps_the_clock(log: EventLog) -> None:
    evs = make_chain(A, 4)
    log.ingest(wire(evs), now_ms=T0 + 1000)
    hwm = log.hlc_hwm()
    with transaction(log.conn):
        log.drop_after(_origin(), 2)
    assert log.head(_origin()) == (2, evs[1].id)
    assert log.id_at(_origin(), 3) is None
    assert log.hlc_hwm() == hwm  # the clock does not go back with the events
    with transaction(log.conn):
        log.drop_after(_origin(), 0)
    assert log.head(_origin()) == (0, "")
    assert log.count() == 0


def test_the_other_branch_is_fork_evidence_or_rejected(
        log: EventLog, conn: sqlite3.Connection) -> None:
    mine = make_chain(A, 3)
    theirs = make_chain(A, 4, step_ms=11)  # another branch from seq 1 on
    log.ingest(wire(mine), now_ms=T0 + 1000)
    with transaction(conn):
        log.keep_as_evidence(theirs[2], reason="lost", now_ms=T0)  # seq 3: applied here
        log.keep_as_evidence(theirs[3], reason="lost", now_ms=T0)  # seq 4: nothing here
    [fork] = log.forks()
    assert (fork.seq, fork.applied.id, fork.forked.id) == (3, mine[2].id, theirs[2].id)
    rows = conn.execute("SELECT id, reason FROM rejected").fetchall()
    assert rows == [(theirs[3].id, "lost")]
