"""The ``links`` table (one row per peer machine: the state of this node's link to it, when it
was last seen, its clock offset and address, since when it is in that state).

``evstore run`` writes the rows (through evstore/net/linkbook.py, which decides what to write
and when); the commands that report on the links read them here. The writes run inside the
caller's transaction (they never open one).
"""

from __future__ import annotations

import sqlite3
from typing import Any, NamedTuple

__all__ = ["Link", "all_down", "links", "since", "store_address", "store_state"]


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


def all_down(conn: sqlite3.Connection) -> None:
    """Mark every link that is up as down (no node serves: at its start and its clean stop)."""
    conn.execute("UPDATE links SET state = 'down' WHERE state = 'up'")


def store_state(conn: sqlite3.Connection, machine: str, state: str, since: int | None,
                last_seen: int | None, offset: int | None) -> None:
    """Write a link's state and since when; a None ``last_seen`` or ``offset`` keeps the one
    stored (a failed dial learns neither)."""
    conn.execute(
        "INSERT INTO links (machine, state, since, last_seen, clock_offset_ms) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (machine) DO UPDATE SET state = excluded.state,"
        " since = excluded.since, last_seen = COALESCE(excluded.last_seen, last_seen), "
        "clock_offset_ms = COALESCE(excluded.clock_offset_ms, clock_offset_ms)",
        (machine, state, since, last_seen, offset))


def store_address(conn: sqlite3.Connection, machine: str, address: str) -> None:
    """Where the peer was last reached; a new row starts down."""
    conn.execute(
        "INSERT INTO links (machine, state, address) VALUES (?, 'down', ?) "
        "ON CONFLICT (machine) DO UPDATE SET address = excluded.address", (machine, address))
