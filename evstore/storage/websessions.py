"""The ``web_sessions`` table (migration m0010): every statement on it.

The rules (when a session is live, how long it lasts, how many a user may keep) are
evstore/ops/sessions.py's; this module only reads and writes rows, inside the caller's
transaction (it never opens one).
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

__all__ = ["Session", "add", "delete", "delete_user", "get", "prune", "touch"]


class Session(NamedTuple):
    user: str
    mark: str
    role: str
    last_seen: int


def prune(conn: sqlite3.Connection, user: str, idle_before: int, keep: int) -> None:
    """Drop every session unused since ``idle_before``, and all but the user's newest
    ``keep`` ones."""
    conn.execute("DELETE FROM web_sessions WHERE last_seen < ?", (idle_before,))
    conn.execute(
        "DELETE FROM web_sessions WHERE user = ? AND id NOT IN (SELECT id FROM web_sessions "
        "WHERE user = ? ORDER BY last_seen DESC LIMIT ?)", (user, user, keep))


def add(conn: sqlite3.Connection, sid: str, user: str, mark: str, role: str, now: int) -> None:
    conn.execute(
        "INSERT INTO web_sessions (id, user, mark, role, created, last_seen) "
        "VALUES (?, ?, ?, ?, ?, ?)", (sid, user, mark, role, now, now))


def get(conn: sqlite3.Connection, sid: str) -> Session | None:
    row = conn.execute("SELECT user, mark, role, last_seen FROM web_sessions WHERE id = ?",
                       (sid,)).fetchone()
    return None if row is None else Session(*row)


def touch(conn: sqlite3.Connection, sid: str, now: int) -> None:
    conn.execute("UPDATE web_sessions SET last_seen = ? WHERE id = ?", (now, sid))


def delete(conn: sqlite3.Connection, sid: str) -> None:
    conn.execute("DELETE FROM web_sessions WHERE id = ?", (sid,))


def delete_user(conn: sqlite3.Connection, user: str) -> int:
    """Drop every session of ``user``; returns how many there were."""
    return int(conn.execute("DELETE FROM web_sessions WHERE user = ?", (user,)).rowcount)
