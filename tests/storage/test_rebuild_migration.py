"""Migrations 0006 and 0007 convert a home's register history exactly as the store of each
schema would have written it, and the views work on after them.

A schema-5 database is filled the way the schema-5 store did (one ``reg_writes`` row per
register write, ``INSERT OR REPLACE`` on (register, event)), then migrated: at schema 6 its
``section_writes`` and ``origin_sections`` must hold what the schema-6 store wrote for the same
events (``schema6_rows``: the format schema 6 stored, written out here); at
schema 7, ``section_events`` what today's store writes. Incremental application must carry on
from the converted tables.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

from test_rebuild import ORIGINS, LogMaker, dump, random_log

from evstore.core import encoding, events, state
from evstore.storage.connect import open_db
from evstore.storage.migrate import migrate, schema_version
from evstore.storage.views import SqliteStore, keep_events

_OLD_COLS = "scope, section, field, event, clock, origin, seq, present, value, base, user, wall"


def _listed(b: state.Order | None) -> list[Any] | None:
    return None if b is None else list(b)


def schema6_rows(writes: list[state.Write]) -> list[tuple[Any, ...]]:
    """The ``section_writes`` rows the schema-6 store wrote: per event and (scope, section),
    the canonical JSON of ``[seq, user, wall, base, sets, unsets, bases]`` of the event's last
    write to each field (``base`` the first field's, in sorted order; ``bases`` those that
    differ from it)."""
    groups: dict[tuple[str, str, str], tuple[state.Write, dict[str, state.Write]]] = {}
    for w in writes:
        groups.setdefault((w.scope, w.section, w.event), (w, {}))[1][w.field] = w
    rows = []
    for first, fields in groups.values():
        names = sorted(fields)
        base = fields[names[0]].base
        sets = {f: fields[f].value for f in names if fields[f].present}
        unsets = [f for f in names if not fields[f].present]
        bases = {f: _listed(fields[f].base) for f in names if fields[f].base != base}
        text = encoding.encode([first.seq, first.user, first.wall, _listed(base), sets, unsets,
                                bases]).decode()
        rows.append((first.scope, first.section, *first.order, text))
    return sorted(rows)


def _old_row(w: state.Write) -> tuple[Any, ...]:
    """A ``reg_writes`` row as the schema-5 store wrote it."""
    return (
        w.scope, w.section, w.field, w.event, w.order[0], w.origin, w.seq, int(w.present),
        encoding.encode(w.value).decode(),
        encoding.encode(list(w.base)).decode() if w.base else None, w.user, w.wall,
    )


def schema5_home(path: Path, evs: list[events.Event]) -> sqlite3.Connection:
    """A schema-5 home whose log holds ``evs`` and whose history has their writes."""
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, target=5)
    conn.execute("BEGIN")
    keep_events(conn, evs)
    for ev in evs:
        conn.executemany(f"INSERT OR REPLACE INTO reg_writes ({_OLD_COLS}) VALUES "
                         f"({','.join('?' * 12)})", [_old_row(w) for w in state.writes_of(ev)])
    conn.execute("COMMIT")
    return conn


def tricky_events(maker: LogMaker) -> None:
    """One commit changing one section twice with different bases (``bases``), and one
    unsetting a key and an entry whose name needs escaping."""
    ldap = {"servers": [{"name": "s\n1", "host": "h", "port": 389}], "queries": []}
    maker.emit(1, "config.commit", {"comment": "", "changes": [
        {"mode": "cluster", "section": "ldap", "op": "define", "base": None, "value": ldap},
        {"mode": "cluster", "section": "ldap", "op": "patch", "base": list(maker.events[2].order_key),
         "set": {"queries/q\u00e9": {"name": "q\u00e9", "server": "s", "base": "", "filter": ""}},
         "unset": ["servers/s\n1"]},
    ]})
    maker.emit(2, "config.commit", {"comment": "", "changes": [
        {"mode": f"machine:{ORIGINS[2]}", "section": "dns", "op": "patch", "base": None,
         "set": {}, "unset": ["servers"]}]})


def some_log(seed: int, n: int) -> list[events.Event]:
    """A genesis, the tricky events and ``n`` random ones."""
    maker = LogMaker(seed)
    maker.genesis()
    tricky_events(maker)
    for _ in range(n):
        maker.random_event()
    return maker.events


def test_section_writes_converted_equal_written(tmp_path: Path) -> None:
    evs = some_log(11, 250)
    old = schema5_home(tmp_path / "old.db", evs + evs[:20])
    migrate(old, target=6)
    assert schema_version(old) == 6
    writes = [w for ev in evs for w in state.writes_of(ev)]
    want = {
        "section_writes": schema6_rows(writes),
        "origin_sections": sorted({(w.origin, w.scope, w.section) for w in writes}),
    }
    for table, key in (("section_writes", "1, 2, 3, 4, 5"), ("origin_sections", "1, 2, 3")):
        got = old.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
        assert got == want[table] and got, table
    assert old.execute("SELECT COUNT(*) FROM section_writes WHERE writes NOT LIKE '%,{}]'").fetchone()[0]
    assert old.execute("SELECT COUNT(*) FROM section_writes WHERE writes NOT LIKE '%,[],{%'").fetchone()[0]
    assert not old.execute("SELECT name FROM sqlite_master WHERE name LIKE 'reg_writes%'").fetchall()


def test_section_events_name_the_events_a_store_would(tmp_path: Path) -> None:
    """Schema 7 keeps each history row's key, and only for events in the log: a row naming
    an event the log does not hold could not be read, and no store ever made one."""
    evs = some_log(13, 150)
    old = schema5_home(tmp_path / "old.db", evs)
    stray = evs[-1]
    old.execute("DELETE FROM events WHERE id = ?", (stray.id,))
    migrate(old, target=6)
    assert old.execute("SELECT COUNT(*) FROM section_writes WHERE event = ?",
                       (stray.id,)).fetchone()[0]
    migrate(old, target=7)
    assert schema_version(old) == 7
    new = open_db(":memory:")
    SqliteStore(new).add_writes([w for ev in evs if ev is not stray for w in state.writes_of(ev)])
    got = old.execute("SELECT * FROM section_events ORDER BY 1, 2, 3, 4").fetchall()
    assert got == new.execute("SELECT * FROM section_events ORDER BY 1, 2, 3, 4").fetchall()
    assert got and all(r[3] != stray.id for r in got)
    names = {r[0] for r in old.execute("SELECT name FROM sqlite_master")}
    assert not names & {"section_writes", "origin_sections", "reg_writes"}


def test_views_carry_on_after_the_migration(tmp_path: Path) -> None:
    """A home upgraded mid-log ends with the views of one that was never upgraded."""
    evs = random_log(12, 200)
    rng = random.Random(12)
    rng.shuffle(evs)
    first, rest = evs[:120], evs[120:]
    path = tmp_path / "home.db"
    home = schema5_home(path, [])
    keep_events(home, evs)
    home.close()
    # the schema-5 views of the first part: every table as the old store filled it
    home = sqlite3.connect(path, isolation_level=None)
    home.execute("BEGIN")
    for ev in first:
        home.executemany(f"INSERT OR REPLACE INTO reg_writes ({_OLD_COLS}) VALUES "
                         f"({','.join('?' * 12)})", [_old_row(w) for w in state.writes_of(ev)])
    home.execute("COMMIT")
    home.close()
    upgraded = open_db(path)
    # the other view tables of the first part, as the (unchanged) new store computes them
    reference = open_db(":memory:")
    keep_events(reference, evs)
    state.apply(SqliteStore(reference), first)
    for table in ("reg_winners", "mode_sections", "effective", "superseded", "inadmissible"):
        rows = reference.execute(f"SELECT * FROM {table}").fetchall()
        if rows:
            upgraded.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * len(rows[0]))})",
                                 rows)
    state.apply(SqliteStore(upgraded), rest)
    state.apply(SqliteStore(reference), rest)
    assert dump(upgraded) == dump(reference)
