"""One generation of a serving node (``Runtime``) and what ``serve`` hands its caller
(``NodeHandle``).

The runtime opens the home's database once and assembles the node's parts around it: the
database work (dbwork.py), the membership view (view.py), the mesh (gossip.py) over the log,
the links and their dialers (links.py), the self-check (selfcheck.py), the liveness watch
(liveness.py), the change watch (changes.py) and the door (admission.py). It keeps the two
things every part calls back into: ``refresh`` (re-read the membership; restart when this
node's key or ports moved; re-plan the links) and ``ingested`` (the follow-ups of events that
entered the log). A rekey or a new port ends the generation; node.py starts the next one.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import trio

from evstore.core.errors import OperationalError
from evstore.core.events import Event
from evstore.core.state import SETTINGS_KINDS
from evstore.core.sync import Item
from evstore.net import changes, selfcheck
from evstore.net.admission import Admission
from evstore.net.config import NodeConfig
from evstore.net.dbwork import DbWork
from evstore.net.gossip import Mesh, ThreadedLog
from evstore.net.linkbook import LinkBook
from evstore.net.links import Links
from evstore.net.liveness import Liveness
from evstore.net.view import View, load_view
from evstore.ops import membership, secrets
from evstore.ops.node import DB_NAME, Node, now_ms, parse_hostport
from evstore.storage.connect import open_db

__all__ = ["Accept", "NodeHandle", "NodeLog", "Runtime"]

log = logging.getLogger("evstore.node")
T = TypeVar("T")
# What serves one inbound connection on a port ("admin" or "ccs"): inbound.py.
Accept = Callable[[str, trio.SocketStream], Awaitable[None]]


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


class NodeLog(ThreadedLog):
    """The mesh's log access, which also runs the node's follow-ups of every ingest."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime.node.log, limiter=runtime.work.limiter)
        self.runtime = runtime

    async def ingest(self, items: Sequence[Item]) -> list[Event]:
        applied = await super().ingest(items)
        if applied:
            await self.runtime.ingested(applied)
        return applied


class Runtime:
    """One generation of a serving node (a rekey or a new port starts the next one)."""

    def __init__(self, home: Path, config: NodeConfig, handle: NodeHandle) -> None:
        self.home = home
        self.config = config
        self.handle = handle
        self.conn = open_db(home / DB_NAME)
        self.node = Node(home, self.conn)
        self.work = DbWork()
        self.node.log.release_held(now_ms())
        self.view: View = load_view(self.node)
        self.signing = self.node.signing_key
        self.transport = secrets.load_transport_key(home)
        # seeded by the origin (a str seed is hashed deterministically); the origin may be
        # empty for a moment while a rekey swaps the key files
        self.rng = random.Random(config.seed if config.seed is not None else self.view.origin)
        self.book = LinkBook(self.conn, config.clock_alert_ms)
        self.check = selfcheck.SelfCheck(self)
        self.links = Links(self, self.check)
        self.liveness = Liveness(self, self.links)
        self.admission = Admission(config)
        self.log: ThreadedLog = NodeLog(self)
        self.mesh = self._mesh()
        self.restart = False
        self._refreshing = trio.Lock()
        self._scope = trio.CancelScope()
        self.log.floors = selfcheck.floors(self.view)

    def _mesh(self) -> Mesh:
        config = self.config
        return Mesh(node=self.view.origin, log=self.log, version=config.version,
                    ping_interval=config.ping_interval,
                    sync_interval=config.resync_interval,
                    keepalive_interval=config.keepalive_interval,
                    link_timeout=config.link_timeout,
                    relay_from_origin=config.fanout is not None,
                    watched=True,  # the change watch, ingests and releases report every change
                    on_link_change=self.liveness.link_changed)

    # ------------------------------------------------------------------ plumbing

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run database work in the worker thread, one call at a time."""
        return await self.work.run(fn, *args)

    def queue(self, job: Callable[[], None]) -> None:
        """Queue database work for the state writer (never blocks the caller)."""
        self.work.queue(job)

    def stop(self) -> None:
        self._scope.cancel()

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------------ main

    async def bind(self) -> dict[str, list[trio.SocketListener]]:
        """Bind the admin port, and the cluster-only port where configured."""
        out = {"admin": await _listen(self.view.listen)}
        if self.view.ccs:
            out["ccs"] = await _listen(self.view.ccs)
        return out

    async def run(self, listeners: dict[str, list[trio.SocketListener]], accept: Accept,
                  on_ready: Callable[[], None]) -> bool:
        """Serve until stopped; True when the node should start again (keys or ports moved)."""
        with self._scope:
            await self.db(self.book.reset)
            async with trio.open_nursery() as nursery:
                for kind, socks in listeners.items():
                    nursery.start_soon(partial(trio.serve_listeners, partial(accept, kind),
                                               socks, handler_nursery=nursery))
                for task in (partial(changes.watch_commits, self),
                             partial(changes.release_held, self), self.work.writer,
                             self.liveness.watchdog, self.links.run):
                    nursery.start_soon(task)
                on_ready()
        await self._shutdown_rows()
        return self.restart

    async def _shutdown_rows(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await self.db(self.book.reset)

    # ------------------------------------------------------------------ what parts call back

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
            await self.check.maybe_caught_up()

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
            self.log.floors = selfcheck.floors(view)
            self.links.reconcile()


async def _listen(address: str) -> list[trio.SocketListener]:
    host, port = parse_hostport(address)
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as e:
        raise OperationalError(f"cannot listen on {address}: {e.strerror or e}; is another "
                               "program using that port, or is the address not local?") from None
