"""The audit index: who changed what, when and where, answered from indexes.

Theory of operation
-------------------
Table ``audit`` (migration m0004) holds one row per change of every applied event: one per
(mode, section) that a ``config.commit``, ``config.load`` or ``clustercheck.resolve`` changed,
and one per structure or node event (create, join, addgroup, setgroup, removemachine…). A
three-change commit gives three rows with the same event id. Each row keeps ``time`` (the
wall-time part of the event's clock, in ms: the clock is what orders events, so times and
order agree), the author's key, the user, the kind, the section and the *internal* mode
(group and machine ids), and a summary.

The index is kept lazily: ``catch_up`` indexes the events whose rowid is above
``meta.audit_pos`` and moves the mark, in batches of short transactions, so the log's own
write path pays nothing. Events only ever get higher rowids, so the mark is exact; a
``MAX(rowid)`` below it means the table was rewritten (a VACUUM after deletions), and the
index is rebuilt. A reader that may not write (the asyncio API, a read-only copy) indexes
the tail into a TEMP table instead and runs the very same query over both.

Names are applied when rows are shown, not when they are indexed: a renamed group shows
its current name in every old row, and ``--mode group:NAME`` finds its rows under any name.
The names come from the structure registers (``reg_winners``).

This module builds SQL and shapes rows; it runs the sync queries itself, and hands the SQL to
evstore/aio.py for the asyncio ones, so both give the same rows.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evstore.core import clock, encoding
from evstore.core.errors import EncodingError, InvalidInput
from evstore.core.events import fingerprint
from evstore.core.modes import group_id_of
from evstore.core.state import SETTINGS_KINDS
from evstore.core.timeparse import format_iso, parse_time
from evstore.storage.connect import is_read_only, transaction

COLUMNS = "event, idx, time, clock, origin, user, kind, section, mode, summary"
ORDER = "time, clock, origin, event, idx"
EVENT_ROWS_SQL = (
    "SELECT rowid, id, origin, clock, user, kind, raw FROM events WHERE rowid > ? "
    "ORDER BY rowid LIMIT ?"
)
NAMES_SQL = (
    "SELECT scope, field, value FROM reg_winners WHERE section = '@structure' "
    "AND field IN ('name', 'hostname', 'serial', 'key')"
)
POSITION_SQL = "SELECT value FROM meta WHERE key = 'audit_pos'"
HAS_INDEX_SQL = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'"
TAIL_TABLE = "temp.audit_tail"
TAIL_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS audit_tail (event TEXT, idx INTEGER, time INTEGER, "
    "clock INTEGER, origin TEXT, user TEXT, kind TEXT, section TEXT, mode TEXT, summary TEXT)"
)
INSERT_SQL = "INSERT OR IGNORE INTO {table} (" + COLUMNS + ") VALUES (?,?,?,?,?,?,?,?,?,?)"
BATCH = 5000
_IDS = re.compile(r"\b(?:group:g[0-9a-f]{16}|machine:[0-9a-f]{64})\b")

Row = tuple[Any, ...]
Entry = tuple[str | None, str | None, str]  # section, internal mode, summary


# --------------------------------------------------------------------------- event -> rows


def _field_name(fld: str) -> str:
    key, sep, name = fld.partition("/")
    return f"{key}[{name}]" if sep else fld


def _fields(names: Iterable[str]) -> str:
    shown = [_field_name(n) for n in sorted(names)]
    more = f" and {len(shown) - 6} more" if len(shown) > 6 else ""
    return ", ".join(shown[:6]) + more


def _change_summary(ch: Mapping[str, Any]) -> str:
    op = ch.get("op")
    if op == "define":
        return "define (whole section)"
    if op == "delete":
        return "delete (inherits again)"
    parts = []
    if ch.get("set"):
        parts.append("set " + _fields(ch["set"]))
    if ch.get("unset"):
        parts.append("unset " + _fields(ch["unset"]))
    return "patch: " + "; ".join(parts) if parts else str(op)


def _changes(kind: str, p: Mapping[str, Any]) -> list[Entry]:
    prefix = {"config.load": "load: ", "clustercheck.resolve": "resolve: "}.get(kind, "")
    comment = p.get("comment")
    tail = f" ({comment})" if isinstance(comment, str) and comment else ""
    out: list[Entry] = []
    for ch in p.get("changes", []):
        if isinstance(ch, dict):
            summary = prefix + _change_summary(ch) + tail
            out.append((ch.get("section"), ch.get("mode"), summary))
    return out or [(None, None, prefix + "no changes" + tail)]


def _host(p: Mapping[str, Any]) -> str:
    machine = p.get("machine")
    return str(machine.get("hostname", "")) if isinstance(machine, dict) else ""


def _m(mid: Any) -> str:
    return f"machine:{mid}"


Describer = Callable[[Mapping[str, Any], str, str], tuple[str | None, str]]
_STRUCTURE: dict[str, Describer] = {
    "node.init": lambda p, o, e: (_m(p.get("machine_id", o)), f"initialize machine {_host(p)}"),
    "node.standalone": lambda p, o, e: (
        _m(p.get("machine_id", o)), "leaves the cluster: standalone, keeps what it inherited"),
    "node.rekey": lambda p, o, e: (_m(p.get("machine_id", o)), "new host key"),
    "cluster.create": lambda p, o, e: ("cluster", f"create cluster {p.get('name')!r}"),
    "cluster.setname": lambda p, o, e: ("cluster", f"rename cluster to {p.get('name')!r}"),
    "cluster.admit": lambda p, o, e: (
        _m(p.get("machine_id")), f"admit {_host(p)} to group:{p.get('group')}"),
    "cluster.join": lambda p, o, e: (_m(p.get("machine_id", o)), f"{_host(p)} joins"),
    "group.add": lambda p, o, e: (f"group:{group_id_of(e)}", f"add group {p.get('name')!r}"),
    "group.rename": lambda p, o, e: (
        f"group:{p.get('group')}", f"rename group to {p.get('name')!r}"),
    "group.delete": lambda p, o, e: (
        f"group:{p.get('group')}", f"delete group; its machines move to group:{p.get('move_to')}"),
    "machine.setgroup": lambda p, o, e: (
        _m(p.get("machine")), f"move to group:{p.get('group')}"),
    "machine.remove": lambda p, o, e: (_m(p.get("machine")), "remove from the cluster"),
    "machine.detach": lambda p, o, e: (
        _m(p.get("machine")), "disconnect" if p.get("detached") else "reconnect"),
    "clustercheck.ignore": lambda p, o, e: (
        None, f"ignore {len(p.get('records', []))} superseded change(s)"),
}


def describe(kind: str, payload: Mapping[str, Any], origin: str, event_id: str) -> list[Entry]:
    """The audit entries of one event: (section, internal mode, summary) each."""
    if kind in SETTINGS_KINDS:
        return _changes(kind, payload)
    how = _STRUCTURE.get(kind)
    if how is None:
        return [(None, None, kind)]
    mode, summary = how(payload, origin, event_id)
    return [(None, mode, summary)]


def _payload(raw: bytes) -> dict[str, Any]:
    try:
        env = encoding.loads_json(raw)
    except EncodingError:
        return {}
    payload = env.get("payload") if isinstance(env, dict) else None
    return payload if isinstance(payload, dict) else {}


def rows_of(row: Row) -> list[Row]:
    """Audit rows of one ``events`` row (rowid, id, origin, clock, user, kind, raw)."""
    _rowid, event_id, origin, clk, user, kind, raw = row
    base = (clock.wall_ms_of(clk), clk, origin, user, kind)
    entries = describe(kind, _payload(raw), origin, event_id)
    return [(event_id, i, *base, sec, mode, summary) for i, (sec, mode, summary) in enumerate(entries)]


# --------------------------------------------------------------------------- keeping it up


def position(conn: sqlite3.Connection) -> int:
    row = conn.execute(POSITION_SQL).fetchone()
    return int(row[0]) if row else 0


def _top(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM events").fetchone()[0])


def _index_batch(conn: sqlite3.Connection, batch: int) -> int:
    """Index the next batch of events in one short transaction; returns how many."""
    with transaction(conn):
        pos, top = position(conn), _top(conn)
        if top < pos:  # rowids were rewritten (VACUUM after deletions): start over
            conn.execute("DELETE FROM audit")
            pos = 0
        rows = conn.execute(EVENT_ROWS_SQL, (pos, batch)).fetchall()
        conn.executemany(INSERT_SQL.format(table="audit"), [r for e in rows for r in rows_of(e)])
        new_pos = rows[-1][0] if rows else top
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('audit_pos', ?)", (new_pos,))
    return len(rows)


def catch_up(conn: sqlite3.Connection, batch: int = BATCH) -> int:
    """Index every event applied since the last call; returns the number indexed."""
    done = 0
    while _top(conn) != position(conn):
        n = _index_batch(conn, batch)
        done += n
        if n == 0:
            break
    return done


# --------------------------------------------------------------------------- names


def _decode(value: str) -> Any:
    try:
        return encoding.loads_json(value)
    except EncodingError:
        return value


@dataclass
class Names:
    """Current names of groups and machines, from the structure registers."""

    groups: dict[str, str] = field(default_factory=dict)
    hosts: dict[str, str] = field(default_factory=dict)
    serials: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # signing key -> machine id

    @classmethod
    def from_rows(cls, rows: Iterable[Row]) -> Names:
        names = cls()
        for scope, fld, raw in rows:
            level, _, ident = str(scope).partition(":")
            value = _decode(raw)
            if level == "group" and fld == "name":
                names.groups[ident] = str(value)
            elif level == "machine" and fld in ("hostname", "serial"):
                (names.hosts if fld == "hostname" else names.serials)[ident] = str(value)
            elif level == "machine" and fld == "key" and value:
                names.keys[str(value)] = ident
        return names

    def mode(self, internal: str | None) -> str | None:
        if internal is None:
            return None
        level, _, ident = internal.partition(":")
        if level == "group" and ident in self.groups:
            return f"group:{self.groups[ident]}"
        if level == "machine" and ident in self.hosts:
            return f"machine:{self.hosts[ident]}"
        return internal

    def host(self, origin: str) -> str:
        """The hostname of a signing key; the key itself when it belongs to no known machine."""
        mid = self.keys.get(origin, origin)
        return self.hosts.get(mid) or self.hosts.get(origin) or origin

    def text(self, summary: str) -> str:
        """A summary with the ids it names replaced by current names."""
        if "group:g" not in summary and "machine:" not in summary:
            return summary
        return _IDS.sub(lambda m: self.mode(m.group(0)) or m.group(0), summary)

    def modes_named(self, text: str) -> list[str]:
        """Every internal mode a mode written by a person may mean (a name, a serial, an id)."""
        if text == "cluster":
            return ["cluster"]
        level, sep, name = text.partition(":")
        if not sep or level not in ("group", "machine") or not name:
            raise InvalidInput(f"{text!r} is not a mode: write cluster, group:NAME or "
                               "machine:HOSTNAME")
        if level == "group":
            found = [g for g, n in self.groups.items() if name in (n, g)]
        else:
            found = [m for m in self.hosts if name in (self.hosts[m], self.serials.get(m), m)]
        if not found:
            known = sorted(self.groups.values() if level == "group" else self.hosts.values())
            raise InvalidInput(f"no {level} named {name!r} in this log's records "
                               f"(known: {', '.join(known) or 'none'})")
        return sorted(f"{level}:{i}" for i in found)

    def origins_named(self, text: str) -> list[str]:
        """The signing keys of a machine given by hostname, serial, key or fingerprint."""
        mids = {m for m in self.hosts if text in (self.hosts[m], self.serials.get(m), m)}
        keys = {k for k, m in self.keys.items() if m in mids} | mids
        if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
            keys.add(text)
        keys |= {k for k in set(self.keys) | set(self.hosts) if _fp(k) == text}
        if not keys:
            raise InvalidInput(f"no machine named {text!r} in this log's records (known: "
                               f"{', '.join(sorted(set(self.hosts.values()))) or 'none'})")
        return sorted(keys)


def _fp(key: str) -> str:
    try:
        return fingerprint(key)
    except ValueError:
        return ""


def load_names(conn: sqlite3.Connection) -> Names:
    return Names.from_rows(conn.execute(NAMES_SQL).fetchall())


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class Query:
    """An audit query with every filter resolved to what the table stores."""

    since: int | None = None
    until: int | None = None
    user: str | None = None
    section: str | None = None
    modes: tuple[str, ...] | None = None
    origins: tuple[str, ...] | None = None
    kind: str | None = None
    limit: int | None = None

    def _where(self) -> tuple[str, list[Any]]:
        conds: list[str] = []
        params: list[Any] = []
        for col, value in (("user", self.user), ("section", self.section)):
            if value is not None:
                conds.append(f"{col} = ?")
                params.append(value)
        for col, values in (("mode", self.modes), ("origin", self.origins)):
            if values is not None:
                conds.append(f"{col} IN ({','.join('?' * len(values))})")
                params.extend(values)
        if self.kind is not None and "." in self.kind:
            conds.append("kind = ?")
            params.append(self.kind)
        elif self.kind is not None:  # a family: config -> config.commit, config.load…
            conds.append("kind > ? AND kind < ?")
            params.extend([self.kind + ".", self.kind + "/"])
        for op, when in ((">=", self.since), ("<=", self.until)):
            if when is not None:
                conds.append(f"time {op} ?")
                params.append(when)
        return (" WHERE " + " AND ".join(conds)) if conds else "", params

    def sql(self, tables: Sequence[str] = ("audit",)) -> tuple[str, list[Any]]:
        """One SELECT per table, UNION ALL, in time order (the newest ``limit`` rows)."""
        where, params = self._where()
        parts = [f"SELECT {COLUMNS} FROM {t}{where}" for t in tables]
        sql = " UNION ALL ".join(parts)
        all_params = params * len(tables)
        if self.limit is None:
            return f"{sql} ORDER BY {ORDER}", all_params
        desc = ", ".join(f"{c.strip()} DESC" for c in ORDER.split(","))
        return f"{sql} ORDER BY {desc} LIMIT ?", [*all_params, self.limit]


def _when(value: int | str | None, now_ms: int) -> int | None:
    if value is None or isinstance(value, int):
        return value
    return parse_time(value, now_ms)


def plan(
    names: Names,
    *,
    now_ms: int,
    since: int | str | None = None,
    until: int | str | None = None,
    user: str | None = None,
    section: str | None = None,
    mode: str | None = None,
    origin: str | None = None,
    kind: str | None = None,
    limit: int | None = None,
) -> Query:
    """Resolve a person's filters (times as text or ms, names) to a ``Query``."""
    if limit is not None and limit < 1:
        raise InvalidInput("--limit must be at least 1")
    lo, hi = _when(since, now_ms), _when(until, now_ms)
    if lo is not None and hi is not None and lo > hi:
        raise InvalidInput("--since is after --until: nothing can match; swap them")
    return Query(
        since=lo, until=hi, user=user, section=section,
        modes=tuple(names.modes_named(mode)) if mode else None,
        origins=tuple(names.origins_named(origin)) if origin else None,
        kind=kind, limit=limit,
    )


def shape(row: Row, names: Names) -> dict[str, Any]:
    """One audit row as the contract's JSON: times ISO, hosts and modes by name."""
    event, _idx, time_ms, _clk, origin, user, kind, section, mode, summary = row
    return {
        "time": format_iso(time_ms), "user": user, "origin": names.host(origin), "kind": kind,
        "section": section, "mode": names.mode(mode), "commit": event,
        "summary": names.text(summary),
    }


def finish(rows: Iterable[Row], names: Names, query: Query) -> list[dict[str, Any]]:
    """Shape the rows, oldest first (a ``limit`` query reads newest first)."""
    ordered = list(rows)
    if query.limit is not None:
        ordered.reverse()
    return [shape(r, names) for r in ordered]


def run(conn: sqlite3.Connection, now_ms: int, **filters: Any) -> list[dict[str, Any]]:
    """Bring the index up to date, then answer one audit query (oldest first). On a
    read-only home whose index is behind, both happen on a copy in memory."""
    if is_read_only(conn) and _top(conn) != position(conn):
        mem = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        try:
            conn.backup(mem)
            return run(mem, now_ms, **filters)
        finally:
            mem.close()
    catch_up(conn)
    names = load_names(conn)
    query = plan(names, now_ms=now_ms, **filters)
    sql, params = query.sql()
    return finish(conn.execute(sql, params), names, query)
