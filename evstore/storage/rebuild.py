"""Rebuild the materialized views from a whole log in one pass: fold in memory, write once.

``state.apply`` is built for the incremental case: for every register an event touches it
reads back that register's stored writes, and it refreshes the effective settings of every
machine the change may reach. Replaying a long log through it repeats that work per batch. A
rebuild knows every event up front, so it can do each step once:

1. **fold**: ``state.pair_writes`` of every event (what ``state.writes_of`` is made of,
   grouped per (scope, section) with the last write of the event to each field, without an
   ``Event`` or a ``Write`` object per write), turned at once into that event's
   ``section_writes`` row by ``views.section_row``, the function ``SqliteStore.add_writes``
   uses. A repeat of an event gives the same row again, a no-op.
2. **resolve**, with the public pure rules of ``evstore.core.state`` and nothing else: the
   ``@cutoff`` winners give the cutoffs; ``state.winner`` and ``state.superseded`` of every
   register under those cutoffs; ``state.materialize`` and ``state.last_event`` of every
   (mode, section) pair; ``state.structure_from`` of the structure winners, then
   ``state.resolve`` of every catalog section of every member machine. A register's rows are
   in order, so ``winner`` is given the newest write that counts, and ``superseded`` the
   writes between the winner's base and the winner: the only ones either rule can pick, so
   the result is what they give over all the writes. Only these writes are decoded back
   from their rows (``views.row_writes``).
3. **write**: the view tables are emptied and filled in key order, inside one transaction (a
   savepoint when the caller already holds one, e.g. the log's ``also`` hook).

Why it equals the incremental path: a register's winner is a maximum over the set of its
writes and the cutoffs are a maximum too, so both depend only on the set of events, which is
exactly what ``state.apply`` guarantees for any order and batching; ``apply`` recomputes
every register it touches (and every register of an origin whose cutoff moved), every pair
of those registers, and, whenever a structure register changes, every machine's effective
settings. After the last event, each of these equals the value computed here from scratch.
tests/storage/test_rebuild.py checks the tables are byte-identical.

``rebuild_stored`` reads the log itself, inside one ``BEGIN IMMEDIATE`` transaction (no event
can be added between the read and the write), and parses the canonical bytes with the fast
parser (orjson when installed, else the json module: the same values). Events are read as
stored: their signatures, ids and canonical form were checked when they entered the log and
are not checked again (``EventLog.verify`` does that). The cyclic garbage collector is paused
while a fold holds millions of young objects (it would traverse them again and again to find
no garbage) and restored afterwards.

**On two cores** (``rebuild_stored`` on a large log in a file, with a core to spare): a
worker process (``_serve``, started with this interpreter) folds the events of the origins
from ``K`` on, through its own read-only connection, which sees exactly the log this one
does (the write lock is held from before either reads, and nothing is uncommitted); this
process folds the others. ``K`` is the origin that splits the log's events about in half.
Every register may have writes on both sides, so the halves are resolved together with the
same rules, exchanging only a few values per register: each side's ``@cutoff`` writes (the
cutoffs count everywhere), each side's newest counting write of every register (the winner
is ``state.winner`` over the two), and, for each winner with a base, the writes of each side
between that base and the winner (``state.superseded`` over both). This side writes its rows
while the worker puts its rows in an SQLite database image, which this side then copies in
(``INSERT ... SELECT``: SQLite orders them). Splitting by origin, a machine's own settings
come from one side, so the two sides' rows interleave only in shared sections. The tables
are the same as on one core, byte for byte: the same functions make every row and every
winner. If the worker cannot start or fails, the rebuild runs again on one core.
"""

from __future__ import annotations

import gc
import marshal
import os
import sqlite3
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import quote

from evstore.core import catalog, state
from evstore.core.events import Event
from evstore.core.state import Order, Reg, Write
from evstore.storage import views
from evstore.storage.connect import transaction
from evstore.storage.views import canonical_text

__all__ = ["Fold", "Views", "canonical_text", "fold", "fold_stored", "rebuild", "rebuild_stored",
           "resolve", "stored_events", "write"]

SPLIT_MIN_EVENTS = 50_000  # below this, starting a worker costs more than it saves
_WRITE_COLS = "scope, section, field, event, clock, origin, seq, present, value, base, user, wall"
_EVENT_COLS = "id, origin, seq, prev, clock, wall, user, kind, raw, sig"
_SECTION_INSERT = views.SECTION_INSERT
_PART = "evstore_rebuild_part"

Row = tuple[Any, ...]
Entry = tuple[Order, Row, tuple[str, ...]]
"""One event's writes to one (scope, section): its order, ``section_writes`` row and fields
(led by the order, so a list of entries sorts in the registers' order)."""
Pair = tuple[str, str]
Ordered = list[tuple[Pair, list[Entry]]]
Lost = tuple[str, str, str, str, str]
Phase = Callable[[str], None]
"""Told the name of each phase as it starts, and "done" at the end (the benchmark times them)."""


def _no_phase(name: str) -> None:
    return None


@contextmanager
def _gc_paused() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def stored_events(conn: sqlite3.Connection) -> Iterator[Event]:
    """Every applied event as stored, in insertion order, without re-verification."""
    loads = views.fast_loads
    cur = conn.execute(f"SELECT {_EVENT_COLS} FROM events ORDER BY rowid")
    for event_id, origin, seq, prev, clock, wall, user, kind, raw, sig in cur:
        payload = loads(raw)["payload"]
        yield Event(raw, sig, event_id, origin, seq, prev, clock, wall, user, kind, payload)


# ---------------------------------------------------------------------- 1. fold


@dataclass
class Fold:
    """Every event's ``section_writes`` rows, per (scope, section) and event id."""

    pairs: dict[Pair, dict[str, Entry]] = field(default_factory=dict)
    events: int = 0

    def add(self, events: Iterable[Event]) -> Fold:
        """Fold decoded events."""
        for ev in events:
            self.add_one(ev.id, ev.kind, ev.order_key, ev.seq, ev.user, ev.wall, ev.payload)
        return self

    def add_stored(self, rows: Iterable[tuple[str, bytes]]) -> Fold:
        """Fold ``(id, raw)`` rows of the log: canonical bytes, parsed here. (``add_one``
        inlined: this loop runs once per event of the log.)"""
        loads, writes, row = views.fast_loads, state.pair_writes, views.section_row
        pairs, n = self.pairs, 0
        for event_id, raw in rows:
            env = loads(raw)
            origin, seq, user, wall = env["origin"], env["seq"], env["user"], env["wall"]
            order = (env["clock"], origin, event_id)
            for key, fields in writes(env["kind"], event_id, origin, env["payload"]).items():
                per = pairs.get(key)
                if per is None:
                    per = pairs[key] = {}
                per[event_id] = (order, row(key[0], key[1], order, seq, user, wall, fields),
                                 tuple(fields))
            n += 1
        self.events += n
        return self

    def add_one(self, event_id: str, kind: str, order: Order, seq: int, user: str, wall: int,
                payload: dict[str, Any]) -> None:
        self.events += 1
        pairs, row = self.pairs, views.section_row
        for key, fields in state.pair_writes(kind, event_id, order[1], payload).items():
            per = pairs.get(key)
            if per is None:
                per = pairs[key] = {}
            per[event_id] = (order, row(key[0], key[1], order, seq, user, wall, fields),
                             tuple(fields))

    @property
    def writes(self) -> int:
        """Register writes held: one per register and event."""
        return sum(len(e[2]) for per in self.pairs.values() for e in per.values())


def fold(events: Iterable[Event]) -> Fold:
    with _gc_paused():
        return Fold().add(events)


def fold_stored(conn: sqlite3.Connection) -> Fold:
    with _gc_paused():
        return Fold().add_stored(conn.execute("SELECT id, raw FROM events ORDER BY rowid"))


# ---------------------------------------------------------------------- 2. resolve


@dataclass
class Views:
    """The content of the view tables, computed in memory (``ordered``: the
    ``section_writes`` rows, of this side only after a rebuild on two cores)."""

    ordered: Ordered
    winners: dict[Reg, Write]
    sections: dict[Pair, tuple[dict[str, Any], str | None]]
    effective: list[tuple[str, str, dict[str, Any], str, str | None]]
    superseded: list[Lost]
    origin_sections: list[tuple[str, str, str]]
    events: int = 0


class _Indexed(state.MemoryStore):
    """A MemoryStore whose ``winners_of`` is a lookup, for ``state.resolve`` over many machines."""

    def __init__(self, by_pair: dict[Pair, dict[str, Write]],
                 sections: dict[Pair, tuple[dict[str, Any], str | None]]) -> None:
        super().__init__(sections=sections)
        self.by_pair = by_pair

    def winners_of(self, scope: str, section: str) -> dict[str, Write]:
        return self.by_pair.get((scope, section), {})


class _Register:
    """One register's writes, oldest first, as positions in its pair's ordered entries."""

    def __init__(self, pair: Pair, fld: str, entries: list[Entry], at: list[int]) -> None:
        self.pair, self.fld, self.entries, self.at = pair, fld, entries, at

    def write(self, k: int) -> Write:
        return views.row_writes(self.entries[self.at[k]][1], self.fld)[0]

    def all(self) -> list[Write]:
        return [self.write(k) for k in range(len(self.at))]

    def newest_counting(self, cutoffs: dict[str, int]) -> Write | None:
        """The newest write that counts: the only one ``state.winner`` can pick."""
        for k in range(len(self.at) - 1, -1, -1):
            w = self.write(k)
            if not state.excluded(w, cutoffs):
                return w
        return None

    def between_orders(self, lo: Order, hi: Order) -> list[Write]:
        """The writes with an order strictly between ``lo`` and ``hi``."""
        out = []
        for j in range(len(self.at) - 1, -1, -1):
            w = self.write(j)
            if w.order <= lo:
                break
            if w.order < hi:
                out.append(w)
        return out


def _registers(ordered: Ordered) -> list[_Register]:
    out: list[_Register] = []
    for pair, entries in ordered:
        at: dict[str, list[int]] = {}
        for i, entry in enumerate(entries):
            for fld in entry[2]:
                got = at.get(fld)
                if got is None:
                    at[fld] = [i]
                else:
                    got.append(i)
        out.extend(_Register(pair, fld, entries, positions) for fld, positions in at.items())
    return out


class _Registers:
    """The registers of a fold (the whole log, or one side's part of it on two cores), with
    what resolving needs of them: each register's newest write that counts, the writes in a
    range of orders, and the ``@cutoff`` registers whole."""

    def __init__(self, folded: Fold) -> None:
        self.ordered = _ordered(folded)
        self.regs = {(r.pair[0], r.pair[1], r.fld): r for r in _registers(self.ordered)}

    def cutoff_writes(self) -> dict[Reg, list[Write]]:
        return {reg: r.all() for reg, r in self.regs.items() if reg[1] == state.CUTOFF}

    def candidates(self, cutoffs: dict[str, int]) -> dict[Reg, Write]:
        """Each register's newest write that counts (the winner, if the other half has none
        newer); ``@cutoff`` registers go whole through ``cutoff_writes``."""
        out: dict[Reg, Write] = {}
        for reg, r in self.regs.items():
            if reg[1] != state.CUTOFF:
                _keep(out, reg, r.newest_counting(cutoffs))
        return out

    def between(self, queries: dict[Reg, tuple[Order, Order]]) -> dict[Reg, list[Write]]:
        """For each register asked, its writes strictly between the two orders."""
        out = {}
        for reg, (lo, hi) in queries.items():
            r = self.regs.get(reg)
            if r is not None:
                out[reg] = r.between_orders(lo, hi)
        return out


def _cutoffs_of(writes: dict[Reg, list[Write]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for reg, ws in writes.items():
        win = state.winner(ws, {})
        if win is not None:
            out[reg[0].removeprefix("origin:")] = int(win.value)
    return out


def _winners(mine: _Registers, theirs_cutoff: dict[Reg, list[Write]],
             theirs: dict[Reg, Write], cutoffs: dict[str, int]) -> dict[Reg, Write]:
    """Every register's winner: ``state.winner`` over the candidates of this side and of
    the other (none on one core)."""
    out: dict[Reg, Write] = {}
    for reg, ws in _union(mine.cutoff_writes(), theirs_cutoff).items():
        _keep(out, reg, state.winner(ws, cutoffs))
    here = mine.candidates(cutoffs)
    for reg in here.keys() | theirs.keys():
        both = [w for w in (here.get(reg), theirs.get(reg)) if w is not None]
        _keep(out, reg, state.winner(both, cutoffs))
    return out


def _keep(out: dict[Reg, Write], reg: Reg, w: Write | None) -> None:
    if w is not None:
        out[reg] = w


def _union(a: dict[Reg, list[Write]], b: dict[Reg, list[Write]]) -> dict[Reg, list[Write]]:
    out = {reg: list(ws) for reg, ws in a.items()}
    for reg, ws in b.items():
        out.setdefault(reg, []).extend(ws)
    return out


def _queries(winners: dict[Reg, Write]) -> dict[Reg, tuple[Order, Order]]:
    """The ranges ``state.superseded`` looks at: between each winner's base and the winner."""
    return {reg: (w.base, w.order) for reg, w in winners.items()
            if w.base is not None and reg[1] not in (state.CUTOFF, state.IGNORED)}


def _superseded(winners: dict[Reg, Write], cands: dict[Reg, list[Write]],
                cutoffs: dict[str, int]) -> list[Lost]:
    lost: list[Lost] = []
    for reg, ws in cands.items():
        win = winners[reg]
        lost.extend((*reg, x.event, win.event) for x in state.superseded(ws, win, cutoffs))
    return lost


def _by_pair(winners: dict[Reg, Write]) -> dict[Pair, dict[str, Write]]:
    out: dict[Pair, dict[str, Write]] = {}
    for (scope, section, fld), w in winners.items():
        out.setdefault((scope, section), {})[fld] = w
    return out


def _sections(by_pair: dict[Pair, dict[str, Write]]) -> dict[
    Pair, tuple[dict[str, Any], str | None]
]:
    out: dict[Pair, tuple[dict[str, Any], str | None]] = {}
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


def _origin_sections(ordered: Ordered) -> list[tuple[str, str, str]]:
    out: set[tuple[str, str, str]] = set()
    for (scope, section), entries in ordered:
        out.update((origin, scope, section) for origin in {e[0][1] for e in entries})
    return sorted(out)


def _ordered(folded: Fold) -> Ordered:
    """Every pair's entries in the registers' order, pairs in key order."""
    return [(pair, sorted(folded.pairs[pair].values())) for pair in sorted(folded.pairs)]


def _views(ordered: Ordered, winners: dict[Reg, Write], lost: list[Lost],
           origin_sections: list[tuple[str, str, str]], events: int) -> Views:
    """The views that need every register's winner: sections, structure, effective."""
    by_pair = _by_pair(winners)
    sections = _sections(by_pair)
    st = state.structure_from(w for reg, w in sorted(winners.items()) if reg[1] == state.STRUCT)
    effective = _effective(_Indexed(by_pair, sections), st)
    return Views(ordered, winners, sections, effective, lost, origin_sections, events)


def resolve(folded: Fold) -> Views:
    """Compute every view from the folded writes, with the rules of ``evstore.core.state``."""
    with _gc_paused():
        regs = _Registers(folded)
        cutoffs = _cutoffs_of(regs.cutoff_writes())
        winners = _winners(regs, {}, {}, cutoffs)
        lost = _superseded(winners, regs.between(_queries(winners)), cutoffs)
        return _views(regs.ordered, winners, lost, _origin_sections(regs.ordered), folded.events)


# ---------------------------------------------------------------------- 3. write


def _section_rows(ordered: Ordered) -> Iterator[Row]:
    """``section_writes`` rows in key order, so the B-tree is filled front to back."""
    for _, entries in ordered:
        for entry in entries:
            yield entry[1]


def _write_rest(conn: sqlite3.Connection, v: Views) -> None:
    """Every view table but ``section_writes``."""
    conn.executemany(
        "INSERT INTO origin_sections (origin, scope, section) VALUES (?,?,?)", v.origin_sections
    )
    conn.executemany(
        f"INSERT INTO reg_winners ({_WRITE_COLS}) VALUES ({','.join('?' * 12)})",
        (views.write_row(w) for _, w in sorted(v.winners.items())),
    )
    conn.executemany(
        "INSERT INTO mode_sections (mode, section, value, event) VALUES (?,?,?,?)",
        ((m, s, canonical_text(x), e) for (m, s), (x, e) in sorted(v.sections.items())),
    )
    conn.executemany(
        "INSERT INTO effective (machine, section, value, source, event) VALUES (?,?,?,?,?)",
        ((m, s, canonical_text(x), src, e) for m, s, x, src, e in v.effective),
    )
    conn.executemany(
        "INSERT INTO superseded (scope, section, field, loser, winner) VALUES (?,?,?,?,?)",
        sorted(v.superseded),
    )


def write(conn: sqlite3.Connection, v: Views) -> None:
    """Replace the view tables with ``v``."""
    with transaction(conn):
        views.SqliteStore(conn).reset()
        conn.executemany(_SECTION_INSERT, _section_rows(v.ordered))
        _write_rest(conn, v)


def rebuild(conn: sqlite3.Connection, events: Iterable[Event]) -> Views:
    """Replace every view with the projection of ``events`` (see the module docstring)."""
    v = resolve(fold(events))
    write(conn, v)
    return v


class _Unsplittable(Exception):
    """No useful split of the registers in two parts (one core then)."""


def rebuild_stored(conn: sqlite3.Connection, *, split: bool | None = None,
                   phase: Phase = _no_phase) -> Views:
    """Replace every view with the projection of every event in the log.

    ``split``: on two cores (see the module docstring); by default when the log is large
    (``SPLIT_MIN_EVENTS``), in a file, no transaction is open on ``conn`` (a worker could not
    see its changes) and the load average leaves a core idle.
    """
    if conn.in_transaction:
        split = False
    path = _file_of(conn)
    if split is None:
        split = path is not None and _worth_splitting(conn) and _core_to_spare()
    if split and path is not None:
        with suppress(_Unsplittable, _WorkerFailed):
            return _rebuild_split(conn, path, phase)
    with transaction(conn):
        phase("fold")
        folded = fold_stored(conn)
        phase("resolve")
        v = resolve(folded)
        phase("write")
        write(conn, v)
        phase("commit")
    phase("done")
    return v


# ---------------------------------------------------------------------- 4. on two cores


def _fold_origins(conn: sqlite3.Connection, k: str, upper: bool) -> Fold:
    """The events of the origins from ``k`` on (``upper``) or below it. Read in one scan of
    the table: through the origin index, each row would cost a lookup."""
    where = "origin >= ?" if upper else "origin < ?"
    rows = conn.execute(f"SELECT id, raw FROM events NOT INDEXED WHERE {where}", (k,))
    with _gc_paused():
        return Fold().add_stored(rows)


def _file_of(conn: sqlite3.Connection) -> str | None:
    for _, name, path in conn.execute("PRAGMA database_list"):
        if name == "main":
            return str(path) or None
    return None


def _core_to_spare() -> bool:
    """Is a core idle? A worker sharing one core with this process makes a rebuild slower."""
    try:
        cores = len(os.sched_getaffinity(0))
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return False
    return cores >= 2 and load < cores - 0.5


def _worth_splitting(conn: sqlite3.Connection) -> bool:
    n = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    return bool(n >= SPLIT_MIN_EVENTS)


class _WorkerFailed(Exception):
    """The worker could not start, died, or reported an error (one core then)."""


def _send(out: IO[bytes], obj: Any) -> None:
    data = marshal.dumps(obj)
    out.write(len(data).to_bytes(8, "little"))
    out.write(data)
    out.flush()


def _recv(inp: IO[bytes]) -> Any:
    head = inp.read(8)
    if len(head) != 8:
        raise _WorkerFailed("the worker closed its pipe")
    n = int.from_bytes(head, "little")
    data = inp.read(n)
    if len(data) != n:
        raise _WorkerFailed("the worker closed its pipe")
    msg = marshal.loads(data)
    if isinstance(msg, tuple) and msg and msg[0] == "error":
        raise _WorkerFailed(msg[1])
    return msg


def _as_tuple(w: Write) -> tuple[Any, ...]:
    return (w.scope, w.section, w.field, w.present, w.value, w.order, w.seq, w.base, w.user,
            w.wall)


def _as_write(t: tuple[Any, ...]) -> Write:
    return Write(*t)


@contextmanager
def _worker() -> Iterator[subprocess.Popen[bytes]]:
    code = (f"import sys; sys.path[:0] = {[p for p in sys.path if p]!r}; "
            "from evstore.storage.rebuild import _serve; _serve()")
    try:
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError as e:
        raise _WorkerFailed(str(e)) from None
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def _writes_out(d: dict[Reg, Write]) -> dict[Reg, tuple[Any, ...]]:
    return {reg: _as_tuple(w) for reg, w in d.items()}


def _writes_in(d: dict[Reg, tuple[Any, ...]]) -> dict[Reg, Write]:
    return {reg: _as_write(t) for reg, t in d.items()}


def _lists_out(d: dict[Reg, list[Write]]) -> dict[Reg, list[tuple[Any, ...]]]:
    return {reg: [_as_tuple(w) for w in ws] for reg, ws in d.items()}


def _lists_in(d: dict[Reg, list[tuple[Any, ...]]]) -> dict[Reg, list[Write]]:
    return {reg: [_as_write(t) for t in ws] for reg, ws in d.items()}


def _part_file(path: str, ddl: str, ordered: Ordered) -> None:
    """This side's ``section_writes`` rows in a scratch database file (no journal, no
    flush: it lives for one rebuild), which the other side attaches and copies from."""
    part = sqlite3.connect(path, isolation_level=None)
    try:
        part.execute("PRAGMA journal_mode = OFF")
        part.execute("PRAGMA synchronous = OFF")
        part.execute(ddl)
        part.execute("BEGIN")
        part.executemany(_SECTION_INSERT, _section_rows(ordered))
        part.execute("COMMIT")
    finally:
        part.close()


def _serve() -> None:
    """The worker: fold the upper half of the log, and answer ``_split_here``."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    try:
        path, k, ddl, scratch = _recv(inp)
        conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)
        folded = _fold_origins(conn, k, upper=True)
        conn.close()
        with _gc_paused():
            half = _Registers(folded)
            _send(out, _lists_out(half.cutoff_writes()))
            cutoffs = _recv(inp)
            _send(out, _writes_out(half.candidates(cutoffs)))
            answers = half.between(_recv(inp))
            _send(out, (_lists_out(answers), _origin_sections(half.ordered)))
            _part_file(scratch, ddl, half.ordered)
            _send(out, "written")
    except Exception:
        _send(out, ("error", traceback.format_exc()))


EVENTS_HERE = 0.42  # of the events folded here: this side also writes the tables and commits


def _rebuild_split(conn: sqlite3.Connection, path: str, phase: Phase) -> Views:
    ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name='section_writes'").fetchone()[0]
    with _worker() as proc, tempfile.TemporaryDirectory(prefix="evstore-rebuild-") as tmp:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            with transaction(conn):
                v = _split_here(conn, (path, ddl, os.path.join(tmp, "part.db")), proc.stdin,
                                proc.stdout, phase)
                phase("commit")
            phase("done")
        finally:
            if any(r[1] == _PART for r in conn.execute("PRAGMA database_list")):
                conn.execute(f"DETACH {_PART}")
    return v


def _split_here(conn: sqlite3.Connection, paths: tuple[str, str, str], to: IO[bytes],
                back: IO[bytes], phase: Phase) -> Views:
    """This side of a rebuild on two cores, inside the caller's transaction (the write lock
    is held from here on, so the worker's connection sees the same log). ``paths``: the
    database, the DDL of ``section_writes``, and the scratch file for the worker's rows."""
    path, ddl, scratch = paths
    n = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    k = conn.execute("SELECT origin FROM events ORDER BY origin LIMIT 1 OFFSET ?",
                     (int(n * EVENTS_HERE),)).fetchone()
    if k is None:
        raise _Unsplittable("no events")
    _send(to, (path, k[0], ddl, scratch))
    phase("fold")
    folded = _fold_origins(conn, k[0], upper=False)
    with _gc_paused():
        phase("resolve")
        half = _Registers(folded)
        their_cutoff = _lists_in(_recv(back))
        cutoffs = _cutoffs_of(_union(half.cutoff_writes(), their_cutoff))
        _send(to, cutoffs)
        winners = _winners(half, their_cutoff, _writes_in(_recv(back)), cutoffs)
        queries = _queries(winners)
        _send(to, queries)
        answers, their_sections = _recv(back)
        lost = _superseded(winners, _union(half.between(queries), _lists_in(answers)), cutoffs)
        phase("write")  # while the worker makes its image, this side writes its own rows
        views.SqliteStore(conn).reset()
        conn.executemany(_SECTION_INSERT, _section_rows(half.ordered))
        phase("merge")
        if _recv(back) != "written":
            raise _WorkerFailed("the worker did not write its rows")
        conn.execute(f"ATTACH ? AS {_PART}", (scratch,))
        conn.execute(f"INSERT INTO main.section_writes SELECT * FROM {_PART}.section_writes")
        phase("views")
        sections = sorted(set(_origin_sections(half.ordered)) | set(their_sections))
        v = _views(half.ordered, winners, lost, sections, n)
        _write_rest(conn, v)
    return v
