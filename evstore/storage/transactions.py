"""The one way to write to evstore's database: ``transaction`` (``BEGIN IMMEDIATE`` ...
``COMMIT``, a SAVEPOINT when nested) and the hooks that run after a rollback.

Kept apart from connect.py so that the migrations runner, which opening a database calls,
can use it without importing connect.py back (storage/connect.py re-exports every name).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from itertools import count
from types import TracebackType

_savepoints = count(1)

_ROLLBACK_HOOKS: list[Callable[[sqlite3.Connection], None]] = []


def on_rollback(hook: Callable[[sqlite3.Connection], None]) -> None:
    """Register a function called after any rollback (caches of views must forget)."""
    _ROLLBACK_HOOKS.append(hook)


def rolled_back(conn: sqlite3.Connection) -> None:
    for hook in _ROLLBACK_HOOKS:
        hook(conn)


def roll_back(conn: sqlite3.Connection) -> None:
    """End the transaction that ``begin_write`` opened without keeping anything (a preview
    that ran the real code), and tell the hooks."""
    conn.execute("ROLLBACK")
    rolled_back(conn)


# Write transactions begun per connection: while one is open (it holds the write lock), no
# other connection can commit, so what it read earlier in the same transaction still holds.
_TX_COUNT: dict[int, int] = {}


def begin_write(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, counted (see ``write_transaction_id``): the only way to begin one."""
    conn.execute("BEGIN IMMEDIATE")
    _TX_COUNT[id(conn)] = _TX_COUNT.get(id(conn), 0) + 1


def write_transaction_id(conn: sqlite3.Connection) -> int | None:
    """An id of the write transaction open on ``conn`` (from ``transaction``), or None."""
    return _TX_COUNT.get(id(conn)) if conn.in_transaction else None


class transaction:  # noqa: N801 (used as a function: ``with transaction(conn):``)
    """``BEGIN IMMEDIATE`` … ``COMMIT``; ``ROLLBACK`` when the block raises.

    IMMEDIATE takes the write lock up front, so two processes never both read, then both try
    to upgrade to a writer and deadlock into SQLITE_BUSY. Used inside an open transaction
    (e.g. from an ``on_apply`` hook) it becomes a SAVEPOINT, so helpers compose. (A class, not
    a generator: it wraps every write, and this costs a third of the generator's work.)
    """

    __slots__ = ("conn", "_nested")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._nested: AbstractContextManager[None] | None = None

    def __enter__(self) -> sqlite3.Connection:
        conn = self.conn
        if conn.in_transaction:
            self._nested = _savepoint(conn)
            self._nested.__enter__()
        else:
            begin_write(conn)
        return conn

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if self._nested is not None:
            return bool(self._nested.__exit__(exc_type, exc, tb))
        conn = self.conn
        if exc_type is None:
            try:
                conn.execute("COMMIT")
                return False
            except BaseException:
                _undo(conn)
                raise
        _undo(conn)
        return False


def _undo(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
        conn.execute("ROLLBACK")
    rolled_back(conn)


@contextmanager
def _savepoint(conn: sqlite3.Connection) -> Iterator[None]:
    """A nested transaction: its work is undone alone when it raises."""
    name = f"evstore_sp_{next(_savepoints)}"
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        rolled_back(conn)
        raise
    conn.execute(f"RELEASE {name}")
