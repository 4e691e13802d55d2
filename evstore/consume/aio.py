"""``Config.watch_async``: the watch as an async iterator, under trio or under asyncio.

The library in charge is asked of sniffio when the iteration starts:

* trio: the blocking steps of evstore/consume/watching.py run in ``trio.to_thread`` on one
  connection, one at a time (one ``CapacityLimiter(1)``; sqlite3 is not run in the event
  loop, docs/PITFALLS #12); waiting is ``trio.lowlevel.wait_readable`` on the change signal.
* asyncio: the reads go through aiosqlite (which is asyncio-only), with the statements of
  evstore/storage/feed.py; waiting is ``loop.add_reader`` on the change signal.

Both feed the same pure :class:`~evstore.consume.watching.Follower`, so they report exactly
what the blocking ``watch`` reports. Where the signal cannot work they look every 50 ms
(``PRAGMA data_version``), and every half second even with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import sniffio

from evstore.consume.watching import (
    POLL_S,
    SIGNALLED_POLL_S,
    Change,
    Follower,
    first_step,
    next_step,
)
from evstore.storage import feed, notify
from evstore.storage.feed import Names

__all__ = ["Watch", "watch"]


class Watch:
    """An async iterator of changes; also an async context manager that closes it.

    A class rather than an async generator so that leaving an ``async for`` early (a
    ``break``) needs no ``aclose``: the connection and the signal's socket are released when
    the object is dropped, or at once with ``await w.aclose()`` or ``async with``.
    """

    def __init__(self, home: str, follower: Follower) -> None:
        self.home = home
        self.follower = follower
        self._backend: _Trio | _Asyncio | None = None
        self._ready: list[Change] = []
        self._seen: Any = None
        self._closed = False

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> Change:
        if self._closed:
            raise StopAsyncIteration
        if self._backend is None:
            trio_runs = sniffio.current_async_library() == "trio"
            self._backend = _Trio(self.home) if trio_runs else _Asyncio(self.home)
            await self._backend.open()
            self._ready = list(await self._backend.first(self.follower))
            self._seen = await self._backend.data_version()
        while not self._ready:
            self._backend.drain()
            changes = await self._backend.next(self.follower)
            if changes:
                self._ready = list(changes)
                break
            self._seen = await self._backend.wait(self._seen)
        return self._ready.pop(0)

    async def aclose(self) -> None:
        self._closed = True
        if self._backend is not None:
            backend, self._backend = self._backend, None
            await backend.aclose()

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if self._backend is not None:
            self._backend.close_now()


def watch(home: str, follower: Follower) -> Watch:
    """What ``Config.watch`` yields, as an async iterator that never blocks the event loop."""
    return Watch(home, follower)


class _Backend:
    listener: notify.Listener | None = None

    def drain(self) -> None:
        if self.listener is not None:
            self.listener.drain()

    def close_listener(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None


# ---------------------------------------------------------------------- trio


class _Trio(_Backend):
    def __init__(self, home: str) -> None:
        import trio

        self.trio = trio
        self.home = home
        self.limiter = trio.CapacityLimiter(1)
        self.conn: Any = None

    async def run(self, fn: Any, *args: Any) -> Any:
        return await self.trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def open(self) -> None:
        self.conn = await self.run(feed.open_reader, self.home)
        self.listener = notify.listen(self.home)

    async def first(self, f: Follower) -> list[Change]:
        return list(await self.run(first_step, self.conn, f))

    async def next(self, f: Follower) -> list[Change] | None:
        changes: list[Change] | None = await self.run(next_step, self.conn, f)
        return changes

    async def data_version(self) -> int:
        return int(await self.run(feed.data_version, self.conn))

    async def wait(self, seen: Any) -> Any:
        trio = self.trio
        while True:
            if self.listener is not None:
                with trio.move_on_after(SIGNALLED_POLL_S) as scope:
                    await trio.lowlevel.wait_readable(self.listener.fileno())
                if not scope.cancelled_caught:
                    return seen
            else:
                await trio.sleep(POLL_S)
            now = await self.data_version()
            if now != seen:
                return now

    async def aclose(self) -> None:
        with self.trio.CancelScope(shield=True):
            async with self.limiter:  # not while a worker thread uses the connection
                self.close_now()

    def close_now(self) -> None:
        self.close_listener()
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---------------------------------------------------------------------- asyncio


class _Reads:
    """The reads of a step through aiosqlite: the blocking steps' statements, awaited."""

    def __init__(self, db: Any) -> None:
        self.db = db

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        await self.db.execute("BEGIN")
        try:
            yield
        finally:
            if self.db.in_transaction:  # (an error may have ended it already)
                await self.db.execute("COMMIT")

    async def one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        rows = list(await self.db.execute_fetchall(sql, params))
        return rows[0][0] if rows else None

    async def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.db.execute_fetchall(sql, params)]

    async def names(self) -> Names:
        return feed.names_of(await self.rows(feed.NAMES_SQL, (feed.STRUCT,)))

    async def effective(self, mid: str) -> list[feed.Row]:
        return [feed.row_of((0, s, v, src, ev, 0))
                for s, v, src, ev in await self.rows(feed.EFFECTIVE_SQL, (mid,))]

    async def changes(self, sql: str, params: tuple[Any, ...]) -> list[feed.Row]:
        return [feed.row_of(r) for r in await self.rows(sql, params)]

    async def newest(self) -> int:
        return int(await self.one(feed.NEWEST_SQL) or 0)

    async def oldest(self) -> int | None:
        value = await self.one(feed.OLDEST_SQL)
        return None if value is None else int(value)


class _Asyncio(_Backend):
    def __init__(self, home: str) -> None:
        self.home = home
        self.db: Any = None
        self.reads: _Reads | None = None

    async def open(self) -> None:
        import aiosqlite

        uri = feed.reader_uri(self.home)  # the blocking reader's checks, errors and URI
        self.db = await aiosqlite.connect(uri, uri=True, isolation_level=None,
                                          timeout=feed.BUSY_TIMEOUT_S)
        self.reads = _Reads(self.db)
        self.listener = notify.listen(self.home)

    async def first(self, f: Follower) -> list[Change]:
        r = self._reads()
        async with r.snapshot():
            tag = await r.one(feed.TAG_SQL)
            newest = await r.newest()
            names = await r.names()
            if f.begin(None if tag is None else str(tag), newest, await r.oldest()):
                return f.initial(await r.effective(f.machine), names)
            rows = await r.changes(feed.FEED_SQL, (f.position, newest, f.machine))
            return f.advance(rows, newest, names)

    async def next(self, f: Follower) -> list[Change] | None:
        r = self._reads()
        async with r.snapshot():
            newest = await r.newest()
            if newest <= f.position:
                return None
            if f.fell_behind(await r.oldest()):
                f.position = newest
                return f.initial(await r.effective(f.machine), await r.names())
            rows = await r.changes(feed.FEED_SQL, (f.position, newest, f.machine))
            return f.advance(rows, newest, await r.names() if rows else Names({}, {}))

    def _reads(self) -> _Reads:
        assert self.reads is not None
        return self.reads

    async def data_version(self) -> int:
        return int(await self._reads().one(feed.DATA_VERSION_SQL))

    async def wait(self, seen: Any) -> Any:
        while True:
            if self.listener is not None:
                if await _signal(self.listener.fileno(), SIGNALLED_POLL_S):
                    return seen
            else:
                await asyncio.sleep(POLL_S)
            now = await self.data_version()
            if now != seen:
                return now

    async def aclose(self) -> None:
        self.close_listener()
        if self.db is not None:
            db, self.db = self.db, None
            await db.close()

    def close_now(self) -> None:
        self.close_listener()
        if self.db is not None:
            db, self.db = self.db, None
            with contextlib.suppress(Exception):
                db.stop()


async def _signal(fd: int, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await asyncio.wait_for(ready, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
