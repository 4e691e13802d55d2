"""A seeded discrete-event simulation of the anti-entropy protocol: no trio, no SQLite.

Theory of operation
-------------------
Everything that decides what a node holds is the real code: one ``sync.Session`` per link
end (hello, plan, push, relay, resync, ping), events made with ``events.create`` and checked
with ``events.parse`` (signatures included unless ``verify`` is off), and the merge
``state.apply`` into a ``state.MemoryStore``. What is simulated is only what the trio shell
(evstore/net/gossip.py) and the SQLite log (evstore/storage/log.py) do around it: moving
bytes, timers, and a small in-memory log with the same placement rules, decided by the
same function (evstore/core/placement.py: duplicates are no-ops, an event waits in *pending*
for its predecessor or for its author's admission, a different event at an applied
(origin, seq) is a fork, a wrong ``prev`` a broken chain).

Time is virtual, in integer milliseconds. The one source of randomness is
``random.Random(seed)``; signing keys derive from the seed and the node's index; the queue is
a heap of ``(time_ms, seq_no, action)``, so ties run in the order they were scheduled; no set
or dict of strings is iterated where the order could reach the trace. Hence one seed gives
one run, in any process and under any ``PYTHONHASHSEED``, and ``trace_hash`` (a SHA-256 over
every traced ``(time, node, what)``) proves it.

A run has two phases. SAFETY: nodes commit random changes while faults are injected: lost
messages, duplicated messages, latency jitter that reorders them, links that fail and come
back, one-way blackholes on live links, random partitions into 2 or 3 groups, and node
restarts (a restarted node loses its sessions and everything in flight, keeps its log, and
sometimes rebuilds its views from the log). LIVENESS: every fault stops, every link comes up
and delivery becomes FIFO; the run goes on until every node holds the same events (equal
version vectors, nothing pending) or a virtual-time bound passes. Then every node's
materialized state is encoded canonically and must be byte-identical.

Modelling choices. A link is a connection: when it goes down, its sessions end and whatever
is in flight is lost (a new connection has a new epoch, and stale deliveries are dropped);
when it can come back, it reconnects after a random back-off, with new sessions that start
with ``start()``. The hello of a connection is never lost, duplicated or overtaken (it stands
for the handshake, which a real stream delivers before any data); every later message may
be. A message that the session refuses (``SyncError``) drops the connection, as the shell
does; between honest nodes that must never happen, and the tests check it. The store is fed
after every ingest, as EventLog does in its transaction, unless ``lazy_views``: then it is
fed when something reads it (a membership question, a commit, a restart, the final check),
in whatever batches that makes, which the merge must not notice. Not modelled: events held
back for a clock too far ahead (skews stay far below ``max_offset``), forks from restored
backups, version mismatches and the Noise transport, which have tests of their own.

Rerun one seed: ``python -m tests.sim.des --seed N [--preset big] [--nodes M]`` (``main``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import heapq
import random
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import nacl.signing

from evstore.core import catalog, clock, encoding, events, placement, state, sync
from evstore.core.errors import InvalidInput
from evstore.core.events import Event
from evstore.core.modes import CLUSTER, group_id_of, group_mode, machine_mode

VERSION = "des-1"
T0 = 1767225600000  # 2026-01-01T00:00:00Z: virtual time 0
SECTIONS = ("dns", "ldap", "timezone")
ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo")

Action = Callable[[], None]


@dataclass(frozen=True)
class Config:
    """One run's shape. Every field is a knob of the schedule, none is randomness."""

    seed: int = 0
    nodes: int = 10
    degree: int | None = None  # None: full mesh; else a ring plus random chords, ~degree each
    safety_ms: int = 20_000
    commits: int = 60  # spread uniformly over the safety phase
    struct_share: float = 0.1  # of commits: group.add, machine.setgroup, cluster.setname,
    removals: int = 1  # ... and at most this many machine.remove (with a seq cutoff)
    joins: bool = True  # every admitted node writes its cluster.join first
    latency_ms: tuple[int, int] = (1, 40)
    p_drop: float = 0.03
    p_dup: float = 0.05
    fault_every_ms: int = 400  # mean gap between fault injections in the safety phase
    outage_ms: tuple[int, int] = (200, 4_000)  # how long a fault lasts
    reconnect_ms: tuple[int, int] = (20, 500)
    resync_ms: int = 2_000
    ping_ms: int = 1_500
    writer_ms: int = 1  # a push runs this long after the log changed (coalesces bursts)
    skew_ms: int = 2_000  # each node's clock is off by up to this much
    p_rebuild: float = 0.5  # a restart rebuilds the views from the log
    liveness_bound_ms: int = 30_000
    check_every_ms: int = 50
    verify: bool = True  # Ed25519 on every event a node receives for the first time
    lazy_views: bool = False  # feed the store when it is read, not after every ingest
    indexed: bool = True  # IndexedStore (a MemoryStore with lookup indexes) or the plain one
    trace_keep: int | None = 5_000  # trace records kept in memory (all are hashed); None: all


FAULT_MIX: tuple[tuple[str, int], ...] = (
    ("link", 40),
    ("oneway", 15),
    ("partition", 15),
    ("restart", 30),
)


def node_key(seed: int, index: int) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(hashlib.sha256(f"evstore-des-{seed}-{index}".encode()).digest())


# --------------------------------------------------------------------------- the store


@dataclass
class IndexedStore(state.MemoryStore):
    """``state.MemoryStore`` with indexes, so 100 machines do not make every lookup a scan.

    Only where things are found changes (winners by (scope, section), the structure and
    cutoff registers, effective rows by machine); the base dicts stay complete and the rules
    are state.py's. ``test_des`` checks that it materializes exactly what MemoryStore does.
    """

    by_pair: dict[tuple[str, str], dict[str, state.Write]] = field(default_factory=dict)
    special: dict[state.Reg, state.Write] = field(default_factory=dict)
    eff_rows: dict[str, dict[str, None]] = field(default_factory=dict)

    def set_winner(self, reg: state.Reg, w: state.Write | None) -> None:
        super().set_winner(reg, w)
        pair = self.by_pair.setdefault((reg[0], reg[1]), {})
        if w is None:
            pair.pop(reg[2], None)
            self.special.pop(reg, None)
            return
        pair[reg[2]] = w
        if reg[1] in (state.STRUCT, state.CUTOFF):
            self.special[reg] = w

    def winners_of(self, scope: str, section: str) -> dict[str, state.Write]:
        return dict(self.by_pair.get((scope, section), {}))

    def structure_winners(self) -> list[state.Write]:
        return [w for r, w in sorted(self.special.items()) if r[1] == state.STRUCT]

    def cutoffs(self) -> dict[str, int]:
        return {
            reg[0].removeprefix("origin:"): int(w.value)
            for reg, w in self.special.items()
            if reg[1] == state.CUTOFF
        }

    def set_effective(self, mid: str, section: str, value: dict[str, Any] | None,
                      source: str, event: str | None) -> None:
        super().set_effective(mid, section, value, source, event)
        self.eff_rows.setdefault(mid, {})[section] = None

    def clear_effective(self, mid: str) -> None:
        for section in self.eff_rows.pop(mid, {}):
            del self.effective[(mid, section)]


def new_store(indexed: bool) -> state.MemoryStore:
    return IndexedStore() if indexed else state.MemoryStore()


def state_dump(store: state.MemoryStore) -> bytes:
    """Everything the store's views hold, canonically encoded: sections per mode, every
    register's winner, the materialized effective rows, effective settings recomputed with
    ``state.resolve`` for every machine and section, the structure and superseded writes."""
    st = state.structure_from(store.structure_winners())
    resolved = [
        [mid, sec, *state.resolve(store, st, mid, sec)]
        for mid in sorted(st.machines)
        for sec in sorted(catalog.SECTIONS)
    ]
    return encoding.encode({
        "sections": [[m, s, v, ev] for (m, s), (v, ev) in sorted(store.sections.items())],
        "winners": [[*r, w.event, w.present, w.value] for r, w in sorted(store.winners.items())],
        "effective": [[m, s, *row] for (m, s), row in sorted(store.effective.items())],
        "resolved": resolved,
        "structure": {
            "name": st.name,
            "main_group": st.main_group,
            "groups": st.groups,
            "deleted": st.deleted,
            "machines": [dataclasses.asdict(st.machines[m]) for m in sorted(st.machines)],
        },
        "superseded": [
            [*r, [[lo.event, win.event] for lo, win in pairs]]
            for r, pairs in sorted(store.lost.items())
        ],
    })


# --------------------------------------------------------------------------- the log


class Log:
    """A node's event log in memory, with storage/log.py's placement rules (see the top).

    ``admit`` is the membership verdict (True, or None: not yet), as of every event applied
    so far (EventLog feeds its views before it asks; here a "not yet" from views that lag
    the log is asked again after feeding them). A positive verdict is remembered per (origin, kind): for the kinds this simulation
    writes, membership only grows (``may_write`` still admits a removed machine, whose
    events past its cutoff are stored and ignored by the merge; there are no rekeys).
    """

    def __init__(self, *, verify: bool, lazy: bool, admit: Callable[[Event], bool | None],
                 on_apply: Callable[[list[Event]], object],
                 intern: dict[str, Event]) -> None:
        self.verify = verify
        self.lazy = lazy
        self.admit = admit
        self.on_apply = on_apply
        self.intern = intern  # one Event object per id for the whole simulation (memory)
        self.chains: dict[str, dict[int, Event]] = {}
        self.vv: sync.VersionVector = {}
        self.pending: dict[str, dict[int, Event]] = {}
        self.known: set[str] = set()  # ids applied or pending: membership tests only
        self.members: set[tuple[str, str]] = set()  # (origin, kind) admitted: a cache
        self.unflushed: list[Event] = []
        self.hwm = 0
        self.stats: Counter[str] = Counter()

    # ---- reading

    def head(self, origin: str) -> tuple[int, str | None]:
        run = self.vv.get(origin)
        if run is None:
            return 0, None
        return run[1], self.chains[origin][run[1]].id

    def read(self, ranges: Sequence[sync.Range]) -> list[sync.Item]:
        out: list[sync.Item] = []
        for r in ranges:
            chain = self.chains[r.origin]
            out.extend((chain[s].raw, chain[s].sig) for s in range(r.first, r.last + 1))
        return out

    def all_events(self) -> list[Event]:
        return [ev for o in sorted(self.chains) for _, ev in sorted(self.chains[o].items())]

    def pending_count(self) -> int:
        return sum(len(c) for c in self.pending.values())

    # ---- writing

    def append_local(self, ev: Event) -> None:
        if self._admitted(ev) is not True or self.head(ev.origin)[0] + 1 != ev.seq:
            raise AssertionError(f"local event {ev.origin[:8]}/{ev.seq} cannot be appended")
        self.known.add(ev.id)
        self._apply(ev)
        self._flush()

    def ingest(self, items: Sequence[sync.Item]) -> list[Event]:
        """Place received events; return those applied (in the order they were applied)."""
        placed = []
        for raw, sig in items:
            ev = self._receive(raw, sig)
            if ev is not None and self._place(ev):
                placed.append(ev)
        applied = self._drain()
        self.stats["pending"] += sum(
            1 for ev in placed if self.pending.get(ev.origin, {}).get(ev.seq) is ev
        )  # had to wait: a gap before it, or its author not admitted yet
        if not self.lazy:
            self._flush()
        return applied

    def _receive(self, raw: bytes, sig: bytes) -> Event | None:
        eid = events.event_id(raw)
        if eid in self.known:
            self.stats["duplicate"] += 1
            return None
        try:
            ev = events.parse(raw, sig) if self.verify else _unverified(raw, sig)
        except InvalidInput:
            self.stats["rejected"] += 1
            return None
        self.stats["verified" if self.verify else "unverified"] += 1
        self.known.add(eid)
        return self.intern.setdefault(eid, ev)

    def _place(self, ev: Event) -> bool:
        """Put a new event in pending, where ``_drain`` picks it up; False for a fork."""
        held = self.chains.get(ev.origin, {}).get(ev.seq)
        taken = None if held is None else held.id
        if placement.place(ev.id, ev.seq, ev.prev, taken, None) is placement.Outcome.FORK:
            self.stats["fork"] += 1  # a different event at an applied (origin, seq)
            return False
        chain = self.pending.setdefault(ev.origin, {})
        if ev.seq in chain:
            self.stats["fork"] += 1
            return False
        chain[ev.seq] = ev
        return True

    def _drain(self) -> list[Event]:
        """Apply pending events until none can be (gaps filled, authors admitted)."""
        applied: list[Event] = []
        progress = True
        while progress:
            progress = False
            for origin in sorted(self.pending):
                progress |= self._drain_chain(origin, applied)
                if not self.pending[origin]:
                    del self.pending[origin]
        return applied

    def _drain_chain(self, origin: str, applied: list[Event]) -> bool:
        chain = self.pending[origin]
        moved = False
        while True:
            seq, head_id = self.head(origin)
            ev = chain.get(seq + 1)
            if ev is None:
                return moved
            if placement.chain(ev.seq, ev.prev, head_id if seq else None) is \
                    placement.Outcome.BROKEN:
                del chain[seq + 1]
                self.stats["broken_chain"] += 1
                return moved
            if self._admitted(ev) is not True:
                return moved
            del chain[seq + 1]
            self._apply(ev)
            applied.append(ev)
            moved = True

    def _admitted(self, ev: Event) -> bool | None:
        """The membership verdict, as of everything applied so far.

        The store is fed first only when the views it holds now do not already admit the
        author (membership only grows, so "yes" from older views stays "yes").
        """
        if ev.kind in state.ALWAYS_ADMITTED or (ev.origin, ev.kind) in self.members:
            return True
        verdict = self.admit(ev)
        if not verdict and self.unflushed:
            self._flush()
            verdict = self.admit(ev)
        if verdict:
            self.members.add((ev.origin, ev.kind))
        return verdict

    def _apply(self, ev: Event) -> None:
        self.chains.setdefault(ev.origin, {})[ev.seq] = ev
        first = self.vv.get(ev.origin, (ev.seq, ev.seq))[0]
        self.vv[ev.origin] = (first, ev.seq)
        self.hwm = clock.observe(self.hwm, ev.clock)
        self.unflushed.append(ev)
        self.stats["applied"] += 1

    def flush(self) -> None:
        """Hand the events applied since the last flush to the store."""
        self._flush()

    def _flush(self) -> None:
        if self.unflushed:
            batch, self.unflushed = self.unflushed, []
            self.on_apply(batch)


def _unverified(raw: bytes, sig: bytes) -> Event:
    """An event from canonical bytes without the signature check (``verify=False`` only)."""
    env = encoding.decode(raw)
    if not isinstance(env, dict) or set(env) != events.ENVELOPE_KEYS:
        raise InvalidInput("not an event envelope")
    return Event(raw=raw, sig=sig, id=events.event_id(raw), origin=env["origin"],
                 seq=env["seq"], prev=env["prev"], clock=env["clock"], wall=env["wall"],
                 user=env["user"], kind=env["kind"], payload=env["payload"])


# --------------------------------------------------------------------------- nodes and links


class Node:
    """One machine: key, clock skew, log, views. Up or down (restarting)."""

    def __init__(self, index: int, cfg: Config, skew: int, intern: dict[str, Event]) -> None:
        self.index = index
        self.key = node_key(cfg.seed, index)
        self.id = self.key.verify_key.encode().hex()
        self.skew = skew
        self.indexed = cfg.indexed
        self.store = new_store(cfg.indexed)
        self.log = Log(verify=cfg.verify, lazy=cfg.lazy_views, admit=self._admit,
                       on_apply=self._on_apply, intern=intern)
        self._structure: state.Structure | None = None
        self.up = True
        self.down_until = 0
        self.joined = False
        self.is_member = index == 0
        self.links: list[Link] = []
        self.made = 0  # struct names made by this node (unique group and cluster names)

    def now_ms(self, now: int) -> int:
        return T0 + now + self.skew

    def views(self) -> state.MemoryStore:
        """The store, up to date with the log (``lazy_views`` feeds it here)."""
        self.log.flush()
        return self.store

    def structure(self, *, fresh: bool = True) -> state.Structure:
        """The structure as the views say (cached until they change); ``fresh=False``: as
        the store has it, without feeding it what the log applied since."""
        if fresh:
            self.log.flush()
        if self._structure is None:
            self._structure = state.structure_from(self.store.structure_winners())
        return self._structure

    def _admit(self, ev: Event) -> bool | None:
        return state.may_write(self.structure(fresh=False), ev)

    def _on_apply(self, evs: list[Event]) -> None:
        state.apply(self.store, evs)
        self._structure = None

    def member(self) -> bool:
        """May this node write now? (Remembered once true: membership only grows here.)"""
        if not self.is_member:
            probe = cast(Event, _Probe(self.id))
            self.is_member = state.may_write(self.structure(), probe) is True
        return self.is_member

    def append(self, kind: str, payload: dict[str, Any], now: int) -> Event:
        seq, prev = self.log.head(self.id)
        wall = self.now_ms(now)
        ev = events.create(self.key, seq=seq + 1, prev=prev, clock=clock.tick(self.log.hwm, wall),
                           wall=wall, user="admin", kind=kind, payload=payload)
        self.log.append_local(ev)
        return ev

    def rebuild(self, rng: random.Random) -> None:
        """Views from scratch, from the log, in a shuffled order and in one batch."""
        self.log.unflushed.clear()
        evs = self.log.all_events()
        rng.shuffle(evs)
        self.store = new_store(self.indexed)
        self._structure = None
        state.apply(self.store, evs)


@dataclass(frozen=True)
class _Probe:
    """Just enough of an event for ``state.may_write``: "may this node write now?"."""

    origin: str
    kind: str = "config.commit"


@dataclass
class Conn:
    """One connection of a link: a session per end, and what each end has seen."""

    epoch: int
    sessions: tuple[sync.Session, sync.Session]
    got_hello: list[bool] = field(default_factory=lambda: [False, False])
    early: tuple[list[bytes], list[bytes]] = field(default_factory=lambda: ([], []))
    push_queued: list[bool] = field(default_factory=lambda: [False, False])
    blackhole_until: list[int] = field(default_factory=lambda: [0, 0])  # by sending end
    sent: list[int] = field(default_factory=lambda: [0, 0])  # messages sent, by sending end
    seen: list[int] = field(default_factory=lambda: [0, 0])  # highest number delivered


@dataclass
class Link:
    """The possible connection between nodes ``a`` < ``b``; end 0 is ``a``, end 1 is ``b``."""

    a: int
    b: int
    epoch: int = 0
    conn: Conn | None = None
    failed_until: int = 0
    connecting: bool = False
    last_arrival: list[int] = field(default_factory=lambda: [0, 0])

    @property
    def name(self) -> str:
        return f"{self.a}-{self.b}"

    def end(self, index: int) -> int:
        return 0 if index == self.a else 1


# --------------------------------------------------------------------------- the outcome


@dataclass
class Outcome:
    """What a run did and whether it converged; equal runs compare equal (not ``real_s``)."""

    seed: int
    nodes: int
    ok: bool
    reason: str
    counts: dict[str, int]
    events: int
    heal_ms: int
    converge_ms: int | None
    end_ms: int
    trace_hash: str
    state_hash: str
    real_s: float = field(compare=False, default=0.0)
    trace_tail: list[tuple[int, int, str]] = field(compare=False, default_factory=list)

    def summary(self) -> str:
        c = self.counts
        faults = " ".join(f"{k}={c.get(k, 0)}" for k in
                          ("link_failures", "oneway", "partitions", "restarts", "rebuilds"))
        return (
            f"seed={self.seed} nodes={self.nodes} ok={self.ok} ({self.reason}) "
            f"events={self.events} commits={c.get('commits', 0)} "
            f"struct={c.get('struct_commits', 0)} removals={c.get('removals', 0)} "
            f"joins={c.get('joins', 0)} "
            f"messages={c.get('messages', 0)} bytes={c.get('bytes', 0)} "
            f"drops={c.get('drops', 0)} dups={c.get('dups', 0)} "
            f"reordered={c.get('reordered', 0)} blackholed={c.get('blackholed', 0)} "
            f"stale={c.get('stale', 0)} {faults} connects={c.get('connects', 0)} "
            f"protocol_errors={c.get('protocol_errors', 0)} "
            f"heal_ms={self.heal_ms} converge_ms={self.converge_ms} end_ms={self.end_ms} "
            f"real_s={self.real_s:.1f} trace={self.trace_hash[:16]} state={self.state_hash[:16]}"
        )


# --------------------------------------------------------------------------- the simulator


class Sim:
    """The event queue, the nodes and links, the fault schedule and the checks."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.now = 0
        self.queue: list[tuple[int, int, Action]] = []
        self.seq_no = 0
        self.faulty = True
        self.partition: list[int] | None = None
        self.partition_id = 0
        self.counts: Counter[str] = Counter()
        self.hasher = hashlib.sha256()
        self.trace: deque[tuple[int, int, str]] = deque(maxlen=cfg.trace_keep)
        intern: dict[str, Event] = {}
        self.nodes = [
            Node(i, cfg, self.rng.randint(-cfg.skew_ms, cfg.skew_ms), intern)
            for i in range(cfg.nodes)
        ]
        self.links = [Link(a, b) for a, b in self._topology()]
        for link in self.links:
            self.nodes[link.a].links.append(link)
            self.nodes[link.b].links.append(link)

    # ---- queue and trace

    def at(self, when: int, action: Action) -> None:
        self.seq_no += 1
        heapq.heappush(self.queue, (when, self.seq_no, action))

    def after(self, delay: int, action: Action) -> None:
        self.at(self.now + delay, action)

    def run_until(self, until: int) -> None:
        while self.queue and self.queue[0][0] <= until:
            when, _, action = heapq.heappop(self.queue)
            self.now = when
            action()
        self.now = max(self.now, until)

    def note(self, node: int, what: str) -> None:
        self.hasher.update(f"{self.now} {node} {what}\n".encode())
        self.trace.append((self.now, node, what))

    # ---- topology

    def _topology(self) -> list[tuple[int, int]]:
        """Full mesh, or a ring with random chords (so the overlay stays connected)."""
        n, degree = self.cfg.nodes, self.cfg.degree
        if degree is None or degree >= n - 1:
            return [(a, b) for a in range(n) for b in range(a + 1, n)]
        pairs = {(min(i, (i + 1) % n), max(i, (i + 1) % n)) for i in range(n)}
        for i in range(n):
            for _ in range(max(0, (degree - 2) // 2)):
                j = self.rng.randrange(n)
                if j != i:
                    pairs.add((min(i, j), max(i, j)))
        return sorted(pairs)

    def can_connect(self, link: Link) -> bool:
        a, b = self.nodes[link.a], self.nodes[link.b]
        if not (a.up and b.up) or link.failed_until > self.now:
            return False
        return self.partition is None or self.partition[link.a] == self.partition[link.b]

    # ---- connections

    def kick(self, link: Link) -> None:
        """Reconnect ``link`` after a back-off, if it is down and may come up."""
        if link.conn is not None or link.connecting or not self.can_connect(link):
            return
        link.connecting = True
        self.after(self.rng.randint(*self.cfg.reconnect_ms), lambda: self._attempt(link))

    def _attempt(self, link: Link) -> None:
        link.connecting = False
        if link.conn is None and self.can_connect(link):
            self.connect(link)

    def connect(self, link: Link) -> None:
        link.epoch += 1
        ends = (self.nodes[link.a], self.nodes[link.b])
        sessions = tuple(sync.Session(node=n.id, version=VERSION, vv=n.log.vv) for n in ends)
        conn = Conn(link.epoch, (sessions[0], sessions[1]))
        link.conn = conn
        self.counts["connects"] += 1
        self.note(link.a, f"connect {link.name} epoch={link.epoch}")
        for end in (0, 1):
            for data in conn.sessions[end].start():
                self.transmit(link, end, data, hello=True)
            self._every(link, conn, end, self.cfg.resync_ms, self._resync)
            self._every(link, conn, end, self.cfg.ping_ms, self._ping)

    def teardown(self, link: Link, why: str) -> None:
        if link.conn is None:
            return
        link.conn = None
        link.epoch += 1  # whatever is in flight or scheduled for the old epoch is void
        self.counts["teardowns"] += 1
        self.note(link.a, f"down {link.name} {why}")

    def _live(self, link: Link, conn: Conn) -> bool:
        return link.conn is conn

    def _every(self, link: Link, conn: Conn, end: int, period: int,
               fn: Callable[[Link, Conn, int], None]) -> None:
        """A per-connection timer with +-10 % jitter; it dies with its connection."""
        def fire() -> None:
            if self._live(link, conn):
                fn(link, conn, end)
                self._every(link, conn, end, period, fn)

        self.after(self.rng.randint(period * 9 // 10, period * 11 // 10), fire)

    # ---- messages

    def transmit(self, link: Link, end: int, data: bytes, *, hello: bool = False) -> None:
        conn = link.conn
        assert conn is not None
        sender = link.a if end == 0 else link.b
        conn.sent[end] += 1
        number = conn.sent[end]
        kind = _kind(data)
        self.counts["messages"] += 1
        self.counts["bytes"] += len(data)
        self.counts[f"sent_{kind}"] += 1
        digest = hashlib.sha256(data).hexdigest()[:16]
        if not hello and self.faulty and conn.blackhole_until[end] > self.now:
            self.counts["blackholed"] += 1
            self.note(sender, f"blackhole {link.name} {kind} {digest}")
            return
        if not hello and self.faulty and self.rng.random() < self.cfg.p_drop:
            self.counts["drops"] += 1
            self.note(sender, f"drop {link.name} {kind} {digest}")
            return
        copies = 2 if not hello and self.faulty and self.rng.random() < self.cfg.p_dup else 1
        self.counts["dups"] += copies - 1
        for _ in range(copies):
            when = self._arrival(link, end)
            self.note(sender, f"send {link.name} {kind} {digest} at={when}")
            self.at(when, lambda: self.deliver(link, conn, 1 - end, data, number, hello))

    def _arrival(self, link: Link, end: int) -> int:
        when = self.now + self.rng.randint(*self.cfg.latency_ms)
        if not self.faulty:  # no reordering once faults stop
            when = max(when, link.last_arrival[end])
            link.last_arrival[end] = when
        return when

    def deliver(self, link: Link, conn: Conn, end: int, data: bytes, number: int,
                hello: bool) -> None:
        if not self._live(link, conn):
            self.counts["stale"] += 1
            return
        if not hello and not conn.got_hello[end]:
            self.counts["early"] += 1
            conn.early[end].append(data)
            return
        came_from = 1 - end
        if number < conn.seen[came_from]:
            self.counts["reordered"] += 1
        conn.seen[came_from] = max(conn.seen[came_from], number)
        self._receive(link, conn, end, data)
        if hello:
            conn.got_hello[end] = True
            early = conn.early[end][:]
            conn.early[end].clear()
            for msg in early:
                if self._live(link, conn):
                    self._receive(link, conn, end, msg)

    def _receive(self, link: Link, conn: Conn, end: int, data: bytes) -> None:
        node = self.nodes[link.a if end == 0 else link.b]
        try:
            actions = conn.sessions[end].receive(data, node.now_ms(self.now))
            for action in actions:
                if self._live(link, conn):
                    self._carry_out(link, conn, end, action)
        except sync.SyncError as exc:
            self.counts["protocol_errors"] += 1
            self.note(node.index, f"protocol error on {link.name}: {exc}")
            self.teardown(link, "protocol error")
            self.kick(link)

    def _carry_out(self, link: Link, conn: Conn, end: int, action: sync.Action) -> None:
        node = self.nodes[link.a if end == 0 else link.b]
        match action:
            case sync.Send(data):
                self.transmit(link, end, data)
            case sync.Ready(peer):
                expected = self.nodes[link.b if end == 0 else link.a].id
                if peer != expected:
                    raise sync.SyncError(f"peer is {peer[:16]}, expected {expected[:16]}")
                self._ping(link, conn, end)
            case sync.Ingest(items):
                self._ingest(node, items)
            case sync.NeedRanges():
                self._send_ranges(link, conn, end, action)
            case sync.Pong():
                self.counts["pongs"] += 1
            case sync.PeerVersionMismatch() | sync.Closed():
                self.teardown(link, type(action).__name__)

    def _ingest(self, node: Node, items: Sequence[sync.Item]) -> None:
        applied = node.log.ingest(items)
        self.counts["ingested_items"] += len(items)
        if applied:
            self.note(node.index, f"applied {len(applied)} {applied[-1].id[:12]}")
            self.changed(node)
            self._maybe_join(node)

    def _send_ranges(self, link: Link, conn: Conn, end: int, need: sync.NeedRanges) -> None:
        node = self.nodes[link.a if end == 0 else link.b]
        for group in sync.chunk_ranges(need.ranges):
            items = node.log.read(group)
            for data in conn.sessions[end].send_events(items, push=need.push):
                self.transmit(link, end, data)

    # ---- the shell's timers and pushes

    def changed(self, node: Node) -> None:
        """The log gained events: every connection of the node pushes, once per burst."""
        for link in node.links:
            conn = link.conn
            end = link.end(node.index)
            if conn is not None and not conn.push_queued[end]:
                conn.push_queued[end] = True
                self.after(self.cfg.writer_ms, functools.partial(self._push, link, conn, end))

    def _push(self, link: Link, conn: Conn, end: int) -> None:
        if not self._live(link, conn):
            return
        conn.push_queued[end] = False
        node = self.nodes[link.a if end == 0 else link.b]
        for action in conn.sessions[end].local_changed(node.log.vv):
            if isinstance(action, sync.NeedRanges):
                self._send_ranges(link, conn, end, action)

    def _resync(self, link: Link, conn: Conn, end: int) -> None:
        """As gossip's resync: push what the log gained, then send our vector."""
        self._push(link, conn, end)
        for data in conn.sessions[end].resync():
            self.transmit(link, end, data)

    def _ping(self, link: Link, conn: Conn, end: int) -> None:
        session = conn.sessions[end]
        if session.ready:
            node = self.nodes[link.a if end == 0 else link.b]
            self.transmit(link, end, session.ping(node.now_ms(self.now)))

    # ---- commits

    def genesis(self) -> None:
        """Node 0 creates the cluster and admits every other node's key."""
        first = self.nodes[0]
        create = first.append("cluster.create", {
            "name": "des", "group_name": "Main_Group",
            "machine": {"hostname": "n0", "serial": "DES0000"},
            "cluster_settings": {"dns": {"servers": ["10.0.0.1"]},
                                 "users": {"users": [{"name": "admin", "role": "admin", "passphrase_hash": "x"}]}},
            "machine_settings": {},
        }, self.now)
        gid = group_id_of(create.id)
        for node in self.nodes[1:]:
            first.append("cluster.admit", {
                "machine_id": node.id, "key": node.id, "group": gid,
                "machine": {"hostname": f"n{node.index}", "serial": f"DES{node.index:04d}"},
            }, self.now)
        first.joined = True
        self.counts["genesis"] = len(self.nodes)
        self.note(0, f"genesis {create.id[:12]}")
        self.changed(first)

    def _maybe_join(self, node: Node) -> None:
        """An admitted node writes its cluster.join soon after it learns of its admission."""
        if self.cfg.joins and not node.joined and node.up and node.member():
            node.joined = True
            self.after(self.rng.randint(1, 200), lambda: self._join(node))

    def _join(self, node: Node) -> None:
        if not node.up:
            node.joined = False  # try again at boot
            return
        settings = {"timezone": {"zone": self.rng.choice(ZONES)}} if self.rng.random() < .5 else {}
        ev = node.append("cluster.join", {
            "machine_id": node.id,
            "machine": {"hostname": f"n{node.index}", "serial": f"DES{node.index:04d}"},
            "machine_settings": settings,
        }, self.now)
        self.counts["joins"] += 1
        self.note(node.index, f"join {ev.id[:12]}")
        self.changed(node)

    def commit(self) -> None:
        """A random node that may write commits a random change."""
        ready = [n for n in self.nodes if n.up and n.member()
                 and (not self.cfg.joins or n.index == 0 or n.log.head(n.id)[0] > 0)]
        if not ready:
            self.counts["skipped_commits"] += 1
            return
        node = self.rng.choice(ready)
        if node.structure().machines[node.id].removed:  # it knows: it writes no more
            self.counts["skipped_commits"] += 1
            return
        if self.rng.random() < self.cfg.struct_share:
            kind, payload = self._struct_change(node)
            self.counts["struct_commits"] += 1
        else:
            kind, payload = "config.commit", self._config_change(node)
        ev = node.append(kind, payload, self.now)
        self.counts["commits"] += 1
        self.note(node.index, f"commit {kind} {ev.seq} {ev.id[:12]}")
        self.changed(node)

    def _struct_change(self, node: Node) -> tuple[str, dict[str, Any]]:
        st = node.structure()
        node.made += 1
        pick = self.rng.random()
        if pick < 0.35:
            return "group.add", {"name": f"g{node.index}-{node.made}"}
        if pick < 0.7:
            mids = sorted(m.mid for m in st.members())
            mid = self.rng.choice(mids)
            gid = self.rng.choice(_live_groups(st))
            base = _base(node.views(), (machine_mode(mid), state.STRUCT, "group"))
            return "machine.setgroup", {"machine": mid, "group": gid, "base": base}
        others = [m.mid for m in st.members() if m.mid not in (node.id, self.nodes[0].id)]
        if pick < 0.85 or self.counts["removals"] >= self.cfg.removals or not others:
            base = _base(node.views(), (CLUSTER, state.STRUCT, "name"))
            return "cluster.setname", {"name": f"des-{node.index}-{node.made}", "base": base}
        mid = self.rng.choice(sorted(others))
        self.counts["removals"] += 1
        return "machine.remove", {"machine": mid, "cutoffs": {mid: node.log.head(mid)[0]}}

    def _config_change(self, node: Node) -> dict[str, Any]:
        st = node.structure()
        changes = []
        for _ in range(self.rng.choice((1, 1, 1, 2))):
            level = self.rng.random()
            if level < 0.4:
                mode = CLUSTER
            elif level < 0.7:
                mode = group_mode(self.rng.choice(_live_groups(st)))
            else:
                mode = machine_mode(self.rng.choice(sorted(m.mid for m in st.members())))
            changes.append(self._change(node, mode, self.rng.choice(SECTIONS)))
        return {"comment": f"c{self.counts['commits']}", "changes": changes}

    def _change(self, node: Node, mode: str, section: str) -> dict[str, Any]:
        wins = node.views().winners_of(mode, section)
        newest = max((w.order for w in wins.values()), default=None)
        base = list(newest) if newest is not None else None
        ch: dict[str, Any] = {"mode": mode, "section": section, "base": base}
        op = self.rng.choice(("define", "define", "patch", "patch", "delete"))
        ch["op"] = op
        value = _value(self.rng, section)
        if op == "define":
            ch["value"] = value
        elif op == "patch":
            ch["set"] = state.fields_of(section, value)
            old = sorted(f for f in wins if not f.startswith("@") and f not in ch["set"])
            ch["unset"] = [self.rng.choice(old)] if old and self.rng.random() < 0.3 else []
        return ch

    # ---- faults

    def inject(self) -> None:
        """One random fault, then the next one after a random gap (safety phase only)."""
        if not self.faulty:
            return
        total = sum(w for _, w in FAULT_MIX)
        pick = self.rng.randrange(total)
        for name, weight in FAULT_MIX:
            if pick < weight:
                getattr(self, f"_fault_{name}")(self.rng.randint(*self.cfg.outage_ms))
                break
            pick -= weight
        self.after(self.rng.randint(1, 2 * self.cfg.fault_every_ms), self.inject)

    def _fault_link(self, duration: int) -> None:
        link = self.rng.choice(self.links)
        link.failed_until = max(link.failed_until, self.now + duration)
        self.counts["link_failures"] += 1
        self.note(link.a, f"fault link {link.name} for {duration}")
        self.teardown(link, "link failure")
        self.after(duration, lambda: self.kick(link))

    def _fault_oneway(self, duration: int) -> None:
        live = [lk for lk in self.links if lk.conn is not None]
        if not live:
            return
        link = self.rng.choice(live)
        assert link.conn is not None
        end = self.rng.randrange(2)
        link.conn.blackhole_until[end] = self.now + duration
        self.counts["oneway"] += 1
        self.note(link.a, f"fault oneway {link.name} from end {end} for {duration}")

    def _fault_partition(self, duration: int) -> None:
        groups = self.rng.choice((2, 2, 3))
        self.partition = [self.rng.randrange(groups) for _ in self.nodes]
        self.partition_id += 1
        token = self.partition_id
        self.counts["partitions"] += 1
        self.note(-1, f"fault partition {groups} {self.partition} for {duration}")
        for link in self.links:
            if not self.can_connect(link):
                self.teardown(link, "partition")
        self.after(duration, lambda: self._heal_partition(token))

    def _heal_partition(self, token: int) -> None:
        if self.partition_id == token and self.partition is not None:
            self.partition = None
            self.note(-1, "partition healed")
            for link in self.links:
                self.kick(link)

    def _fault_restart(self, duration: int) -> None:
        node = self.rng.choice(self.nodes)
        if not node.up:
            return
        node.up = False
        node.down_until = self.now + duration
        self.counts["restarts"] += 1
        self.note(node.index, f"fault restart for {duration}")
        for link in node.links:
            self.teardown(link, "restart")
        if self.rng.random() < self.cfg.p_rebuild:
            node.rebuild(self.rng)
            self.counts["rebuilds"] += 1
        self.after(duration, lambda: self._boot(node))

    def _boot(self, node: Node) -> None:
        if node.up or node.down_until > self.now:
            return
        node.up = True
        self.note(node.index, "boot")
        self._maybe_join(node)
        for link in node.links:
            self.kick(link)

    def heal_all(self) -> None:
        """The liveness phase: no more faults, every node up, every link may connect."""
        self.faulty = False
        self.partition = None
        self.note(-1, "liveness: faults off")
        for node in self.nodes:
            node.down_until = 0
            self._boot(node)
        for link in self.links:
            link.failed_until = 0
            link.last_arrival = [self.now, self.now]
            if link.conn is not None:
                link.conn.blackhole_until = [0, 0]
            self.kick(link)

    # ---- checks

    def settled(self) -> bool:
        """Every node holds the same events and nothing waits."""
        first = self.nodes[0].log.vv
        return all(n.log.vv == first and not n.log.pending for n in self.nodes)

    def verdict(self) -> tuple[bool, str, str]:
        """(ok, reason, state hash) after the liveness phase."""
        if not self.settled():
            vvs = {encoding.encode(sorted(n.log.vv.items())) for n in self.nodes}
            waiting = sum(n.log.pending_count() for n in self.nodes)
            return False, f"not settled: {len(vvs)} distinct vectors, {waiting} pending", ""
        ids = [encoding.encode([e.id for e in n.log.all_events()]) for n in self.nodes]
        if len(set(ids)) != 1:
            return False, "equal vectors but different events (a fork?)", ""
        dumps = [state_dump(n.views()) for n in self.nodes]
        digests = [hashlib.sha256(d).hexdigest() for d in dumps]
        if len(set(digests)) != 1:
            odd = [i for i, d in enumerate(digests) if d != digests[0]]
            return False, f"state diverged: nodes {odd[:10]} differ from node 0", ""
        if self.counts["protocol_errors"]:
            return False, f"{self.counts['protocol_errors']} protocol errors", digests[0]
        bad = sum(n.log.stats[k] for n in self.nodes for k in ("rejected", "fork", "broken_chain"))
        if bad:
            return False, f"{bad} events rejected, forked or off-chain", digests[0]
        return True, "converged", digests[0]

    # ---- the run

    def run(self) -> Outcome:
        started = time.perf_counter()
        cfg = self.cfg
        self.genesis()
        for link in self.links:
            self.kick(link)
        for _ in range(cfg.commits):
            self.at(self.rng.randrange(1, cfg.safety_ms), self.commit)
        self.after(self.rng.randint(1, cfg.fault_every_ms), self.inject)
        self.run_until(cfg.safety_ms)
        heal = self.now
        self.counts["diverged_at_heal"] = int(not self.settled())
        self.heal_all()
        converged: int | None = None
        while self.now - heal < cfg.liveness_bound_ms:
            self.run_until(self.now + cfg.check_every_ms)
            if self.settled():
                converged = self.now - heal
                break
        for node in self.nodes:
            self.counts.update(node.log.stats)
        ok, reason, state_hash = self.verdict()
        if converged is None:
            ok, reason = False, f"no convergence within {cfg.liveness_bound_ms} ms: {reason}"
        self.note(-1, f"end {reason} {state_hash}")
        return Outcome(
            seed=cfg.seed, nodes=cfg.nodes, ok=ok, reason=reason,
            counts=dict(sorted(self.counts.items())),
            events=len(self.nodes[0].log.all_events()), heal_ms=heal,
            converge_ms=converged, end_ms=self.now, trace_hash=self.hasher.hexdigest(),
            state_hash=state_hash, real_s=time.perf_counter() - started,
            trace_tail=list(self.trace)[-50:],
        )


# --------------------------------------------------------------------------- helpers


def _kind(data: bytes) -> str:
    """The message type, read from the canonical bytes without decoding them."""
    at = data.find(b'"t":"')
    if at < 0:
        return "?"
    return data[at + 5 : data.index(b'"', at + 5)].decode()


def _live_groups(st: state.Structure) -> list[str]:
    return sorted(g for g in st.groups if g not in st.deleted)


def _base(store: state.MemoryStore, reg: state.Reg) -> list[Any] | None:
    w = store.winners.get(reg)
    return list(w.order) if w is not None else None


def _value(rng: random.Random, section: str) -> dict[str, Any]:
    n = rng.randrange(1, 250)
    if section == "dns":
        return {"servers": [f"10.0.{n % 7}.{n}" for _ in range(rng.randint(1, 2))]}
    if section == "timezone":
        return {"zone": rng.choice(ZONES)}
    return {
        "servers": [{"name": f"s{n % 3}", "host": f"ldap{n}.example", "port": 389}],
        "queries": [{"name": f"q{n % 2}", "filter": f"(uid={n})"}] if n % 2 else [],
    }


def small_config(seed: int, **changes: Any) -> Config:
    """The many-seeds shape: 10 to 15 nodes (full mesh up to 12, else a degree-6 overlay),
    every node joins, views fed after every ingest, plain MemoryStore on odd seeds."""
    nodes = changes.pop("nodes", 10 + seed % 6)
    changes.setdefault("degree", None if nodes <= 12 else 6)
    cfg = Config(seed=seed, nodes=nodes, commits=30, safety_ms=10_000, indexed=seed % 2 == 0)
    return dataclasses.replace(cfg, **changes)


def big_config(seed: int, **changes: Any) -> Config:
    """The 100-node shape: a ring plus one random chord per node (degree ~4), few structure
    commits besides the 99 joins, views fed when read (the merge recomputes every machine's
    every section on a structure change, and here 100 nodes do it)."""
    cfg = Config(seed=seed, nodes=100, degree=4, commits=80, struct_share=0.05,
                 lazy_views=True, resync_ms=5_000, ping_ms=5_000)
    return dataclasses.replace(cfg, **changes)


PRESETS: dict[str, Callable[..., Config]] = {"small": small_config, "big": big_config}


def run(cfg: Config) -> Outcome:
    """Run one configuration; the same ``cfg`` always gives an equal ``Outcome``."""
    return Sim(cfg).run()


def main(argv: Sequence[str] | None = None) -> int:
    """Rerun one seed of a preset (what the tests run), optionally changed; print the
    outcome and the trace hash; exit status 1 if the run failed."""
    p = argparse.ArgumentParser(prog="python -m tests.sim.des", description=main.__doc__)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--preset", choices=sorted(PRESETS), default="small")
    p.add_argument("--nodes", type=int, help="number of nodes (default: the preset's)")
    p.add_argument("--degree", type=int, help="overlay degree (0: full mesh)")
    p.add_argument("--commits", type=int)
    p.add_argument("--safety-ms", type=int)
    p.add_argument("--no-verify", action="store_true", help="skip Ed25519 checks (faster)")
    p.add_argument("--plain-store", action="store_true", help="state.MemoryStore, no indexes")
    p.add_argument("--tail", type=int, default=0, help="print the last N trace records (<= 50)")
    args = p.parse_args(argv)
    changes: dict[str, Any] = {}
    for name in ("nodes", "commits", "safety_ms"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.degree is not None:
        changes["degree"] = args.degree or None
    if args.no_verify:
        changes["verify"] = False
    if args.plain_store:
        changes["indexed"] = False
    cfg = PRESETS[args.preset](args.seed, **changes)
    out = run(cfg)
    for rec in out.trace_tail[-args.tail:] if args.tail else []:
        print(*rec)
    print(out.summary())
    print(f"trace_hash {out.trace_hash}")
    print(f"outcome {'ok' if out.ok else 'FAILED'}: {out.reason}")
    return 0 if out.ok else 1


if __name__ == "__main__":
    sys.exit(main())
