"""An idle serving node does not touch its database to release held-back events: it looks
only while some may be held (at start, after an ingest that held one, after another
process's commit). Counted over 25 release intervals of quiet (fails when every interval
runs the release transaction)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio

from evstore.storage.log import EventLog
from tests.net.cluster_helpers import FAST, running_cluster

QUIET = replace(FAST, release_interval=0.04)


async def test_an_idle_node_does_not_run_the_release_every_interval(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_cluster(tmp_path, ("a", "b"), config=QUIET):
        await trio.sleep(5 * QUIET.release_interval)  # the start-up look is over
        calls = []
        real = EventLog.release_held

        def counted(self: EventLog, now_ms: int) -> list[Any]:
            calls.append(now_ms)
            return real(self, now_ms)

        monkeypatch.setattr(EventLog, "release_held", counted)
        await trio.sleep(25 * QUIET.release_interval)
        assert len(calls) <= 2, len(calls)
