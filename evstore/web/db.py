"""Database work for the async pages, in a worker thread, one at a time.

The handlers run under trio; SQLite and argon2 block. Each call opens the home in a worker
thread (``open_node``), runs one function of ``evstore.ops`` there and closes it again, under
one ``CapacityLimiter(1)`` per home, so the pages never hold a connection between requests and
never race each other for the write lock. Other processes (the CLI, ``evstore run``) meet us in
SQLite as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import trio

from evstore.ops.node import Node, open_node

T = TypeVar("T")


class Db:
    """Runs functions of a node in a worker thread, serialized by one limiter."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._limiter: trio.CapacityLimiter | None = None
        self._token: object | None = None

    def _current_limiter(self) -> trio.CapacityLimiter:
        # a limiter belongs to one trio run; tests may start several runs in one process
        token = trio.lowlevel.current_trio_token()
        if self._limiter is None or token is not self._token:
            self._limiter, self._token = trio.CapacityLimiter(1), token
        return self._limiter

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(node, *args)`` in a worker thread, with the home opened for it."""
        job = partial(_with_node, self.home, fn, *args)
        return await trio.to_thread.run_sync(job, limiter=self._current_limiter())


def _with_node(home: Path, fn: Callable[..., T], *args: Any) -> T:
    with open_node(home) as node:
        return fn(node, *args)


__all__ = ["Db", "Node"]
