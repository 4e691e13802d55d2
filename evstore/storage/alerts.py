"""The ``alerts`` table, bounded: the one place that adds an alert and keeps the table small.

Alerts are what ``status`` and the web status page show (the newest first). Anything that can
be made to happen from outside (a wrong passphrase, a refused link, a member's held events)
could otherwise grow the table without end, so every insert trims it to the newest
``MAX_ALERTS`` rows (``cap``). Callers that may be driven from outside also rate-limit what
they write (core/backoff.Throttle).
"""

from __future__ import annotations

import sqlite3

__all__ = ["MAX_ALERTS", "add", "cap", "newest"]

MAX_ALERTS = 10_000


def add(conn: sqlite3.Connection, at: int, kind: str, detail: str,
        keep: int = MAX_ALERTS) -> None:
    """Insert one alert and trim the table (inside the caller's transaction, if any)."""
    conn.execute("INSERT INTO alerts (at, kind, detail) VALUES (?, ?, ?)", (at, kind, detail))
    cap(conn, keep)


def newest(conn: sqlite3.Connection, limit: int) -> list[tuple[int, str, str]]:
    """The newest ``limit`` alerts as ``(at, kind, detail)``, newest first."""
    return conn.execute(
        "SELECT at, kind, detail FROM alerts ORDER BY at DESC LIMIT ?", (limit,)).fetchall()


def cap(conn: sqlite3.Connection, keep: int = MAX_ALERTS) -> int:
    """Keep only the newest ``keep`` alerts; returns how many were dropped."""
    cur = conn.execute(
        "DELETE FROM alerts WHERE id <= (SELECT id FROM alerts ORDER BY id DESC "
        "LIMIT 1 OFFSET ?)", (keep,))
    return cur.rowcount if cur.rowcount > 0 else 0
