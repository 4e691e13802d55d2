"""The configuration as it was at any point of the log, rebuilt from the events alone.

Theory of operation
-------------------
A *bound* names a point of the one total order of events, ``(clock, origin, id)``: "at time
T" admits every event whose clock's wall part is at most T; "at event E" admits E and what
precedes it; "before E" what strictly precedes it.

*Scope.* Which events make up a node's configuration changes over time (docs/design.md,
"Events and scope"): a standalone machine counts its own events from its latest ``node.init``
or ``node.standalone``; a cluster member counts the cluster's ``cluster.create`` and, for each
member key, its events from its join (or rekey) in that cluster. ``scope_at`` finds the
scope the node was in at a bound, from the newest scope-changing event of its own keys
(init, standalone, create, join) that the bound admits; with no bound it is exactly the scope
``evstore.ops.scope.in_scope_events`` uses for the live views.

*Fold.* The registers of core/registers.py are maxima over sets of writes, so the events may be
read in any order, one origin's chain after another, in chunks: ``fold`` keeps only the write
that holds each register, never the whole log in memory, and then materializes sections and
structure with the same functions the live views use. Writes of a removed origin past its
cutoff are dropped first (the cutoffs are read in a first, cheap pass), which is what makes
keeping one write per register exact. tests/ops/test_history.py checks the fold against
``state.apply`` and the rebuilt "now" against the live ``state_digest``.

``open_copy`` reads a database file *whole* (its ``-wal`` too: a copy without it misses the
last commits) into memory through SQLite's backup API, from a read-only connection; so
``replay`` and ``verify`` never modify the file they are given.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from evstore.core import admit, catalog, clock, encoding, state
from evstore.core.errors import EncodingError, InvalidInput, OperationalError
from evstore.core.events import Event
from evstore.core.modes import CLUSTER
from evstore.core.state import Order, Reg, Write
from evstore.ops.node import Node, digest_of
from evstore.storage import lookups, nodetable, space
from evstore.storage.log import EventLog
from evstore.storage.migrate import migrate

Progress = Callable[[int, int], None]
Value = dict[str, Any]
SCOPE_KINDS = ("node.init", "node.standalone", "cluster.create", "cluster.join")
CHUNK = 2000
_TOP = "~"  # sorts after every lower-case hex string


# --------------------------------------------------------------------------- bounds


@dataclass(frozen=True)
class Bound:
    """A point of the total order: the events at or (``inclusive=False``) before it count."""

    limit: Order
    inclusive: bool = True

    def admits(self, key: Order) -> bool:
        return key <= self.limit if self.inclusive else key < self.limit

    @property
    def max_clock(self) -> int:
        return self.limit[0]


EVERYTHING = Bound(((1 << 63) - 1, _TOP, _TOP))


def until(ms: int) -> Bound:
    """Every event whose clock's wall time is at most ``ms``."""
    return Bound((clock.pack(ms, clock.COUNTER_MASK), _TOP, _TOP))


def at_event(ev: Event) -> Bound:
    return Bound(ev.order_key)


def before_event(ev: Event) -> Bound:
    return Bound(ev.order_key, inclusive=False)


def find_event(log: EventLog, ref: str) -> Event:
    """An applied event by id or unique id prefix (at least 6 hex digits)."""
    ref = ref.strip().lower()
    if not 6 <= len(ref) <= 64 or any(c not in "0123456789abcdef" for c in ref):
        raise InvalidInput(f"{ref!r} is not an event id: give its hex id (at least 6 digits), "
                           "as `evstore audit` shows it")
    rows = lookups.ids_between(log.conn, ref, ref + _TOP, 2)
    if not rows:
        raise InvalidInput(f"no event {ref} in this log (see `evstore audit`)")
    if len(rows) > 1:
        raise InvalidInput(f"{ref} names more than one event: give more digits")
    ev = log.get(rows[0])
    assert ev is not None
    return ev


# --------------------------------------------------------------------------- reading a copy


def _connect_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)


def _backup_from(src: sqlite3.Connection, dst: sqlite3.Connection) -> None:
    try:
        src.backup(dst)
    finally:
        src.close()


def _via_temp_copy(path: Path, dst: sqlite3.Connection) -> None:
    """Copy the file and its -wal aside and read that, so the original is never touched."""
    with tempfile.TemporaryDirectory(prefix="evstore-replay-") as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        wal = path.with_name(path.name + "-wal")
        if wal.exists():
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        _backup_from(sqlite3.connect(copy), dst)


def _wal_mode(path: Path) -> bool:
    """Does the file's header say WAL mode (read and write versions 2)?"""
    with path.open("rb") as f:
        header = f.read(20)
    return len(header) == 20 and header[:16] == b"SQLite format 3\x00" and header[18] == 2


def open_copy(path: Path) -> sqlite3.Connection:
    """An in-memory copy of an evstore database file, read whole, brought to this schema.

    A ``-wal`` beside the file is read too. A file in WAL mode without a ``-shm`` (a copy,
    not a live home) is copied aside first with its ``-wal``: opening it in place, even
    read-only, would create ``-wal`` and ``-shm`` files next to it.
    """
    if path.is_dir():
        path = path / "evstore.db"
    if not path.is_file():
        raise InvalidInput(f"{path}: no such database file; give a backup made with "
                           "`evstore backup FILE`, or a home's evstore.db")
    mem = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    try:
        shm = path.with_name(path.name + "-shm")
        if _wal_mode(path) and not shm.exists():
            _via_temp_copy(path, mem)
        else:
            _backup_from(_connect_ro(path), mem)
        migrate(mem, label=f"the in-memory copy of {path} (the file is not changed)")
    except (sqlite3.DatabaseError, OSError) as e:
        mem.close()
        full = space.explain(e, path.parent)  # a full disk is no bad input (exit 1)
        if full is not None:
            raise full from None
        if isinstance(e, OSError):
            raise
        raise InvalidInput(f"{path} is not a readable evstore database ({e}); give a home's "
                           "evstore.db or a backup made with `evstore backup FILE`") from None
    except BaseException:
        mem.close()
        raise
    return mem


def owner_keys(conn: sqlite3.Connection) -> set[str]:
    """The keys of the machine whose database this is (its own node.init, and its rekeys).

    A database holds one ``node.init`` at seq 1 of its own machine, first applied; the one
    whose hostname is the ``node`` table's wins if a stranger's was slipped in.
    """
    host = nodetable.get(conn, "hostname")
    rows = lookups.init_events(conn)
    mine = [o for o, raw in rows if host is not None and _init_host(raw) == host]
    keys = set((mine or [o for o, _ in rows])[:1])
    # its rekeys, and the fresh keys it took to join again after a removal (in the order it
    # took them: each names the one before)
    for origin, kind, raw in lookups.raws_of_kinds(conn, ("node.rekey", "node.standalone")):
        payload = _payload(raw)
        if payload.get("machine_id" if kind == "node.rekey" else "replaces") in keys:
            keys.add(origin)
    return keys


def _payload(raw: bytes) -> dict[str, Any]:
    try:
        env = encoding.loads_json(raw)
    except EncodingError:
        return {}
    p = env.get("payload") if isinstance(env, dict) else None
    return p if isinstance(p, dict) else {}


def _init_host(raw: bytes) -> str | None:
    machine = _payload(raw).get("machine")
    return machine.get("hostname") if isinstance(machine, dict) else None


# --------------------------------------------------------------------------- scope


def _owner_anchor(log: EventLog, owners: set[str], bound: Bound) -> Event | None:
    rows = lookups.newest_scope_anchors(log.conn, owners, SCOPE_KINDS, bound.max_clock)
    for event_id, clk, origin in rows:
        if bound.admits((clk, origin, event_id)):
            return log.get(event_id)
    return None


def _cluster_anchors(log: EventLog, create: Event, bound: Bound) -> dict[str, int]:
    firsts = {create.origin: create.seq}
    rows = lookups.ids_of_kinds_until(log.conn, ("cluster.join", "node.rekey"), bound.max_clock)
    for event_id in rows:
        ev = log.get(event_id)
        if ev and ev.payload.get("cluster") == create.id and bound.admits(ev.order_key):
            firsts[ev.origin] = min(firsts.get(ev.origin, ev.seq), ev.seq)
    return firsts


def scope_at(log: EventLog, owners: set[str], bound: Bound) -> tuple[Event | None, list[tuple[str, int]]]:
    """The owner's scope anchor at ``bound`` and the chains in scope: [(origin, first seq)]."""
    anchor = _owner_anchor(log, owners, bound) if owners else None
    if anchor is None:
        return None, []
    if anchor.kind in ("node.init", "node.standalone"):
        return anchor, [(anchor.origin, anchor.seq)]
    create = anchor if anchor.kind == "cluster.create" else log.get(
        str(anchor.payload.get("cluster", "")))
    if create is None:  # a join whose create never arrived: only the owner's own chain
        return anchor, [(anchor.origin, anchor.seq)]
    return create, sorted(_cluster_anchors(log, create, bound).items())


def events_in(log: EventLog, chains: list[tuple[str, int]], bound: Bound) -> Iterator[Event]:
    """The events of each chain from its first seq, in chunks, up to the bound.

    One origin's clocks grow with its seq, so its chain stops at the first event past the bound.
    """
    for origin, first in chains:
        last = lookups.max_seq(log.conn, origin)
        for seq in range(first, last + 1, CHUNK):
            chunk = _read_chunk(log.conn, origin, seq, seq + CHUNK - 1)
            kept = [ev for ev in chunk if bound.admits(ev.order_key)]
            yield from kept
            if len(kept) < len(chunk):
                break


def _read_chunk(conn: sqlite3.Connection, origin: str, first: int, last: int) -> list[Event]:
    """Applied events from their stored columns and payload, without re-checking the bytes.

    They were verified when stored; ``--verify`` checks bytes and columns again first. This
    is about four times faster than a full canonical decode, which matters on long replays.
    """
    out = []
    for event_id, orig, seq, prev, clk, wall, user, kind, raw, sig in lookups.applied_in_range(
        conn, origin, first, last
    ):
        out.append(Event(raw=raw, sig=sig, id=event_id, origin=orig, seq=seq, prev=prev,
                         clock=clk, wall=wall, user=user, kind=kind, payload=_body(event_id, raw)))
    return out


def _body(event_id: str, raw: bytes) -> dict[str, Any]:
    try:
        env = encoding.loads_json(raw)
    except EncodingError:
        env = None
    payload = env.get("payload") if isinstance(env, dict) else None
    if not isinstance(payload, dict):
        raise OperationalError(f"event {event_id[:16]}… is unreadable: its stored bytes are "
                               "damaged; run `evstore verify` to see what else is")
    return payload


def count_in(log: EventLog, chains: list[tuple[str, int]], bound: Bound) -> int:
    """About how many events ``events_in`` yields (for a progress bar)."""
    total = 0
    for origin, first in chains:
        total += lookups.count_from(log.conn, origin, first, bound.max_clock)
    return total


def cutoffs_in(log: EventLog, chains: list[tuple[str, int]], bound: Bound) -> dict[str, int]:
    """The removal cutoffs the scoped events carry (the greatest per origin)."""
    firsts = dict(chains)
    out: dict[str, int] = {}
    rows = lookups.ids_of_kinds_until(log.conn, ("machine.remove",), bound.max_clock)
    for event_id in rows:
        ev = log.get(event_id)
        if ev is None or ev.seq < firsts.get(ev.origin, 1 << 62) or not bound.admits(ev.order_key):
            continue
        for origin, seq in ev.payload.get("cutoffs", {}).items():
            out[origin] = max(out.get(origin, 0), int(seq))
    return out


# --------------------------------------------------------------------------- the fold


@dataclass
class _Store(state.MemoryStore):
    """MemoryStore with its winners grouped by (scope, section), for fast reads."""

    grouped: dict[tuple[str, str], dict[str, Write]] = field(default_factory=dict)

    def set_winner(self, reg: Reg, w: Write | None) -> None:
        super().set_winner(reg, w)
        group = self.grouped.setdefault((reg[0], reg[1]), {})
        if w is None:
            group.pop(reg[2], None)
        else:
            group[reg[2]] = w

    def winners_of(self, scope: str, section: str) -> dict[str, Write]:
        return dict(self.grouped.get((scope, section), {}))


def _beats(new: Write, old: Write) -> bool:
    if new.section == state.CUTOFF:
        return (new.value, new.order) > (old.value, old.order)
    return new.order > old.order


def _keep(best: dict[Reg, Write], ev: Event, cutoffs: Mapping[str, int]) -> None:
    for w in state.writes_of(ev):
        if state.excluded(w, cutoffs):
            continue
        old = best.get(w.reg)
        # a later write of the same event to one register replaces its earlier one, as in
        # the stores (storage/views.py, core/state/store.py MemoryStore)
        if old is None or old.order == w.order or _beats(w, old):
            best[w.reg] = w


def _materialize(best: Mapping[Reg, Write]) -> _Store:
    store = _Store()
    for reg, w in best.items():
        store.set_winner(reg, w)
    for (mode, section), wins in sorted(store.grouped.items()):
        if not section.startswith("@"):
            store.set_section(mode, section, state.materialize(section, wins),
                              state.last_event(wins))
    return store


def fold(
    events: Iterable[Event],
    cutoffs: Mapping[str, int],
    progress: Progress | None = None,
    total: int = 0,
) -> Snapshot:
    """The configuration a set of events makes, keeping one write per register; the
    inadmissible events (evstore/core/admit.py) count but write nothing."""
    best: dict[Reg, Write] = {}
    count = 0
    newest: Event | None = None
    evs = list(events)
    refused = admit.judge_all(evs)
    for ev in evs:
        if ev.id not in refused:
            _keep(best, ev, cutoffs)
        count += 1
        if newest is None or ev.order_key > newest.order_key:
            newest = ev
        if progress is not None and count % 1000 == 0:
            progress(count, max(total, count))
    if progress is not None:
        progress(count, max(total, count))
    store = _materialize(best)
    return Snapshot(store, state.structure_from(store.structure_winners()), count, newest)


# --------------------------------------------------------------------------- snapshots


@dataclass
class Snapshot:
    """The configuration at one point: values per mode, the structure, effective settings."""

    store: _Store
    structure: state.Structure
    events: int
    newest: Event | None

    def value(self, mode: str, section: str) -> Value | None:
        return self.store.section_value(mode, section)

    def members(self) -> set[str]:
        return {m.mid for m in self.structure.members()}

    def effective(self, mid: str) -> dict[str, tuple[Value, str, str | None]]:
        """{section: (value, source mode, event)} for one machine."""
        return {s: state.resolve(self.store, self.structure, mid, s)
                for s in sorted(catalog.SECTIONS)}

    def live(self, mode: str) -> bool:
        """Does this mode still exist here (not a deleted group, not a removed machine)?"""
        st = self.structure
        level, _, ident = mode.partition(":")
        if level == "group":
            return ident in st.groups and ident not in st.deleted
        if level == "machine":
            return ident in self.members()
        return mode == CLUSTER and st.name is not None

    def defined(self) -> list[tuple[str, str]]:
        return [(m, s) for m, s in self.store.defined_sections() if self.live(m)]

    def settings(self) -> dict[str, dict[str, Value]]:
        """{mode as people write it: {section: value}} for every live mode."""
        out: dict[str, dict[str, Value]] = {}
        for mode, section in self.defined():
            value = self.value(mode, section)
            if value is not None:
                out.setdefault(self.structure.display_mode(mode), {})[section] = value
        return out

    def groups(self) -> list[dict[str, Any]]:
        """The groups and their machines, as ``clusterconfig list`` shows them."""
        st = self.structure
        if st.name is None:
            return []
        out = []
        for gid, name in sorted(st.groups.items(), key=lambda kv: kv[1]):
            if gid in st.deleted:
                continue
            machines = [{"hostname": m.hostname, "serial": m.serial}
                        for m in st.members() if st.group_of(m.mid) == gid]
            out.append({"name": name, "machines": machines})
        return out

    def digest(self) -> str:
        return digest_of(self.store, self.structure)


def snapshot(
    log: EventLog, owners: set[str], bound: Bound, progress: Progress | None = None
) -> Snapshot:
    """The configuration the owner of ``log`` had at ``bound``."""
    _, chains = scope_at(log, owners, bound)
    total = count_in(log, chains, bound) if progress is not None else 0
    return fold(events_in(log, chains, bound), cutoffs_in(log, chains, bound), progress, total)


def node_snapshot(node: Node, bound: Bound) -> Snapshot:
    """The configuration of a live node at ``bound`` (read from its own log)."""
    return snapshot(node.log, {node.mid, node.origin}, bound)


def node_anchor(node: Node) -> Event | None:
    """The event where the node's current scope starts (its create, join or init)."""
    anchor, _ = scope_at(node.log, {node.mid, node.origin}, EVERYTHING)
    return anchor
