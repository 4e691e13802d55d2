"""The asyncio audit API: the same rows as the sync one, read-only, complete even when the
index lags behind the log. Run under asyncio (the test is sync: pytest-trio's trio_mode owns
async tests, and aiosqlite cannot run under trio)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from evstore import aio
from evstore.core.errors import InvalidInput
from evstore.core.modes import CLUSTER
from evstore.ops import cluster, forensics
from evstore.ops import settings as ops
from evstore.ops.node import Node, init_home, open_node
from evstore.storage import audit as index


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    home = tmp_path / "a1"
    init_home(home, hostname="a1", passphrase="pw")
    with open_node(home) as n:
        cluster.create(n, "admin", "c")
        cluster.addgroup(n, "admin", "G")
        gid = n.structure().find_group("G")
        assert gid is not None
        for i in range(3):
            ops.stage(n, "admin", CLUSTER, "dns", {"servers": [f"10.0.0.{i}"]})
            ops.stage(n, "admin", f"group:{gid}", "ntp", {"servers": [f"ntp{i}"]})
            ops.commit(n, "admin")
        yield n


def test_async_rows_equal_sync_rows_and_read_only(node: Node) -> None:
    db = node.home / "evstore.db"
    sync_all = forensics.audit(node)
    pos = index.position(node.conn)
    assert pos > 0
    ops.stage(node, "admin", CLUSTER, "timezone", {"zone": "Europe/Rome"})
    ops.commit(node, "admin")  # applied, not yet indexed
    got = asyncio.run(aio.audit(db))
    assert got[:-1] == sync_all and got[-1]["section"] == "timezone"
    assert index.position(node.conn) == pos  # the async reader moved nothing
    assert got == forensics.audit(node)
    for filters in ({"section": "ntp"}, {"mode": "group:G"}, {"user": "admin", "limit": 2},
                    {"kind": "group"}, {"since": "-1h", "origin": "a1"}, {"until": "-1h"}):
        assert asyncio.run(aio.audit(db, **filters)) == forensics.audit(node, **filters)


def test_async_on_a_home_folder_and_bad_filters(node: Node) -> None:
    assert asyncio.run(aio.audit(node.home, section="dns"))
    with pytest.raises(InvalidInput):
        asyncio.run(aio.audit(node.home, since="last tuesday"))
    with pytest.raises(InvalidInput):
        asyncio.run(aio.audit(node.home, mode="group:Nope"))


def test_async_on_a_database_without_the_index(node: Node, tmp_path: Path) -> None:
    import sqlite3

    copy = tmp_path / "old.db"
    src = sqlite3.connect(node.home / "evstore.db")
    dst = sqlite3.connect(copy)
    src.backup(dst)
    dst.execute("DROP TABLE audit")  # as an older schema would have it
    dst.commit()
    src.close()
    dst.close()
    assert asyncio.run(aio.audit(copy)) == forensics.audit(node)
