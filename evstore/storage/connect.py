"""Opening evstore's SQLite database, and the one way to write to it.

A home is shared by several processes at once (``evstore run`` plus any number of CLI
commands), so every connection is opened the same way:

* ``isolation_level=None``: the ``sqlite3`` module never opens a transaction behind our back;
  :func:`transaction` issues ``BEGIN IMMEDIATE`` and ``COMMIT`` itself, so a caller can
  acknowledge a write only after COMMIT has returned (docs/PITFALLS #8).
* WAL, so readers never block the writer; WAL mode is stored in the file.
* ``synchronous=FULL``: WAL with NORMAL can lose the last commits on power loss. It is a
  per-connection setting, so it is set on every open.
* ``foreign_keys=ON`` (also per connection) and a 10 s busy timeout, so a command waits for
  ``evstore run``'s transaction instead of failing at once.
* ``check_same_thread=False``: the trio shell hands the connection to one worker thread at a
  time (one ``CapacityLimiter(1)`` per database); the limiter, not sqlite3, serializes use.

Durability holds only as far as the disk honours flushes (docs/PITFALLS #13).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from itertools import count
from pathlib import Path
from types import TracebackType

from evstore.core.errors import OperationalError

BUSY_TIMEOUT_MS = 10_000

_savepoints = count(1)


def configure(conn: sqlite3.Connection) -> None:
    """Apply the per-connection pragmas every evstore connection needs."""
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")


def open_db(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date.

    Raises ``OperationalError`` when the file is not an SQLite database, stays locked past
    the busy timeout, or was written by a newer evstore.
    """
    from evstore.storage.migrate import migrate  # migrate uses transaction() from here

    conn = sqlite3.connect(
        str(path),
        isolation_level=None,
        check_same_thread=False,
        timeout=BUSY_TIMEOUT_MS / 1000,
    )
    try:
        configure(conn)
        migrate(conn)
    except sqlite3.DatabaseError as e:
        conn.close()
        raise OperationalError(
            f"cannot open the database {path}: {e}; check that it is an evstore database and "
            "that no other process holds it locked"
        ) from e
    except BaseException:
        conn.close()
        raise
    return conn


_ROLLBACK_HOOKS: list[Callable[[sqlite3.Connection], None]] = []


def on_rollback(hook: Callable[[sqlite3.Connection], None]) -> None:
    """Register a function called after any rollback (caches of views must forget)."""
    _ROLLBACK_HOOKS.append(hook)


def rolled_back(conn: sqlite3.Connection) -> None:
    for hook in _ROLLBACK_HOOKS:
        hook(conn)


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
