"""The audit queries as an asyncio API, for services that embed the store in an asyncio program.

    rows = await evstore.aio.audit("/var/lib/evstore/evstore.db", user="bob", since="-1d")

It opens the database read-only through aiosqlite (asyncio only: under trio use
``evstore.ops.forensics.audit`` in ``trio.to_thread``) and returns exactly the rows
``evstore audit --json`` prints: the SQL, the filters and the row shaping are those of
evstore/storage/audit.py. Being read-only, it does not move the audit index forward: events
applied since the last ``evstore audit`` are indexed into a TEMP table of its own connection
and queried together with the index, so the answer is always complete.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

try:
    import aiosqlite
except ImportError as e:  # an optional part: say which to install
    raise ImportError("evstore.aio needs the asyncio extra: pip install 'evstore[asyncio]'") from e

from evstore.storage import audit as index

__all__ = ["audit"]


async def _fetch(db: aiosqlite.Connection, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await db.execute_fetchall(sql, params)]


async def _has_index(db: aiosqlite.Connection) -> bool:
    rows = await _fetch(db, index.HAS_INDEX_SQL)
    return bool(rows)


async def _index_tail(db: aiosqlite.Connection, pos: int) -> None:
    """Index the events above ``pos`` into the connection's TEMP table."""
    await db.execute(index.TAIL_DDL)
    while True:
        rows = await _fetch(db, index.EVENT_ROWS_SQL, (pos, index.BATCH))
        if not rows:
            return
        await db.executemany(index.INSERT_SQL.format(table=index.TAIL_TABLE),
                             [r for e in rows for r in index.rows_of(e)])
        pos = rows[-1][0]


async def _tables(db: aiosqlite.Connection) -> list[str]:
    if not await _has_index(db):
        await _index_tail(db, 0)
        return [index.TAIL_TABLE]
    pos_rows = await _fetch(db, index.POSITION_SQL)
    await _index_tail(db, int(pos_rows[0][0]) if pos_rows else 0)
    return ["main.audit", index.TAIL_TABLE]


async def audit(db_path: str | Path, *, now_ms: int | None = None, **filters: Any) -> list[dict[str, Any]]:
    """The audit rows of a database, oldest first, as ``evstore audit --json`` gives them.

    Filters: ``since``, ``until`` (ISO 8601 or relative text, or ms), ``user``, ``section``,
    ``mode``, ``origin``, ``kind``, ``limit``. Bad filters raise ``InvalidInput``.
    """
    path = Path(db_path)
    if path.is_dir():
        path = path / "evstore.db"
    now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    async with aiosqlite.connect(uri, uri=True) as db:
        names = index.Names.from_rows(await _fetch(db, index.NAMES_SQL))
        query = index.plan(names, now_ms=now, **filters)
        sql, params = query.sql(await _tables(db))
        return index.finish(await _fetch(db, sql, params), names, query)
