"""A machine started on another version announces it (issue 17 item 20): `listdetail` on
every machine the announcement reaches shows the version it runs now, linked or not."""

from __future__ import annotations

from pathlib import Path

import pytest
from scenarios import closed_port, sync

from evstore.ops import cluster, membership, verify
from evstore.ops import node as node_ops
from evstore.ops.node import init_home, open_node

PASS = "correct horse"


def _versions(home: Path) -> dict[str, str]:
    with open_node(home) as n:
        listed = cluster.list_cluster(n, detail=True)
    return {m["hostname"]: m["version"] for g in listed["groups"] for m in g["machines"]}


def test_an_upgraded_machine_announces_its_version_once(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "lab1", tmp_path / "lab2"
    init_home(a, hostname="lab1", passphrase=PASS, serial="S1")
    init_home(b, hostname="lab2", passphrase=PASS, serial="S2",
              listen=f"127.0.0.1:{closed_port()}")
    with open_node(a) as na, open_node(b) as nb:
        assert membership.announce_version(na) is None  # standalone: nothing to tell
        cluster.create(na, "admin", "Co")
        membership.admit(na, "admin", membership.join_request(nb), passphrase=PASS)
        membership.take_up(nb, "admin", membership.member_events(na))
        sync(nb, na)
        assert membership.announce_version(nb) is None  # its record is current
    old = node_ops.__version__
    assert _versions(a)["lab2"] == old

    # lab2 is upgraded (and nothing serves it, so lab1 is not linked to it)
    monkeypatch.setattr(membership, "__version__", "9.9.9")
    monkeypatch.setattr(node_ops, "__version__", "9.9.9")
    with open_node(b) as nb, open_node(a) as na:
        event = membership.announce_version(nb)
        assert event is not None and event.kind == "machine.announce"
        assert membership.announce_version(nb) is None  # once
        sync(nb, na)
    monkeypatch.setattr(node_ops, "__version__", old)
    monkeypatch.setattr(membership, "__version__", old)
    assert _versions(a)["lab2"] == "9.9.9"  # not linked: from the announcement
    assert _versions(a)["lab1"] == old
    # the stored views are the log's: a rebuild from the events gives the same rows
    with open_node(a) as na:
        report = verify.verify_conn(na.conn, views_too=True)
        assert report["ok"], report["problems"]
