"""Issue 15, item 1, reproduced on a real home: a member whose key is in hostile hands signs
events that mean nothing or that their user may not make. Before the fix each was applied on
every machine and `verify` said ok; now each is kept in the log, applied nowhere, and named by
`verify` (kind `invalid`), `clustercheck`, `status` and the count for metrics.

Item 9 too: `verify --views` rebuilds the views in memory and finds a hand-edited row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from evstore.core import clock, events
from evstore.core.modes import CLUSTER
from evstore.ops import check, cluster, verify, xmlconfig
from evstore.ops import settings as ops
from evstore.ops import users as user_ops
from evstore.ops.node import Node, init_home, now_ms, open_node
from evstore.storage.views import invalid_count

MEMBER = nacl.signing.SigningKey(b"m" * 32)
MEMBER_KEY = MEMBER.verify_key.encode().hex()


class Member:
    """A member machine's key in an attacker's hands: it signs whatever it likes."""

    def __init__(self) -> None:
        self.seq = 0
        self.prev: str | None = None

    def sign(self, kind: str, payload: dict[str, Any], user: str = "admin") -> events.Event:
        self.seq += 1
        ev = events.create(MEMBER, seq=self.seq, prev=self.prev, clock=clock.pack(now_ms()),
                           wall=now_ms(), user=user, kind=kind, payload=payload)
        self.prev = ev.id
        return ev


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Node, Member]]:
    path = tmp_path / "h1"
    init_home(path, hostname="h1", passphrase="pw")
    with open_node(path) as node:
        cluster.create(node, "admin", "c")
        user_ops.new_user(node, "admin", "op", "operator", "pw-op")
        user_ops.new_user(node, "admin", "ro", "readonly", "pw-ro")
        ops.stage(node, "admin", CLUSTER, "dns", {"servers": ["10.0.0.1"]})
        ops.commit(node, "admin")
        node.append("admin", "cluster.admit", {
            "machine_id": MEMBER_KEY, "key": MEMBER_KEY, "group": node.structure().main_group,
            "machine": {"hostname": "m2", "serial": "S2"}})
        create = node.conn.execute("SELECT value FROM node WHERE key='cluster_create'").fetchone()
        member = Member()
        _send(node, member.sign("cluster.join", {"cluster": create[0], "machine_settings": {},
                                                 "machine": {"hostname": "m2", "serial": "S2"}}))
        yield node, member


def _send(node: Node, *evs: events.Event) -> None:
    result = node.log.ingest([(e.raw, e.sig) for e in evs], now_ms=now_ms())
    assert len(result.applied) == len(evs), result.counts()  # stored: signed and chained


def _dns(node: Node) -> Any:
    return node.store.section_value(CLUSTER, "dns")


def _change(section: str, value: Any, op: str = "define") -> dict[str, Any]:
    return {"comment": "", "changes": [{"mode": CLUSTER, "section": section, "op": op,
                                        "base": None, "value": value}]}


def test_each_hostile_event_is_kept_applied_nowhere_and_named(
        home: tuple[Node, Member]) -> None:
    node, member = home
    digest = node.state_digest()
    hostile = [
        member.sign("cluster.takeover", {"owner": "me"}),
        member.sign("config.commit", _change("futuresection", {"knob": 1})),
        member.sign("config.commit", _change("dns", {"servers": {"not": "a list"}})),
        member.sign("config.commit", _change("dns", {"servers": ["6.6.6.6"]}), user="nobody"),
        member.sign("config.commit", _change("dns", {"servers": ["6.6.6.6"]}), user="ro"),
        member.sign("config.commit", _change("users", {"users": [
            {"name": "evil", "role": "admin", "passphrase_hash": "x"}]}), user="op"),
        member.sign("group.add", {"name": "evil"}, user="op"),
    ]
    _send(node, *hostile)
    assert node.state_digest() == digest  # nothing applied anywhere
    assert _dns(node) == {"servers": ["10.0.0.1"]}
    assert node.store.section_value(CLUSTER, "futuresection") is None
    assert invalid_count(node.conn) == len(hostile)
    status = node.status()
    assert status["invalid"] == len(hostile)
    assert status["alerts"][0]["kind"] == "invalid"
    report = verify.verify_node(node)
    assert not report["ok"]
    problems = [p for p in report["problems"] if p["kind"] == "invalid"]
    assert [p["seq"] for p in problems] == list(range(2, len(hostile) + 2))
    reasons = " | ".join(p["detail"] for p in problems)
    for words in ("unknown kind 'cluster.takeover'", "unknown section 'futuresection'",
                  "dns.servers", "user 'nobody' does not exist", "role readonly",
                  "role operator, which may not change users",
                  "role operator, which may not change the cluster"):
        assert words in reasons, words
    checked = check.local_check(node)
    assert not checked["consistent"]
    assert [i["kind"] for i in checked["inconsistencies"]] == ["invalid"]


def test_saveconfig_and_loadconfig_work_after_an_unknown_section(
        home: tuple[Node, Member], tmp_path: Path) -> None:
    node, member = home
    _send(node, member.sign("config.commit", _change("futuresection", {"knob": 1})))
    saved = xmlconfig.saveconfig(node, tmp_path / "c.xml")
    assert saved["bytes"] > 0
    assert b"futuresection" not in (tmp_path / "c.xml").read_bytes()


def test_an_operator_may_change_settings_and_a_guest_its_own_passphrase_only(
        home: tuple[Node, Member]) -> None:
    node, member = home
    _send(node, member.sign("config.commit", _change("dns", {"servers": ["10.9.9.9"]}),
                            user="op"))
    assert _dns(node) == {"servers": ["10.9.9.9"]}
    assert invalid_count(node.conn) == 0


def test_a_removed_user_can_act_no_more(home: tuple[Node, Member]) -> None:
    node, member = home
    user_ops.delete_user(node, "admin", "op")
    ops.commit(node, "admin")
    _send(node, member.sign("config.commit", _change("dns", {"servers": ["10.9.9.9"]}),
                            user="op"))
    assert _dns(node) == {"servers": ["10.0.0.1"]}
    assert invalid_count(node.conn) == 1


def test_verify_views_finds_a_hand_edited_effective_row(
        home: tuple[Node, Member], tmp_path: Path) -> None:
    node, member = home
    _send(node, member.sign("config.commit", _change("futuresection", {"knob": 1})))
    assert verify.verify_node(node, views_too=True)["problems"][0]["kind"] == "invalid"
    clean = [p for p in verify.verify_node(node, views_too=True)["problems"]
             if p["kind"] == "view"]
    assert clean == []
    conn = sqlite3.connect(node.home / "evstore.db", isolation_level=None)
    conn.execute("UPDATE effective SET value = ? WHERE section = 'dns'",
                 ('{"servers":["6.6.6.6"]}',))
    conn.close()
    report = verify.verify_node(node, views_too=True)
    views = [p for p in report["problems"] if p["kind"] == "view"]
    assert views and not report["ok"]
    assert all(p["detail"].startswith("effective ") for p in views)
    assert "6.6.6.6" in views[0]["detail"] and "10.0.0.1" in views[0]["detail"]
    assert [p for p in verify.verify_node(node)["problems"] if p["kind"] == "view"] == []


def test_a_guests_own_passwd_is_admissible_and_nothing_more(home: tuple[Node, Member]) -> None:
    node, member = home
    user_ops.new_user(node, "admin", "gu", "guest", "pw-gu")
    ops.commit(node, "admin")
    user_ops.passwd(node, "gu", "gu", "a new passphrase")
    ops.commit(node, "gu")
    assert invalid_count(node.conn) == 0
    assert node.authenticate("gu", "a new passphrase")["role"] == "guest"
    # the same guest's name on a member's event raising its own role is refused everywhere
    users = node.store.section_value(CLUSTER, "users")["users"]
    mine = next(u for u in users if u["name"] == "gu")
    _send(node, member.sign("config.commit", {"comment": "", "changes": [
        {"mode": CLUSTER, "section": "users", "op": "patch", "base": None,
         "set": {"users/gu": {**mine, "role": "admin"}}, "unset": []}]}, user="gu"))
    assert invalid_count(node.conn) == 1
    assert node.authenticate("gu", "a new passphrase")["role"] == "guest"


def test_a_home_upgraded_to_schema_9_rebuilds_its_views_once(tmp_path: Path) -> None:
    """What an inadmissible event wrote before the rule existed goes at the first open."""
    path = tmp_path / "up"
    init_home(path, hostname="up", passphrase="pw")
    conn = sqlite3.connect(path / "evstore.db", isolation_level=None)
    conn.execute("INSERT INTO mode_sections (mode, section, value, event) VALUES "
                 "('cluster', 'futuresection', '{}', 'x')")
    conn.execute("INSERT INTO meta (key, value) VALUES ('views_rejudge', '1')")
    conn.close()
    with open_node(path) as node:
        assert node.store.section_value("cluster", "futuresection") is None
        assert node.conn.execute("SELECT 1 FROM meta WHERE key='views_rejudge'").fetchone() \
            is None
        assert verify.verify_node(node, views_too=True)["ok"]
