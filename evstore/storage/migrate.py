"""Numbered schema migrations, applied in order when a database is opened.

Migrations live in the ``evstore_migrations`` package (``migrations/evstore_migrations``), one
module per step, named ``mNNNN_what_it_does``: the four digits are the schema version the step
produces, the whole module name is what gets recorded. Released modules are never edited or
renamed; a change to the schema is a new module. A module provides either ``apply(conn)`` or
a ``SQL`` string of statements (run with :func:`execute_script`, never
``sqlite3.executescript``, which commits the open transaction first).

Each step runs in its own ``BEGIN IMMEDIATE`` transaction together with its row in
``schema_migrations`` (version, name, applied_at) and ``PRAGMA user_version``, so a crash in the
middle leaves the database at the previous version, and two processes opening a new home at
the same time apply each step once. A database whose recorded version is newer than the
newest step this software knows is refused: an old evstore must not write a schema it does
not understand. Upgrading an existing database says so once, as a warning on the
``evstore.storage.migrate`` logger (printed to stderr when nothing else handles it): some
steps convert every row of a view, which takes seconds on a long log (with the home locked).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType

from evstore.core.errors import OperationalError
from evstore.storage.transactions import transaction

PACKAGE = "evstore_migrations"
TABLE = "schema_migrations"
_MODULE_NAME = re.compile(r"^m(\d{4})_[a-z0-9_]+$")

Step = Callable[[sqlite3.Connection], None]


@dataclass(frozen=True)
class Migration:
    """One schema step: the version it produces, its recorded name, and what it runs."""

    version: int
    name: str
    run: Step


def execute_script(conn: sqlite3.Connection, script: str) -> None:
    """Run several ``;``-separated statements inside the caller's transaction."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement at the end of a script: {statement!r}")


def _step_of(module: ModuleType) -> Step:
    apply = getattr(module, "apply", None)
    if callable(apply):
        return apply  # type: ignore[no-any-return]
    sql = getattr(module, "SQL", None)
    if isinstance(sql, str):
        return lambda conn: execute_script(conn, sql)
    raise RuntimeError(f"migration {module.__name__} defines neither apply(conn) nor SQL")


def _loaded_on_use(module: str) -> Step:
    """The step of ``module``, imported when it runs: opening a home that is up to date (every
    command's start) imports none of the steps."""

    def run(conn: sqlite3.Connection) -> None:
        _step_of(importlib.import_module(module))(conn)

    return run


def known_migrations(package: str = PACKAGE) -> list[Migration]:
    """The steps this software ships, in version order; the versions must run 1, 2, 3…"""
    pkg = importlib.import_module(package)
    found = []
    for info in pkgutil.iter_modules(pkg.__path__):
        match = _MODULE_NAME.match(info.name)
        if match:
            found.append(Migration(int(match.group(1)), info.name,
                                   _loaded_on_use(f"{package}.{info.name}")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration versions must run 1, 2, 3… without gaps; got {versions}")
    return found


def recorded(conn: sqlite3.Connection) -> dict[int, str]:
    """The steps already applied to this database, version → name."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
    ).fetchone()
    if not exists:
        return {}
    return dict(conn.execute(f"SELECT version, name FROM {TABLE} ORDER BY version"))


def schema_version(conn: sqlite3.Connection) -> int:
    """The newest schema version recorded in this database (0 for a new one)."""
    return max(recorded(conn), default=0)


def _check_compatible(done: dict[int, str], known: Sequence[Migration]) -> None:
    newest = known[-1].version if known else 0
    have = max(done, default=0)
    if have > newest:
        raise OperationalError(
            f"this database has schema version {have}, but this evstore supports versions up "
            f"to {newest}; upgrade evstore to open it"
        )
    for m in known:
        if m.version in done and done[m.version] != m.name:
            raise OperationalError(
                f"this database records schema step {m.version} as {done[m.version]!r}, but "
                f"this evstore's step {m.version} is {m.name!r}; it was made by a different "
                "build of evstore: use that build, or restore the home from a backup"
            )


def _apply_one(conn: sqlite3.Connection, m: Migration, known: Sequence[Migration], at: str) -> bool:
    with transaction(conn):
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL UNIQUE, applied_at TEXT NOT NULL)"
        )
        done = recorded(conn)  # again, under the write lock: another process may have won
        _check_compatible(done, known)
        if m.version in done:
            return False
        m.run(conn)
        conn.execute(
            f"INSERT INTO {TABLE} (version, name, applied_at) VALUES (?, ?, ?)",
            (m.version, m.name, at),
        )
        conn.execute(f"PRAGMA user_version = {m.version:d}")
    return True


def migrate(
    conn: sqlite3.Connection,
    *,
    target: int | None = None,
    applied_at: str | None = None,
    migrations: Sequence[Migration] | None = None,
    label: str = "the database",
) -> list[str]:
    """Bring the schema up to ``target`` (default: the newest); return the steps applied.

    ``applied_at`` pins the recorded time (for reproducible test fixtures); ``migrations``
    replaces the shipped steps (for tests of the runner itself); ``label`` names what is
    upgraded in the announcement.
    """
    known = list(migrations) if migrations is not None else known_migrations()
    done = recorded(conn)
    _check_compatible(done, known)
    goal = known[-1].version if target is None and known else (target or 0)
    todo = [m for m in known if m.version <= goal and m.version not in done]
    if todo and done:  # an existing home (a new one is created by the same steps, silently)
        import logging  # only an upgrade says something: opening a home loads no logging

        logging.getLogger(__name__).warning(
            "upgrading %s from schema version %d to %d (%s); on a long log this takes a "
            "while", label, max(done), todo[-1].version, ", ".join(m.name for m in todo),
        )
    at = applied_at or datetime.now(UTC).isoformat(timespec="seconds")
    return [m.name for m in todo if _apply_one(conn, m, known, at)]
