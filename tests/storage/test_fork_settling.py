"""Forks are settled the same way on every node, whatever order the branches arrive in.

A machine restored from an old copy writes a second branch from its last copied event. Both
branches spread; a node may apply either first. With ``settle_forks``, every node keeps the
branch whose event at the first differing seq has the lower (clock, id), and keeps the other
as evidence, so all nodes end with the same applied events (docs/design.md, "Forks").
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from storage_helpers import T0, key_of, make_chain, wire

from evstore.core import clock, events
from evstore.core.events import Event
from evstore.storage.connect import open_db
from evstore.storage.log import EventLog

M = key_of("restored-machine")


def _branch(prefix: list[Event], n: int, t0: int) -> list[Event]:
    """``n`` events continuing ``prefix``, stamped from ``t0`` on."""
    out: list[Event] = []
    prev, seq = prefix[-1].id, prefix[-1].seq
    for i in range(n):
        ev = events.create(M, seq=seq + 1 + i, prev=prev, clock=clock.pack(t0 + i), wall=t0 + i,
                           user="admin", kind="config.commit", payload={"b": t0, "i": i})
        out.append(ev)
        prev = ev.id
    return out


PREFIX = make_chain(M, 3)
ORIGINAL = _branch(PREFIX, 4, T0 + 1_000)  # written first, lost from the restored copy
RESTORED = _branch(PREFIX, 3, T0 + 9_000)  # written after the restore: the later branch
ALL = PREFIX + ORIGINAL + RESTORED


def _settling_log(path: Path) -> EventLog:
    rewinds: list[int] = []
    log = EventLog(open_db(path), settle_forks=lambda origin: True,
                   on_rewind=lambda conn: rewinds.append(1))
    return log


def _applied(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT id FROM events ORDER BY origin, seq")]


@settings(max_examples=100, deadline=None)
@given(st.permutations(range(len(ALL))), st.integers(1, 4), st.data())
def test_every_order_ends_with_the_earlier_branch(tmp_path_factory, order, batch, data) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("fork") / "x.db"
    log = _settling_log(path)
    sent = [ALL[i] for i in order]
    sent += data.draw(st.lists(st.sampled_from(ALL), max_size=4))  # duplicates, late copies
    for i in range(0, len(sent), batch):
        log.ingest(wire(sent[i : i + batch]), now_ms=T0 + 60_000)
    # anti-entropy goes on until nothing is missing: resend everything once more
    log.ingest(wire(ALL), now_ms=T0 + 60_000)
    assert _applied(log.conn) == [e.id for e in PREFIX + ORIGINAL]
    assert log.version_vector() == {PREFIX[0].origin: len(PREFIX) + len(ORIGINAL)}
    forked = {r[0] for r in log.conn.execute("SELECT id FROM forks")}
    assert RESTORED[0].id in forked
    status = dict(log.conn.execute("SELECT id, status FROM events"))
    assert status[ORIGINAL[0].id] == "forked"


def test_the_later_branch_applied_first_is_rewound_and_the_views_rebuilt(tmp_path: Path) -> None:
    rebuilt: list[int] = []
    log = EventLog(open_db(tmp_path / "x.db"), settle_forks=lambda origin: True,
                   on_rewind=lambda conn: rebuilt.append(len(_applied(conn))))
    log.ingest(wire(PREFIX + RESTORED), now_ms=T0 + 60_000)
    assert _applied(log.conn)[-1] == RESTORED[-1].id
    result = log.ingest(wire(ORIGINAL), now_ms=T0 + 60_000)
    assert [e.id for e in result.applied] == [e.id for e in ORIGINAL]
    assert result.rewound == [e.id for e in RESTORED]
    assert rebuilt == [len(PREFIX) + len(ORIGINAL)]  # once, after the winning branch applied
    kept = {r[0]: r[1] for r in log.conn.execute("SELECT id, reason FROM rejected")}
    assert set(kept) == {e.id for e in RESTORED[1:]}
    assert all("losing branch" in why for why in kept.values())
    # The rewound branch held the highest clocks; the clock stays past them (a floor is
    # written before the events go), across a restart too.
    assert log.hlc_hwm() == RESTORED[-1].clock
    assert EventLog(open_db(tmp_path / "x.db")).hlc_hwm() == RESTORED[-1].clock


def test_without_settling_the_first_applied_stays(tmp_path: Path) -> None:
    log = EventLog(open_db(tmp_path / "x.db"))
    log.ingest(wire(PREFIX + RESTORED), now_ms=T0 + 60_000)
    log.ingest(wire(ORIGINAL), now_ms=T0 + 60_000)
    assert _applied(log.conn) == [e.id for e in PREFIX + RESTORED]


def test_a_node_does_not_settle_its_own_origin(tmp_path: Path) -> None:
    """The restored machine keeps its branch: `rekey` issues it again from its own log."""
    origin = PREFIX[0].origin
    log = EventLog(open_db(tmp_path / "x.db"), settle_forks=lambda o: o != origin)
    log.ingest(wire(PREFIX + RESTORED), now_ms=T0 + 60_000)
    log.ingest(wire(ORIGINAL), now_ms=T0 + 60_000)
    assert _applied(log.conn) == [e.id for e in PREFIX + RESTORED]
