"""Reads of the ``links`` table (one row per peer machine: the state of this node's link to
it, when it was last seen, its clock offset and address, since when it is in that state).

``evstore run`` writes the rows (evstore/net/linkbook.py); the commands that report on the
links read them here.
"""

from __future__ import annotations

import sqlite3
from typing import Any, NamedTuple

__all__ = ["Link", "links", "since"]


class Link(NamedTuple):
    machine: str
    state: str
    last_seen: int | None
    clock_offset_ms: int | None
    address: str | None


def links(conn: sqlite3.Connection) -> dict[str, Link]:
    """Every link's row, by machine id."""
    rows = conn.execute(
        "SELECT machine, state, last_seen, clock_offset_ms, address FROM links")
    return {r[0]: Link(*r) for r in rows}


def since(conn: sqlite3.Connection) -> dict[Any, int | None]:
    """When each link entered its present state, by machine id."""
    return dict(conn.execute("SELECT machine, since FROM links").fetchall())
