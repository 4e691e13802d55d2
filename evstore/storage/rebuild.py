"""Rebuild the materialized views from a whole log in one pass: fold in memory, write once.

``state.apply`` is built for the incremental case: for every register an event touches it
reads back all of that register's writes from ``reg_writes``, and it refreshes the effective
settings of every machine the change may reach. Replaying a long log through it repeats that
work per batch. A rebuild knows every event up front, so it can do each step once:

1. **fold**: ``state.writes_of`` of every event, grouped by register in memory. As in
   ``SqliteStore.add_writes`` (``INSERT OR REPLACE`` on ``(register, event)``), the last write
   of an event to a register is kept (a later change of one commit overrides an earlier one)
   and a repeat of the same event writes the same values again: a no-op.
2. **resolve**, with the public pure rules of ``evstore.core.state`` and nothing else: the
   ``@cutoff`` winners give the cutoffs; ``state.winner`` and ``state.superseded`` of every
   register under those cutoffs; ``state.materialize`` and ``state.last_event`` of every
   (mode, section) pair; ``state.structure_from`` of the structure winners, then
   ``state.resolve`` of every catalog section of every member machine.
3. **write**: the five view tables are emptied and filled, inside one transaction (a
   savepoint when the caller already holds one, e.g. the log's ``also`` hook).

Why it equals the incremental path: a register's winner is a maximum over the set of its
writes and the cutoffs are a maximum too, so both depend only on the set of events, which is
exactly what ``state.apply`` guarantees for any order and batching; ``apply`` recomputes
every register it touches (and every register of an origin whose cutoff moved), every pair
of those registers, and, whenever a structure register changes, every machine's effective
settings. After the last event, each of these equals the value computed here from scratch.
tests/storage/test_rebuild.py checks the tables are byte-identical.

Rows are written in the exact format of ``SqliteStore`` (storage/views.py): canonical JSON
text. ``canonical_text`` gets it from the C ``json`` encoder and falls back to
``encoding.encode`` whenever that encoder escaped anything, the only place the two differ
for values decoded from canonical events.

Events are read as stored (``stored_events``): their signatures, ids and canonical form were
checked when they entered the log and are not checked again (``EventLog.verify`` does that).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from evstore.core import catalog, encoding, state
from evstore.core.events import Event
from evstore.core.state import Reg, Write
from evstore.storage.connect import transaction
from evstore.storage.views import SqliteStore

_WRITE_COLS = "scope, section, field, event, clock, origin, seq, present, value, base, user, wall"
_WRITE_MARKS = ",".join("?" * 12)
_EVENT_COLS = "id, origin, seq, prev, clock, wall, user, kind, raw, sig"
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


def canonical_text(value: Any) -> str:
    """``encoding.encode(value).decode()`` for a value decoded from canonical bytes, faster.

    ``json.dumps`` with sorted keys and no spaces writes the same text unless it had to
    escape a character (it writes ``\\n`` where the canonical form writes ``\\u000a``): any
    backslash sends the value to the canonical encoder.
    """
    text = _JSON(value)
    if "\\" in text:
        return encoding.encode(value).decode()
    return text


def stored_events(conn: sqlite3.Connection) -> Iterator[Event]:
    """Every applied event as stored, in insertion order, without re-verification."""
    cur = conn.execute(f"SELECT {_EVENT_COLS} FROM events ORDER BY rowid")
    for event_id, origin, seq, prev, clock, wall, user, kind, raw, sig in cur:
        payload = json.loads(raw)["payload"]
        yield Event(raw, sig, event_id, origin, seq, prev, clock, wall, user, kind, payload)


# ---------------------------------------------------------------------- 1. fold


@dataclass
class Fold:
    """Every register's writes, by event id (last write of an event to a register kept)."""

    regs: dict[Reg, dict[str, Write]] = field(default_factory=dict)
    events: int = 0
    writes: int = 0

    def add(self, events: Iterable[Event]) -> Fold:
        regs = self.regs
        for ev in events:
            self.events += 1
            for w in state.writes_of(ev):
                per = regs.get(w.reg)
                if per is None:
                    regs[w.reg] = {ev.id: w}
                    self.writes += 1
                else:
                    self.writes += ev.id not in per
                    per[ev.id] = w
        return self


def fold(events: Iterable[Event]) -> Fold:
    return Fold().add(events)


# ---------------------------------------------------------------------- 2. resolve


@dataclass
class Views:
    """The content of the view tables, computed in memory."""

    winners: dict[Reg, Write]
    sections: dict[tuple[str, str], tuple[dict[str, Any], str | None]]
    effective: list[tuple[str, str, dict[str, Any], str, str | None]]
    superseded: list[tuple[str, str, str, str, str]]


class _Indexed(state.MemoryStore):
    """A MemoryStore whose ``winners_of`` is a lookup, for ``state.resolve`` over many machines."""

    def __init__(self, by_pair: dict[tuple[str, str], dict[str, Write]],
                 sections: dict[tuple[str, str], tuple[dict[str, Any], str | None]]) -> None:
        super().__init__(sections=sections)
        self.by_pair = by_pair

    def winners_of(self, scope: str, section: str) -> dict[str, Write]:
        return self.by_pair.get((scope, section), {})


def _cutoffs(regs: dict[Reg, dict[str, Write]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for reg, ws in regs.items():
        if reg[1] == state.CUTOFF:
            win = state.winner(ws.values(), {})
            if win is not None:
                out[reg[0].removeprefix("origin:")] = int(win.value)
    return out


def _registers(regs: dict[Reg, dict[str, Write]], cutoffs: dict[str, int]) -> tuple[
    dict[Reg, Write], list[tuple[str, str, str, str, str]]
]:
    winners: dict[Reg, Write] = {}
    lost: list[tuple[str, str, str, str, str]] = []
    for reg, per in regs.items():
        ws = list(per.values())
        win = state.winner(ws, cutoffs)
        if win is None:
            continue
        winners[reg] = win
        if reg[1] not in (state.CUTOFF, state.IGNORED):
            lost.extend((*reg, x.event, win.event) for x in state.superseded(ws, win, cutoffs))
    return winners, lost


def _by_pair(winners: dict[Reg, Write]) -> dict[tuple[str, str], dict[str, Write]]:
    out: dict[tuple[str, str], dict[str, Write]] = {}
    for (scope, section, fld), w in winners.items():
        out.setdefault((scope, section), {})[fld] = w
    return out


def _sections(by_pair: dict[tuple[str, str], dict[str, Write]]) -> dict[
    tuple[str, str], tuple[dict[str, Any], str | None]
]:
    out: dict[tuple[str, str], tuple[dict[str, Any], str | None]] = {}
    for (mode, section), wins in by_pair.items():
        if section.startswith("@"):
            continue
        value = state.materialize(section, wins)
        if value is not None:
            out[(mode, section)] = (value, state.last_event(wins))
    return out


def _effective(store: _Indexed, st: state.Structure) -> list[
    tuple[str, str, dict[str, Any], str, str | None]
]:
    members = {m.mid for m in st.members()}
    out = []
    for mid in sorted(st.machines):
        if mid not in members:
            continue
        for section in sorted(catalog.SECTIONS):
            value, source, event = state.resolve(store, st, mid, section)
            out.append((mid, section, value, source, event))
    return out


def resolve(folded: Fold) -> Views:
    """Compute every view from the folded writes, with the rules of ``evstore.core.state``."""
    cutoffs = _cutoffs(folded.regs)
    winners, lost = _registers(folded.regs, cutoffs)
    by_pair = _by_pair(winners)
    sections = _sections(by_pair)
    st = state.structure_from(
        w for reg, w in sorted(winners.items()) if reg[1] == state.STRUCT
    )
    effective = _effective(_Indexed(by_pair, sections), st)
    return Views(winners, sections, effective, lost)


# ---------------------------------------------------------------------- 3. write


class _Rows:
    """Rows in ``SqliteStore``'s format; the text of a base, shared by an event's writes, once."""

    def __init__(self) -> None:
        self.bases: dict[tuple[int, str, str], str] = {}

    def base(self, b: tuple[int, str, str] | None) -> str | None:
        if b is None:
            return None
        text = self.bases.get(b)
        if text is None:
            text = self.bases[b] = canonical_text(list(b))
        return text

    def row(self, w: Write) -> tuple[Any, ...]:
        v = w.value
        value = "true" if v is True else "null" if v is None else canonical_text(v)
        clock, origin, event = w.order
        return (w.scope, w.section, w.field, event, clock, origin, w.seq, int(w.present),
                value, self.base(w.base), w.user, w.wall)


def _write_rows(regs: dict[Reg, dict[str, Write]], rows: _Rows) -> Iterator[tuple[Any, ...]]:
    """``reg_writes`` rows in primary-key order, so the B-tree is filled front to back."""
    for reg in sorted(regs):
        per = regs[reg]
        for event_id in sorted(per):
            yield rows.row(per[event_id])


def write(conn: sqlite3.Connection, folded: Fold, views: Views) -> None:
    """Replace the five view tables with ``views`` (and ``folded``'s writes)."""
    rows = _Rows()
    with transaction(conn):
        SqliteStore(conn).reset()
        conn.executemany(f"INSERT INTO reg_writes ({_WRITE_COLS}) VALUES ({_WRITE_MARKS})",
                         _write_rows(folded.regs, rows))
        conn.executemany(f"INSERT INTO reg_winners ({_WRITE_COLS}) VALUES ({_WRITE_MARKS})",
                         (rows.row(w) for _, w in sorted(views.winners.items())))
        conn.executemany(
            "INSERT INTO mode_sections (mode, section, value, event) VALUES (?,?,?,?)",
            ((m, s, canonical_text(v), e) for (m, s), (v, e) in sorted(views.sections.items())),
        )
        conn.executemany(
            "INSERT INTO effective (machine, section, value, source, event) VALUES (?,?,?,?,?)",
            ((m, s, canonical_text(v), src, e) for m, s, v, src, e in views.effective),
        )
        conn.executemany(
            "INSERT INTO superseded (scope, section, field, loser, winner) VALUES (?,?,?,?,?)",
            sorted(views.superseded),
        )


def rebuild(conn: sqlite3.Connection, events: Iterable[Event]) -> Views:
    """Replace every view with the projection of ``events`` (see the module docstring)."""
    folded = fold(events)
    views = resolve(folded)
    write(conn, folded, views)
    return views
