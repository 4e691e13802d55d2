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

import os
import sqlite3
from pathlib import Path

from evstore.core.errors import OperationalError
from evstore.storage import space
from evstore.storage.migrate import migrate
from evstore.storage.transactions import (  # re-exported: the one way to write
    _ROLLBACK_HOOKS as _ROLLBACK_HOOKS,
)
from evstore.storage.transactions import begin_write as begin_write
from evstore.storage.transactions import on_rollback as on_rollback
from evstore.storage.transactions import rolled_back as rolled_back
from evstore.storage.transactions import transaction as transaction
from evstore.storage.transactions import write_transaction_id as write_transaction_id

BUSY_TIMEOUT_MS = 10_000


def configure(conn: sqlite3.Connection) -> None:
    """Apply the per-connection pragmas every evstore connection needs."""
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")


def open_db(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date.

    A database this process may not write (a read-only file, folder or mount) is opened
    read-only instead (``open_read_only``): every read works, writes fail and say why.
    Raises ``OperationalError`` when the file is not an SQLite database, stays locked past
    the busy timeout, was written by a newer evstore, or the disk is full (named as such).
    """
    if _read_only(Path(path)):
        return open_read_only(Path(path))
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
        full = space.explain(e, Path(path).parent)
        if full is not None:
            raise full from e
        raise OperationalError(
            f"cannot open the database {path}: {e}; check that it is an evstore database and "
            "that no other process holds it locked"
        ) from e
    except BaseException:
        conn.close()
        raise
    return conn


def _read_only(path: Path) -> bool:
    """An existing database this process cannot write (file, folder or a read-only mount)."""
    return path.exists() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))


def open_read_only(path: Path) -> sqlite3.Connection:
    """Open an existing database for reading only (``query_only``). Where its folder cannot
    be written either, no other process can write it (WAL needs the folder), so SQLite is
    told the file is immutable and needs none of its side files."""
    immutable = not os.access(path.parent, os.W_OK)
    uri = path.resolve().as_uri() + "?mode=ro" + ("&immutable=1" if immutable else "")
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.DatabaseError as e:
        raise OperationalError(f"cannot open the read-only database {path}: {e}") from e
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only = ON")
        migrate(conn)  # writes nothing when the schema is current
    except sqlite3.DatabaseError as e:
        conn.close()
        if "readonly" in str(e) or "read-only" in str(e):
            raise OperationalError(
                f"{path} cannot be written and its schema is older than this evstore's: "
                "make the home writable once (it is upgraded on opening), then read-only "
                "again") from e
        raise OperationalError(f"cannot read the database {path}: {e}; check that it is an "
                               "evstore database") from e
    except BaseException:
        conn.close()
        raise
    return conn


def is_read_only(conn: sqlite3.Connection) -> bool:
    """Was ``conn`` opened by ``open_read_only`` (nothing may be written through it)?"""
    return bool(conn.execute("PRAGMA query_only").fetchone()[0])
