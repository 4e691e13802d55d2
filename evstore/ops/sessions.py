"""Revocable web sessions (table ``web_sessions``, migration m0010).

The browser's cookie is signed, but a signature cannot be taken back: a copied cookie would
work until it expires. So a logged-in cookie carries only a random session id, and each
request checks here that the id still names a live session of that user:

* ``end`` (logout) deletes it: a copy of the cookie fails from then on;
* a passphrase change (the passphrase hash's fingerprint differs), a deleted user or a
  changed role end it at the session's next request;
* a session unused for ``IDLE_MS`` ends (``last_seen`` is refreshed at most once a minute,
  so reading pages does not write on every request).

On a read-only home (item 5) sessions cannot be recorded: ``start`` then fails with the
reason, and nothing else writes.
"""

from __future__ import annotations

import secrets
import sqlite3

from evstore.ops import users as user_ops
from evstore.ops.node import Node, now_ms
from evstore.storage import websessions
from evstore.storage.connect import transaction

__all__ = ["IDLE_MS", "end", "end_user", "start", "valid"]

IDLE_MS = 30 * 60 * 1000
TOUCH_MS = 60 * 1000
MAX_PER_USER = 50


def start(node: Node, user: str, mark: str) -> str:
    """A new session for ``user`` (who just proved its passphrase); returns its id."""
    sid = secrets.token_urlsafe(32)
    now = now_ms()
    with transaction(node.conn):
        websessions.prune(node.conn, user, now - IDLE_MS, MAX_PER_USER - 1)
        websessions.add(node.conn, sid, user, mark, user_ops.role_of(node, user), now)
    return sid


def valid(node: Node, sid: str, user: str, mark: str) -> bool:
    """Is ``sid`` a live session of ``user``, whose passphrase fingerprint is still
    ``mark`` and whose role has not changed? A stale one is deleted on the way."""
    if not sid:
        return False
    row = websessions.get(node.conn, sid)
    if row is None:
        return False
    now = now_ms()
    ok = (row[0] == user and row[1] == mark and now - int(row[3]) <= IDLE_MS
          and row[2] == user_ops.role_of(node, user)
          and any(u.get("name") == user for u in node.users()))
    try:
        if not ok:
            end(node, sid)
        elif now - int(row[3]) > TOUCH_MS:
            with transaction(node.conn):
                websessions.touch(node.conn, sid, now)
    except sqlite3.OperationalError:
        pass  # a read-only home: the session is judged all the same, just not refreshed
    return ok


def end(node: Node, sid: str) -> None:
    """Logout: the session's id no longer works, from any copy of the cookie."""
    with transaction(node.conn):
        websessions.delete(node.conn, sid)


def end_user(node: Node, user: str) -> int:
    """End every session of ``user``; returns how many there were."""
    with transaction(node.conn):
        count = websessions.delete_user(node.conn, user)
    return count
