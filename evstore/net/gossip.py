"""The trio shell of anti-entropy: it moves bytes for core/sync/session.py's Session.

Theory of operation
-------------------
A node has one :class:`Mesh`, and the mesh one :class:`Peer` per live link. A peer runs three
tasks over any channel with ``async send(bytes)`` / ``async receive() -> bytes`` (a
transport.SecureChannel in production, a framed memory stream in the simulation):

* the *receiver* feeds each message to the session and carries out its actions. Ingesting
  events happens here, so a peer that sends faster than our log can commit is slowed down by
  the link itself. It never writes to the channel (that could deadlock two nodes whose
  socket buffers are full); what it wants sent goes to the outbox.
* the *writer* drains the outbox: bytes to send, ranges to read from the log and send, and
  "the log changed" marks (coalesced) that turn into pushes.
* the *timers*: the seed's ping (clock offset, liveness), the periodic resync (anti-entropy)
  and the keepalive. They are not tasks of their own: the mesh has ONE ticker for all its
  links (run by one peer's task at a time, handed on when that link ends), which sleeps
  until the earliest thing due, so an idle node wakes about once a second whatever its
  number of links.
* the *keepalive* (``keepalive_interval``, 1 s by default), on each ticker tick: when this
  side has sent nothing for about that long it sends a ping (whose pong is not reported: a
  keepalive is not a clock reading), so the peer hears from it every second and a link
  that carries other traffic carries no keepalives; and when nothing at all has come from
  the peer for ``link_timeout`` (3 s) it ends the link, so a peer that stops answering
  without closing its socket (a frozen process, a dropped route) is found down within about
  4 s, whatever the seed's ping interval. On a quiet link one side usually pings and the
  other's pong is its own sign of life; a node taking a long catch-up keeps pinging the
  sender, whose pings wait behind the batches in the stream. Time spent waiting for our own
  log to take the peer's events does not count as the peer's silence, nor does time our own
  loop could not run: how late the ticker wakes (``Mesh.stalled``: a starved or stalled
  process) is added to every link's deadline, so an overloaded machine does not drop live
  links, while a frozen peer (our loop on time) is still dropped within the timeout.

When events enter the log (a local commit reported by ``notify_local_change``, or events a
peer sent us) every peer is told, and each session pushes what its peer is not known to hold:
that one rule gives immediate pushes of local commits and relaying to the other peers alike.
In a full mesh (``relay_from_origin=False``) events that came straight from their own origin
are not relayed: the origin pushed them to every peer itself, and relaying them made every
node push every commit to every other (work growing with the square of the cluster); a peer
whose link to the origin is down gets them at the next anti-entropy round instead.
With ``relay_to=k`` a node relays what it received to k of its other links only, picked with
a seeded generator; a node no relay reached gets the events at the next resync. The node does
NOT use it: with ``--fanout K`` it relays to every other link, for the K-dialled overlay
already bounds the work per commit (about twice the links, linear in the cluster's size),
while relaying to k random links left a machine unreached now and then (measured: p99 of
commit to applied on all 5.8 s at 50 machines, 6.8 s at 100 in tests/sim/fanout_sim.py,
against 24 and 29 ms when relaying to all).
Anti-entropy runs on every (re)connect (the hello exchange) and every ``sync_interval``.

The log is reached through :class:`LogAccess`. :class:`ThreadedLog` runs the SQLite work in a
worker thread, one at a time per database (PITFALLS 12); :class:`InlineLog` runs it inline,
for the deterministic simulation, because threads break MockClock autojump.

A bad message from a peer (``SyncError``), a transport error or a version mismatch ends that
link only; the caller decides whether and when to reconnect. Link states live in memory
(``Mesh.links``); changes go to the ``on_link_change`` callback, where the node layer stores
alerts and link rows.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import trio

import evstore
from evstore.core.errors import InvalidInput
from evstore.core.events import Event
from evstore.core.sync import (
    Action,
    Closed,
    Ingest,
    Item,
    NeedRanges,
    PeerVersionMismatch,
    Pong,
    Range,
    Ready,
    Send,
    Session,
    VersionVector,
    chunk_ranges,
)
from evstore.net.transport import LinkError
from evstore.storage import chainreads
from evstore.storage.log import EventLog

__all__ = [
    "DEFAULT_KEEPALIVE",
    "DEFAULT_LINK_TIMEOUT",
    "DEFAULT_PING_INTERVAL",
    "Channel",
    "InlineLog",
    "LinkState",
    "LogAccess",
    "Mesh",
    "Peer",
    "ThreadedLog",
    "cluster_vector",
    "wall_clock_ms",
]

log = logging.getLogger(__name__)

DEFAULT_PING_INTERVAL = 60.0
DEFAULT_KEEPALIVE = 1.0  # s: ping a link that has been quiet this long
DEFAULT_LINK_TIMEOUT = 3.0  # s: a link silent this long is ended (its peer stopped answering)
BYE_TIMEOUT = 5.0
_LINK_ERRORS = (InvalidInput, LinkError, trio.BrokenResourceError, trio.ClosedResourceError)

T = TypeVar("T")


def wall_clock_ms() -> int:
    """Wall-clock time in ms: the default "now" of the shell (never used by the core)."""
    return time.time_ns() // 1_000_000


class Channel(Protocol):
    """What a peer needs of a link: whole messages in and out."""

    async def send(self, message: bytes) -> None: ...

    async def receive(self) -> bytes: ...


class LogAccess(Protocol):
    """What anti-entropy needs of the event log."""

    async def version_vector(self) -> VersionVector: ...

    async def read_events(self, ranges: Sequence[Range]) -> list[Item]: ...

    async def ingest(self, items: Sequence[Item]) -> list[Event]: ...

    def take_evidence(self) -> list[Item]: ...

    def take_diverged(self) -> set[str]: ...

    async def all_evidence(self) -> list[Item]: ...


# --------------------------------------------------------------------------- log access


def cluster_vector(event_log: EventLog, floors: Mapping[str, int] | None = None) -> VersionVector:
    """The log's version vector as ``{origin: (first, last)}``.

    ``floors`` gives, per origin, the first seq that may leave this machine: a machine's
    events from before it joined stay in its own log (CONTRACT, cluster semantics), so the
    node layer sets its own origin's floor to its join event.
    """
    floors = floors or {}
    out: VersionVector = {}
    for origin, last in event_log.version_vector().items():
        first = max(event_log.first_seq(origin) or last, floors.get(origin, 1))
        if first <= last:
            out[origin] = (first, last)
    return out


def _read(event_log: EventLog, ranges: Sequence[Range]) -> list[Item]:
    out: list[Item] = []
    for r in ranges:
        out.extend(event_log.read_raw_range(r.origin, r.first, r.last))
    return out


def _ingest(event_log: EventLog, items: Sequence[Item], now_ms: int
            ) -> tuple[list[Event], list[Item], list[str], bool]:
    result = event_log.ingest(items, now_ms=now_ms)
    if result.rejected or result.forks:
        log.warning("ingest refused events: %s", result.counts())
    return (result.applied, _fork_evidence(event_log, result.forks), result.diverged,
            bool(result.held))


def _fork_evidence(event_log: EventLog, fork_ids: Sequence[str] | None,
                   floors: Mapping[str, int] | None = None) -> list[Item]:
    """Each new fork (every fork held, for None) as the two events at its position: the one
    kept and the other.

    Version vectors count events, so two nodes holding different branches of equal length
    look in sync; the evidence has to be sent for them to find the fork and settle it: to
    every peer when a fork is found, and to each peer again when a link comes up (one that
    was down then would otherwise never learn of it).
    """
    pairs = chainreads.fork_pairs(event_log.conn, fork_ids)
    floors = floors or {}
    out: list[Item] = []
    for p in pairs:
        if p.seq >= floors.get(p.origin, 1):  # never what may not leave (``cluster_vector``)
            out += [(bytes(p.kept_raw), bytes(p.kept_sig)), (bytes(p.other_raw), bytes(p.other_sig))]
    return out


class InlineLog:
    """``LogAccess`` that runs SQLite calls inline: only for the simulation (and tests)."""

    def __init__(
        self,
        event_log: EventLog,
        *,
        now_ms: Callable[[], int] = wall_clock_ms,
        floors: Mapping[str, int] | None = None,
    ) -> None:
        self.log = event_log
        self.now_ms = now_ms
        self.floors: dict[str, int] = dict(floors or {})
        self.evidence: list[Item] = []
        self.diverged: set[str] = set()
        self.held_seen = False  # an ingest held events back for their clock (node: release)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)

    async def version_vector(self) -> VersionVector:
        return await self._call(cluster_vector, self.log, dict(self.floors))

    async def read_events(self, ranges: Sequence[Range]) -> list[Item]:
        return await self._call(_read, self.log, list(ranges))

    async def ingest(self, items: Sequence[Item]) -> list[Event]:
        applied, evidence, diverged, held = await self._call(_ingest, self.log, list(items),
                                                             self.now_ms())
        self.held_seen = self.held_seen or held
        self.evidence += evidence
        self.diverged.update(diverged)
        return applied

    def take_evidence(self) -> list[Item]:
        """Fork evidence found by the ingests since the last call (see ``_fork_evidence``)."""
        out, self.evidence = self.evidence, []
        return out

    def take_diverged(self) -> set[str]:
        """Origins whose chain parted from a sender's, found by the ingests since the last
        call (``IngestResult.diverged``). The links share it, so one may take an origin that
        another's ingest found: it then asks its own peer to resend it, which is only waste,
        and the other asks when that peer's event is refused again."""
        out, self.diverged = self.diverged, set()
        return out

    async def all_evidence(self) -> list[Item]:
        """Every fork this log holds, as evidence (see ``_fork_evidence``)."""
        return await self._call(_fork_evidence, self.log, None, dict(self.floors))


class ThreadedLog(InlineLog):
    """``LogAccess`` for a serving node: each call runs in a worker thread, one at a time.

    Pass the same ``limiter`` (a ``CapacityLimiter(1)``) to everything that uses this
    database connection in this process.
    """

    def __init__(
        self,
        event_log: EventLog,
        *,
        limiter: trio.CapacityLimiter | None = None,
        now_ms: Callable[[], int] = wall_clock_ms,
        floors: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(event_log, now_ms=now_ms, floors=floors)
        self.limiter = limiter if limiter is not None else trio.CapacityLimiter(1)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)


# --------------------------------------------------------------------------- link state


@dataclass
class LinkState:
    """What this node knows about one link, in memory."""

    name: str
    up: bool = False
    node: str | None = None
    since_ms: int | None = None
    last_seen_ms: int | None = None
    offset_ms: int | None = None
    rtt_ms: int | None = None
    error: str | None = None
    events_in: int = 0
    events_out: int = 0


class _Mark:
    """An outbox mark: work the writer does with a fresh look at the log."""

    def __init__(self, name: str) -> None:
        self.name = name


_CHANGED = _Mark("the log gained events: push what the peer lacks")
_RESYNC = _Mark("periodic anti-entropy: refresh our vector, push, then send it")
_EVIDENCE = _Mark("the link is up: send every fork this log holds")


@dataclass(frozen=True)
class _Spread:
    """Send these events to the peer whatever its version vector says (fork evidence)."""

    items: tuple[Item, ...]


_Work = bytes | NeedRanges | _Mark | _Spread


# --------------------------------------------------------------------------- one link


class Peer:
    """Drives one Session over one channel; see the module docstring."""

    def __init__(self, mesh: Mesh, name: str, channel: Channel, expected_node: str | None) -> None:
        self.mesh = mesh
        self.name = name
        self.channel = channel
        self.expected_node = expected_node
        self.state = LinkState(name)
        self.session: Session | None = None
        self.cancel_scope = trio.CancelScope()
        self._outbox, self._inbox = trio.open_memory_channel[_Work](math.inf)
        # Received batches wait here for the log, one at most: the receiver decodes the next
        # message while the log ingests this one, and a fast sender is held back (TCP).
        self._to_ingest, self._ingest_queue = trio.open_memory_channel[Sequence[Item]](1)
        self._change_queued = False
        self._resync_queued = False
        self._send_lock = trio.Lock()
        self._rechecked: set[str] = set()  # origins this link was asked to resend (once each)
        self._heard = trio.current_time()  # when the peer last sent anything (trio clock)
        self._sent = trio.current_time()  # when we last sent it anything
        self._ingesting = False  # our log is taking a batch: the peer's silence is ours
        start = trio.current_time()
        self._ping_at = start + mesh.ping_interval  # the seed's ping (clock reading)
        self._resync_at = start + mesh.sync_interval  # periodic anti-entropy
        self._report_pong = False  # the next pong answers a clock ping (not a keepalive)

    # ---- entry points

    async def run(self) -> LinkState:
        """Run the link until it ends; return its final state. Never raises for link trouble."""
        try:
            with self.cancel_scope:
                try:
                    await self._run()
                except _LINK_ERRORS as exc:
                    self._ended(f"{type(exc).__name__}: {exc}")
            if self.cancel_scope.cancelled_caught:
                self._ended("disconnected")
        finally:
            self._down()
        return self.state

    def local_changed(self) -> None:
        """Queue one push round; rounds queued before it runs are merged into it."""
        if not self._change_queued:
            self._change_queued = True
            self._outbox.send_nowait(_CHANGED)

    def disconnect(self) -> None:
        self.cancel_scope.cancel()

    def _queue_resync(self) -> None:
        """Like ``local_changed``: a slow link gets one pending resync, not a backlog."""
        if not self._resync_queued:
            self._resync_queued = True
            self._outbox.send_nowait(_RESYNC)

    # ---- the tasks

    async def _run(self) -> None:
        self.session = Session(
            node=self.mesh.node, version=self.mesh.version, vv=await self.mesh.log.version_vector()
        )
        for data in self.session.start():
            self._outbox.send_nowait(data)
        async with trio.open_nursery() as nursery:
            for task in (self._receiver, self._ingester, self._writer, self._timers):
                nursery.start_soon(self._until_done, task, nursery.cancel_scope)

    async def _until_done(
        self, task: Callable[[], Awaitable[None]], scope: trio.CancelScope
    ) -> None:
        """Run one task; when it ends, for whatever reason, the whole link ends."""
        try:
            await task()
        except _LINK_ERRORS as exc:
            self._ended(f"{type(exc).__name__}: {exc}")
        scope.cancel()

    async def _receiver(self) -> None:
        assert self.session is not None
        while True:
            data = await self.channel.receive()
            self._heard = trio.current_time()
            now = self.mesh.wall_ms()
            self.state.last_seen_ms = now
            for action in self.session.receive(data, now):
                await self._carry_out(action)
            if self.session.closed:
                return

    async def _ingester(self) -> None:
        async for items in self._ingest_queue:
            self._ingesting = True
            try:
                await self._ingest(items)
            finally:
                self._ingesting = False
                self._heard = max(self._heard, trio.current_time())

    async def _writer(self) -> None:
        async for work in self._inbox:
            if isinstance(work, bytes):
                await self._send(work)
            elif isinstance(work, NeedRanges):
                await self._send_ranges(work)
            elif isinstance(work, _Spread):
                if self.session is not None and self.session.ready:
                    for data in self.session.send_events(work.items, push=True):
                        await self._send(data)
            elif work is _CHANGED:
                self._change_queued = False
                await self._push_changes()
            elif work is _EVIDENCE:
                await self._send_evidence()
            else:
                self._resync_queued = False
                await self._resync()

    async def _timers(self) -> None:
        """This link's timers run on the mesh's one ticker (``Mesh._tick_duty``)."""
        await self.mesh._tick_duty(self)

    def _due(self) -> float:
        return min(self._ping_at, self._resync_at)

    def _on_timers(self, now: float) -> None:
        """The seed's ping and the periodic anti-entropy, when their time has come."""
        if now >= self._ping_at:
            self._ping_at = max(self._ping_at + self.mesh.ping_interval, now)
            self._ping()
        if now >= self._resync_at:
            self._resync_at = max(self._resync_at + self.mesh.sync_interval, now)
            self._queue_resync()

    def _on_keepalive(self, now: float, stalled: float) -> None:
        """One keepalive tick. ``stalled``: how late our own loop ran the tick, time in
        which we could not have read the peer either, so it is not the peer's silence."""
        every = self.mesh.keepalive_interval
        assert every is not None
        self._heard = min(now, self._heard + stalled)
        quiet = now - self._heard
        if quiet > self.mesh.link_timeout and not self._ingesting:
            self._ended(f"LinkError: the peer stopped answering (nothing for {quiet:.1f} s)")
            self.cancel_scope.cancel()
            return
        idle = now - self._sent
        if idle >= 0.75 * every and self.session is not None and self.session.ready:
            self._outbox.send_nowait(self.session.ping(self.mesh.wall_ms()))

    # ---- actions

    async def _carry_out(self, action: Action) -> None:
        assert self.session is not None
        match action:
            case Send(data) if self.session.closed:
                await self._send_last(data)
            case Send(data):
                self._outbox.send_nowait(data)
            case NeedRanges():
                self._outbox.send_nowait(action)
            case Ingest(items):
                await self._to_ingest.send(items)
            case Ready(node):
                self._established(node)
            case Pong(offset_ms, rtt_ms):
                self.state.offset_ms, self.state.rtt_ms = offset_ms, rtt_ms
                if self._report_pong:  # a keepalive's pong is not worth a stored row
                    self._report_pong = False
                    self.mesh.report(self.state)
            case PeerVersionMismatch():
                self._ended(action.message)
            case Closed(reason):
                self._ended(reason)

    async def _ingest(self, items: Sequence[Item]) -> None:
        applied = await self.mesh.log.ingest(items)
        self.state.events_in += len(items)
        if applied:
            if self.mesh.relay_from_origin or any(e.origin != self.state.node for e in applied):
                self.mesh.relay(self)
            else:
                self.mesh.log_changed()  # straight from their origin, which pushed to all
        evidence = self.mesh.log.take_evidence()
        if evidence:
            self.mesh.spread(evidence)
        diverged = self.mesh.log.take_diverged() - self._rechecked
        if diverged and self.session is not None and self.session.ready:
            # The peer's chain of these origins parted from ours below both heads: have it
            # send all it holds of them once, so the fork shows here and settles.
            self._rechecked |= diverged
            self._outbox.send_nowait(self.session.recheck(diverged))

    def spread(self, items: Sequence[Item]) -> None:
        self._outbox.send_nowait(_Spread(tuple(items)))

    def _established(self, node: str) -> None:
        if self.expected_node is not None and node != self.expected_node:
            raise InvalidInput(
                f"peer says it is {node[:16]}… but the link was made to {self.expected_node[:16]}…"
            )
        now = self.mesh.wall_ms()
        self.state.up, self.state.node, self.state.since_ms, self.state.error = True, node, now, None
        self.mesh.report(self.state)
        self._ping()
        self._outbox.send_nowait(_EVIDENCE)

    def _ping(self) -> None:
        if self.session is not None and self.session.ready:
            self._report_pong = True
            self._outbox.send_nowait(self.session.ping(self.mesh.wall_ms()))

    async def _resync(self) -> None:
        """Re-read the log first, so even a change nobody notified us of goes out."""
        assert self.session is not None
        await self._push_changes(fresh=self.mesh.resync_reads_log())
        for data in self.session.resync():
            await self._send(data)

    async def _send_evidence(self) -> None:
        assert self.session is not None
        items = await self.mesh.log.all_evidence()
        if items and self.session.ready:
            for data in self.session.send_events(items, push=True):
                await self._send(data)

    async def _push_changes(self, *, fresh: bool = False) -> None:
        assert self.session is not None
        vv = await self.mesh.vector(fresh=fresh)
        for action in self.session.local_changed(vv):
            if isinstance(action, NeedRanges):
                await self._send_ranges(action)

    async def _send_ranges(self, need: NeedRanges) -> None:
        assert self.session is not None
        for group in chunk_ranges(need.ranges):
            items = await self.mesh.log.read_events(group)
            for data in self.session.send_events(items, push=need.push):
                await self._send(data)
            self.state.events_out += len(items)

    async def _send(self, data: bytes) -> None:
        async with self._send_lock:
            await self.channel.send(data)
            self._sent = trio.current_time()

    async def _send_last(self, data: bytes) -> None:
        """A goodbye: sent from the receiver, since the writer stops with the link."""
        with trio.move_on_after(BYE_TIMEOUT):
            await self._send(data)

    # ---- state

    def _ended(self, reason: str) -> None:
        if self.state.error is None:
            self.state.error = reason
            log.info("link %s ended: %s", self.name, reason)

    def _down(self) -> None:
        self.state.up = False
        self.mesh.report(self.state)


# --------------------------------------------------------------------------- the node's links


class Mesh:
    """The links of one node: runs a Peer per link, pushes and relays, tracks link states.

    ``run_peer`` serves one link until it ends (the caller owns and closes the channel, and
    decides about reconnecting). ``notify_local_change`` must be called after every local
    commit; events ingested from peers are relayed without being asked.
    """

    def __init__(
        self,
        *,
        node: str,
        log: LogAccess,
        version: str = evstore.__version__,
        ping_interval: float = DEFAULT_PING_INTERVAL,
        sync_interval: float | None = None,
        wall_ms: Callable[[], int] = wall_clock_ms,
        on_link_change: Callable[[LinkState], None] | None = None,
        keepalive_interval: float | None = DEFAULT_KEEPALIVE,
        link_timeout: float = DEFAULT_LINK_TIMEOUT,
        relay_from_origin: bool = True,
        watched: bool = False,
        relay_to: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.node = node
        self.log = log
        self.version = version
        self.ping_interval = ping_interval
        self.sync_interval = ping_interval if sync_interval is None else sync_interval
        self.wall_ms = wall_ms
        self.on_link_change = on_link_change
        self.keepalive_interval = keepalive_interval  # None: no keepalives (the seed's way)
        self.link_timeout = link_timeout
        self.relay_from_origin = relay_from_origin  # False: a full mesh (module docstring)
        # True: the caller reports every change to the log (notify_local_change, log_changed),
        # so a periodic resync uses the vector read after the last change instead of reading
        # the log again (an idle node then reads nothing); False: a change nobody reported
        # still leaves at the next resync.
        self.watched = watched
        # k: events from a peer are relayed to k of the other links only, chosen with ``rng``
        # (seeded by the caller); None: to every other link. A link not chosen gets them from
        # another peer, or at the next resync at the latest.
        self.relay_to = relay_to
        self.rng = rng if rng is not None else random.Random(0)
        self.stalled = 0.0  # s: how late, in all, our loop ran the ticker (loop lag)
        self._ticker: Peer | None = None  # the peer whose task runs the ticker now
        self._ticker_free = trio.Event()
        self._read_at = -math.inf  # trio time of the last read of the log's vector
        self.links: dict[str, LinkState] = {}
        self._peers: dict[str, Peer] = {}
        # The log's vector, read once for every peer's push after a change (not once per
        # peer): valid until the next notify_local_change, for the floors it was read with.
        self._vector: tuple[int, Any, VersionVector] | None = None
        self._generation = 0
        self._reading: trio.Event | None = None

    async def run_peer(
        self, name: str, channel: Channel, *, expected_node: str | None = None
    ) -> LinkState:
        """Serve the link ``name`` until it ends; a newer link with that name replaces it."""
        old = self._peers.get(name)
        if old is not None:
            old.disconnect()
        peer = Peer(self, name, channel, expected_node)
        self._peers[name] = peer
        self.links[name] = peer.state
        try:
            return await peer.run()
        finally:
            if self._peers.get(name) is peer:
                del self._peers[name]

    async def _tick_duty(self, peer: Peer) -> None:
        """Every peer runs this; one at a time runs the ticker, and when its link ends the
        ticker passes to another. Waiting peers sleep on an event: no wake-ups."""
        while True:
            if self._ticker is None:
                self._ticker = peer
                try:
                    await self._tick_loop()
                finally:
                    self._ticker = None
                    free, self._ticker_free = self._ticker_free, trio.Event()
                    free.set()
            else:
                await self._ticker_free.wait()

    async def _tick_loop(self) -> None:
        """One timer for all the links: it sleeps until the earliest of the next keepalive
        tick and every peer's ping and resync. Every peer has the same intervals, so a link
        that comes up later is never due before the ticker wakes. How late the loop wakes is
        time this process could not listen (a stalled or starved loop): it is not counted as
        any peer's silence."""
        every = self.keepalive_interval
        next_keep = trio.current_time() + every if every is not None else math.inf
        while True:
            due = min([next_keep, *(p._due() for p in self._peers.values())])
            await trio.sleep_until(due)
            now = trio.current_time()
            stalled = max(0.0, now - due)
            self.stalled += stalled
            peers = list(self._peers.values())
            if now >= next_keep:
                next_keep = now + (every or 0.0)
                for p in peers:
                    p._on_keepalive(now, stalled)
            elif stalled:
                for p in peers:
                    p._heard = min(now, p._heard + stalled)
            for p in peers:
                p._on_timers(now)

    def resync_reads_log(self) -> bool:
        """Whether a periodic resync reads the log afresh: always, unless ``watched``; then
        only when no read was made for six sync intervals (a safety net, not the path)."""
        return not self.watched or trio.current_time() - self._read_at >= 6 * self.sync_interval

    def notify_local_change(self) -> None:
        """The log gained events: every connected peer gets what it lacks, at once."""
        self.log_changed()
        for peer in list(self._peers.values()):
            peer.local_changed()

    def relay(self, source: Peer) -> None:
        """Events from ``source`` entered the log: push them on to the other links (all of
        them, or ``relay_to`` of them picked at random), not back to where they came from
        (its session knows the peer holds them, so it would send nothing anyway)."""
        self.log_changed()
        others = [p for name, p in sorted(self._peers.items()) if p is not source]
        if self.relay_to is not None and len(others) > self.relay_to:
            others = self.rng.sample(others, self.relay_to)
        for peer in others:
            peer.local_changed()

    def log_changed(self) -> None:
        """The log gained events that need not be pushed now: forget the vector read."""
        self._generation += 1
        self._vector = None

    async def vector(self, *, fresh: bool = False) -> VersionVector:
        """The log's version vector: one read shared by the peers that push after one change
        (a periodic resync reads afresh, so a change nobody announced still goes out)."""
        while True:
            floors = dict(getattr(self.log, "floors", {}))
            cached = self._vector
            if not fresh and cached is not None and cached[:2] == (self._generation, floors):
                return cached[2]
            if self._reading is None or fresh:
                break
            await self._reading.wait()  # another peer is reading it now: share its result
        generation = self._generation
        done = self._reading = trio.Event()
        try:
            vv = await self.log.version_vector()
            self._read_at = trio.current_time()
        finally:
            if self._reading is done:
                self._reading = None
            done.set()
        if generation == self._generation:
            self._vector = (generation, floors, vv)
        return vv

    def spread(self, items: Sequence[Item]) -> None:
        """Send fork evidence to every connected peer, so each can settle the fork too."""
        for peer in list(self._peers.values()):
            peer.spread(items)

    def disconnect(self, name: str) -> bool:
        """End the link ``name`` now; False when there is none."""
        peer = self._peers.get(name)
        if peer is None:
            return False
        peer.disconnect()
        return True

    def connected(self) -> list[str]:
        """Names of the links whose hello exchange succeeded, sorted."""
        return sorted(name for name, peer in self._peers.items() if peer.state.up)

    def report(self, state: LinkState) -> None:
        """Hand a snapshot of a changed link state to the callback."""
        if self.on_link_change is not None:
            self.on_link_change(dataclasses.replace(state))
