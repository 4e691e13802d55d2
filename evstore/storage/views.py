"""Materialized views in SQLite: the ``state.Store`` protocol over tables.

The rules live in evstore/core/state/ (the fold in fold.py); this module only stores what they compute. It is fed
from the event log's ``on_apply`` hook inside the log's own transaction, so a view can never be
ahead of or behind its log, even across kill -9.

Tables (migrations m0003 and m0007): ``section_events`` (the register history: which applied
events wrote each (scope, section), see below), ``reg_winners`` (the write holding each
register), ``mode_sections`` (each section's value at each mode that defines it),
``effective`` (each machine's effective settings per section, with the mode and event they
come from) and ``superseded`` (concurrent changes that lost).

``section_events`` is keyed by ``(scope, section, clock, event)`` and holds nothing else: the
events that wrote a (scope, section), in clock order, so "the writes of a register between
two clocks" is one range of the key. What an event wrote there is a pure function of the
event (``state.pair_writes``), and the event is in ``events``, in the same database and the
same transaction: a history read joins the two and derives the writes (``_history``), and a
store remembers what it derived per event (events never change). History is read only when a
register's new winner has a base (the writes between the two, for ``superseded``), when a
removal moves a cutoff (every register of that origin again) and when ``clustercheck`` lists
superseded changes; a one-change commit writes one row of four short columns. Schema 6 copied
the writes into the row (500 bytes on average), and writing those copies was most of a full
rebuild (migration m0007). The store therefore needs each event it projects in ``events``
first, as the log guarantees.
"""

from __future__ import annotations

import importlib
import json
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from evstore.core import admit as admissibility
from evstore.core import encoding, events, state
from evstore.core.events import Event
from evstore.core.state import FieldWrite, Order, Reg, Write
from evstore.storage.connect import on_rollback, write_transaction_id

orjson: Any
try:  # an optional accelerator: the json module gives the same texts and values, slower
    orjson = importlib.import_module("orjson")
except ImportError:  # pragma: no cover - the tests run both ways by swapping the functions
    orjson = None

_COLS = "scope, section, field, event, clock, origin, seq, present, value, base, user, wall"
SECTION_COLS = "scope, section, clock, event"
_SECTION_INSERT = f"INSERT OR IGNORE INTO section_events ({SECTION_COLS}) VALUES (?,?,?,?)"
VIEW_TABLES = ("section_events", "reg_winners", "mode_sections", "effective", "superseded",
               "inadmissible", "authority_events")
_HISTORY = ("SELECT s.scope, s.section, e.clock, e.origin, e.id, e.seq, e.user, e.wall, e.kind,"
            " e.raw FROM section_events AS s JOIN events AS e ON e.id = s.event"
            " WHERE s.scope = ? AND s.section = ?")
Pair = tuple[str, str]
_DECODED_MAX = 4096  # events whose writes a store remembers (a few MiB at most)


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


def _base_text(b: Order | None) -> str | None:
    return None if b is None else canonical_text(list(b))


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
        self._decoded: dict[str, dict[Pair, dict[str, FieldWrite]]] = {}

    def add_writes(self, writes: list[Write]) -> None:
        self.conn.executemany(
            _SECTION_INSERT, sorted({(w.scope, w.section, w.order[0], w.event) for w in writes})
        )

    def _pairs_of(self, event: str, origin: str, kind: str, raw: bytes
                  ) -> dict[Pair, dict[str, FieldWrite]]:
        """What an event wrote, per (scope, section): derived once, then remembered."""
        got = self._decoded.get(event)
        if got is None:
            got = state.pair_writes(kind, event, origin, fast_loads(raw)["payload"])
            if len(self._decoded) >= _DECODED_MAX:
                self._decoded.clear()
            self._decoded[event] = got
        return got

    def _history(self, rows: Iterable[tuple[Any, ...]], only: str | None) -> list[Write]:
        """The writes of joined history rows (``_HISTORY``'s columns), to field ``only`` when
        given."""
        out = []
        for scope, section, clock, origin, event, seq, user, wall, kind, raw in rows:
            fields = self._pairs_of(event, origin, kind, raw).get((scope, section), {})
            order = (clock, origin, event)
            for fld, (present, value, base) in fields.items():
                if only is None or fld == only:
                    out.append(Write(scope, section, fld, present, value, order, seq, base, user,
                                     wall))
        return out

    def section_history(self, scope: str, section: str) -> list[Write]:
        return self._history(self.conn.execute(_HISTORY, (scope, section)), None)

    def writes_between(self, reg: Reg, lo: state.Order, hi: state.Order) -> list[Write]:
        cur = self.conn.execute(_HISTORY + " AND s.clock BETWEEN ? AND ?",
                                (reg[0], reg[1], lo[0], hi[0]))
        return [w for w in self._history(cur, reg[2]) if lo <= w.order <= hi]

    def winner_of(self, reg: Reg) -> Write | None:
        row = self.conn.execute(
            f"SELECT {_COLS} FROM reg_winners WHERE scope=? AND section=? AND field=?", reg
        ).fetchone()
        return _write(row) if row else None

    def regs_of_origin(self, origin: str) -> list[Reg]:
        """Every register the origin's events wrote (every event in ``events`` is projected)."""
        out: set[Reg] = set()
        cur = self.conn.execute("SELECT id, kind, raw FROM events WHERE origin = ?", (origin,))
        for event, kind, raw in cur:
            for (scope, section), fields in self._pairs_of(event, origin, kind, raw).items():
                out.update((scope, section, f) for f in fields)
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

    # ------------------------------------------------------------------ admissibility

    def remember(self, evs: list[Event]) -> None:
        return None  # the events are in ``events`` already (the log's transaction)

    def add_authority(self, evs: list[Event]) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO authority_events (clock, event) VALUES (?,?)",
            [(e.clock, e.id) for e in evs],
        )

    def authority(self) -> admissibility.Authority:
        key = self.conn.execute(
            "SELECT COUNT(*), MAX(clock), MAX(event), SUM(clock) FROM authority_events"
        ).fetchone()
        hit = _AUTHORITY.get(id(self.conn))
        if hit is not None and hit[0] is self.conn and hit[1] == key:
            return hit[2]
        cur = self.conn.execute(
            f"SELECT {_EVENT_COLS} FROM authority_events AS a JOIN events AS e ON e.id = a.event"
        )
        auth = admissibility.Authority(_stored_event(r) for r in cur)
        if len(_AUTHORITY) > 64:
            _AUTHORITY.clear()
        _AUTHORITY[id(self.conn)] = (self.conn, key, auth)
        return auth

    def set_verdict(self, event: Event, reason: str | None) -> None:
        if reason is None:
            self.conn.execute("DELETE FROM inadmissible WHERE event=?", (event.id,))
        else:
            self.conn.execute(
                "INSERT OR REPLACE INTO inadmissible (event, clock, reason) VALUES (?,?,?)",
                (event.id, event.clock, reason),
            )

    def verdict_of(self, event: str) -> str | None:
        row = self.conn.execute("SELECT reason FROM inadmissible WHERE event=?",
                                (event,)).fetchone()
        return None if row is None else str(row[0])

    def _known(self, ev: Event) -> bool:
        """Was ``ev`` fed to this store (a node's log may hold events out of its scope)?"""
        if self.conn.execute("SELECT 1 FROM inadmissible WHERE event=? UNION ALL "
                             "SELECT 1 FROM authority_events WHERE clock=? AND event=?",
                             (ev.id, ev.clock, ev.id)).fetchone():
            return True
        try:  # the pairs it wrote if it was applied (a malformed event wrote none)
            pairs = self._pairs_of(ev.id, ev.origin, ev.kind, ev.raw)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            pairs = {}
        for scope, section in pairs:
            return self.conn.execute(
                "SELECT 1 FROM section_events WHERE scope=? AND section=? AND clock=? AND event=?",
                (scope, section, ev.clock, ev.id)).fetchone() is not None
        return False

    def judged_after(self, order: Order) -> list[Event]:
        cur = self.conn.execute(
            f"SELECT {_EVENT_COLS} FROM events AS e WHERE clock >= ? ORDER BY clock, origin, id",
            (order[0],),
        )
        out = [_stored_event(r) for r in cur]
        return [e for e in out if e.order_key > order and self._known(e)]

    def retract(self, event: Event, regs: set[Reg]) -> None:
        self.conn.executemany(
            "DELETE FROM section_events WHERE scope=? AND section=? AND clock=? AND event=?",
            sorted({(r[0], r[1], event.clock, event.id) for r in regs}),
        )

    def invalid(self) -> dict[str, str]:
        return invalid(self.conn)

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
        """One register's write by one event: a key lookup in the history."""
        row = self.conn.execute(
            _HISTORY + " AND s.clock = (SELECT clock FROM events WHERE id = ?) AND s.event = ?",
            (scope, section, event, event),
        ).fetchone()
        got = self._history([row], fld) if row else []
        return got[0] if got else None

    def reset(self) -> None:
        """Forget every view (before a rebuild from the log)."""
        forget_structure(self.conn)
        for table in VIEW_TABLES:
            self.conn.execute(f"DELETE FROM {table}")


_AUTHORITY: dict[int, tuple[sqlite3.Connection, tuple[Any, ...], admissibility.Authority]] = {}
_EVENT_COLS = "e.id, e.origin, e.seq, e.prev, e.clock, e.wall, e.user, e.kind, e.raw, e.sig"


def _stored_event(r: tuple[Any, ...]) -> Event:
    return events.trusted(r[8], r[9], r[0])


def invalid(conn: sqlite3.Connection) -> dict[str, str]:
    """{event id: reason} of every inadmissible event the views hold."""
    cur = conn.execute("SELECT event, reason FROM inadmissible ORDER BY clock, event")
    return {e: r for e, r in cur}


def invalid_count(conn: sqlite3.Connection) -> int:
    """How many events the views refused as inadmissible (for ``status`` and metrics)."""
    try:
        return int(conn.execute("SELECT COUNT(*) FROM inadmissible").fetchone()[0])
    except sqlite3.OperationalError:  # a database older than schema 9
        return 0


def newest_invalid_wall(conn: sqlite3.Connection) -> int | None:
    """The wall time of the newest event the views refused as inadmissible (None: none)."""
    row = conn.execute("SELECT MAX(e.wall) FROM inadmissible AS i JOIN events "
                       "AS e ON e.id = i.event").fetchone()
    return None if row[0] is None else int(row[0])


def rejudge_marked(conn: sqlite3.Connection) -> bool:
    """Is the home marked (``meta``, schema 9) for one rebuild of its views under the
    admissibility rule? A database without ``meta`` raises ``sqlite3.OperationalError``."""
    return conn.execute("SELECT 1 FROM meta WHERE key = 'views_rejudge'").fetchone() is not None


def rejudge_done(conn: sqlite3.Connection) -> None:
    """Clear that mark (in the transaction that rebuilt the views)."""
    conn.execute("DELETE FROM meta WHERE key = 'views_rejudge'")


def on_apply(conn: sqlite3.Connection, events: list[Event]) -> None:
    """The event log's hook: project newly applied events, in the log's transaction."""
    state.apply(SqliteStore(conn), events)


def admit(conn: sqlite3.Connection, event: Event) -> bool | None:
    """The event log's membership seam (``EventLog(admit=...)``): see ``state.may_write``."""
    return state.may_write(structure(conn), event)


def keep_events(conn: sqlite3.Connection, evs: Iterable[Event]) -> None:
    """Put events in ``events`` as the log stores them, without the log's checks: for a
    store fed by hand (tests and benchmarks apply scenarios in orders a log would not), which
    derives history from ``events`` like any other. A node's log does this itself, in the
    transaction that projects the event. An event whose id or (origin, seq) is taken is
    skipped."""
    conn.executemany(
        "INSERT OR IGNORE INTO events (id, origin, seq, prev, clock, wall, user, kind, raw, sig,"
        " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
        [(e.id, e.origin, e.seq, e.prev, e.clock, e.wall, e.user, e.kind, e.raw, e.sig)
         for e in evs],
    )
