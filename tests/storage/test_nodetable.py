"""The node's key/value table and the staged changes, through the module that owns them."""

from __future__ import annotations

import sqlite3

import pytest

from evstore.storage import nodetable
from evstore.storage.connect import transaction


def test_keys_are_set_replaced_kept_and_forgotten(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        nodetable.insert_all(conn, [("hostname", "a"), ("serial", "S")])
        nodetable.put(conn, "hostname", "b")
        nodetable.insert_new(conn, "serial", "T")  # a first value is kept
        nodetable.insert_new(conn, "machine_id", "m")
        nodetable.delete(conn, "absent")
    assert nodetable.get(conn, "hostname") == "b"
    assert nodetable.values(conn) == {"hostname": "b", "serial": "S", "machine_id": "m"}
    with transaction(conn):
        nodetable.delete(conn, "serial")
    assert nodetable.get(conn, "serial") is None


def test_insert_all_refuses_a_key_present(conn: sqlite3.Connection) -> None:
    nodetable.insert_all(conn, [("hostname", "a")])
    with pytest.raises(sqlite3.IntegrityError):
        nodetable.insert_all(conn, [("hostname", "b")])


def test_staged_rows_per_user_in_order(conn: sqlite3.Connection) -> None:
    row = nodetable.StagedRow
    with transaction(conn):
        nodetable.stage(conn, "ann", row("web", "dns", '{"a":1}', None, None), 1)
        nodetable.stage(conn, "ann", row("@cluster", "ntp", None, '{"b":2}', '[1,"o",2]'), 2)
        nodetable.stage(conn, "ann", row("web", "dns", '{"a":3}', None, None), 3)  # replaces
        nodetable.stage(conn, "bob", row("web", "dns", '{"a":9}', None, None), 4)
    assert nodetable.staged_of(conn, "ann") == [
        row("@cluster", "ntp", None, '{"b":2}', '[1,"o",2]'),
        row("web", "dns", '{"a":3}', None, None),
    ]
    with transaction(conn):
        nodetable.unstage(conn, "ann", [("web", "dns")])
    assert [r.section for r in nodetable.staged_of(conn, "ann")] == ["ntp"]
    with transaction(conn):
        assert nodetable.unstage_all(conn, "bob") == 1
    assert nodetable.staged_of(conn, "bob") == []
