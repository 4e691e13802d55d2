"""Issue 15, item 6: a member cannot fill the disk through the log's waiting rooms.

Events stamped far ahead (``held``) and events above a gap their author never fills
(``pending``) are capped per origin (and ``pending`` overall); past a cap an event is refused,
not stored, and offered again later by anti-entropy, so nothing is lost. Reaching a cap
raises an alert, and the first event held for its clock names the member whose clock runs
ahead. The alerts table itself is bounded (storage/alerts.py).
"""

from __future__ import annotations

import sqlite3

from storage_helpers import T0, key_of, make_chain, wire

from evstore.core import clock, events
from evstore.storage.log import EventLog

B, C = key_of("bravo"), key_of("charlie")


def _alerts(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return [(k, d) for k, d in conn.execute("SELECT kind, detail FROM alerts ORDER BY id")]


def test_the_member_whose_events_are_held_for_their_clock_is_named(
        log: EventLog, conn: sqlite3.Connection) -> None:
    for name in ("m1", "m2", "m3"):
        ahead = make_chain(key_of(name), 3, t0=T0 + 3_600_000)  # an hour ahead
        r = log.ingest(wire(ahead), now_ms=T0)
        assert len(r.held) == 3 and r.rejected == []
    got = _alerts(conn)
    assert [k for k, _ in got] == ["clock_ahead"] * 3  # one per member, its first held event
    for (_, detail), name in zip(got, ("m1", "m2", "m3"), strict=True):
        fp = events.fingerprint(key_of(name).verify_key.encode().hex())[:23]
        assert fp in detail and "ahead of local time" in detail


def test_one_origin_past_its_held_cap_is_refused_and_alerted(
        log: EventLog, conn: sqlite3.Connection) -> None:
    log.held_cap = 2
    log.max_offset_ms = 60_000
    chain = make_chain(B, 1, t0=T0)
    log.ingest(wire(chain), now_ms=T0)
    prev, evs = chain[0].id, []  # B's continuation, stamped an hour ahead
    for seq in range(2, 7):
        ev = events.create(B, seq=seq, prev=prev, clock=clock.pack(T0 + 3_600_000 + seq),
                           wall=T0 + 3_600_000, user="admin", kind="config.commit",
                           payload={"n": seq})
        evs.append(ev)
        prev = ev.id
    r = log.ingest(wire(evs), now_ms=T0)
    assert len(r.held) == 2 and len(r.rejected) == 3
    assert "reached the cap of 2" in r.rejected[0].reason
    assert conn.execute("SELECT COUNT(*) FROM held").fetchone()[0] == 2
    got = _alerts(conn)
    assert [k for k, _ in got].count("held_cap") == 1  # one alert for the batch
    assert [k for k, _ in got].count("clock_ahead") == 1
    # refused events are not lost: once the held ones are released, they come again
    log.release_held(T0 + 3_600_000 + 10)
    r = log.ingest(wire(evs), now_ms=T0 + 3_600_000 + 10)
    assert log.version_vector()[chain[0].origin] == 6


def test_pending_events_are_capped_per_origin_and_overall(
        log: EventLog, conn: sqlite3.Connection) -> None:
    log.pending_cap = 3
    chain = make_chain(B, 8)
    log.ingest(wire(chain[:1]), now_ms=T0)
    r = log.ingest(wire(chain[2:]), now_ms=T0)  # seq 2 missing: a gap
    assert len(r.pending) == 3 and len(r.rejected) == 3
    assert "pending events of member" in r.rejected[0].reason
    assert [k for k, _ in _alerts(conn)] == ["pending_cap"]
    r = log.ingest(wire(chain[2:]), now_ms=T0)  # sent again, still no room: no new alert
    assert len(r.rejected) == 3 and [k for k, _ in _alerts(conn)] == ["pending_cap"]
    r = log.ingest(wire(chain[1:2]), now_ms=T0)  # the gap is filled
    r = log.ingest(wire(chain[2:]), now_ms=T0)  # offered again
    assert log.version_vector()[chain[0].origin] == 8
    log.pending_cap, log.pending_total_cap = 100, 4
    other = make_chain(C, 8)
    r = log.ingest(wire(other[1:]), now_ms=T0)
    assert len(r.pending) == 4 and len(r.rejected) == 3
    assert "every origin together" in r.rejected[0].reason


def test_rejected_evidence_is_capped_per_origin_and_overall(conn: sqlite3.Connection) -> None:
    """Validly signed events of non-members are refused and kept as evidence, within caps:
    past them they are refused without being kept, and one alert names the origin (not
    repeated while the cap stays reached)."""
    strangers = {key_of(n).verify_key.encode().hex() for n in ("s1", "s2", "s3")}
    log = EventLog(conn, admit=lambda _c, ev: ev.origin not in strangers)
    log.rejected_cap, log.rejected_total_cap = 3, 5
    # six different first events of one stranger (each is refused at its position)
    s1 = [make_chain(key_of("s1"), 1, t0=T0 + i)[0] for i in range(6)]
    r = log.ingest(wire(s1), now_ms=T0)
    assert len(r.rejected) == 6 and r.applied == []  # all refused ...
    assert conn.execute("SELECT COUNT(*) FROM rejected").fetchone()[0] == 3  # ... 3 kept
    got = [d for k, d in _alerts(conn) if k == "rejected_cap"]
    fp = events.fingerprint(s1[0].origin)[:23]
    assert len(got) == 1 and fp in got[0] and "cap of 3" in got[0]
    log.ingest(wire(s1), now_ms=T0)  # sent again: nothing new kept, no new alert
    assert [k for k, _ in _alerts(conn)].count("rejected_cap") == 1
    assert conn.execute("SELECT COUNT(*) FROM rejected").fetchone()[0] == 3
    log.ingest(wire([make_chain(key_of("s2"), 1, t0=T0 + i)[0] for i in range(3)]),
               now_ms=T0)  # overall cap: 5
    assert conn.execute("SELECT COUNT(*) FROM rejected").fetchone()[0] == 5
    last = [d for k, d in _alerts(conn) if k == "rejected_cap"][-1]
    assert "every origin together" in last and "cap of 5" in last
    # a member's events are not affected
    r = log.ingest(wire(make_chain(C, 3)), now_ms=T0)
    assert len(r.applied) == 3
