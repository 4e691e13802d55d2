"""One-change commits in one durable transaction (ops.settings.commit_change / commit_set):
the same event a stage + commit makes, no staging row, and the home's change signal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evstore.core import encoding
from evstore.core.errors import InvalidInput
from evstore.ops import settings as ops
from evstore.ops.node import Node, init_home, open_node
from evstore.storage import notify


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    home = tmp_path / "n1"
    init_home(home, hostname="n1", passphrase="pw")
    with open_node(home) as n:
        yield n


def _last_payload(node: Node) -> dict[str, Any]:
    raw = node.conn.execute("SELECT raw FROM events ORDER BY rowid DESC LIMIT 1").fetchone()[0]
    return encoding.loads_json(bytes(raw).decode())["payload"]  # type: ignore[no-any-return]


def test_commit_change_writes_what_stage_and_commit_write(node: Node) -> None:
    me = f"machine:{node.mid}"
    ops.stage(node, "admin", me, "dns", {"servers": ["9.9.9.9"]})
    ops.commit(node, "admin", "first")
    staged_way = _last_payload(node)["changes"]

    done = ops.commit_set(node, "admin", me, "dns", ['servers=["8.8.8.8"]'], comment="second")
    assert done["committed"] is True
    assert node.store.section_value(me, "dns") == {"servers": ["8.8.8.8"]}
    one_way = _last_payload(node)["changes"]
    assert [c["op"] for c in one_way] == ["patch"]
    assert one_way[0]["set"] == {"servers": ["8.8.8.8"]}
    assert one_way[0]["base"] is not None and staged_way[0]["op"] == "define"
    assert node.conn.execute("SELECT COUNT(*) FROM staged").fetchone()[0] == 0

    again = ops.commit_change(node, "admin", me, "dns", {"servers": ["8.8.8.8"]})
    assert again["committed"] is False  # nothing changed: no event

    ops.commit_change(node, "admin", me, "dns", None)
    assert node.store.section_value(me, "dns") is None


def test_commit_change_refuses_bad_input_and_writes_nothing(node: Node) -> None:
    me = f"machine:{node.mid}"
    before = node.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    with pytest.raises(InvalidInput):
        ops.commit_set(node, "admin", me, "dns", ["no equals sign"])
    with pytest.raises(InvalidInput):
        ops.commit_change(node, "admin", me, "dns", {"servers": "not a list", "bogus": 1})
    assert node.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == before
    assert not node.conn.in_transaction


def test_a_commit_is_announced_on_the_home(node: Node) -> None:
    listener = notify.listen(node.home)
    if listener is None:
        pytest.skip("no change signal on this platform")
    with listener:
        listener.drain()
        ops.commit_set(node, "admin", f"machine:{node.mid}", "dns", ['servers=["7.7.7.7"]'])
        assert listener.wait(5.0)
        assert listener.drain()
        ops.stage(node, "admin", f"machine:{node.mid}", "dns", {"servers": ["6.6.6.6"]})
        ops.commit(node, "admin")
        assert listener.wait(5.0)
