"""The statements the serving node's link book and mesh run (storage/linktable.py,
storage/nodetable.py, storage/chainreads.py), against a real database."""

from __future__ import annotations

import sqlite3

from storage_helpers import T0, key_of, make_chain, wire

from evstore.storage import chainreads, linktable, nodetable
from evstore.storage.connect import transaction
from evstore.storage.log import EventLog

A = key_of("alpha")


def test_a_link_row_through_its_states(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        linktable.store_address(conn, "m1", "10.0.0.1:2200")
    assert linktable.links(conn)["m1"] == ("m1", "down", None, None, "10.0.0.1:2200")
    with transaction(conn):
        linktable.store_state(conn, "m1", "up", 5, 7, -3)
    assert linktable.links(conn)["m1"] == ("m1", "up", 7, -3, "10.0.0.1:2200")
    with transaction(conn):  # a failed dial learns no last-seen time nor offset: both stay
        linktable.store_state(conn, "m1", "down", 9, None, None)
    assert linktable.links(conn)["m1"] == ("m1", "down", 7, -3, "10.0.0.1:2200")
    assert linktable.since(conn) == {"m1": 9}
    with transaction(conn):
        linktable.store_state(conn, "m1", "up", 11, 12, 0)
        linktable.store_state(conn, "m2", "down", 3, None, None)
        linktable.all_down(conn)
    assert {m: r.state for m, r in linktable.links(conn).items()} == {"m1": "down", "m2": "down"}
    assert linktable.since(conn) == {"m1": 11, "m2": 3}  # a reset keeps since when


def test_a_peer_vector_under_its_key(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        nodetable.put(conn, nodetable.peer_vv_key("m1"), '{"o": 3}')
    assert nodetable.get(conn, "peer_vv:m1") == '{"o": 3}'
    assert nodetable.get(conn, nodetable.peer_vv_key("m2")) is None


def test_origins_and_fork_pairs(log: EventLog, conn: sqlite3.Connection) -> None:
    assert chainreads.origins(conn) == frozenset()
    assert chainreads.fork_pairs(conn) == [] and chainreads.fork_pairs(conn, ["x"]) == []
    a = make_chain(A, 2)
    log.ingest(wire(a), now_ms=T0 + 1000)
    assert chainreads.origins(conn) == {a[0].origin}
