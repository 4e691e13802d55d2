"""A removed machine joins again, by every join path, as a new membership (issue 17 item 1):
its earlier events stay valid history, nothing it signed after its removal counts, and the
pre-shared entry that admitted it is used up (item 5)."""

from __future__ import annotations

from pathlib import Path

import trio

from evstore.ops import cluster as cluster_ops
from evstore.ops import membership, users
from evstore.ops import settings as st_ops
from evstore.ops.node import Node
from evstore.ops.verify import verify_node
from tests.net.cluster_helpers import (
    commit,
    db,
    join,
    make_box,
    on,
    same_digest,
    start,
    wait_until,
)


def _members(box_home: Path) -> list[str]:
    return on(box_home, lambda n: [m.hostname for m in n.structure().members()])


def _prepjoin(node: Node, host: str, key: str) -> None:
    users.prepjoin_new(node, "admin", host, "SERIAL", key)
    st_ops.commit(node, "admin", "prepjoin " + host)


async def _remove(member_home: Path, box_home: Path, name: str) -> None:
    await db(member_home, lambda n: cluster_ops.removemachine(n, "admin", name))
    await wait_until(f"{name} learns its removal",
                     lambda: on(box_home, lambda n: n.structure().name) is None)


async def test_removed_machine_joins_again_by_every_path(tmp_path: Path) -> None:
    a = make_box(tmp_path, "a", ccs=True)
    b, c = make_box(tmp_path, "b"), make_box(tmp_path, "c")
    on(a.home, lambda n: cluster_ops.create(n, "admin", "testcluster"))
    async with trio.open_nursery() as nursery:
        for box in (a, b, c):
            await start(nursery, box)
        await join(b, a)
        await join(c, a)
        await wait_until("the cluster to form", same_digest(a, b, c))
        await commit(b, "ntp", {"servers": ["ntp.before"]})
        await wait_until("b's change everywhere", same_digest(a, b, c))

        # 1. admin port, passphrase
        await _remove(a.home, b.home, "b")
        old = on(b.home, lambda n: n.origin)
        await join(b, a)
        assert on(b.home, lambda n: n.origin) != old
        await commit(b, "timezone", {"zone": "Europe/Rome"})
        await wait_until("b's new membership counts", same_digest(a, b, c))
        assert _members(c.home) == ["a", "b", "c"]
        value = on(c.home, lambda n: n.store.section_value("cluster", "timezone"))
        assert value == {"zone": "Europe/Rome"}
        assert on(c.home, lambda n: n.store.section_value("cluster", "ntp")) == {
            "servers": ["ntp.before"]}

        # 2. cluster-only port, pre-shared key
        await _remove(a.home, c.home, "c")
        key = await db(c.home, lambda n: membership.prepare_rejoin(n) or n.origin)
        await db(a.home, lambda n: _prepjoin(n, "c", key))
        await join(c, a, ccs=True, preshared=True, passphrase=None)
        await wait_until("c back", same_digest(a, b, c))
        assert _members(b.home) == ["a", "b", "c"]

        # 3. admin port, pre-shared key
        await _remove(a.home, b.home, "b")
        key = await db(b.home, lambda n: membership.prepare_rejoin(n) or n.origin)
        await db(a.home, lambda n: _prepjoin(n, "b", key))
        await join(b, a, preshared=True, passphrase=None)
        await commit(b, "dns", {"servers": ["10.9.9.9"]})
        await wait_until("b back again", same_digest(a, b, c))
        assert _members(a.home) == ["a", "b", "c"]
        for box in (a, b, c):
            report = await db(box.home, verify_node)
            assert report["ok"], (box.name, report["problems"])
        nursery.cancel_scope.cancel()
