"""The read-only questions operations ask of a home (storage/lookups.py, linktable.py) and the
web sessions' rows (storage/websessions.py), against a real database."""

from __future__ import annotations

import sqlite3

import nacl.signing
from storage_helpers import T0, key_of, make_chain, wire

from evstore.storage import linktable, lookups, websessions
from evstore.storage.connect import transaction
from evstore.storage.log import EventLog

A, B = key_of("alpha"), key_of("bravo")


def _origin(key: nacl.signing.SigningKey) -> str:
    return str(key.verify_key.encode().hex())


def test_questions_about_the_events(log: EventLog, conn: sqlite3.Connection) -> None:
    kinds = {2: "machine.remove", 3: "node.rekey"}
    a = make_chain(A, 4, kinds=kinds)
    b = make_chain(B, 2, t0=T0 + 5)
    log.ingest(wire(a + b), now_ms=T0 + 1000)
    oa = _origin(A)
    assert lookups.newest_id_of(conn, oa) == a[3].id
    assert lookups.newest_id_of(conn, "nobody") is None
    assert lookups.has_events_of(conn, oa) and not lookups.has_events_of(conn, "nobody")
    assert lookups.max_seq(conn, oa) == 4 and lookups.max_seq(conn, "nobody") == 0
    assert lookups.received_at(conn, a[0].id) == T0 + 1000
    assert lookups.received_at(conn, "0" * 64) is None
    assert [r[0] for r in lookups.applied_in_range(conn, oa, 2, 3)] == [a[1].id, a[2].id]
    assert lookups.count_from(conn, oa, 2, a[2].clock) == 2
    assert [o for o, _ in lookups.init_events(conn)] == [oa, _origin(B)]
    assert [raw for raw in lookups.raw_of_kind(conn, "machine.remove")] == [a[1].raw]
    assert [i for i, _ in lookups.rows_of_kind(conn, "node.init", newest_first=True)] == [
        b[0].id, a[0].id]
    assert lookups.ids_of_kinds_until(conn, ("node.rekey",), a[2].clock - 1) == []
    assert lookups.ids_of_kinds_until(conn, ("node.rekey",), a[2].clock) == [a[2].id]
    assert lookups.newest_of_kinds(conn, ["config.commit"]) == max(
        (a[3], b[1]), key=lambda e: (e.clock, e.origin, e.id)).id
    prefix = a[0].id[:8]
    assert lookups.ids_between(conn, prefix, prefix + "~", 2) == [a[0].id]
    anchors = list(lookups.newest_scope_anchors(conn, {oa}, ("node.init",), 1 << 62))
    assert [r[0] for r in anchors] == [a[0].id]
    assert [(o, s) for o, s, _ in lookups.scope_marks(conn)] == [(oa, 3)]


def test_links_and_sessions(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        conn.execute("INSERT INTO links (machine, state, since, last_seen, clock_offset_ms, "
                     "address) VALUES ('m1', 'up', 5, 7, -3, '10.0.0.1:2200')")
        websessions.add(conn, "s1", "ann", "mk", "admin", 100)
        websessions.add(conn, "s2", "ann", "mk", "admin", 200)
        websessions.add(conn, "s3", "bob", "mk", "viewer", 50)
    assert linktable.links(conn) == {"m1": ("m1", "up", 7, -3, "10.0.0.1:2200")}
    assert linktable.since(conn) == {"m1": 5}
    assert websessions.get(conn, "s1") == ("ann", "mk", "admin", 100)
    with transaction(conn):
        websessions.touch(conn, "s1", 300)
        websessions.prune(conn, "ann", idle_before=60, keep=1)  # drops bob's idle one, and s2
    assert websessions.get(conn, "s1") == ("ann", "mk", "admin", 300)
    assert websessions.get(conn, "s2") is None and websessions.get(conn, "s3") is None
    with transaction(conn):
        websessions.delete(conn, "s1")
        assert websessions.delete_user(conn, "ann") == 0
