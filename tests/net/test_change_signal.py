"""A commit made on a serving node's home by another connection is pushed when it is
announced (storage/notify.py), not at the node's next look at the database: here that look
comes only every 120 s, so the commit arriving within the generous deadline below proves the
announcement woke the node (nothing asserts how fast)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from evstore.net.node import NodeConfig
from evstore.ops import settings
from tests.net.cluster_helpers import FAST, db, holds, running_cluster, wait_until

DEAF = replace(FAST, fallback_poll_interval=120.0, poll_interval=120.0)


async def test_an_announced_commit_leaves_without_waiting_for_a_poll(tmp_path: Path) -> None:
    assert isinstance(DEAF, NodeConfig)
    async with running_cluster(tmp_path, config=DEAF) as (a, b, c):
        done = await db(a.home, lambda n: settings.commit_set(
            n, "admin", "cluster", "dns", ['servers=["10.4.4.4"]']))
        event = str(done["commit"])
        await wait_until("a's commit on b and c", lambda: holds(b.home, event)
                         and holds(c.home, event), 60)
