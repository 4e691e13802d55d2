"""Passphrase checks split for callers that must not hash under the database's lock.

The node (joins) and the web pages (logins) read the stored hash here, check it in a thread
of their own (argon2 takes tens of milliseconds on purpose), and come back here only to record
a failure. Failures are recorded through ``storage.alerts`` (a bounded table); the callers
rate-limit them (core/backoff.Throttle).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

import outcome
import trio

from evstore.ops import secrets
from evstore.ops.node import _DUMMY_HASH, Node, now_ms
from evstore.storage import alerts
from evstore.storage.connect import transaction

__all__ = ["Hashing", "record_failure", "rehash", "stored_hash", "user_entry"]


def user_entry(node: Node, user: str) -> dict[str, Any] | None:
    return next((u for u in node.users() if u.get("name") == user), None)


def stored_hash(node: Node, user: str) -> tuple[str, bool]:
    """The hash to check a passphrase for ``user`` against, and whether the user exists
    (an unknown user is checked against a dummy hash, so timing does not tell)."""
    entry = user_entry(node, user)
    if entry is None:
        return _DUMMY_HASH(), False
    return str(entry.get("passphrase_hash", "")), True


def rehash(node: Node, user: str, old: str, fresh: str) -> bool:
    """Replace ``user``'s passphrase hash ``old`` (just matched, but weaker than today's
    parameters) by ``fresh``, made with them: a one-change commit in the user's own name.
    Nothing happens when the hash changed meanwhile, or when the user's role may not change
    its own passphrase (readonly: an admin must set it again). True when it was replaced."""
    from evstore.core.modes import CLUSTER, machine_mode
    from evstore.ops import settings as settings_ops
    from evstore.ops import users as user_ops

    entry = user_entry(node, user)
    if entry is None or entry.get("passphrase_hash") != old:
        return False
    if "own_passphrase" not in user_ops.CAN.get(user_ops.role_of(node, user), set()):
        return False
    mode = CLUSTER if node.in_cluster() else machine_mode(node.mid)
    value = node.store.section_value(mode, "users")
    if not isinstance(value, dict):
        return False
    listed = [{**u, "passphrase_hash": fresh} if u.get("name") == user else u
              for u in value.get("users", [])]
    settings_ops.commit_change(node, user, mode, "users", {**value, "users": listed},
                               comment=f"{user}'s passphrase hashed again with today's "
                               "parameters (at its login)")
    return True


def record_failure(node: Node, kind: str, detail: str, held: int = 0) -> None:
    """One failure alert (``held``: how many like it were held back since the last one)."""
    if held:
        detail += f" (and {held} more held back since the last such alert)"
    with transaction(node.conn):
        alerts.add(node.conn, now_ms(), kind, detail)


class Hashing:
    """Passphrase checks in threads of their own, ``size`` at a time, never under a database
    limiter. The threads run at a lower CPU priority (``nice``, where the system allows it),
    so a spray of wrong passphrases yields the processor to page requests and gossip instead
    of competing with them. Usable from any trio run (the node's, the web server's)."""

    def __init__(self, size: int = 1, nice: int = 10) -> None:
        self.size = size
        self.nice = nice
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Callable[[Any], None]]] = (
            queue.SimpleQueue())
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    async def check(self, stored: str, passphrase: str) -> bool:
        """Does ``passphrase`` match the argon2id hash ``stored``?"""
        return bool(await self.run(secrets.check_passphrase, stored, passphrase))

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        self._start()
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        box: list[Any] = []

        def finished(result: Any) -> None:
            box.append(result)
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        self._jobs.put((lambda: fn(*args), finished))
        with trio.CancelScope(shield=True):  # the job runs anyway: keep the bound honest
            await done.wait()
        return box[0].unwrap()

    def _start(self) -> None:
        with self._lock:
            while len(self._threads) < self.size:
                t = threading.Thread(target=self._work, name="evstore-hashing", daemon=True)
                t.start()
                self._threads.append(t)

    def _work(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        while True:
            job, finished = self._jobs.get()
            finished(outcome.capture(job))
