"""Passphrase checks split for callers that must not hash under the database's lock.

The node (joins) and the web pages (logins) read the stored hash here, check it in a thread
of their own (argon2 takes tens of milliseconds on purpose), and come back here only to record
a failure. Failures are recorded through ``storage.alerts`` (a bounded table); the callers
rate-limit them (core/backoff.Throttle).
"""

from __future__ import annotations

from typing import Any

from evstore.ops.node import _DUMMY_HASH, Node, now_ms
from evstore.storage import alerts
from evstore.storage.connect import transaction

__all__ = ["record_failure", "stored_hash", "user_entry"]


def user_entry(node: Node, user: str) -> dict[str, Any] | None:
    return next((u for u in node.users() if u.get("name") == user), None)


def stored_hash(node: Node, user: str) -> tuple[str, bool]:
    """The hash to check a passphrase for ``user`` against, and whether the user exists
    (an unknown user is checked against a dummy hash, so timing does not tell)."""
    entry = user_entry(node, user)
    if entry is None:
        return _DUMMY_HASH(), False
    return str(entry.get("passphrase_hash", "")), True


def record_failure(node: Node, kind: str, detail: str, held: int = 0) -> None:
    """One failure alert (``held``: how many like it were held back since the last one)."""
    if held:
        detail += f" (and {held} more held back since the last such alert)"
    with transaction(node.conn):
        alerts.add(node.conn, now_ms(), kind, detail)
