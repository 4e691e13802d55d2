"""Materialized views in SQLite: the ``state.Store`` protocol over tables.

The rules live in evstore/core/state.py; this module only stores what they compute. It is fed
from the event log's ``on_apply`` hook inside the log's own transaction, so a view can never be
ahead of or behind its log, even across kill -9.

Tables (migration m0003): ``reg_writes`` (every register write of every applied event),
``reg_winners`` (the write holding each register), ``mode_sections`` (each section's value at
each mode that defines it), ``effective`` (each machine's effective settings per section, with
the mode and event they come from) and ``superseded`` (concurrent changes that lost).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from evstore.core import encoding, state
from evstore.core.events import Event
from evstore.core.state import Reg, Write
from evstore.storage.connect import on_rollback

_COLS = "scope, section, field, event, clock, origin, seq, present, value, base, user, wall"


def _row(w: Write) -> tuple[Any, ...]:
    return (
        w.scope, w.section, w.field, w.event, w.order[0], w.origin, w.seq, int(w.present),
        encoding.encode(w.value).decode(), encoding.encode(list(w.base)).decode() if w.base else None,
        w.user, w.wall,
    )


def _write(r: sqlite3.Row | tuple[Any, ...]) -> Write:
    scope, section, fld, event, clock, origin, seq, present, value, base, user, wall = r
    b = encoding.loads_json(base) if base else None
    return Write(
        scope, section, fld, bool(present), encoding.loads_json(value),
        (clock, origin, event), seq, (b[0], b[1], b[2]) if b else None, user, wall,
    )


def _dump(v: Any) -> str:
    return encoding.encode(v).decode()


# The structure (cluster, groups, machines) is read on every admit and every projection; it
# changes rarely. It is cached per connection and dropped when this connection writes a
# structure register or rolls back, or when another connection commits (data_version).
_STRUCT: dict[int, tuple[sqlite3.Connection, int, int, state.Structure]] = {}
_GEN: dict[int, int] = {}


def forget_structure(conn: sqlite3.Connection) -> None:
    _GEN[id(conn)] = _GEN.get(id(conn), 0) + 1


on_rollback(forget_structure)


def structure(conn: sqlite3.Connection) -> state.Structure:
    """The current structure, from the cache when nothing has changed it."""
    dv = conn.execute("PRAGMA data_version").fetchone()[0]
    gen = _GEN.get(id(conn), 0)
    hit = _STRUCT.get(id(conn))
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
        self.conn.executemany(
            f"INSERT OR REPLACE INTO reg_writes ({_COLS}) VALUES ({','.join('?' * 12)})",
            [_row(w) for w in writes],
        )

    def writes_for(self, reg: Reg) -> list[Write]:
        cur = self.conn.execute(
            f"SELECT {_COLS} FROM reg_writes WHERE scope=? AND section=? AND field=?", reg
        )
        return [_write(r) for r in cur]

    def writes_between(self, reg: Reg, lo: state.Order, hi: state.Order) -> list[Write]:
        cur = self.conn.execute(
            f"SELECT {_COLS} FROM reg_writes WHERE scope=? AND section=? AND field=?"
            " AND clock BETWEEN ? AND ?", (*reg, lo[0], hi[0]),
        )
        return [w for w in map(_write, cur) if lo <= w.order <= hi]

    def winner_of(self, reg: Reg) -> Write | None:
        row = self.conn.execute(
            f"SELECT {_COLS} FROM reg_winners WHERE scope=? AND section=? AND field=?", reg
        ).fetchone()
        return _write(row) if row else None

    def regs_of_origin(self, origin: str) -> list[Reg]:
        cur = self.conn.execute(
            "SELECT DISTINCT scope, section, field FROM reg_writes WHERE origin=? ORDER BY 1,2,3",
            (origin,),
        )
        return [(a, b, c) for a, b, c in cur]

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
                f"INSERT INTO reg_winners ({_COLS}) VALUES ({','.join('?' * 12)})", _row(w)
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
        return encoding.loads_json(row[0]) if row else None

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
        return {s: (encoding.loads_json(v), src, ev) for s, v, src, ev in cur}

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
        row = self.conn.execute(
            f"SELECT {_COLS} FROM reg_writes WHERE scope=? AND section=? AND field=? AND event=?",
            (scope, section, fld, event),
        ).fetchone()
        return _write(row) if row else None

    def reset(self) -> None:
        """Forget every view (before a rebuild from the log)."""
        forget_structure(self.conn)
        for table in ("reg_writes", "reg_winners", "mode_sections", "effective", "superseded"):
            self.conn.execute(f"DELETE FROM {table}")


def on_apply(conn: sqlite3.Connection, events: list[Event]) -> None:
    """The event log's hook: project newly applied events, in the log's transaction."""
    state.apply(SqliteStore(conn), events)


def admit(conn: sqlite3.Connection, event: Event) -> bool | None:
    """The event log's membership seam (``EventLog(admit=...)``): see ``state.may_write``."""
    return state.may_write(structure(conn), event)
