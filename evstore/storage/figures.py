"""Counts a monitoring scrape reads (evstore/net/metrics.py): one query each, no writes."""

from __future__ import annotations

import sqlite3

__all__ = ["alerts_per_kind", "events_per_origin", "forks_count", "held_count"]


def events_per_origin(conn: sqlite3.Connection) -> dict[str, int]:
    """Applied events held here, by origin key."""
    return {str(o): int(n) for o, n in
            conn.execute("SELECT origin, COUNT(*) FROM events GROUP BY origin")}


def held_count(conn: sqlite3.Connection) -> int:
    """Events held back until local time reaches their clock."""
    return int(conn.execute("SELECT COUNT(*) FROM held").fetchone()[0])


def forks_count(conn: sqlite3.Connection) -> int:
    """Fork evidence rows (two signed events at one origin and seq)."""
    return int(conn.execute("SELECT COUNT(*) FROM forks").fetchone()[0])


def alerts_per_kind(conn: sqlite3.Connection) -> dict[str, int]:
    """Alerts the (bounded) alerts table holds, by kind."""
    return {str(k): int(n) for k, n in
            conn.execute("SELECT kind, COUNT(*) FROM alerts GROUP BY kind")}
