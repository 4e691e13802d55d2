"""The home's own tables: the ``node`` key/value table, each user's mode (``user_modes``)
and the ``staged`` changes.

Theory of operation
-------------------
``node`` holds what belongs to this machine and never travels in an event: its hostname,
serial and listen address as ``init`` wrote them, its machine id once it joined, the
``cluster_create`` mark of a cluster it is founding, the ``needs_selfsync`` mark of a home
restored from an older copy, the keys it retired, the version vectors its peers last showed
(``peer_vv:MACHINE``, as JSON: ``peer_vv_key``).
``staged`` holds each user's changes that ``set`` made and ``commit`` has not yet signed, with
the committed value each was based on (for conflict detection).

This module owns every statement on both tables. Its functions write inside the caller's
transaction (they never open one), so a caller that must change a key together with other
rows (a commit dropping its staged rows, a join recording its machine id) keeps doing so in
one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import NamedTuple

__all__ = [
    "CLUSTER_CREATE", "StagedRow", "delete", "get", "insert_all", "insert_new", "peer_vv_key",
    "put", "values",
    "staged_of", "stage", "unstage", "unstage_all", "user_mode", "set_user_mode",
]

CLUSTER_CREATE = "cluster_create"  # the id of the cluster.create event this machine is in


def peer_vv_key(machine: str) -> str:
    """The key of the version vector a peer last reported over a link (evstore/net/linkbook.py)."""
    return f"peer_vv:{machine}"

# ---------------------------------------------------------------------- node (key/value)


def get(conn: sqlite3.Connection, key: str) -> str | None:
    """The value of ``key``, or None when the table has no such key."""
    row = conn.execute("SELECT value FROM node WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def values(conn: sqlite3.Connection) -> dict[str, str]:
    """Every key and its value."""
    return dict(conn.execute("SELECT key, value FROM node").fetchall())


def put(conn: sqlite3.Connection, key: str, value: str) -> None:
    """Set ``key`` to ``value``, replacing what it held."""
    conn.execute("INSERT OR REPLACE INTO node (key, value) VALUES (?, ?)", (key, value))


def insert_new(conn: sqlite3.Connection, key: str, value: str) -> None:
    """Set ``key`` only if it holds nothing yet (a first value is kept)."""
    conn.execute("INSERT OR IGNORE INTO node (key, value) VALUES (?, ?)", (key, value))


def insert_all(conn: sqlite3.Connection, items: Iterable[tuple[str, str]]) -> None:
    """Insert keys that must be new (a fresh home's identity): a key present is an error."""
    conn.executemany("INSERT INTO node (key, value) VALUES (?, ?)", items)


def delete(conn: sqlite3.Connection, key: str) -> None:
    """Forget ``key`` (nothing happens when it is absent)."""
    conn.execute("DELETE FROM node WHERE key = ?", (key,))


# ---------------------------------------------------------------------- each user's mode


def user_mode(conn: sqlite3.Connection, user: str) -> str | None:
    """The mode ``user`` last chose to act at on this machine (None: never chosen)."""
    row = conn.execute("SELECT mode FROM user_modes WHERE user = ?", (user,)).fetchone()
    return None if row is None else row[0]


def set_user_mode(conn: sqlite3.Connection, user: str, mode: str) -> None:
    conn.execute("INSERT OR REPLACE INTO user_modes (user, mode) VALUES (?, ?)", (user, mode))


# ---------------------------------------------------------------------- staged changes


class StagedRow(NamedTuple):
    """One staged change as stored: the JSON texts, not yet decoded."""

    mode: str
    section: str
    value: str | None
    orig: str | None
    base: str | None


def staged_of(conn: sqlite3.Connection, user: str) -> list[StagedRow]:
    """The user's staged changes, by mode then section."""
    cur = conn.execute(
        "SELECT mode, section, value, orig, base FROM staged WHERE user = ? "
        "ORDER BY mode, section", (user,))
    return [StagedRow(*r) for r in cur.fetchall()]


def stage(conn: sqlite3.Connection, user: str, row: StagedRow, staged_at: int) -> None:
    """Store one staged change, replacing the user's earlier one for the same mode and section."""
    conn.execute(
        "INSERT OR REPLACE INTO staged (user, mode, section, value, orig, base, staged_at)"
        " VALUES (?,?,?,?,?,?,?)", (user, *row, staged_at))


def unstage(conn: sqlite3.Connection, user: str, keys: Iterable[tuple[str, str]]) -> None:
    """Drop the user's staged changes at these (mode, section) pairs."""
    conn.executemany("DELETE FROM staged WHERE user = ? AND mode = ? AND section = ?",
                     [(user, m, s) for m, s in keys])


def unstage_all(conn: sqlite3.Connection, user: str) -> int:
    """Drop every staged change of the user; returns how many there were."""
    return conn.execute("DELETE FROM staged WHERE user = ?", (user,)).rowcount
