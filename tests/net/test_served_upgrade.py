"""A home upgraded to schema 9 (admissibility) rebuilds its views once, whoever opens it
first: here ``evstore run`` (the serving node), which made its Node without ``open_node`` and
so used to serve the views that inadmissible events had written, unchecked."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import trio
from cluster_helpers import make_box, start, stop, wait_until


def _mark_upgraded(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("INSERT INTO mode_sections (mode, section, value, event) VALUES "
                 "('cluster', 'futuresection', '{}', 'x')")
    conn.execute("INSERT INTO meta (key, value) VALUES ('views_rejudge', '1')")
    conn.close()


def _state(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT count(*) FROM mode_sections WHERE section='futuresection'")
        mark = conn.execute("SELECT count(*) FROM meta WHERE key='views_rejudge'")
        return rows.fetchone()[0], mark.fetchone()[0]
    finally:
        conn.close()


async def test_a_served_upgraded_home_has_its_views_rebuilt(tmp_path: Path) -> None:
    box = make_box(tmp_path, "up")
    db = box.home / "evstore.db"
    _mark_upgraded(db)
    assert _state(db) == (1, 1)
    async with trio.open_nursery() as nursery:
        await start(nursery, box)
        await wait_until("views rebuilt", lambda: _state(db) == (0, 0))
        await stop(box)
