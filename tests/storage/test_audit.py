"""The audit index: filled lazily and exactly once, rebuilt when rowids were rewritten, and
every filter served by an index."""

from __future__ import annotations

import sqlite3
from typing import Any

import nacl.signing
import pytest

from evstore.core import clock, events
from evstore.core.errors import InvalidInput
from evstore.storage import audit
from evstore.storage.log import EventLog

KEY = nacl.signing.SigningKey(b"k" * 32)
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def commit(log: EventLog, n: int, user: str = "admin", **change: Any) -> events.Event:
    ch = {"mode": "cluster", "section": "dns", "op": "patch", "base": None,
          "set": {"servers": [f"10.0.0.{n}"]}, "unset": [], **change}
    return log.append(KEY, user=user, kind="config.commit",
                      payload={"comment": f"c{n}", "changes": [ch, {**ch, "section": "ntp"}]},
                      now_ms=T0 + n * 1000)


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0])


def test_catch_up_indexes_each_change_once(conn: sqlite3.Connection, log: EventLog) -> None:
    for n in range(5):
        commit(log, n)
    assert count(conn) == 0 and audit.catch_up(conn, batch=2) == 5
    assert count(conn) == 10 and audit.catch_up(conn) == 0
    commit(log, 5, user="bob")
    rows = audit.run(conn, T0 + 10_000)
    assert len(rows) == 12 and rows[-1]["user"] == "bob"
    assert rows[0]["time"] == "2026-01-01T00:00:00.000Z"
    assert rows[0]["summary"] == "patch: set servers (c0)"
    assert [r["section"] for r in rows[:2]] == ["dns", "ntp"]
    assert rows[0]["commit"] == rows[1]["commit"]


def test_rewritten_rowids_rebuild_the_index(conn: sqlite3.Connection, log: EventLog) -> None:
    for n in range(4):
        commit(log, n)
    audit.catch_up(conn)
    conn.execute("UPDATE meta SET value = 999 WHERE key = 'audit_pos'")  # as after a VACUUM
    conn.execute("DELETE FROM audit WHERE idx = 1")
    assert audit.catch_up(conn) == 4 and count(conn) == 8


def test_filters_and_their_query_plans(conn: sqlite3.Connection, log: EventLog) -> None:
    for n in range(6):
        commit(log, n, user="bob" if n % 2 else "admin")
    audit.catch_up(conn)
    names = audit.load_names(conn)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"user": "bob"}, "audit_user"), ({"section": "ntp"}, "audit_section"),
        ({"since": T0 + 2000, "until": T0 + 3000}, "audit_time"),
        ({"origin": KEY.verify_key.encode().hex()}, "audit_origin"),
        ({"kind": "config.commit"}, "audit_kind"), ({"kind": "config"}, "audit_kind"),
    ]
    for filters, idx in cases:
        q = audit.plan(names, now_ms=T0, **filters)
        sql, params = q.sql()
        plan = " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert idx in plan, (filters, plan)
    bob = audit.run(conn, T0, user="bob")
    assert len(bob) == 6 and {r["user"] for r in bob} == {"bob"}
    window = audit.run(conn, T0, since="2026-01-01T00:00:02Z", until="2026-01-01T00:00:03Z")
    assert [r["time"][17:19] for r in window] == ["02", "02", "03", "03"]
    assert audit.run(conn, T0, limit=3) == audit.run(conn, T0)[-3:]


def test_unknown_names_and_bad_limits_are_refused(conn: sqlite3.Connection) -> None:
    names = audit.load_names(conn)
    with pytest.raises(InvalidInput):
        audit.plan(names, now_ms=T0, mode="group:nowhere")
    with pytest.raises(InvalidInput):
        audit.plan(names, now_ms=T0, mode="paris")
    with pytest.raises(InvalidInput):
        audit.plan(names, now_ms=T0, origin="nobody")
    with pytest.raises(InvalidInput):
        audit.plan(names, now_ms=T0, limit=0)
    with pytest.raises(InvalidInput):
        audit.plan(names, now_ms=T0, since="2026-01-02", until="2026-01-01")


def test_describe_structure_events() -> None:
    gid = "g" + "a" * 16
    mid = "b" * 64
    assert audit.describe("machine.setgroup", {"machine": mid, "group": gid}, mid, "e") == [
        (None, f"machine:{mid}", f"move to group:{gid}")]
    names = audit.Names(groups={gid: "Paris"}, hosts={mid: "lab1"})
    assert names.text(f"move to group:{gid}") == "move to group:Paris"
    assert names.mode(f"machine:{mid}") == "machine:lab1"
    assert audit.describe("something.new", {}, mid, "e") == [(None, None, "something.new")]


def test_an_unreadable_event_is_still_listed(conn: sqlite3.Connection, log: EventLog) -> None:
    ev = commit(log, 1)
    conn.execute("UPDATE events SET raw = ? WHERE id = ?", (b"garbage", ev.id))
    rows = audit.run(conn, T0)
    assert len(rows) == 1 and rows[0]["commit"] == ev.id and rows[0]["kind"] == "config.commit"


def test_times_come_from_the_clock(conn: sqlite3.Connection, log: EventLog) -> None:
    ev = commit(log, 3)
    (row,) = audit.rows_of((1, ev.id, ev.origin, ev.clock, ev.user, ev.kind, ev.raw))[:1]
    assert row[2] == clock.wall_ms_of(ev.clock) == T0 + 3000
