"""Reading a home for its consumers: effective settings, machine names and the change feed.

Theory of operation
-------------------
Programs that consume the configuration (``evstore get``, ``evstore watch``,
``evstore.open_config``) read what is committed on a home and never write it: they open the
database read-only (:func:`open_reader`), without migrating it and without a passphrase, so
they work on a home they may not write and while ``evstore run`` serves it. They start in
tens of milliseconds, so this module imports only the standard library.

``feed`` (migration m0008) lists each change of the ``effective`` view in the order it was
applied, written by triggers in the transaction that changed the view. Its ``id`` is a
watcher's position. A reader takes every read of one step inside one read transaction
(:func:`snapshot`), so it always sees whole commits: the rows of a rebuild (delete every
row, insert them again) arrive together, and keeping the last row per section (the
consumer's coalescing) hides the churn.

The statements are module constants so that the asyncio reader (evstore/consume/aio.py,
through aiosqlite) runs exactly the same SQL as the blocking one here.
"""

from __future__ import annotations

import json
import os
import sqlite3

from evstore.core.errors import InvalidInput, OperationalError

TYPE_CHECKING = False  # (not typing's: ``evstore get`` does not import typing at all)
if TYPE_CHECKING:
    from typing import Any

DB_NAME = "evstore.db"  # as evstore.ops.node.DB_NAME (not imported: ops loads the whole store)
STRUCT = "@structure"  # as evstore.core.state.STRUCT
FEED_SCHEMA = 8  # the first schema with the feed
BUSY_TIMEOUT_S = 10.0

TAG_SQL = "SELECT value FROM node WHERE key = 'feed_tag'"
OWN_MACHINE_SQL = "SELECT value FROM node WHERE key = 'machine_id'"
NEWEST_SQL = "SELECT seq FROM sqlite_sequence WHERE name = 'feed'"
OLDEST_SQL = "SELECT min(id) FROM feed"
NAMES_SQL = (
    "SELECT scope, field, value FROM reg_winners WHERE section = ? "
    "AND field IN ('hostname', 'serial', 'name', 'removed')"
)
EFFECTIVE_SQL = (
    "SELECT section, value, source, event FROM effective WHERE machine = ? ORDER BY section"
)
MACHINES_SQL = "SELECT DISTINCT machine FROM effective"
FEED_SQL = (
    "SELECT id, section, value, source, event, at FROM feed "
    "WHERE id > ? AND id <= ? AND machine = ? ORDER BY id"
)
DATA_VERSION_SQL = "PRAGMA data_version"
SCHEMA_SQL = "PRAGMA user_version"


class Row:
    """One change of a machine's effective settings of a section, as the feed holds it."""

    __slots__ = ("id", "section", "settings", "source", "event", "at_ms")

    def __init__(self, ident: int, section: str, settings: dict[str, Any] | None,
                 source: str | None, event: str | None, at_ms: int) -> None:
        self.id = ident
        self.section = section
        self.settings = settings  # None: the section is absent
        self.source = source
        self.event = event
        self.at_ms = at_ms

    def __repr__(self) -> str:
        return f"Row({self.id}, {self.section!r}, {self.source!r})"


def row_of(r: tuple[Any, ...]) -> Row:
    ident, section, value, source, event, at = r
    return Row(int(ident), section, None if value is None else json.loads(value), source,
               event, int(at))


def db_path(home: str | os.PathLike[str]) -> str:
    return os.path.join(os.fspath(home), DB_NAME)


def _uri_path(path: str) -> str:
    """A file name as the path of a ``file:`` URI (what would end or escape it, escaped)."""
    return path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")


def reader_uris(path: str) -> list[str]:
    """Read-only URIs to try, in order: a normal reader, then one for a home nobody writes.

    A read-only connection to a WAL database needs its ``-shm`` file; where it cannot be
    made (a read-only folder after the last writer removed it) SQLite can still read the
    file as immutable, which is right only while no process writes it, as there.
    """
    base = "file:" + _uri_path(os.path.realpath(path))
    return [f"{base}?mode=ro", f"{base}?mode=ro&immutable=1"]


def open_reader(home: str | os.PathLike[str]) -> sqlite3.Connection:
    """A read-only connection to the home's database; never migrates, never writes.

    Raises ``InvalidInput`` when ``home`` holds no evstore database and ``OperationalError``
    when it cannot be read.
    """
    return _open_checked(home)[0]


def reader_uri(home: str | os.PathLike[str]) -> str:
    """The URI :func:`open_reader` connects with (for aiosqlite), after the same checks."""
    conn, uri = _open_checked(home)
    conn.close()
    return uri


def _open_checked(home: str | os.PathLike[str]) -> tuple[sqlite3.Connection, str]:
    path = db_path(home)
    if not os.path.isfile(path):
        raise InvalidInput(f"{home} is not an evstore home (no {DB_NAME}): pass --home or "
                           "set EVSTORE_HOME")
    error: Exception | None = None
    for uri in reader_uris(path):
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_S)
        try:
            check_schema(int(conn.execute(SCHEMA_SQL).fetchone()[0]), path)
            return conn, uri
        except sqlite3.DatabaseError as e:
            conn.close()
            error = e
        except BaseException:
            conn.close()
            raise
    raise OperationalError(f"cannot read the database {path}: {error}")


def check_schema(version: int, path: str) -> None:
    if version < FEED_SCHEMA:
        raise OperationalError(
            f"the database {path} has schema version {version}, older than this evstore's "
            f"readers need ({FEED_SCHEMA}); run any evstore command that writes (e.g. "
            "`evstore status`) as its owner to upgrade it"
        )


class snapshot:  # noqa: N801 (used as a function: ``with snapshot(conn):``)
    """One read transaction: every read inside sees the same commits."""

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN")
        return self.conn

    def __exit__(self, *exc: object) -> None:
        if self.conn.in_transaction:  # (an error may have ended it already)
            self.conn.execute("COMMIT")


def _one(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


def tag(conn: sqlite3.Connection) -> str | None:
    """This home's feed tag (None until the home's first change was recorded)."""
    value = _one(conn, TAG_SQL)
    return None if value is None else str(value)


def own_machine(conn: sqlite3.Connection) -> str | None:
    value = _one(conn, OWN_MACHINE_SQL)
    return None if value is None else str(value)


def newest(conn: sqlite3.Connection) -> int:
    """The id of the newest feed row ever written here (0 for none)."""
    return int(_one(conn, NEWEST_SQL) or 0)


def oldest(conn: sqlite3.Connection) -> int | None:
    """The id of the oldest row kept (None when none is kept)."""
    value = _one(conn, OLDEST_SQL)
    return None if value is None else int(value)


def data_version(conn: sqlite3.Connection) -> int:
    """Changes when another connection commits (SQLite's own counter, per connection)."""
    return int(_one(conn, DATA_VERSION_SQL))


class Names:
    """The names people use for machines and groups, from the structure registers."""

    __slots__ = ("machines", "groups")

    def __init__(self, machines: dict[str, dict[str, Any]], groups: dict[str, str]) -> None:
        self.machines = machines  # mid -> {"hostname", "serial", "removed"}
        self.groups = groups  # gid -> name

    def hostname(self, mid: str) -> str:
        return str(self.machines.get(mid, {}).get("hostname") or mid)

    def display(self, source: str | None) -> str | None:
        """A mode as people write it: ``machine:HOST``, ``group:NAME``, ``cluster``."""
        if source is None:
            return None
        level, _, ident = source.partition(":")
        if level == "machine" and ident in self.machines:
            return f"machine:{self.hostname(ident)}"
        if level == "group" and ident in self.groups:
            return f"group:{self.groups[ident]}"
        return source


def names_of(rows: list[tuple[Any, ...]]) -> Names:
    machines: dict[str, dict[str, Any]] = {}
    groups: dict[str, str] = {}
    for scope, field, value in rows:
        level, _, ident = str(scope).partition(":")
        decoded = json.loads(value)
        if level == "machine":
            machines.setdefault(ident, {})[field] = decoded
        elif level == "group" and field == "name":
            groups[ident] = str(decoded)
    return Names(machines, groups)


def names(conn: sqlite3.Connection) -> Names:
    return names_of(conn.execute(NAMES_SQL, (STRUCT,)).fetchall())


def machines_with_settings(conn: sqlite3.Connection) -> set[str]:
    return {str(r[0]) for r in conn.execute(MACHINES_SQL)}


def effective(conn: sqlite3.Connection, mid: str) -> list[Row]:
    """The machine's effective settings now, one row per section (id 0: not a feed row)."""
    return [Row(0, s, json.loads(v), src, ev, 0)
            for s, v, src, ev in conn.execute(EFFECTIVE_SQL, (mid,))]


def changes(conn: sqlite3.Connection, mid: str, after: int, upto: int) -> list[Row]:
    """The machine's feed rows in ``(after, upto]``, oldest first."""
    return [row_of(r) for r in conn.execute(FEED_SQL, (after, upto, mid))]
