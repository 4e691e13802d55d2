"""Materialized views in SQLite: the ``state.Store`` protocol over tables.

The rules live in evstore/core/state.py; this module only stores what they compute. It is fed
from the event log's ``on_apply`` hook inside the log's own transaction, so a view can never be
ahead of or behind its log, even across kill -9.

Tables (migrations m0003 and m0006): ``section_writes`` (the register writes of every applied
event, one row per event and (scope, section): see below), ``origin_sections`` (the
(scope, section) pairs each origin wrote, where the registers to recompute are found when a
removal's cutoff moves), ``reg_winners`` (the write holding each register), ``mode_sections``
(each section's value at each mode that defines it), ``effective`` (each machine's effective
settings per section, with the mode and event they come from) and ``superseded`` (concurrent
changes that lost).

``section_writes`` holds, per event and (scope, section), the last write of that event to
each field, keyed by ``(scope, section, clock, origin, event)``: the registers' total order
within a section, so "the writes of a register between two orders" is one range of the key.
Everything else is in one column, ``writes``, the canonical JSON (core/encoding.py) of
``[seq, user, wall, base, sets, unsets, bases]``: ``sets`` maps each field written as
present to its value, ``unsets`` lists the fields written as absent, ``base`` is the base of
the first field (in sorted order) and ``bases`` maps the fields whose base differs from it
(two changes of one section in one commit) to theirs. Why this shape: a full rebuild
(storage/rebuild.py) writes this table and little else, and SQLite's cost per row grows with
the number of columns more than with their bytes; a one-change commit is one row of six
columns, where a row per register write took 2.3 rows of twelve columns in four B-trees
(migration m0006).
"""

from __future__ import annotations

import importlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from evstore.core import encoding, state
from evstore.core.events import Event
from evstore.core.state import FieldWrite, Order, Reg, Write
from evstore.storage.connect import on_rollback, write_transaction_id

orjson: Any
try:  # an optional accelerator: the json module gives the same texts and values, slower
    orjson = importlib.import_module("orjson")
except ImportError:  # pragma: no cover - the tests run both ways by swapping the functions
    orjson = None

_COLS = "scope, section, field, event, clock, origin, seq, present, value, base, user, wall"
SECTION_COLS = "scope, section, clock, origin, event, writes"
SECTION_INSERT = f"INSERT INTO section_writes ({SECTION_COLS}) VALUES (?,?,?,?,?,?)"
_SECTION_UPSERT = SECTION_INSERT.replace("INSERT", "INSERT OR REPLACE", 1)
VIEW_TABLES = ("section_writes", "origin_sections", "reg_winners", "mode_sections", "effective",
               "superseded")
_ORIGIN_INSERT = "INSERT OR IGNORE INTO origin_sections (origin, scope, section) VALUES (?,?,?)"


# ---------------------------------------------------------------------- canonical JSON text


def _json_module_text() -> Callable[[Any], str]:
    return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


def _orjson_text() -> Callable[[Any], str]:
    dumps, sort = orjson.dumps, orjson.OPT_SORT_KEYS

    def text(value: Any) -> str:
        out: bytes = dumps(value, option=sort)
        return out.decode()

    return text


_FAST_TEXT = _json_module_text() if orjson is None else _orjson_text()
fast_loads: Callable[[str | bytes], Any] = json.loads if orjson is None else orjson.loads
"""Parse JSON text this program wrote or verified as canonical (no float or duplicate checks)."""


def canonical_text(value: Any) -> str:
    """``encoding.encode(value).decode()`` for a value decoded from canonical bytes, faster.

    Only for such values (every value the views hold comes from an event or the catalog):
    a float or an integer past 64 bits, which ``encode`` refuses, would be written here.

    orjson and the json module (sorted keys, no spaces, raw UTF-8) write the canonical text
    unless they had to escape a character (they write ``\\n`` where the canonical form writes
    ``\\u000a``): any backslash sends the value to the canonical encoder. Keys are sorted by
    code point, which is the UTF-8 byte order of the canonical form.
    """
    try:
        text = _FAST_TEXT(value)
    except (TypeError, ValueError, OverflowError):  # not a JSON value: let encode say why
        return encoding.encode(value).decode()
    if "\\" in text:
        return encoding.encode(value).decode()
    return text


def _listed(b: Order | None) -> list[Any] | None:
    return None if b is None else list(b)


def _base_text(b: Order | None) -> str | None:
    return None if b is None else canonical_text(list(b))


# ---------------------------------------------------------------------- section rows


def section_row(scope: str, section: str, order: Order, seq: int, user: str, wall: int,
                fields: Mapping[str, FieldWrite]) -> tuple[Any, ...]:
    """The ``section_writes`` row of one event's writes to one (scope, section)."""
    names = sorted(fields)
    base = fields[names[0]][2]
    sets: dict[str, Any] = {}
    unsets: list[str] = []
    bases: dict[str, list[Any] | None] = {}
    for f in names:
        present, value, b = fields[f]
        if present:
            sets[f] = value
        else:
            unsets.append(f)
        if b != base:
            bases[f] = _listed(b)
    clock, origin, event = order
    return (scope, section, clock, origin, event,
            canonical_text([seq, user, wall, _listed(base), sets, unsets, bases]))


def _order(raw: Any) -> Order | None:
    return None if raw is None else (raw[0], raw[1], raw[2])


def row_writes(row: tuple[Any, ...], only: str | None = None) -> list[Write]:
    """The writes a ``section_writes`` row holds (those to field ``only``, when given)."""
    scope, section, clock, origin, event, writes = row
    seq, user, wall, base, sets, unsets, bases = fast_loads(writes)
    order = (clock, origin, event)
    row_base = _order(base)
    out = []
    for fld, present, value in [*((f, True, v) for f, v in sets.items()),
                                *((f, False, None) for f in unsets)]:
        if only is not None and fld != only:
            continue
        b = _order(bases[fld]) if fld in bases else row_base
        out.append(Write(scope, section, fld, present, value, order, seq, b, user, wall))
    return out


def row_fields(writes: str) -> list[str]:
    """The fields a ``section_writes`` row wrote."""
    _, _, _, _, sets, unsets, _ = fast_loads(writes)
    return [*sets, *unsets]


def section_rows(writes: Iterable[Write]) -> list[tuple[Any, ...]]:
    """``section_writes`` rows of some writes: per event and (scope, section), the last write
    of that event to each field counts, as ``INSERT OR REPLACE`` per register used to."""
    groups: dict[tuple[str, str, str], tuple[Write, dict[str, FieldWrite]]] = {}
    for w in writes:
        key = (w.scope, w.section, w.event)
        got = groups.get(key)
        if got is None:
            got = groups[key] = (w, {})
        got[1][w.field] = (w.present, w.value, w.base)
    return [section_row(w.scope, w.section, w.order, w.seq, w.user, w.wall, fields)
            for w, fields in groups.values()]


# ---------------------------------------------------------------------- winner rows


def write_row(w: Write) -> tuple[Any, ...]:
    """The ``reg_winners`` row of a write."""
    return (
        w.scope, w.section, w.field, w.event, w.order[0], w.origin, w.seq, int(w.present),
        canonical_text(w.value), _base_text(w.base), w.user, w.wall,
    )


def _write(r: sqlite3.Row | tuple[Any, ...]) -> Write:
    scope, section, fld, event, clock, origin, seq, present, value, base, user, wall = r
    b = fast_loads(base) if base else None
    return Write(
        scope, section, fld, bool(present), fast_loads(value),
        (clock, origin, event), seq, (b[0], b[1], b[2]) if b else None, user, wall,
    )


def _dump(v: Any) -> str:
    return canonical_text(v)


# The structure (cluster, groups, machines) is read on every admit and every projection; it
# changes rarely. It is cached per connection and dropped when this connection writes a
# structure register or rolls back, or when another connection commits (data_version).
_STRUCT: dict[int, tuple[sqlite3.Connection, int, int, state.Structure]] = {}
_GEN: dict[int, int] = {}
_CHECKED_IN: dict[int, int | None] = {}  # the write transaction the cache was last checked in


def forget_structure(conn: sqlite3.Connection) -> None:
    _GEN[id(conn)] = _GEN.get(id(conn), 0) + 1


on_rollback(forget_structure)


def structure(conn: sqlite3.Connection) -> state.Structure:
    """The current structure, from the cache when nothing has changed it."""
    gen = _GEN.get(id(conn), 0)
    hit = _STRUCT.get(id(conn))
    tx = write_transaction_id(conn)
    if hit is not None and hit[0] is conn and hit[2] == gen and tx is not None and \
            _CHECKED_IN.get(id(conn)) == tx:
        return hit[3]  # checked earlier in this write transaction: nobody else can commit
    dv = conn.execute("PRAGMA data_version").fetchone()[0]
    _CHECKED_IN[id(conn)] = tx
    if hit is not None and hit[0] is conn and hit[1] == dv and hit[2] == gen:
        return hit[3]
    st = state.structure_from(SqliteStore(conn).structure_winners())
    if len(_STRUCT) > 64:
        _STRUCT.clear()
    _STRUCT[id(conn)] = (conn, dv, gen, st)
    return st


class SqliteStore:
    """``state.Store`` over one connection; every call runs inside the caller's transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def add_writes(self, writes: list[Write]) -> None:
        self.conn.executemany(_SECTION_UPSERT, section_rows(writes))
        self.conn.executemany(_ORIGIN_INSERT, sorted({(w.origin, w.scope, w.section) for w in writes}))

    def writes_for(self, reg: Reg) -> list[Write]:
        cur = self.conn.execute(
            f"SELECT {SECTION_COLS} FROM section_writes WHERE scope=? AND section=?", reg[:2]
        )
        return [w for row in cur for w in row_writes(row, reg[2])]

    def writes_between(self, reg: Reg, lo: state.Order, hi: state.Order) -> list[Write]:
        cur = self.conn.execute(
            f"SELECT {SECTION_COLS} FROM section_writes WHERE scope=? AND section=?"
            " AND clock BETWEEN ? AND ?", (reg[0], reg[1], lo[0], hi[0]),
        )
        return [w for row in cur for w in row_writes(row, reg[2]) if lo <= w.order <= hi]

    def winner_of(self, reg: Reg) -> Write | None:
        row = self.conn.execute(
            f"SELECT {_COLS} FROM reg_winners WHERE scope=? AND section=? AND field=?", reg
        ).fetchone()
        return _write(row) if row else None

    def regs_of_origin(self, origin: str) -> list[Reg]:
        pairs = self.conn.execute(
            "SELECT scope, section FROM origin_sections WHERE origin=?", (origin,)
        ).fetchall()
        out: set[Reg] = set()
        for scope, section in pairs:
            cur = self.conn.execute(
                "SELECT writes FROM section_writes WHERE scope=? AND section=? AND origin=?",
                (scope, section, origin),
            )
            for (writes,) in cur:
                out.update((scope, section, f) for f in row_fields(writes))
        return sorted(out)

    def cutoffs(self) -> dict[str, int]:
        cur = self.conn.execute(
            "SELECT scope, value FROM reg_winners WHERE section=?", (state.CUTOFF,)
        )
        return {scope.removeprefix("origin:"): int(value) for scope, value in cur}

    def set_winner(self, reg: Reg, w: Write | None) -> None:
        if reg[1] == state.STRUCT:
            forget_structure(self.conn)
        self.conn.execute(
            "DELETE FROM reg_winners WHERE scope=? AND section=? AND field=?", reg
        )
        if w is not None:
            self.conn.execute(
                f"INSERT INTO reg_winners ({_COLS}) VALUES ({','.join('?' * 12)})", write_row(w)
            )

    def winners_of(self, scope: str, section: str) -> dict[str, Write]:
        cur = self.conn.execute(
            f"SELECT {_COLS} FROM reg_winners WHERE scope=? AND section=?", (scope, section)
        )
        return {w.field: w for w in map(_write, cur)}

    def structure(self) -> state.Structure:
        return structure(self.conn)

    def structure_winners(self) -> list[Write]:
        cur = self.conn.execute(
            f"SELECT {_COLS} FROM reg_winners WHERE section=? ORDER BY scope, field",
            (state.STRUCT,),
        )
        return [_write(r) for r in cur]

    def set_section(self, mode: str, section: str, value: dict[str, Any] | None,
                    event: str | None) -> None:
        self.conn.execute("DELETE FROM mode_sections WHERE mode=? AND section=?", (mode, section))
        if value is not None:
            self.conn.execute(
                "INSERT INTO mode_sections (mode, section, value, event) VALUES (?,?,?,?)",
                (mode, section, _dump(value), event),
            )

    def section_value(self, mode: str, section: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT value FROM mode_sections WHERE mode=? AND section=?", (mode, section)
        ).fetchone()
        return fast_loads(row[0]) if row else None

    def defined_sections(self) -> list[tuple[str, str]]:
        cur = self.conn.execute("SELECT mode, section FROM mode_sections ORDER BY 1, 2")
        return [(a, b) for a, b in cur]

    def set_effective(self, mid: str, section: str, value: dict[str, Any] | None,
                      source: str, event: str | None) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO effective (machine, section, value, source, event)"
            " VALUES (?,?,?,?,?)",
            (mid, section, _dump(value), source, event),
        )

    def clear_effective(self, mid: str) -> None:
        self.conn.execute("DELETE FROM effective WHERE machine=?", (mid,))

    def set_superseded(self, reg: Reg, losers: list[Write], win: Write | None) -> None:
        self.conn.execute(
            "DELETE FROM superseded WHERE scope=? AND section=? AND field=?", reg
        )
        if win is None:
            return
        self.conn.executemany(
            "INSERT INTO superseded (scope, section, field, loser, winner) VALUES (?,?,?,?,?)",
            [(*reg, x.event, win.event) for x in losers],
        )

    def ignored(self) -> set[str]:
        cur = self.conn.execute(
            "SELECT field FROM reg_winners WHERE scope=?", (state.IGNORED,)
        )
        return {r[0] for r in cur}

    # ------------------------------------------------------------------ reads for the ops layer

    def effective_of(self, mid: str) -> dict[str, tuple[dict[str, Any], str, str | None]]:
        cur = self.conn.execute(
            "SELECT section, value, source, event FROM effective WHERE machine=? ORDER BY 1",
            (mid,),
        )
        return {s: (fast_loads(v), src, ev) for s, v, src, ev in cur}

    def superseded_rows(self) -> list[tuple[Reg, Write, Write]]:
        """Each superseded write with the write that beat it, oldest first."""
        out = []
        cur = self.conn.execute(
            "SELECT scope, section, field, loser, winner FROM superseded ORDER BY 1, 2, 3, 4"
        )
        for scope, section, fld, loser, win in cur.fetchall():
            lw = self._one(scope, section, fld, loser)
            ww = self._one(scope, section, fld, win)
            if lw and ww:
                out.append(((scope, section, fld), lw, ww))
        return out

    def _one(self, scope: str, section: str, fld: str, event: str) -> Write | None:
        """One register's write by one event. The log gives the event's clock, so this is a
        key lookup; an event missing from the log (a bare store) costs a scan of the pair."""
        row = self.conn.execute(
            f"SELECT {SECTION_COLS} FROM section_writes WHERE scope=? AND section=?"
            " AND clock=(SELECT clock FROM events WHERE id=?) AND event=?",
            (scope, section, event, event),
        ).fetchone() or self.conn.execute(
            f"SELECT {SECTION_COLS} FROM section_writes WHERE scope=? AND section=? AND event=?",
            (scope, section, event),
        ).fetchone()
        got = row_writes(row, fld) if row else []
        return got[0] if got else None

    def reset(self) -> None:
        """Forget every view (before a rebuild from the log)."""
        forget_structure(self.conn)
        for table in VIEW_TABLES:
            self.conn.execute(f"DELETE FROM {table}")


def on_apply(conn: sqlite3.Connection, events: list[Event]) -> None:
    """The event log's hook: project newly applied events, in the log's transaction."""
    state.apply(SqliteStore(conn), events)


def admit(conn: sqlite3.Connection, event: Event) -> bool | None:
    """The event log's membership seam (``EventLog(admit=...)``): see ``state.may_write``."""
    return state.may_write(structure(conn), event)
