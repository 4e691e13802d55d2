"""The serving node's database work: one worker thread, one call at a time.

The trio loop never blocks on SQLite: every read and write runs in a worker thread under one
``CapacityLimiter(1)`` (shared with the mesh's ``gossip.ThreadedLog``), on the one connection
the node opened. Writes nobody waits for (link states, alerts, peers' vectors) go to a queue
that one task, the state writer, empties in order; a full queue drops a write rather than
block the link that made it.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import trio

from evstore.core.errors import EvstoreError

__all__ = ["DbWork", "survive"]

log = logging.getLogger("evstore.node")
T = TypeVar("T")
QUEUE_SIZE = 1000


class DbWork:
    """The limiter every database call of one node runs under, and the state writer's queue."""

    def __init__(self) -> None:
        self.limiter = trio.CapacityLimiter(1)
        self._writes, self._write_queue = trio.open_memory_channel[Callable[[], None]](QUEUE_SIZE)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run database work in the worker thread, one call at a time."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    def queue(self, job: Callable[[], None]) -> None:
        """Queue database work for the state writer (never blocks the caller)."""
        try:
            self._writes.send_nowait(job)
        except trio.WouldBlock:
            log.warning("link-state writer is behind; dropping one update")

    async def writer(self) -> None:
        """The state writer: the queued jobs, in order, until cancelled."""
        async for job in self._write_queue:
            with survive("storing a link state"):
                await self.run(job)


@contextlib.contextmanager
def survive(doing: str) -> Iterator[None]:
    """Log a database error of a periodic task and carry on (e.g. a lock held too long by
    another process); the next round tries again."""
    try:
        yield
    except (sqlite3.Error, EvstoreError) as exc:
        log.error("error while %s: %s; retrying", doing, exc)
