"""Rebuild the materialized views from a whole log in one pass: fold in memory, write once.

``state.apply`` is built for the incremental case: for every register an event touches it
reads back that register's stored writes, and it refreshes the effective settings of every
machine the change may reach. Replaying a long log through it repeats that work per batch. A
rebuild knows every event up front, so it can do each step once:

1. **fold**: every event, one entry per (scope, section) it writes, kept as flat entries
   ``(clock, origin, event id, canonical bytes, fields)``: the fields it wrote there, and the
   bytes its writes are derived from when resolving needs them (``entry_writes``: about one
   per register, a hundredth of the entries of a long log). The general path is
   ``state.pair_writes`` (what ``state.writes_of`` is made of, grouped per (scope, section)
   with the last write of the event to each field, as ``SqliteStore`` derives a history). A
   settings event with one change (nearly every event of a long log) takes ``_change_entry``
   instead, which names the same fields without building the writes, the commonest (a patch
   that unsets nothing) in the fewest steps; with hypothesis,
   tests/storage/test_rebuild_fast.py checks that every entry it makes is the general
   path's. A repeat of an event is dropped.
2. **resolve**, with the public pure rules of ``evstore.core.state`` and nothing else: the
   ``@cutoff`` winners give the cutoffs; ``state.winner`` and ``state.superseded`` of every
   register under those cutoffs; ``state.materialize`` and ``state.last_event`` of every
   (mode, section) pair; ``state.structure_from`` of the structure winners, then
   ``state.resolve`` of every catalog section of every member machine. A register's rows are
   in order, so ``winner`` is given the newest write that counts, and ``superseded`` the
   writes between the winner's base and the winner: the only ones either rule can pick, so
   the result is what they give over all the writes. Only these writes are decoded back
   from their entries (``entry_writes``), found by walking back from each register's
   newest entry.
3. **write**: the view tables are emptied and filled in key order, the register history
   (``section_events``) as one ``(scope, section, clock, event)`` row per entry
   (``insert_rows``: up to ``ROWS_PER_INSERT`` rows of one (scope, section) to a statement),
   inside one transaction (a savepoint when the caller already holds one, e.g. the log's
   ``also`` hook).

Why it equals the incremental path: a register's winner is a maximum over the set of its
writes and the cutoffs are a maximum too, so both depend only on the set of events, which is
exactly what ``state.apply`` guarantees for any order and batching; ``apply`` recomputes
every register it touches (and every register of an origin whose cutoff moved), every pair
of those registers, and, whenever a structure register changes, every machine's effective
settings. After the last event, each of these equals the value computed here from scratch.
tests/storage/test_rebuild.py checks the tables are byte-identical.

``rebuild_stored`` reads the log itself, inside one ``BEGIN IMMEDIATE`` transaction (no event
can be added between the read and the write), and parses the canonical bytes with the fast
parser (orjson when installed, else the json module: the same values), through a memory
map, with a page cache large enough to hold the new tables until the commit
(``_bulk_pragmas``: both for this rebuild only). Events are read as
stored: their signatures, ids and canonical form were checked when they entered the log and
are not checked again (``evstore verify`` does that). The cyclic garbage collector is paused
while a fold holds millions of young objects (it would traverse them again and again to find
no garbage) and restored afterwards.

A path on two cores (a worker process folding part of the origins, the registers resolved
by exchanging a few values per register) was removed in issue 13: side by side on a
1,000,000-event log it was not clearly faster, the admission pass before the fold (one core
either way) is most of a rebuild, and no command rebuilds through ``rebuild_stored``
(docs/benchmarks.md, "Full rebuild").
"""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from evstore.core import admit, catalog, state
from evstore.core.events import Event
from evstore.core.state import Order, Reg, Write
from evstore.storage import views
from evstore.storage.connect import transaction
from evstore.storage.views import canonical_text

__all__ = ["Fold", "Views", "canonical_text", "fold", "fold_stored", "rebuild", "rebuild_stored",
           "resolve", "stored_events", "write"]

_WRITE_COLS = "scope, section, field, event, clock, origin, seq, present, value, base, user, wall"
_EVENT_COLS = "id, origin, seq, prev, clock, wall, user, kind, raw, sig"

Row = tuple[Any, ...]
Entry = tuple[int, str, str, bytes, tuple[str, ...]]
"""One event's writes to one (scope, section): its order (clock, origin, event id), the
event's canonical bytes (already in memory: the row read, or the ``Event``), and the fields it
wrote. The writes themselves are derived from the bytes only for the few entries resolving
needs (``entry_writes``). Led by the order, so a list of entries sorts in the registers'
order; flat, so a fold of millions holds one tuple an event and pair (its ``section_events``
row is the pair, the clock and the event id)."""
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


MMAP_BYTES = 1 << 31  # SQLite's default ceiling (SQLITE_MAX_MMAP_SIZE) keeps it lower if need be
CACHE_KIB_PER_EVENT = 1  # a ceiling: a section_events row is under 0.1 KiB, and the rest small
CACHE_KIB_MAX = 1 << 20  # 1 GiB: a 1,000,000-event log's new tables fit; a node keeps memory


@contextmanager
def _bulk_pragmas(conn: sqlite3.Connection) -> Iterator[None]:
    """Read the log through a memory map and keep every page a rebuild writes in the page
    cache until the commit, for one rebuild, then restore the connection's own settings.

    Read through ``read()`` calls, each page of the log costs a system call and a copy
    (reading the rows took a quarter less time mapped). With the default cache of a few MiB,
    SQLite writes dirty pages out to the WAL while the rows go in (a cache spill) and the
    row inserts took a quarter more time. The cache is a ceiling, not an allocation: it holds
    about the new tables' size, while the fold already holds every row in memory.
    """
    got = conn.execute("PRAGMA mmap_size").fetchone()  # no row: a database in memory
    mmap_was = None if got is None else int(got[0])
    cache_was = conn.execute("PRAGMA cache_size").fetchone()[0]
    page_kib = conn.execute("PRAGMA page_size").fetchone()[0] / 1024
    try:
        if mmap_was is not None:
            conn.execute(f"PRAGMA mmap_size = {max(mmap_was, MMAP_BYTES)}")
        events = conn.execute("SELECT MAX(rowid) FROM events").fetchone()[0] or 0  # about
        want = min(CACHE_KIB_MAX, events * CACHE_KIB_PER_EVENT)
        if want > (-cache_was if cache_was < 0 else cache_was * page_kib):  # KiB, or pages
            conn.execute(f"PRAGMA cache_size = {-want}")
        yield
    finally:
        conn.execute(f"PRAGMA cache_size = {cache_was}")
        if mmap_was is not None:
            conn.execute(f"PRAGMA mmap_size = {mmap_was}")


def stored_events(conn: sqlite3.Connection) -> Iterator[Event]:
    """Every applied event as stored, in insertion order, without re-verification."""
    loads = views.fast_loads
    cur = conn.execute(f"SELECT {_EVENT_COLS} FROM events ORDER BY rowid")
    for event_id, origin, seq, prev, clock, wall, user, kind, raw, sig in cur:
        payload = loads(raw)["payload"]
        yield Event(raw, sig, event_id, origin, seq, prev, clock, wall, user, kind, payload)


# ---------------------------------------------------------------------- entries' writes


def entry_writes(pair: Pair, entry: Entry, only: str | None = None) -> list[Write]:
    """The writes of an entry's event to its (scope, section) (those to field ``only``, when
    given), derived from the event's canonical bytes as every store derives them
    (``state.pair_writes``): resolving needs a few per register, never most of a fold."""
    clock, origin, event_id, raw, _ = entry
    env = views.fast_loads(raw)
    fields = state.pair_writes(env["kind"], event_id, origin, env["payload"]).get(pair, {})
    order = (clock, origin, event_id)
    seq, user, wall = env["seq"], env["user"], env["wall"]
    return [Write(pair[0], pair[1], fld, present, value, order, seq, base, user, wall)
            for fld, (present, value, base) in fields.items() if only is None or fld == only]


# ---------------------------------------------------------------------- 1. fold


_DEFINED_RESET = (state.DEFINED, state.RESET)


def _change_entry(event_id: str, env: Mapping[str, Any], raw: bytes
                  ) -> tuple[Pair, Entry] | None:
    """The fold entry of a settings event with one change (most of any log), built here
    without ``state.pair_writes``, or None: then the general path.

    An entry names the fields the event wrote to its (scope, section); ``state._emit`` writes,
    for one change: a patch, ``@defined``, then each field set, then each field unset; a
    define, ``@defined``, ``@reset``, then ``state.fields_of`` the value; a delete,
    ``@defined`` and ``@reset``. The commonest change of all, a patch that unsets nothing,
    is taken first, with the fewest steps. Anything the general path might refuse (a base
    that is not ``[int, str, str]``, a ``set`` that is not an object...) is left to it, so
    that both refuse the same events. tests/storage/test_rebuild_fast.py checks that every
    entry made here equals the general path's.
    """
    if env["kind"] not in state.SETTINGS_KINDS:
        return None
    p = env["payload"]
    try:
        (ch,) = p["changes"]
        op, mode, section, b = ch["op"], ch["mode"], ch["section"], ch["base"]
    except (KeyError, TypeError, ValueError):  # not exactly one change, or not a plain one
        return None
    if type(mode) is not str or type(section) is not str or type(ch) is not dict:
        return None
    if op == "patch":
        sets = ch.get("set", {})
        if type(sets) is dict and ch.get("unset", []) == [] and (
                b is None or type(b) is list and len(b) == 3 and type(b[0]) is int
                and type(b[1]) is str and type(b[2]) is str):
            return (mode, section), (env["clock"], env["origin"], event_id, raw,
                                     tuple({state.DEFINED: True, **sets}))
    names = _change_names(op, section, b, ch)
    if names is None:
        return None
    return (mode, section), (env["clock"], env["origin"], event_id, raw, names)


def _change_names(op: str, section: str, b: Any, ch: Mapping[str, Any]
                  ) -> tuple[str, ...] | None:
    """The fields one change writes (``_change_entry``), any op, from what the op reads
    (``set`` and ``unset``, or ``value``), or None when the general path must decide."""
    try:
        state._base(b)  # the general path reads it too: a base it refuses is its to refuse
        if op == "patch":
            sets, unsets = ch.get("set", {}), ch.get("unset", [])
            if type(sets) is not dict or type(unsets) is not list \
                    or any(type(u) is not str for u in unsets):
                return None
            names = dict.fromkeys((state.DEFINED, *sets))
            names.update(dict.fromkeys(unsets))
        elif op == "define":
            value = ch["value"]
            if type(value) is not dict:
                return None
            names = dict.fromkeys((*_DEFINED_RESET, *state.fields_of(section, value)))
        elif op == "delete":
            names = dict.fromkeys(_DEFINED_RESET)
        else:
            return None
    except (KeyError, TypeError, ValueError, AttributeError):  # the general path decides
        return None
    return tuple(names)


@dataclass
class Fold:
    """Every event's entries, per (scope, section), in no order (each event
    once: ``add`` drops repeats, and the log holds none)."""

    pairs: dict[Pair, list[Entry]] = field(default_factory=dict)
    events: int = 0
    seen: set[str] = field(default_factory=set)

    def add(self, events: Iterable[Event]) -> Fold:
        """Fold decoded events (a repeat of an event is dropped: it would give the same row)."""
        seen = self.seen
        for ev in events:
            self.events += 1
            if ev.id in seen:
                continue
            seen.add(ev.id)
            env = {"kind": ev.kind, "payload": ev.payload, "origin": ev.origin,
                   "clock": ev.clock, "seq": ev.seq, "user": ev.user, "wall": ev.wall}
            self._put(ev.id, env, ev.raw)
        return self

    def add_stored(self, rows: Iterable[tuple[str, bytes]],
                   skip: frozenset[str] = frozenset()) -> Fold:
        """Fold ``(id, raw)`` rows of the log: canonical bytes, parsed here, ids unique;
        the events of ``skip`` (inadmissible) are counted and write nothing."""
        loads, fast, put = views.fast_loads, _change_entry, self._put
        pairs, n = self.pairs, 0
        for event_id, raw in rows:
            n += 1
            if skip and event_id in skip:
                continue
            env = loads(raw)
            got = fast(event_id, env, raw)
            if got is None:
                put(event_id, env, raw, general=True)
                continue
            key, entry = got
            per = pairs.get(key)
            if per is None:
                pairs[key] = [entry]
            else:
                per.append(entry)
        self.events += n
        return self

    def _put(self, event_id: str, env: Mapping[str, Any], raw: bytes,
             general: bool = False) -> None:
        got = None if general else _change_entry(event_id, env, raw)
        if got is not None:
            self.pairs.setdefault(got[0], []).append(got[1])
            return
        origin, clock = env["origin"], env["clock"]
        for key, fields in state.pair_writes(env["kind"], event_id, origin,
                                             env["payload"]).items():
            self.pairs.setdefault(key, []).append((clock, origin, event_id, raw, tuple(fields)))

    @property
    def writes(self) -> int:
        """Register writes held: one per register and event."""
        return sum(len(e[4]) for per in self.pairs.values() for e in per)


def fold(events: Iterable[Event]) -> Fold:
    with _gc_paused():
        return Fold().add(events)


def fold_stored(conn: sqlite3.Connection, skip: frozenset[str] = frozenset()) -> Fold:
    with _gc_paused():
        return Fold().add_stored(conn.execute("SELECT id, raw FROM events ORDER BY rowid"), skip)


@dataclass
class Admission:
    """The verdicts of evstore/core/admit.py on a set of events: the inadmissible ones
    (``inadmissible`` rows: event, clock, reason) and the authority events (the events that
    write a ``users`` section or declare cutoffs: ``authority_events`` rows, clock and event)."""

    invalid: list[tuple[str, int, str]] = field(default_factory=list)
    authority: list[tuple[int, str]] = field(default_factory=list)

    @property
    def skip(self) -> frozenset[str]:
        return frozenset(e for e, _, _ in self.invalid)


def admission(evs: Iterable[Event]) -> Admission:
    """Judge a whole set of events, as ``state.apply`` judges them one batch at a time."""
    evs = list(evs)
    verdicts = admit.judge_all(evs)
    clocks = {e.id: e.clock for e in evs}
    return Admission(
        sorted((e, clocks[e], r) for e, r in verdicts.items()),
        sorted({(e.clock, e.id) for e in evs if admit.is_authority(e)}),
    )


def admission_stored(conn: sqlite3.Connection) -> Admission:
    """``admission`` of every event of the log."""
    return admission(stored_events(conn))


def write_admission(conn: sqlite3.Connection, adm: Admission) -> None:
    conn.executemany("INSERT INTO inadmissible (event, clock, reason) VALUES (?,?,?)",
                     adm.invalid)
    conn.executemany("INSERT INTO authority_events (clock, event) VALUES (?,?)", adm.authority)


# ---------------------------------------------------------------------- 2. resolve


@dataclass
class Views:
    """The content of the view tables, computed in memory (``ordered``: the entries)."""

    ordered: Ordered
    winners: dict[Reg, Write]
    sections: dict[Pair, tuple[dict[str, Any], str | None]]
    effective: list[tuple[str, str, dict[str, Any], str, str | None]]
    superseded: list[Lost]
    events: int = 0
    admission: Admission = field(default_factory=lambda: Admission())


class _Indexed(state.MemoryStore):
    """A MemoryStore whose ``winners_of`` is a lookup, for ``state.resolve`` over many machines."""

    def __init__(self, by_pair: dict[Pair, dict[str, Write]],
                 sections: dict[Pair, tuple[dict[str, Any], str | None]]) -> None:
        super().__init__(sections=sections)
        self.by_pair = by_pair

    def winners_of(self, scope: str, section: str) -> dict[str, Write]:
        return self.by_pair.get((scope, section), {})


_FIELDS, _ORIGIN = itemgetter(4), itemgetter(1)


class _Register:
    """One register: the entries of its pair that wrote field ``fld``, found by walking back
    from ``last``, the newest (its writes are decoded from their rows only when asked)."""

    def __init__(self, pair: Pair, fld: str, entries: list[Entry], last: int) -> None:
        self.pair, self.fld, self.entries, self.last = pair, fld, entries, last

    def _back(self) -> Iterator[int]:
        fld, entries = self.fld, self.entries
        for i in range(self.last, -1, -1):
            if fld in entries[i][4]:
                yield i

    def _write(self, i: int) -> Write:
        return entry_writes(self.pair, self.entries[i], self.fld)[0]

    def all(self) -> list[Write]:
        return [self._write(i) for i in reversed(list(self._back()))]

    def newest_counting(self, cutoffs: dict[str, int]) -> Write | None:
        """The newest write that counts: the only one ``state.winner`` can pick."""
        for i in self._back():
            w = self._write(i)
            if not state.excluded(w, cutoffs):
                return w
        return None

    def between_orders(self, lo: Order, hi: Order) -> list[Write]:
        """The writes with an order strictly between ``lo`` and ``hi``."""
        out = []
        for i in self._back():
            e = self.entries[i]
            order = (e[0], e[1], e[2])
            if order <= lo:
                break
            if order < hi:
                out.append(self._write(i))
        return out


def _registers(ordered: Ordered) -> list[_Register]:
    """Every register of ``ordered``, with the position of its newest write: the fields of
    a pair are the union of its entries' (most entries write the same few), and a walk back
    from the newest entry finds each field's newest write, usually among the last few."""
    out: list[_Register] = []
    for pair, entries in ordered:
        left = set().union(*set(map(_FIELDS, entries)))
        for i in range(len(entries) - 1, -1, -1):
            for fld in entries[i][4]:
                if fld in left:
                    left.discard(fld)
                    out.append(_Register(pair, fld, entries, i))
            if not left:
                break
    return out


class _Registers:
    """The registers of a fold, with what resolving needs of them: each register's newest write that counts, the writes in a
    range of orders, and the ``@cutoff`` registers whole."""

    def __init__(self, ordered: Ordered) -> None:
        self.ordered = ordered
        self.regs = {(r.pair[0], r.pair[1], r.fld): r for r in _registers(ordered)}

    def cutoff_writes(self) -> dict[Reg, list[Write]]:
        return {reg: r.all() for reg, r in self.regs.items() if reg[1] == state.CUTOFF}

    def candidates(self, cutoffs: dict[str, int]) -> dict[Reg, Write]:
        """Each register's newest write that counts; ``@cutoff`` registers go whole through
        ``cutoff_writes``."""
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


def _winners(regs: _Registers, cutoffs: dict[str, int]) -> dict[Reg, Write]:
    """Every register's winner: ``state.winner`` over each ``@cutoff`` register whole, and
    over each other register's newest write that counts (the only one it can pick)."""
    out: dict[Reg, Write] = {}
    for reg, ws in regs.cutoff_writes().items():
        _keep(out, reg, state.winner(ws, cutoffs))
    for reg, w in regs.candidates(cutoffs).items():
        _keep(out, reg, state.winner([w], cutoffs))
    return out


def _keep(out: dict[Reg, Write], reg: Reg, w: Write | None) -> None:
    if w is not None:
        out[reg] = w


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


def _ordered(folded: Fold) -> Ordered:
    """Every pair's entries in the registers' order, pairs in key order."""
    pairs = folded.pairs
    for entries in pairs.values():
        entries.sort()
    return [(pair, pairs[pair]) for pair in sorted(pairs)]


def _views(ordered: Ordered, winners: dict[Reg, Write], lost: list[Lost], events: int) -> Views:
    """The views that need every register's winner: sections, structure, effective."""
    by_pair = _by_pair(winners)
    sections = _sections(by_pair)
    st = state.structure_from(w for reg, w in sorted(winners.items()) if reg[1] == state.STRUCT)
    effective = _effective(_Indexed(by_pair, sections), st)
    return Views(ordered, winners, sections, effective, lost, events)


def resolve(folded: Fold) -> Views:
    """Compute every view from the folded writes, with the rules of ``evstore.core.state``."""
    with _gc_paused():
        regs = _Registers(_ordered(folded))
        cutoffs = _cutoffs_of(regs.cutoff_writes())
        winners = _winners(regs, cutoffs)
        lost = _superseded(winners, regs.between(_queries(winners)), cutoffs)
        return _views(regs.ordered, winners, lost, folded.events)


# ---------------------------------------------------------------------- 3. write


ROWS_PER_INSERT = 256
_INSERTS = {k: f"INSERT INTO section_events ({views.SECTION_COLS}) VALUES "
               + ",".join(["(?1,?2,?,?)"] * k)
            for k in (ROWS_PER_INSERT >> i for i in range(ROWS_PER_INSERT.bit_length()))}


def insert_rows(conn: sqlite3.Connection, ordered: Ordered) -> None:
    """Insert the ``section_events`` rows of ``ordered`` in key order (the B-tree is filled
    front to back), up to ``ROWS_PER_INSERT`` rows of one (scope, section) to a statement
    that takes the scope and section once: a statement per row, and every value bound again,
    cost more than SQLite's own work for the row."""
    statements, execute = _INSERTS, conn.execute
    for (scope, section), entries in ordered:
        at, end, k = 0, len(entries), ROWS_PER_INSERT
        while at < end:
            while k > end - at:
                k >>= 1
            values: list[Any] = [scope, section]
            put = values.extend
            for entry in entries[at:at + k]:
                put((entry[0], entry[2]))
            execute(statements[k], values)
            at += k


Rest = list[tuple[str, list[tuple[Any, ...]]]]


def _rest_rows(v: Views) -> Rest:
    """The rows of every view table but ``section_events``, with their statements."""
    return [
        (f"INSERT INTO reg_winners ({_WRITE_COLS}) VALUES ({','.join('?' * 12)})",
         [views.write_row(w) for _, w in sorted(v.winners.items())]),
        ("INSERT INTO mode_sections (mode, section, value, event) VALUES (?,?,?,?)",
         [(m, s, canonical_text(x), e) for (m, s), (x, e) in sorted(v.sections.items())]),
        ("INSERT INTO effective (machine, section, value, source, event) VALUES (?,?,?,?,?)",
         [(m, s, canonical_text(x), src, e) for m, s, x, src, e in v.effective]),
        ("INSERT INTO superseded (scope, section, field, loser, winner) VALUES (?,?,?,?,?)",
         sorted(v.superseded)),
    ]


def write(conn: sqlite3.Connection, v: Views) -> None:
    """Replace the view tables with ``v``."""
    with transaction(conn):
        views.SqliteStore(conn).reset()
        insert_rows(conn, v.ordered)
        for sql, rows in _rest_rows(v):
            conn.executemany(sql, rows)
        write_admission(conn, v.admission)


def compute(events: Iterable[Event]) -> Views:
    """The views of ``events`` in memory: the admissible ones folded and resolved."""
    evs = list(events)
    adm = admission(evs)
    skip = adm.skip
    v = resolve(fold(e for e in evs if e.id not in skip) if skip else fold(evs))
    v.admission = adm
    return v


def rebuild(conn: sqlite3.Connection, events: Iterable[Event]) -> Views:
    """Replace every view with the projection of ``events`` (see the module docstring)."""
    v = compute(events)
    write(conn, v)
    return v


def rebuild_stored(conn: sqlite3.Connection, *, phase: Phase = _no_phase) -> Views:
    """Replace every view with the projection of every event in the log.

    Inside the caller's transaction (a small rebuild, inside its work) with the connection's
    own settings; otherwise with the bulk settings for this rebuild only (``_bulk_pragmas``).
    """
    if conn.in_transaction:
        return _rebuild_here(conn, phase)
    with _bulk_pragmas(conn):
        return _rebuild_here(conn, phase)


def _rebuild_here(conn: sqlite3.Connection, phase: Phase) -> Views:
    """A rebuild on one core."""
    with transaction(conn):
        phase("admit")
        adm = admission_stored(conn)
        phase("fold")
        folded = fold_stored(conn, adm.skip)
        phase("resolve")
        v = resolve(folded)
        v.admission = adm
        phase("write")
        write(conn, v)
        phase("commit")
    phase("done")
    return v
