"""verify: copies of a real database, tampered with in each way an attacker or a bad disk could,
are each reported by name; the original is never touched."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from evstore.core import clock, events
from evstore.core.modes import CLUSTER
from evstore.ops import cluster, verify
from evstore.ops import settings as ops
from evstore.ops.node import Node, init_home, now_ms, open_node
from evstore.ops.secrets import load_signing_key
from evstore.storage.log import EventLog

STRANGER = nacl.signing.SigningKey(b"s" * 32)


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with a cluster, a group, a few commits, and a member that was admitted."""
    home = tmp_path_factory.mktemp("verify") / "v1"
    init_home(home, hostname="v1", passphrase="pw")
    with open_node(home) as node:
        cluster.create(node, "admin", "c")
        cluster.addgroup(node, "admin", "G")
        for n in range(4):
            ops.stage(node, "admin", CLUSTER, "dns", {"servers": [f"10.0.0.{n}"]})
            ops.commit(node, "admin")
    return home


def tampered(original: Path, tmp_path: Path, how: Callable[[sqlite3.Connection], Any]) -> Path:
    copy = tmp_path / "copy.db"
    src = sqlite3.connect(original / "evstore.db")
    dst = sqlite3.connect(copy, isolation_level=None)
    src.backup(dst)
    src.close()
    how(dst)
    dst.close()
    return copy


def kinds(report: dict[str, Any]) -> list[str]:
    return sorted({p["kind"] for p in report["problems"]})


def own(conn: sqlite3.Connection, seq: int) -> tuple[Any, ...]:
    return conn.execute(
        "SELECT id, origin, raw, sig FROM events WHERE seq = ? ORDER BY rowid LIMIT 1", (seq,)
    ).fetchone()


def test_a_sound_log_verifies(original: Path) -> None:
    report = verify.verify_db(original / "evstore.db")
    assert report == {"ok": True, "events": 7, "problems": []}


def test_forged_signature(original: Path, tmp_path: Path) -> None:
    def forge(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE events SET sig = ? WHERE seq = 3", (own(conn, 4)[3],))

    report = verify.verify_db(tampered(original, tmp_path, forge))
    assert not report["ok"] and kinds(report) == ["forged"]
    (problem,) = report["problems"]
    assert problem["seq"] == 3 and problem["origin"] == "v1"


def test_altered_bytes(original: Path, tmp_path: Path) -> None:
    def alter(conn: sqlite3.Connection) -> None:
        raw = own(conn, 5)[2].replace(b"10.0.0.", b"10.6.6.")
        conn.execute("UPDATE events SET raw = ? WHERE seq = 5", (raw,))

    report = verify.verify_db(tampered(original, tmp_path, alter))
    assert kinds(report) == ["altered"] and "SHA-256" in report["problems"][0]["detail"]


@pytest.mark.parametrize(("column", "value"), [
    ("user", "'mallory'"), ("clock", "clock + 1"), ("kind", "'node.init'"), ("prev", "NULL"),
])
def test_altered_columns(original: Path, tmp_path: Path, column: str, value: str) -> None:
    def alter(conn: sqlite3.Connection) -> None:
        conn.execute(f"UPDATE events SET {column} = {value} WHERE seq = 4")

    report = verify.verify_db(tampered(original, tmp_path, alter))
    assert "altered" in kinds(report)
    assert any(column in p["detail"] for p in report["problems"])


def test_missing_events_are_gaps(original: Path, tmp_path: Path) -> None:
    middle = verify.verify_db(tampered(
        original, tmp_path, lambda c: c.execute("DELETE FROM events WHERE seq = 4")))
    assert kinds(middle) == ["gap"] and middle["problems"][0]["seq"] == 4
    head = verify.verify_db(tampered(
        original, tmp_path, lambda c: c.execute("DELETE FROM events WHERE seq = 7")))
    assert kinds(head) == ["gap"] and "head" in head["problems"][0]["detail"]


def _second_event_at(conn: sqlite3.Connection, key: nacl.signing.SigningKey, seq: int) -> events.Event:
    prev_id = conn.execute("SELECT id FROM events WHERE seq = ?", (seq - 1,)).fetchone()[0]
    return events.create(key, seq=seq, prev=prev_id, clock=clock.pack(now_ms()), wall=now_ms(),
                         user="admin", kind="config.commit",
                         payload={"comment": "the other branch", "changes": []})


def test_fork_evidence(original: Path, tmp_path: Path) -> None:
    key = load_signing_key(original)

    def fork(conn: sqlite3.Connection) -> None:
        ev = _second_event_at(conn, key, 5)
        result = EventLog(conn).ingest([(ev.raw, ev.sig)], now_ms=now_ms())
        assert result.forks == [ev.id]

    report = verify.verify_db(tampered(original, tmp_path, fork))
    assert kinds(report) == ["fork"]
    assert report["problems"][0]["seq"] == 5


def test_a_chain_that_names_another_predecessor_is_a_fork(original: Path, tmp_path: Path) -> None:
    key = load_signing_key(original)

    def replace(conn: sqlite3.Connection) -> None:
        ev = _second_event_at(conn, key, 5)
        conn.execute(
            "UPDATE events SET id=?, raw=?, sig=?, clock=?, wall=?, prev=? WHERE seq = 5",
            (ev.id, ev.raw, ev.sig, ev.clock, ev.wall, ev.prev),
        )

    report = verify.verify_db(tampered(original, tmp_path, replace))
    assert kinds(report) == ["fork"]
    assert "two histories" in report["problems"][0]["detail"]


def _insert(conn: sqlite3.Connection, ev: events.Event) -> None:
    conn.execute(
        "INSERT INTO events (id, origin, seq, prev, clock, wall, user, kind, raw, sig, "
        "received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (ev.id, ev.origin, ev.seq, ev.prev, ev.clock, ev.wall, ev.user, ev.kind, ev.raw, ev.sig,
         now_ms()),
    )


def _stranger_chain(n: int, first: int = 1, prev: str | None = None) -> list[events.Event]:
    out: list[events.Event] = []
    for seq in range(first, first + n):
        out.append(events.create(
            STRANGER, seq=seq, prev=out[-1].id if out else prev, clock=clock.pack(now_ms()),
            wall=now_ms(), user="admin", kind="config.commit",
            payload={"comment": "", "changes": []}))
    return out


def test_events_from_a_stranger(original: Path, tmp_path: Path) -> None:
    def smuggle(conn: sqlite3.Connection) -> None:
        for ev in _stranger_chain(3):
            _insert(conn, ev)

    report = verify.verify_db(tampered(original, tmp_path, smuggle))
    assert kinds(report) == ["non_member"]
    (problem,) = report["problems"]
    assert problem["seq"] == 1 and "3 event(s)" in problem["detail"]
    assert problem["key"] == STRANGER.verify_key.encode().hex()


def test_events_past_a_removal_cutoff(tmp_path: Path) -> None:
    home = tmp_path / "r1"
    init_home(home, hostname="r1", passphrase="pw")
    stranger = STRANGER.verify_key.encode().hex()
    with open_node(home) as node:
        cluster.create(node, "admin", "c")
        st = node.structure()
        node.append("admin", "cluster.admit", {
            "machine_id": stranger, "key": stranger, "group": st.main_group,
            "machine": {"hostname": "r2", "serial": "S2"}})
        first = _stranger_chain(2)
        node.log.ingest([(e.raw, e.sig) for e in first], now_ms=now_ms())
        cluster.removemachine(node, "admin", "r2")
        late = _stranger_chain(1, first=3, prev=first[-1].id)
        node.log.ingest([(e.raw, e.sig) for e in late], now_ms=now_ms())
        report = verify.verify_node(node)
    assert kinds(report) == ["non_member"]
    (problem,) = report["problems"]
    assert problem["origin"] == "r2" and problem["seq"] == 3 and "cutoff seq 2" in problem["detail"]


def test_verify_reads_without_writing(original: Path) -> None:
    db = original / "evstore.db"
    before = db.read_bytes()
    verify.verify_db(db)
    assert db.read_bytes() == before


def test_verify_node_on_an_open_home(original: Path) -> None:
    node: Node
    with open_node(original) as node:
        assert verify.verify_node(node)["ok"]
