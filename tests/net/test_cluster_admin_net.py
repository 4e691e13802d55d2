"""Cluster operations against served nodes (issue 17): a reconnect refused for a version
mismatch changes nothing on either side (item 7)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import trio

from evstore.core.errors import OperationalError
from evstore.net import client
from tests.net.cluster_helpers import FAST, db, on, running_cluster, start, stop


def _detached(home: Path, name: str) -> bool:
    def check(n):  # type: ignore[no-untyped-def]
        st = n.structure()
        return st.machines[st.find_machine(name)].detached

    return on(home, check)


async def test_a_reconnect_refused_for_a_version_mismatch_changes_nothing(tmp_path: Path) -> None:
    async with running_cluster(tmp_path) as (a, b, c):
        await db(a.home, lambda n: client.set_detached(n, "admin", "c", True))
        await stop(c)
        assert c.handle is None
        async with trio.open_nursery() as nursery:
            await start(nursery, c, dataclasses.replace(FAST, version="99.0.0"))
            counts = {x.name: on(x.home, lambda n: n.log.count()) for x in (a, b, c)}
            for _ in range(2):  # the second try must say the same, not "already connected"
                with pytest.raises(OperationalError, match="version"):
                    await db(a.home, lambda n: client.set_detached(n, "admin", "c", False))
            assert {x.name: on(x.home, lambda n: n.log.count()) for x in (a, b, c)} == counts
            assert _detached(a.home, "c") and _detached(b.home, "c") and _detached(c.home, "c")
            await stop(c)
            nursery.cancel_scope.cancel()


async def test_a_secondary_box_takes_no_join_and_stays_a_member(tmp_path: Path) -> None:
    from tests.net.cluster_helpers import commit, join, make_box, same_digest, wait_until

    async with running_cluster(tmp_path, ("a", "b")) as (a, b):
        await commit(a, "access", {"admin": False, "gui": False}, mode="machine:b")
        await wait_until("b has its access setting", same_digest(a, b))
        async with trio.open_nursery() as nursery:
            c = make_box(tmp_path, "c")
            await start(nursery, c)
            with pytest.raises(OperationalError, match="access.admin"):
                await join(c, b)
            assert on(c.home, lambda n: n.structure().name) is None
            await join(c, a)  # through another member
            await commit(a, "ntp", {"servers": ["ntp.after"]})
            await wait_until("b still follows the cluster", same_digest(a, b, c))
            await stop(c)
            nursery.cancel_scope.cancel()
