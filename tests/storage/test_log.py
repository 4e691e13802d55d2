"""The event log: appends, ingest in any order, chains and anchors, forks, held events, the
membership seam and the view hook, all with time passed in explicitly."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from storage_helpers import T0, key_of, make_chain, wire

from evstore.core import clock, events
from evstore.core.errors import InvalidInput, OperationalError, VerificationError
from evstore.core.events import Event
from evstore.storage import connect
from evstore.storage.connect import open_db, transaction
from evstore.storage.log import EventLog

A, B, C = key_of("alpha"), key_of("bravo"), key_of("charlie")


def origin(key: Any) -> str:
    return str(key.verify_key.encode().hex())


def ids(evs: list[Event]) -> list[str]:
    return [e.id for e in evs]


def stored_ids(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[0] for r in conn.execute(f"SELECT id FROM {table}")}


def append(log: EventLog, key: Any = A, now: int = T0, kind: str = "config.commit",
           **payload: Any) -> Event:
    return log.append(key, user="admin", kind=kind, payload=payload, now_ms=now)


# ---------------------------------------------------------------- connection


def test_every_connection_gets_the_pragmas(conn: sqlite3.Connection) -> None:
    def pragma(name: str) -> Any:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]

    assert pragma("journal_mode") == "wal"
    assert pragma("synchronous") == 2  # FULL
    assert pragma("foreign_keys") == 1
    assert pragma("busy_timeout") == 10_000
    assert conn.isolation_level is None


def test_transaction_rolls_back_on_error_and_nests(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE t (x)")
    with pytest.raises(RuntimeError), transaction(conn):
        conn.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError
    with transaction(conn):
        conn.execute("INSERT INTO t VALUES (2)")
        with pytest.raises(RuntimeError), transaction(conn):
            conn.execute("INSERT INTO t VALUES (3)")
            raise RuntimeError
        conn.execute("INSERT INTO t VALUES (4)")
    assert [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")] == [2, 4]
    assert not conn.in_transaction


def test_a_commit_that_fails_rolls_back_and_tells_the_hooks(conn: sqlite3.Connection) -> None:
    """A deferred constraint fails at COMMIT, which leaves SQLite's transaction open:
    ``transaction`` rolls it back, runs the rollback hooks and raises."""
    conn.executescript(
        "CREATE TABLE p (id INTEGER PRIMARY KEY);"
        "CREATE TABLE c (x REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED);"
    )
    seen: list[sqlite3.Connection] = []
    connect.on_rollback(seen.append)
    try:
        with pytest.raises(sqlite3.IntegrityError), transaction(conn):
            conn.execute("INSERT INTO c VALUES (7)")
    finally:
        connect._ROLLBACK_HOOKS.remove(seen.append)
    assert seen == [conn]
    assert not conn.in_transaction
    assert conn.execute("SELECT COUNT(*) FROM c").fetchone()[0] == 0


# ---------------------------------------------------------------- append


def test_append_builds_a_signed_chain(log: EventLog) -> None:
    evs = [append(log, now=T0 + i, n=i) for i in range(5)]
    assert [e.seq for e in evs] == [1, 2, 3, 4, 5]
    assert evs[0].prev is None
    assert all(b.prev == a.id for a, b in zip(evs, evs[1:], strict=False))
    assert all(a.clock < b.clock for a, b in zip(evs, evs[1:], strict=False))
    assert log.version_vector() == {origin(A): 5}
    assert log.first_seq(origin(A)) == 1
    assert ids(list(log.iter_all(verify=True))) == ids(evs)
    assert ids(log.read_range(origin(A), 2, 4)) == ids(evs[1:4])
    assert log.get(evs[2].id, verify=True) == evs[2]
    assert log.get("0" * 64) is None
    assert log.count() == 5
    assert log.hlc_hwm() == evs[-1].clock


def test_append_is_committed_when_it_returns(db_path: Path, log: EventLog) -> None:
    other = open_db(db_path)
    seen_during: list[int] = []

    def on_apply(conn: sqlite3.Connection, evs: list[Event]) -> None:
        seen_during.append(other.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    hooked = EventLog(log.conn, on_apply=on_apply)
    append(hooked)
    assert seen_during == [0]  # the hook ran inside the uncommitted transaction
    assert other.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
    other.close()


def test_also_commits_with_the_event_or_not_at_all(log: EventLog) -> None:
    log.conn.execute("CREATE TABLE scratch (x)")
    log.conn.execute("INSERT INTO scratch VALUES (1)")

    def drop_staged() -> None:
        assert log.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
        log.conn.execute("DELETE FROM scratch")

    def broken() -> None:
        raise RuntimeError("bookkeeping failed")

    with pytest.raises(RuntimeError):
        log.append(A, user="admin", kind="node.init", payload={}, now_ms=T0, also=broken)
    assert log.count() == 0 and log.hlc_hwm() == 0
    log.append(A, user="admin", kind="node.init", payload={}, now_ms=T0, also=drop_staged)
    assert log.count() == 1
    assert log.conn.execute("SELECT COUNT(*) FROM scratch").fetchone()[0] == 0


def test_a_bad_payload_stores_nothing(log: EventLog) -> None:
    with pytest.raises(InvalidInput):
        append(log, x=1.5)
    assert log.count() == 0 and log.version_vector() == {}


def test_clock_never_goes_backwards_across_reopen(db_path: Path) -> None:
    conn = open_db(db_path)
    first = append(EventLog(conn), now=T0 + 30_000)
    conn.close()
    conn = open_db(db_path)
    log = EventLog(conn)
    assert log.hlc_hwm() == first.clock
    second = append(log, now=T0)  # the wall clock was set back 30 s
    assert second.clock > first.clock
    conn.close()


def test_the_clock_floor_outlives_deleted_events(db_path: Path) -> None:
    # The clock is the highest applied clock unless events were deleted (a fork's losing
    # branch, a restore): ``keep_clock`` writes a floor first, and a later append stays above.
    conn = open_db(db_path)
    log = EventLog(conn)
    top = append(log, now=T0 + 30_000)
    log.keep_clock()
    conn.execute("DELETE FROM anchors")
    conn.execute("DELETE FROM events")
    assert log.hlc_hwm() == top.clock
    assert append(log, now=T0).clock > top.clock
    conn.close()


def test_remote_clocks_push_the_local_clock(db_path: Path) -> None:
    remote = make_chain(B, 1, t0=T0 + 50_000)  # 50 s ahead: within the allowed offset
    conn = open_db(db_path)
    assert ids(EventLog(conn).ingest(wire(remote), now_ms=T0).applied) == ids(remote)
    conn.close()
    conn = open_db(db_path)
    mine = append(EventLog(conn), now=T0)
    assert mine.clock > remote[0].clock
    conn.close()


def test_an_inflated_clock_refuses_to_append(log: EventLog) -> None:
    append(log, now=T0 + 3_600_000)  # a clock an hour fast, since corrected
    with pytest.raises(OperationalError, match="ahead of local time"):
        append(log, now=T0)
    assert log.count() == 1
    assert append(log, now=T0 + 3_600_000 - 59_000).seq == 2  # within the offset again


# ---------------------------------------------------------------- ingest


def test_ingest_applies_and_reports_duplicates(log: EventLog) -> None:
    chain = make_chain(B, 3)
    first = log.ingest(wire(chain), now_ms=T0)
    assert ids(first.applied) == ids(chain)
    again = log.ingest(wire(chain + chain[:1]), now_ms=T0)
    assert again.applied == [] and again.duplicates == ids(chain + chain[:1])
    assert again.counts()["duplicates"] == 4
    assert log.version_vector() == {origin(B): 3}


def test_bad_items_are_refused_and_the_batch_goes_on(log: EventLog) -> None:
    good, forged = make_chain(B, 2)
    bad_sig = bytes([forged.sig[0] ^ 1]) + forged.sig[1:]
    items: list[Any] = [
        (b"not json", b"x" * 64),
        (good.raw, good.sig),
        (forged.raw, bad_sig),
        ("text", b""),
        (good.raw.replace(b'"n":1', b'"n":2'), good.sig),
    ]
    result = log.ingest(items, now_ms=T0)
    assert ids(result.applied) == [good.id]
    assert len(result.rejected) == 4
    assert "forged or altered" in result.rejected[1].reason
    for table in ("events", "pending", "held", "forks", "rejected"):
        assert stored_ids(log.conn, table) <= {good.id}


def test_gaps_fill_in_any_order(log: EventLog) -> None:
    chain = make_chain(B, 6)
    r1 = log.ingest(wire([chain[5], chain[3], chain[2]]), now_ms=T0)
    assert r1.applied == [] and sorted(r1.pending) == sorted(ids([chain[5], chain[3], chain[2]]))
    assert log.pending_count() == 3 and log.version_vector() == {}
    r2 = log.ingest(wire([chain[0]]), now_ms=T0)
    assert ids(r2.applied) == ids(chain[:1])
    r3 = log.ingest(wire([chain[4], chain[1]]), now_ms=T0)
    assert ids(r3.applied) == ids(chain[1:])  # gap filled: the whole chain follows, in order
    assert r3.pending == [] and log.pending_count() == 0
    assert log.version_vector() == {origin(B): 6}


def _scenario() -> list[Event]:
    """Three origins: a whole chain, one anchored at a join (seq 4), one short chain."""
    a = make_chain(A, 6)
    b = make_chain(B, 7, kinds={4: "cluster.join"}, t0=T0 + 3)[3:]
    c = make_chain(C, 3, t0=T0 + 7)
    return a + b + c


SCENARIO = _scenario()
EXPECTED_VV = {origin(A): 6, origin(B): 7, origin(C): 3}


@settings(max_examples=60, deadline=None)
@given(st.permutations(SCENARIO), st.lists(st.integers(0, len(SCENARIO) - 1), max_size=8),
       st.lists(st.integers(1, 6), min_size=1, max_size=20))
def test_any_order_any_batches_converge(
    order: list[Event], dupes: list[int], cuts: list[int]
) -> None:
    items = wire(order + [SCENARIO[i] for i in dupes])
    conn = open_db(":memory:")
    log = EventLog(conn)
    at = 0
    for size in cuts * len(items):
        if at >= len(items):
            break
        log.ingest(items[at : at + size], now_ms=T0)
        at += size
    assert log.version_vector() == EXPECTED_VV
    assert {first for first in map(log.first_seq, EXPECTED_VV)} == {1, 4}
    assert ids(list(log.iter_all())) == ids(sorted(SCENARIO, key=lambda e: e.order_key))
    assert log.pending_count() == 0 and log.forks() == []
    assert log.hlc_hwm() == max(e.clock for e in SCENARIO)
    conn.close()


# ---------------------------------------------------------------- anchors and chains


def test_an_anchor_starts_a_chain_without_its_predecessor(log: EventLog) -> None:
    chain = make_chain(B, 9, kinds={5: "cluster.join"})
    log.ingest(wire(chain[4:7]), now_ms=T0)
    assert log.version_vector() == {origin(B): 7}
    assert log.first_seq(origin(B)) == 5
    r = log.ingest(wire([chain[8]]), now_ms=T0)  # seq 9 without 8: waits
    assert r.pending == [chain[8].id] and log.version_vector() == {origin(B): 7}
    log.ingest(wire(chain[:4]), now_ms=T0)  # old history arrives: the chain now starts at 1
    assert log.first_seq(origin(B)) == 1
    log.ingest(wire([chain[7]]), now_ms=T0)
    assert log.version_vector() == {origin(B): 9} and log.pending_count() == 0


def test_a_rejoin_moves_the_anchor_and_a_filled_gap_merges_back(log: EventLog) -> None:
    chain = make_chain(B, 12, kinds={5: "cluster.join", 10: "cluster.join"})
    log.ingest(wire(chain[4:7] + chain[9:11]), now_ms=T0)
    assert log.version_vector() == {origin(B): 11} and log.first_seq(origin(B)) == 10
    assert ids(log.read_range(origin(B), 10, 11)) == ids(chain[9:11])
    log.ingest(wire(chain[7:9]), now_ms=T0)
    assert log.first_seq(origin(B)) == 5 and log.version_vector() == {origin(B): 11}


def test_latest_anchor_is_where_the_current_scope_starts(log: EventLog) -> None:
    assert log.latest_anchor(origin(A)) is None
    for kind in ("node.init", "config.commit", "cluster.create", "config.commit",
                 "node.standalone", "config.commit"):
        append(log, kind=kind)
    assert (log.first_seq(origin(A)), log.latest_anchor(origin(A))) == (1, 5)
    chain = make_chain(B, 9, kinds={5: "cluster.join", 8: "node.rekey"})
    log.ingest(wire(chain[4:6]), now_ms=T0)
    assert (log.first_seq(origin(B)), log.latest_anchor(origin(B))) == (5, 5)
    log.ingest(wire(chain[6:]), now_ms=T0)
    assert (log.first_seq(origin(B)), log.latest_anchor(origin(B))) == (5, 8)


def test_a_broken_chain_is_refused_and_nothing_stored(log: EventLog) -> None:
    chain = make_chain(B, 2)
    log.ingest(wire(chain), now_ms=T0)
    bad = events.create(B, seq=3, prev="ab" * 32, clock=clock.pack(T0), wall=T0,
                        user="admin", kind="config.commit", payload={})
    anchor = events.create(B, seq=3, prev="cd" * 32, clock=clock.pack(T0), wall=T0,
                           user="admin", kind="cluster.join", payload={})
    r = log.ingest(wire([bad, anchor]), now_ms=T0)
    assert [x.id for x in r.rejected] == [bad.id, anchor.id]
    assert all("broken hash chain" in x.reason for x in r.rejected)
    for table in ("events", "pending", "held", "forks", "rejected"):
        assert not stored_ids(log.conn, table) & {bad.id, anchor.id}


# ---------------------------------------------------------------- forks


def _rival(key: Any, seq: int, prev: str | None) -> Event:
    return events.create(key, seq=seq, prev=prev, clock=clock.pack(T0 + 999), wall=T0,
                         user="admin", kind="config.commit", payload={"rival": True})


def test_a_fork_is_recorded_flagged_and_never_applied(log: EventLog) -> None:
    chain = make_chain(B, 3)
    log.ingest(wire(chain), now_ms=T0)
    rival = _rival(B, 2, chain[0].id)
    r = log.ingest(wire([rival]), now_ms=T0)
    assert r.forks == [rival.id] and r.applied == []
    (evidence,) = log.forks()
    assert (evidence.origin, evidence.seq) == (origin(B), 2)
    assert evidence.applied == chain[1] and evidence.forked.id == rival.id
    assert evidence.forked.raw == rival.raw and evidence.forked.sig == rival.sig
    status = log.conn.execute("SELECT status FROM events WHERE id = ?", (chain[1].id,))
    assert status.fetchone()[0] == "forked"
    assert log.get(rival.id) is None and log.version_vector() == {origin(B): 3}
    child = _rival(B, 3, rival.id)  # seq 3 is taken too: more fork evidence
    grandchild = _rival(B, 4, child.id)  # above the head, but on the losing branch
    r = log.ingest(wire([child, grandchild, rival]), now_ms=T0)
    assert r.forks == [child.id] and r.duplicates == [rival.id]
    assert [x.id for x in r.rejected] == [grandchild.id]
    assert "forked branch" in r.rejected[0].reason
    assert log.count() == 3 and log.pending_count() == 0


def test_an_event_on_an_unseen_branch_marks_its_origin_diverged(log: EventLog) -> None:
    """A validly signed event whose prev is not the event applied at seq - 1 proves a fork
    below it that this log has not seen: refused, and its origin named for gossip to
    recheck. One that chains onto a fork already held is refused without the mark."""
    chain = make_chain(B, 2)
    log.ingest(wire(chain), now_ms=T0)
    rival = _rival(B, 2, chain[0].id)
    beyond = _rival(B, 3, rival.id)
    r = log.ingest(wire([beyond]), now_ms=T0)
    assert r.diverged == [origin(B)] and [x.id for x in r.rejected] == [beyond.id]
    assert "broken hash chain" in r.rejected[0].reason
    log.ingest(wire([rival]), now_ms=T0)  # now the fork is known
    r = log.ingest(wire([beyond]), now_ms=T0)
    assert r.diverged == [] and "forked branch" in r.rejected[0].reason


def test_pending_rivals_become_forks_when_the_gap_fills(log: EventLog) -> None:
    chain = make_chain(B, 3)
    rival = _rival(B, 2, chain[0].id)
    log.ingest(wire([chain[1], rival, chain[2]]), now_ms=T0)
    assert log.pending_count() == 3
    r = log.ingest(wire(chain[:1]), now_ms=T0)
    winner = min(chain[1], rival, key=lambda e: e.id)  # pending rivals: lowest id first
    loser = rival if winner is chain[1] else chain[1]
    assert r.forks == [loser.id]
    assert ids(r.applied)[:2] == [chain[0].id, winner.id]
    assert log.pending_count() == 0
    if winner is rival:  # chain[2] chains onto the losing branch: refused
        assert r.rejected[0].id == chain[2].id
    else:
        assert ids(r.applied) == ids(chain)


def test_a_pending_child_of_the_losing_branch_is_dropped(log: EventLog) -> None:
    chain = make_chain(B, 3)
    rival = _rival(B, 2, chain[0].id)
    log.ingest(wire([chain[0], chain[2]]), now_ms=T0)  # seq 3 waits for seq 2
    r = log.ingest(wire([rival, chain[1]]), now_ms=T0)  # the rival takes seq 2 first
    assert ids(r.applied) == [rival.id]
    assert r.forks == [chain[1].id]
    assert [x.id for x in r.rejected] == [chain[2].id]
    assert log.pending_count() == 0 and log.version_vector() == {origin(B): 2}


# ---------------------------------------------------------------- held events


def test_events_too_far_ahead_are_held_until_their_time(log: EventLog) -> None:
    ahead = make_chain(B, 2, t0=T0 + 120_000)  # walls T0+120_010 and T0+120_020
    r = log.ingest(wire(ahead[:1]), now_ms=T0)
    assert r.held == [ahead[0].id] and log.version_vector() == {}
    (h,) = log.held()
    assert h.event.id == ahead[0].id and "ahead of local time" in h.reason
    r = log.ingest(wire(ahead[1:]), now_ms=T0 + 50_000)
    assert r.held == [ahead[1].id] and r.applied == []
    assert log.release_held(T0 + 59_000) == []
    assert log.hlc_hwm() == 0  # held events do not move the clock
    assert ids(log.release_held(T0 + 60_010)) == ids(ahead[:1])
    assert ids(log.release_held(T0 + 60_020)) == ids(ahead[1:])
    assert log.held() == [] and log.hlc_hwm() == ahead[1].clock


def test_a_successor_of_a_held_event_waits_and_follows_it(log: EventLog) -> None:
    first = events.create(B, seq=1, prev=None, clock=clock.pack(T0 + 120_000), wall=T0,
                          user="admin", kind="node.init", payload={})
    second = events.create(B, seq=2, prev=first.id, clock=clock.pack(T0 + 1), wall=T0,
                           user="admin", kind="config.commit", payload={})
    r = log.ingest(wire([first, second]), now_ms=T0)
    assert (r.held, r.pending) == ([first.id], [second.id])
    assert ids(log.release_held(T0 + 60_000)) == ids([first, second])
    assert log.pending_count() == 0


def test_ingest_and_append_release_held_events_first(log: EventLog) -> None:
    ahead = make_chain(B, 1, t0=T0 + 120_000)
    later = make_chain(C, 1, t0=T0 + 120_000)
    log.ingest(wire(ahead + later), now_ms=T0)
    assert len(log.held()) == 2
    r = log.ingest([], now_ms=T0 + 70_000)
    assert ids(r.applied) == ids(ahead + later)
    held_again = make_chain(key_of("delta"), 1, t0=T0 + 300_000)
    log.ingest(wire(held_again), now_ms=T0 + 70_000)
    mine = append(log, now=T0 + 250_000)
    assert log.held() == [] and mine.clock > held_again[0].clock


# ---------------------------------------------------------------- membership seam and views


def _membership_log(conn: sqlite3.Connection, banned: set[str]) -> tuple[EventLog, list[str]]:
    """Members live in a view table written by on_apply; admit reads that view."""
    conn.execute("CREATE TABLE members (origin TEXT PRIMARY KEY)")
    conn.execute("INSERT INTO members VALUES (?)", (origin(A),))
    calls: list[str] = []

    def admit(c: sqlite3.Connection, ev: Event) -> bool | None:
        if ev.origin in banned:
            return False
        return c.execute("SELECT 1 FROM members WHERE origin = ?", (ev.origin,)).fetchone() \
            is not None or None

    def on_apply(c: sqlite3.Connection, evs: list[Event]) -> None:
        calls.extend(e.id for e in evs)
        for e in evs:
            if e.kind == "member.add":
                c.execute("INSERT OR IGNORE INTO members VALUES (?)", (e.payload["origin"],))

    return EventLog(conn, admit=admit, on_apply=on_apply), calls


def _add_member(prev: Event, who: Any) -> Event:
    return events.create(A, seq=prev.seq + 1, prev=prev.id, clock=prev.clock + 1, wall=T0,
                         user="admin", kind="member.add", payload={"origin": origin(who)})


def test_admit_none_waits_for_the_admitting_event(conn: sqlite3.Connection) -> None:
    log, calls = _membership_log(conn, banned=set())
    a1 = append(log, A, kind="node.init")
    joiner = make_chain(B, 2, kinds={1: "cluster.join"})
    r = log.ingest(wire(joiner), now_ms=T0)
    assert r.applied == [] and sorted(r.pending) == sorted(ids(joiner))
    r = log.ingest(wire([_add_member(a1, B)]), now_ms=T0)
    assert ids(r.applied)[1:] == ids(joiner) and log.pending_count() == 0
    assert calls == ids([a1, *r.applied])  # the views saw every applied event once, in order


def test_admit_sees_events_applied_earlier_in_the_batch(conn: sqlite3.Connection) -> None:
    log, _ = _membership_log(conn, banned=set())
    a1 = append(log, A, kind="node.init")
    joiner = make_chain(B, 1)
    r = log.ingest(wire([_add_member(a1, B), *joiner]), now_ms=T0)
    assert r.pending == [] and ids(r.applied)[1:] == ids(joiner)


def test_admit_false_rejects_and_keeps_evidence(conn: sqlite3.Connection) -> None:
    log, _ = _membership_log(conn, banned={origin(C)})
    stranger = make_chain(C, 1)
    r = log.ingest(wire(stranger), now_ms=T0)
    assert r.applied == [] and [x.id for x in r.rejected] == ids(stranger)
    assert "not a member" in r.rejected[0].reason
    assert stored_ids(conn, "rejected") == set(ids(stranger))
    assert log.version_vector() == {} and log.pending_count() == 0
    with pytest.raises(OperationalError):
        append(log, C, kind="node.init")
    assert log.count() == 0


def test_a_failing_view_hook_rolls_the_whole_ingest_back(conn: sqlite3.Connection) -> None:
    def on_apply(c: sqlite3.Connection, evs: list[Event]) -> None:
        raise RuntimeError("view bug")

    log = EventLog(conn, on_apply=on_apply)
    with pytest.raises(RuntimeError):
        log.ingest(wire(make_chain(B, 3)[::-1]), now_ms=T0)
    assert log.count() == 0 and log.pending_count() == 0 and log.hlc_hwm() == 0
    assert not conn.in_transaction


# ---------------------------------------------------------------- verification of stored events


def test_verified_reads_catch_altered_rows(log: EventLog) -> None:
    ev = append(log)
    log.conn.execute("UPDATE events SET user = 'mallory' WHERE id = ?", (ev.id,))
    assert log.get(ev.id) is not None  # the fast path trusts the row
    with pytest.raises(VerificationError, match="stored columns"):
        log.get(ev.id, verify=True)
    log.conn.execute("UPDATE events SET user = 'admin', raw = ? WHERE id = ?",
                     (ev.raw.replace(b"admin", b"admix"), ev.id))
    with pytest.raises(InvalidInput):
        list(log.iter_all(verify=True))


def _membership_scenario() -> list[Event]:
    a = make_chain(A, 3)
    admit_b = _add_member(a[1], B)  # alpha's seq 3 admits bravo
    a[2:] = [admit_b]
    a.append(events.create(A, seq=4, prev=admit_b.id, clock=admit_b.clock + 1, wall=T0,
                           user="admin", kind="member.add", payload={"origin": origin(C)}))
    b = make_chain(B, 4, kinds={2: "cluster.join"}, t0=T0 + 5)[1:]
    c = make_chain(C, 2, t0=T0 + 9)
    return a + b + c


MEMBERSHIP = _membership_scenario()


@settings(max_examples=40, deadline=None)
@given(st.permutations(MEMBERSHIP), st.integers(1, 4))
def test_membership_waits_converge_in_any_order(order: list[Event], size: int) -> None:
    conn = open_db(":memory:")
    log, applied = _membership_log(conn, banned=set())
    for at in range(0, len(order), size):
        log.ingest(wire(order[at : at + size]), now_ms=T0)
    assert log.version_vector() == {origin(A): 4, origin(B): 4, origin(C): 2}
    assert log.pending_count() == 0
    assert sorted(applied) == sorted(ids(MEMBERSHIP))  # each applied, and seen by views, once
    conn.close()
