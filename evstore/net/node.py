"""The node: ``evstore run`` serving one home (docs/protocol.md, "Node runtime").

Theory of operation
-------------------
One process serves a home (an exclusive ``flock`` on ``HOME/run.pid``). It opens the database
once and does every piece of database work in a worker thread, one at a time (the
``CapacityLimiter(1)`` of ``gossip.ThreadedLog``, shared by everything here), so the trio loop
never blocks on SQLite and commands in other processes meet the node in SQLite.

Ports. The admin port (``--listen``) is bound at once, standalone or not; the cluster-only
port (``--ccs``) only where configured. Each connection starts with the Noise handshake
(transport.py). ``authorize`` admits a current member whose X25519 key is the one its signed
membership event announced; on the admin port a stranger is let through too, but may then say
only one thing: a join request (a pre-shared one on the cluster-only port). Members then open
a mesh *link* (self-check, then gossip.Mesh) or an *rpc* session (a command reaching this
machine: disconnect, reconnect, commitdetail, clustercheck, rekey). See service.py.

Links. Every node dials every other member it may link with (``fanout=k``: the k members
first in the order of sha256(my key || their key)), with exponential backoff and seeded
jitter. When two links to one peer cross, the one dialled by the lower key stays. A quiet
link is kept alive by pings every second, and one that hears nothing for 3 s is dropped
(gossip.py), as is one with no answer to the seed's ping for 2.5 ping intervals. Link states
go to the ``links`` table, and transitions (down, up again, clock offset past the threshold,
refusals) to ``alerts``.

Changes. Commits by other processes are announced on the home's change signal
(storage/notify.py): the node waits on its listener's socket and pushes at once, and reads
``PRAGMA data_version`` only as a fallback (every second, or every 100 ms where the signal
cannot work); events from peers by the log wrapper below. Both tell the mesh (which pushes to
every peer at once, no batching timer) and refresh the membership view, which decides which
links may exist: a removed or detached machine's links are cut as soon as this node learns
of it. Every second, held-back
events whose time has come are released (only while some may be held: an idle node does not
touch its database for it).

Restored homes. Before a link carries anything, both sides compare what they hold of each
other's own events (restore.py): a node that finds itself behind refuses local writes until it
has caught up; one that finds a fork hides its own events and asks for ``rekey``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import random
import signal
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeVar

import trio

import evstore
from evstore.core import backoff
from evstore.core.errors import EvstoreError, OperationalError
from evstore.core.events import Event
from evstore.core.state import SETTINGS_KINDS, Machine
from evstore.core.sync import HelloMsg, Item, SyncError, VVMsg, decode_message
from evstore.net import preauth, restore, wire
from evstore.net.gossip import (
    DEFAULT_KEEPALIVE,
    DEFAULT_LINK_TIMEOUT,
    DEFAULT_PING_INTERVAL,
    LinkState,
    Mesh,
    ThreadedLog,
)
from evstore.net.linkbook import LinkBook, peer_vv_of
from evstore.net.transport import HANDSHAKE_TIMEOUT, SecureChannel, handshake
from evstore.ops import logins, membership, secrets
from evstore.ops.node import DB_NAME, Node, now_ms, parse_hostport
from evstore.storage import chainreads, feed, nodetable, notify
from evstore.storage.connect import open_db

__all__ = ["HomeLock", "NodeConfig", "NodeHandle", "View", "load_view", "peer_vv_of", "run_node",
           "serve"]

log = logging.getLogger("evstore.node")

# A service run beside the node, started with ``nursery.start``: it reports its URLs.
Beside = Callable[..., Awaitable[Any]]
T = TypeVar("T")
PUSH_FIRST = 0.02  # s: a commit's pushes take the database thread before a membership re-read
HIDDEN = 1 << 62  # a floor above any seq: the origin is left out of our version vector
LINK_ERRORS = (EvstoreError, OSError, trio.TooSlowError, trio.BrokenResourceError,
               trio.ClosedResourceError)


@dataclass
class NodeConfig:
    """Knobs of a serving node; the defaults are the contract's."""

    ping_interval: float = DEFAULT_PING_INTERVAL
    keepalive_interval: float | None = DEFAULT_KEEPALIVE  # quiet links are pinged this often
    link_timeout: float = DEFAULT_LINK_TIMEOUT  # a link silent this long is down
    sync_interval: float | None = None  # periodic anti-entropy; min(ping, 10 s) by default
    fanout: int | None = None  # None: full mesh (the seed's); k: dial k members only
    clock_alert_ms: int = 5_000
    handshake_timeout: float = HANDSHAKE_TIMEOUT
    request_timeout: float = 30.0
    join_wait: float = 120.0  # a person may be answering questions on the joining side
    backoff_min: float = 0.25
    backoff_max: float = 30.0
    seed: int | None = None  # jitter; by default derived from the host key
    poll_interval: float = 0.1  # where the home's change signal cannot work
    fallback_poll_interval: float = 1.0  # beside it: a committer that does not announce
    release_interval: float = 1.0
    dial_timeout: float = 5.0
    max_strangers: int = 128  # unauthenticated connections in all (preauth.Gate)
    strangers_per_source: int = 8  # … from one address (an IPv6 /64)
    first_message_timeout: float = 2.0  # the handshake's first message is a few dozen bytes
    version: str = evstore.__version__
    blocked: frozenset[str] = frozenset()  # hostnames never linked with (drills and tests)

    @property
    def resync_interval(self) -> float:
        return self.sync_interval if self.sync_interval is not None else min(self.ping_interval,
                                                                              10.0)


# ---------------------------------------------------------------------- the home lock


class HomeLock:
    """``HOME/run.pid`` under an exclusive flock, held for the life of the process."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / "run.pid"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        f = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            pid = f.read().strip() or "unknown"
            f.close()
            raise OperationalError(
                f"{self.home} is already served by `evstore run` (PID {pid}); stop that "
                "process first (a home is served by one node at a time)") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        """Empty the file and unlock; the file stays, so no two processes lock two inodes."""
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            self._file.truncate(0)
        self._file.close()
        self._file = None


# ---------------------------------------------------------------------- membership view


@dataclass(frozen=True)
class View:
    """What the node needs to know of the membership, refreshed after every log change."""

    origin: str
    mid: str
    hostname: str
    listen: str
    ccs: str | None
    cluster: str | None
    create_id: str | None
    detached: bool
    members: dict[str, Machine]  # the other members (detached ones too), by machine id
    removed: dict[str, Machine]  # removed machines: their links stay until they learn it
    prepjoin: frozenset[str]
    spoken: frozenset[str]  # keys with events in our log
    anchor: int
    mid_anchor: int
    selfsync: tuple[str, str] | None
    retired: frozenset[str] = frozenset()  # our keys a removal retired (membership.py)

    def by_key(self, key: str, *, removed: bool = False) -> Machine | None:
        """The member (or, with ``removed``, removed machine) whose host key is ``key``."""
        pool: list[Machine] = [*self.members.values(), *(self.removed.values() if removed else ())]
        for m in pool:
            if m.key == key:
                return m
        return None

    def linkable(self, blocked: frozenset[str] = frozenset()) -> dict[str, Machine]:
        """Members this node may link with now: none while standalone or detached; not a
        machine admitted whose own join has not arrived yet (it is still taking up the log)."""
        if self.cluster is None or self.detached:
            return {}
        return {mid: m for mid, m in self.members.items()
                if not m.detached and m.key in self.spoken and m.hostname not in blocked}


def load_view(node: Node) -> View:
    """Read the view (in the database thread)."""
    st = node.structure()
    ident = node.identity()
    me = node.mid
    origin = node.origin
    mine = st.machines.get(me)
    create_id = nodetable.get(node.conn, nodetable.CLUSTER_CREATE)
    # in a cluster once the scope has switched: a join ingests the cluster's log first and
    # anchors this machine in it only afterwards, in a second transaction
    cluster = st.name if create_id is not None else None
    members = {m.mid: m for m in st.members() if m.mid != me} if cluster else {}
    removed = {m.mid: m for m in st.machines.values()
               if cluster and m.removed and m.mid != me and m.key}
    prep = node.store.section_value("cluster", "prepjoin") if cluster else None
    return View(
        origin=origin, mid=me, hostname=ident.hostname, listen=ident.listen, ccs=ident.ccs,
        cluster=cluster, create_id=create_id if cluster else None,
        detached=bool(mine and mine.detached and cluster),
        members=members, removed=removed,
        prepjoin=frozenset(str(h.get("key")) for h in (prep or {}).get("hosts", [])),
        spoken=chainreads.origins(node.conn),
        anchor=node.log.latest_anchor(origin) or 1,
        mid_anchor=node.log.latest_anchor(me) or 1,
        selfsync=restore.read_mark(node),
        retired=membership.retired_keys(node),
    )


# ---------------------------------------------------------------------- log and channel


class NodeLog(ThreadedLog):
    """The mesh's log access, which also runs the node's follow-ups of every ingest."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime.node.log, limiter=runtime.limiter)
        self.runtime = runtime

    async def ingest(self, items: Sequence[Item]) -> list[Event]:
        applied = await super().ingest(items)
        if applied:
            await self.runtime.ingested(applied)
        return applied


class Tap:
    """A channel that notes the version vectors a peer reports (hello, vv) on the way in."""

    def __init__(self, channel: SecureChannel, on_vv: Callable[[dict[str, int]], None]) -> None:
        self.channel = channel
        self.on_vv = on_vv

    async def send(self, message: bytes) -> None:
        await self.channel.send(message)

    async def receive(self) -> bytes:
        data = await self.channel.receive()
        if data.startswith((b'{"node":', b'{"t":"vv"')):
            try:
                msg = decode_message(data)
            except SyncError:
                return data  # the session refuses it and ends the link
            if isinstance(msg, HelloMsg | VVMsg):
                self.on_vv({o: last for o, (_first, last) in msg.vv.items()})
        return data


# ---------------------------------------------------------------------- links


@dataclass
class LiveLink:
    """A link past its handshake (checking, or carrying gossip)."""

    mid: str
    peer_key: str
    outbound: bool
    address: str
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    ended: trio.Event = field(default_factory=trio.Event)


class Dialer:
    """Keeps one outbound link to one member: dial, run, back off, dial again."""

    def __init__(self, runtime: Runtime, mid: str) -> None:
        self.rt = runtime
        self.mid = mid
        self.scope = trio.CancelScope()
        self.wake = trio.Event()
        self.attempt = 0

    async def run(self) -> None:
        with self.scope:
            while True:
                m = self.rt.linkable().get(self.mid)
                if m is None:
                    return
                live = self.rt.live.get(self.mid)
                if live is not None and not live.ended.is_set():
                    await live.ended.wait()
                    continue
                await self._once(m)
                await self._pause()

    async def _once(self, m: Machine) -> None:
        started = trio.current_time()
        try:
            await self.rt.dial_link(m)
        except LINK_ERRORS as exc:
            self.rt.dial_failed(m, exc)
        except Exception:  # a bug or a database error on one link must not stop the node
            log.exception("link to %s failed", m.hostname)
        if trio.current_time() - started > 10:
            self.attempt = 0

    async def _pause(self) -> None:
        cfg = self.rt.config
        base = min(cfg.backoff_max, cfg.backoff_min * 2 ** min(self.attempt, 30))
        self.attempt += 1
        delay = base * (0.5 + self.rt.rng.random() / 2)
        with trio.move_on_after(delay):
            await self.wake.wait()
        self.wake = trio.Event()


# ---------------------------------------------------------------------- the runtime


class NodeHandle:
    """What ``serve`` hands its caller: where it listens, and a way to stop it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.runtime: Runtime | None = None
        self.addresses: dict[str, list[tuple[str, int]]] = {}
        self.finished = trio.Event()
        self.stopping = False
        self.gui: list[str] = []
        self.metrics: list[str] = []
        self.on_applied: Callable[[list[Event]], None] | None = None

    def stop(self) -> None:
        self.stopping = True
        if self.runtime is not None:
            self.runtime.stop()


class Runtime:
    """One generation of a serving node (a rekey or a new port starts the next one)."""

    def __init__(self, home: Path, config: NodeConfig, handle: NodeHandle) -> None:
        self.home = home
        self.config = config
        self.handle = handle
        self.conn = open_db(home / DB_NAME)
        self.node = Node(home, self.conn)
        self.limiter = trio.CapacityLimiter(1)
        self.node.log.release_held(now_ms())
        self.view = load_view(self.node)
        self.signing = self.node.signing_key
        self.transport = secrets.load_transport_key(home)
        # seeded by the origin (a str seed is hashed deterministically); the origin may be
        # empty for a moment while a rekey swaps the key files
        self.rng = random.Random(config.seed if config.seed is not None else self.view.origin)
        self.log = NodeLog(self)
        self.mesh = Mesh(node=self.view.origin, log=self.log, version=config.version,
                         ping_interval=config.ping_interval,
                         sync_interval=config.resync_interval,
                         keepalive_interval=config.keepalive_interval,
                         link_timeout=config.link_timeout,
                         relay_from_origin=config.fanout is not None,
                         watched=True,  # _poll, ingests and releases report every change
                         on_link_change=self._link_changed)
        self.live: dict[str, LiveLink] = {}
        self.dialers: dict[str, Dialer] = {}
        self.book = LinkBook(self.conn, config.clock_alert_ms)
        self.reasons: dict[str, str] = {}
        self.selfsync_target = 0
        self.restart = False
        self.gate = preauth.Gate(config.max_strangers, config.strangers_per_source)
        self.guard = backoff.Guard()  # failed join passphrases, per source and overall
        self.failure_alerts = backoff.Throttle()
        self.hashing = logins.Hashing(1)  # argon2, never under the database's limiter
        self._joins = trio.Semaphore(4)
        self._refreshing = trio.Lock()
        self._vv_seen: dict[str, dict[str, int]] = {}
        self._scope = trio.CancelScope()
        self._links: trio.Nursery | None = None
        self._writes, self._write_queue = trio.open_memory_channel[Callable[[], None]](1000)
        self._set_floors()

    # ------------------------------------------------------------------ plumbing

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run database work in the worker thread, one call at a time."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    def stop(self) -> None:
        self._scope.cancel()

    def close(self) -> None:
        self.conn.close()

    def _set_floors(self) -> None:
        """Our own events from before we joined never leave (the key we joined with may differ
        from today's, after a rekey); after a fork, none of today's key leave."""
        view = self.view
        mark = view.selfsync
        forked = mark is not None and mark[0] == restore.FORK and mark[1] == view.origin
        floors = dict.fromkeys(view.retired, HIDDEN)  # what they signed stays here
        floors[view.mid] = view.mid_anchor
        floors[view.origin] = HIDDEN if forked else view.anchor
        self.log.floors = floors

    # ------------------------------------------------------------------ main

    async def bind(self) -> dict[str, list[trio.SocketListener]]:
        """Bind the admin port, and the cluster-only port where configured."""
        out = {"admin": await _listen(self.view.listen)}
        if self.view.ccs:
            out["ccs"] = await _listen(self.view.ccs)
        return out

    async def run(self, listeners: dict[str, list[trio.SocketListener]],
                  on_ready: Callable[[], None]) -> bool:
        """Serve until stopped; True when the node should start again (keys or ports moved)."""
        with self._scope:
            await self.db(self.book.reset)
            async with trio.open_nursery() as nursery:
                for kind, socks in listeners.items():
                    nursery.start_soon(partial(trio.serve_listeners, partial(self._accept, kind),
                                               socks, handler_nursery=nursery))
                for task in (self._poll, self._release, self._write, self._watchdog,
                             self._links_task):
                    nursery.start_soon(task)
                on_ready()
        await self._shutdown_rows()
        return self.restart

    async def _links_task(self) -> None:
        async with trio.open_nursery() as nursery:
            self._links = nursery
            try:
                self.reconcile()
                await trio.sleep_forever()
            finally:
                self._links = None  # closed to new tasks from here on

    async def _shutdown_rows(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await self.db(self.book.reset)

    # ------------------------------------------------------------------ noticing changes

    async def _poll(self) -> None:
        """Commits by other processes on this home: their announcement (storage/notify.py)
        wakes the node, which pushes at once; ``PRAGMA data_version`` (which our own
        connection's commits do not move) is read after every announcement, and every
        ``poll_interval`` where announcements cannot work here, else every
        ``fallback_poll_interval`` (a committer that does not announce is still seen)."""
        listener = notify.listen(self.home)
        own = b" %d" % os.getpid()
        heard: list[bytes] = []
        last = -1
        with _survive("watching the database"):
            last = await self.db(self._data_version)
        try:
            while True:
                if listener is None:
                    await trio.sleep(self.config.poll_interval)
                else:
                    with trio.move_on_after(self.config.fallback_poll_interval):
                        await trio.lowlevel.wait_readable(listener.fileno())
                    heard = [h for h in listener.drain() if not h.endswith(own)]
                    # Our own commits (ingests) were pushed already: only the database is
                    # looked at then, so nodes that share one process (tests) see each
                    # other's commits, and a steady stream of our own never starves it.
                    if heard:
                        # push first: the peers' writers read the log before this task asks
                        # the database thread whether the membership has to be re-read
                        self.mesh.notify_local_change()
                        await trio.sleep(PUSH_FIRST)
                with _survive("watching the database"):
                    version = await self.db(self._data_version)
                    if version != last:
                        last = version
                        self.log.held_seen = True  # another process may have held events
                        if not heard:
                            self.mesh.notify_local_change()
                        await self.refresh()
        finally:
            if listener is not None:
                listener.close()

    def _data_version(self) -> int:
        return feed.data_version(self.conn)

    async def _release(self) -> None:
        """Held events whose time has come, every ``release_interval`` while any may be held
        (one was at the last look, or an ingest or another process's commit may have held
        one); an idle node does not touch its database for it."""
        self.log.held_seen = True  # held before we started?
        while True:
            await trio.sleep(self.config.release_interval)
            if not self.log.held_seen:
                continue
            self.log.held_seen = False
            with _survive("releasing held-back events"):
                applied, still = await self.db(self._release_held)
                self.log.held_seen = self.log.held_seen or still
                if applied:
                    await self.ingested(applied)
                    self.mesh.notify_local_change()

    def _release_held(self) -> tuple[list[Event], bool]:
        return self.node.log.release_held(now_ms()), bool(self.node.log.held())

    async def ingested(self, applied: list[Event]) -> None:
        """Follow-ups of events that entered the log from a peer (or were released)."""
        if self.handle.on_applied is not None:  # the metrics' apply lag
            self.handle.on_applied(applied)
        if any(ev.kind == "machine.remove" for ev in applied):
            for note in await self.db(membership.after_ingest, self.node, applied):
                log.warning("%s", note)
        if any(ev.kind not in SETTINGS_KINDS for ev in applied):
            await self.refresh()
        if any(ev.origin == self.view.origin for ev in applied):
            await self._maybe_caught_up()

    async def refresh(self) -> None:
        """Re-read the membership; restart when our key or ports moved; fix the links.

        One refresh at a time, so an older reading can never replace a newer one."""
        async with self._refreshing:
            view = await self.db(load_view, self.node)
            if (view.origin, view.listen, view.ccs) != (self.view.origin, self.view.listen,
                                                        self.view.ccs):
                log.warning("host key or ports changed: restarting the node's links")
                self.restart = True
                self.stop()
                return
            self.view = view
            self._set_floors()
            self.reconcile()

    # ------------------------------------------------------------------ which links exist

    def reconcile(self) -> None:
        """Cut links the membership no longer allows; dial the members it does."""
        allowed = self.linkable()
        keep = set(allowed) | set(self.view.removed if self.view.cluster else ())
        for mid, link in list(self.live.items()):
            if mid not in keep and not link.ended.is_set():
                self.reasons[mid] = "detached or removed from the cluster"
                link.scope.cancel()
                self.mesh.disconnect(mid)
        targets = self._dial_targets(allowed)
        for mid in [d for d in self.dialers if d not in targets]:
            self.dialers.pop(mid).scope.cancel()
        if self._links is None:
            return
        for mid in targets:
            if mid not in self.dialers:
                dialer = Dialer(self, mid)
                self.dialers[mid] = dialer
                self._links.start_soon(self._run_dialer, dialer)

    async def _run_dialer(self, dialer: Dialer) -> None:
        try:
            await dialer.run()
        finally:
            if self.dialers.get(dialer.mid) is dialer:
                del self.dialers[dialer.mid]

    def _dial_targets(self, allowed: dict[str, Machine]) -> list[str]:
        k = self.config.fanout
        if k is None or len(allowed) <= k:
            return sorted(allowed)
        me = bytes.fromhex(self.view.origin)

        def rank(mid: str) -> bytes:
            return hashlib.sha256(me + bytes.fromhex(allowed[mid].key)).digest()

        return sorted(sorted(allowed, key=rank)[:k])

    def linkable(self) -> dict[str, Machine]:
        return self.view.linkable(self.config.blocked)

    def claim(self, m: Machine, outbound: bool, address: str) -> LiveLink | None:
        """Register a link; when two links to one peer cross, the lower key's dial stays."""
        cur = self.live.get(m.mid)
        if cur is not None and not cur.ended.is_set():
            if self._by_lower(cur.outbound, m.key) and not self._by_lower(outbound, m.key):
                return None
            self.reasons[m.mid] = "replaced by a newer link"
            cur.scope.cancel()
        link = LiveLink(m.mid, m.key, outbound, address)
        self.live[m.mid] = link
        return link

    def _by_lower(self, outbound: bool, peer_key: str) -> bool:
        """Was a link in this direction dialled by the lower of the two keys?"""
        return outbound == (self.view.origin < peer_key)

    # ------------------------------------------------------------------ dialing

    async def dial_link(self, m: Machine) -> None:
        """Dial one member, check, and carry gossip until the link ends."""
        channel, address = await self.connect(m)
        link = self.claim(m, True, address)
        if link is None:
            await _close(channel)
            return
        try:
            with link.scope:
                await self._open_link(channel, m)
                await self.run_mesh(channel, m, address)
        finally:
            link.ended.set()
            await _close(channel)

    async def connect(self, m: Machine) -> tuple[SecureChannel, str]:
        """The member's cluster-only port if it announced one, else (or if that fails to
        answer) its admin port; then the handshake, expecting its announced keys."""
        addresses = [a for a in (m.ccs, m.listen) if a]
        for i, address in enumerate(addresses):
            host, port = parse_hostport(address)
            try:
                with trio.fail_after(self.config.dial_timeout):
                    stream = await trio.open_tcp_stream(host, port)
            except (OSError, trio.TooSlowError):
                if i == len(addresses) - 1:
                    raise
                continue
            return await self._handshake(stream, m), address
        raise OperationalError(f"{m.hostname} announces no address")

    async def _handshake(self, stream: trio.SocketStream, m: Machine) -> SecureChannel:
        return await handshake(
            stream, initiator=True, static_x25519=self.transport, signing_key=self.signing,
            expected_peer_x25519=bytes.fromhex(m.transport_key),
            authorize=lambda ed, _x: ed == m.key,
            max_message_size=wire.MAX_WIRE_MESSAGE, timeout=self.config.handshake_timeout)

    async def _open_link(self, channel: SecureChannel, m: Machine) -> None:
        mine = await self.db(restore.head_of, self.node.log, self.view.origin)
        await wire.send(channel, {"t": "open", "want": "link", "version": self.config.version,
                                  "head": wire.head_out(mine)})
        check = await wire.receive(channel, "check", timeout=self.config.request_timeout)
        theirs = wire.head_in(check.get("head"), "check head")
        await self.send_check(channel, m, theirs)
        await self.judge_self(check, mine)

    async def send_check(self, channel: SecureChannel, m: Machine, peer_head: tuple[int, str],
                         **extra: Any) -> None:
        """Tell the peer what we hold of its origin (its head, and our id at its head seq)."""
        held, at = await self.db(self._record_of, m.key, peer_head[0])
        await wire.send(channel, {"t": "check", "yours": wire.head_out(held), "at": at, **extra})

    def _record_of(self, key: str, seq: int) -> tuple[tuple[int, str], str | None]:
        return restore.head_of(self.node.log, key), restore.id_at(self.node.log, key, seq)

    def dial_failed(self, m: Machine, exc: BaseException) -> None:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, wire.RemoteRefused) and "duplicate link" in text:
            return
        log.info("link to %s (%s): %s", m.hostname, m.ccs or m.listen, text)
        refused = isinstance(exc, wire.RemoteRefused)
        self.queue(partial(self.book.store_failure, m, text, refused))

    # ------------------------------------------------------------------ the self-check

    async def judge_self(self, check: dict[str, Any], sent: tuple[int, str]) -> None:
        """What a peer holds of our own origin (we told it our head ``sent``): ok, behind
        (this home was restored) or fork (it also wrote while restored)."""
        theirs = wire.head_in(check.get("yours"), "check yours")
        at = wire.optional_id(check.get("at"), "check at")
        verdict = await self.db(self._verdict, sent, theirs, at)
        log.debug("self-check of %s: peer holds %s, at %s: %s", self.view.hostname, theirs, at,
                  verdict)
        if verdict == restore.FORK:
            await self._forked(theirs)
        elif verdict == restore.BEHIND:
            await self._behind(theirs[0])
        else:
            await self._maybe_caught_up()

    def _verdict(self, sent: tuple[int, str], theirs: tuple[int, str], at: str | None) -> str:
        origin = self.view.origin
        head = restore.head_of(self.node.log, origin)[0]
        return restore.verdict(
            sent, lambda s: restore.id_at(self.node.log, origin, s), theirs, at, head)

    async def _forked(self, theirs: tuple[int, str]) -> None:
        mark = self.view.selfsync
        self.log.floors[self.view.origin] = HIDDEN
        if mark is not None and mark[0] == restore.FORK:
            return
        await self.db(restore.mark, self.node, restore.FORK, self.view.origin)
        await self.refresh()
        detail = ("this machine's own log forked: it wrote while restored from an older copy; "
                  "its changes since then stay here until `evstore clusterconfig rekey`")
        log.error("%s", detail)
        self.queue(partial(self.book.alert, "fork", detail))

    async def _behind(self, seq: int) -> None:
        self.selfsync_target = max(self.selfsync_target, seq)
        if self.view.selfsync is None:
            await self.db(restore.mark, self.node, restore.BEHIND, self.view.origin)
            await self.refresh()
            log.warning("this home was restored from an older copy: catching up with its own "
                        "events (up to seq %s) before it writes again", seq)

    async def _maybe_caught_up(self) -> None:
        mark = self.view.selfsync
        if mark is None or mark[0] != restore.BEHIND:
            return
        head = await self.db(restore.head_of, self.node.log, self.view.origin)
        if head[0] >= self.selfsync_target:
            await self.db(restore.clear_mark, self.node)
            await self.refresh()
            log.warning("caught up with this machine's own events: local writes allowed again")

    # ------------------------------------------------------------------ gossip

    async def run_mesh(self, channel: SecureChannel, m: Machine, address: str) -> None:
        self.reasons.pop(m.mid, None)
        tap = Tap(channel, partial(self._peer_vv, m.mid))
        self.queue(partial(self.book.store_address, m.mid, address))
        await self.mesh.run_peer(m.mid, tap, expected_node=channel.peer_ed25519_hex)

    def _link_changed(self, state: LinkState) -> None:
        m = self.view.members.get(state.name)
        if m is None:
            return
        self.queue(partial(self.book.store_link, m, state))
        if not state.up and self._links is not None:
            reason = self.reasons.get(m.mid) or state.error or "link lost"
            self._links.start_soon(self._confirm_down, m, reason)

    async def _confirm_down(self, m: Machine, reason: str) -> None:
        """Alert only for a link that stays down: not for one replaced, re-dialled at once,
        or cut because a machine was detached."""
        await trio.sleep(min(2.0, self.config.ping_interval))
        current = self.mesh.links.get(m.mid)
        if current is not None and current.up:
            return
        now = self.view.members.get(m.mid)
        if self.view.detached or now is None or now.detached:
            return
        self.queue(partial(self.book.alert_down, m, f"{m.hostname} is down: {reason}"))

    def _peer_vv(self, mid: str, vv: dict[str, int]) -> None:
        if self._vv_seen.get(mid) != vv:  # most resyncs change nothing: no write then
            self._vv_seen[mid] = vv
            self.queue(partial(self.book.store_peer_vv, mid, vv))

    async def _watchdog(self) -> None:
        """A peer that stops answering (no ping, no pong) is dropped, and so reported down."""
        limit_ms = int(2.5 * self.config.ping_interval * 1000)
        while True:
            await trio.sleep(max(0.5, self.config.ping_interval / 2))
            now = now_ms()
            for name, state in list(self.mesh.links.items()):
                if state.up and state.last_seen_ms and now - state.last_seen_ms > limit_ms:
                    self.reasons[name] = "stopped answering pings"
                    self.mesh.disconnect(name)

    # ------------------------------------------------------------------ inbound

    async def _accept(self, port: str, stream: trio.SocketStream) -> None:
        """One inbound connection. Until it proves to be a member (or a stranger's join
        credentials hold) it holds a ticket of the pre-authentication gate, which may evict
        it to make room for a newer one (preauth.py)."""
        from evstore.net import service

        ticket = self.gate.admit(_peer_host(stream))
        try:
            with ticket.scope:
                try:
                    channel = await handshake(
                        stream, initiator=False, static_x25519=self.transport,
                        signing_key=self.signing, authorize=partial(self.authorize, port, ticket),
                        max_message_size=wire.MAX_WIRE_MESSAGE,
                        timeout=self.config.handshake_timeout,
                        first_timeout=self.config.first_message_timeout,
                        progress=ticket.advance)
                except LINK_ERRORS as exc:
                    log.info("refused a connection on the %s port: %s", port, exc)
                    return
                try:
                    await service.converse(self, channel, port, _peer_address(stream),
                                           admitted=partial(self.gate.release, ticket))
                except LINK_ERRORS as exc:
                    log.info("conversation on the %s port ended: %s", port, exc)
                except Exception:  # a bug in one conversation must not stop the node
                    log.exception("conversation on the %s port failed", port)
                finally:
                    await _close(channel)
        finally:
            self.gate.release(ticket)
            if ticket.evicted:
                await trio.aclose_forcefully(stream)
                log.info("evicted an unauthenticated connection from %s on the %s port to "
                         "make room", ticket.source, port)

    async def authorize(self, port: str, ticket: preauth.Ticket | None, ed25519: str,
                        x25519: str) -> bool:
        """A current member with its announced transport key; on the admin port anyone else
        may go on to ask to join, on the cluster-only port only a prepjoin key. A key not
        known yet makes the node re-read the membership first (it may have just changed).
        A member's connection leaves the pre-authentication gate here."""
        verdict = self._authorized(port, ed25519, x25519)
        if verdict is None:
            await self.refresh()
            verdict = self._authorized(port, ed25519, x25519)
        if verdict and ticket is not None and self.view.by_key(ed25519, removed=True):
            self.gate.release(ticket)
        return bool(verdict)

    def _authorized(self, port: str, ed25519: str, x25519: str) -> bool | None:
        m = self.view.by_key(ed25519, removed=True)
        if m is not None:
            return m.transport_key == x25519 and m.hostname not in self.config.blocked
        if any(m.mid == ed25519 for m in self.view.members.values()):
            return False  # a member's old key, after a rekey
        if port == "admin" or ed25519 in self.view.prepjoin:
            return True
        return None

    # ------------------------------------------------------------------ state writer

    def queue(self, job: Callable[[], None]) -> None:
        """Queue database work for the state writer (never blocks the caller)."""
        try:
            self._writes.send_nowait(job)
        except trio.WouldBlock:
            log.warning("link-state writer is behind; dropping one update")

    async def _write(self) -> None:
        async for job in self._write_queue:
            with _survive("storing a link state"):
                await self.db(job)


# ---------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _survive(doing: str) -> Iterator[None]:
    """Log a database error of a periodic task and carry on (e.g. a lock held too long by
    another process); the next round tries again."""
    try:
        yield
    except (sqlite3.Error, EvstoreError) as exc:
        log.error("error while %s: %s; retrying", doing, exc)


async def _listen(address: str) -> list[trio.SocketListener]:
    host, port = parse_hostport(address)
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as e:
        raise OperationalError(f"cannot listen on {address}: {e.strerror or e}; is another "
                               "program using that port, or is the address not local?") from None


async def _close(channel: SecureChannel) -> None:
    """Say goodbye (FINAL) even while being cancelled, within a short bound."""
    with trio.CancelScope(shield=True), trio.move_on_after(2):
        await channel.aclose()


def _peer_host(stream: trio.SocketStream) -> str:
    try:
        return str(stream.socket.getpeername()[0])
    except OSError:
        return "?"


def _peer_address(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"


# ---------------------------------------------------------------------- serving


async def serve(
    home: Path,
    *,
    config: NodeConfig | None = None,
    beside: Beside | None = None,
    task_status: trio.TaskStatus[NodeHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``home`` until ``handle.stop()`` or cancellation; ``started`` gets the handle.

    ``beside`` is a service started first in the node's nursery (``evstore run --gui``: the
    CLI passes the web pages, so that this package never imports them); what it reports
    started (its URLs) goes to ``handle.gui``."""
    config = config or NodeConfig()
    lock = HomeLock(home)
    lock.acquire()
    handle = NodeHandle(home)
    try:
        async with trio.open_nursery() as nursery:
            if beside is not None:
                handle.gui = await nursery.start(beside)
            await _generations(home, config, handle, task_status)
            nursery.cancel_scope.cancel()
    finally:
        lock.release()
        handle.finished.set()


async def _generations(home: Path, config: NodeConfig, handle: NodeHandle,
                       task_status: trio.TaskStatus[NodeHandle]) -> None:
    """Run the node; start it again (rebinding its ports) when its keys or ports changed."""
    first = True
    while not handle.stopping:
        rt = Runtime(home, config, handle)
        try:
            listeners = await rt.bind()
            handle.runtime = rt
            handle.addresses = {k: [s.socket.getsockname()[:2] for s in v]
                                for k, v in listeners.items()}

            def ready() -> None:
                nonlocal first
                if first:
                    first = False
                    task_status.started(handle)

            again = await rt.run(listeners, ready)
        finally:
            rt.close()
        if not again:
            return


def run_node(home: Path, *, config: NodeConfig | None = None,
             beside: Beside | None = None,
             on_ready: Callable[[NodeHandle], None] | None = None,
             metrics: tuple[str, int] | None = None) -> None:
    """``evstore run``: serve until SIGINT or SIGTERM, then close every link with FINAL.
    With ``metrics``, also serve ``/metrics`` there; systemd hears READY=1 once every port is
    bound and STOPPING=1 at a signal."""
    try:
        trio.run(_main, home, config, beside, on_ready, metrics)
    except BaseExceptionGroup as group:
        raise _first_error(group) from None


def _first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        if isinstance(exc, EvstoreError | KeyboardInterrupt):
            return exc
    return group


async def _main(home: Path, config: NodeConfig | None, beside: Beside | None,
                on_ready: Callable[[NodeHandle], None] | None,
                metrics: tuple[str, int] | None = None) -> None:
    from evstore.ops import systemd

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            handle: NodeHandle = await nursery.start(partial(serve, home, config=config,
                                                               beside=beside))
            if metrics is not None:
                from evstore.net import metrics as metrics_mod

                lag = metrics_mod.ApplyLag()
                handle.on_applied = lag.observe
                handle.metrics = await nursery.start(
                    metrics_mod.serve_metrics, *metrics, metrics_mod.node_source(handle, lag))
            if on_ready is not None:
                on_ready(handle)
            systemd.notify("READY=1")  # every port bound (and announced by on_ready)
            nursery.start_soon(_stop_on_signal, signals, handle)
            await handle.finished.wait()
            nursery.cancel_scope.cancel()


async def _stop_on_signal(signals: Any, handle: NodeHandle) -> None:
    from evstore.ops import systemd

    async for signum in signals:
        log.warning("signal %s: closing links and stopping", signum)
        systemd.notify("STOPPING=1")
        handle.stop()
        return

