"""Which links exist, and the dialling that keeps them (docs/protocol.md, "Node runtime").

Every node dials every other member it may link with (``fanout=k``: the k members first in
the order of sha256(my key || their key)), each through a ``Dialer`` that dials, runs the
link, backs off (exponentially, with seeded jitter) and dials again. When two links to one
peer cross, the one dialled by the lower key stays (``Links.claim``). ``Links.reconcile``
cuts the links the membership no longer allows and starts the dialers it does, after every
re-read of the membership.

A link past its handshake runs the self-check (selfcheck.py), then carries gossip
(gossip.Mesh) through a ``Tap`` that notes the version vectors the peer reports.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import trio

from evstore.core.errors import OperationalError
from evstore.core.state import Machine
from evstore.core.sync import HelloMsg, SyncError, VVMsg, decode_message
from evstore.net import wire
from evstore.net.config import LINK_ERRORS
from evstore.net.selfcheck import SelfCheck
from evstore.net.serving import Serving
from evstore.net.transport import SecureChannel, handshake
from evstore.ops.node import parse_hostport

__all__ = ["Dialer", "Links", "LiveLink", "Tap", "close_channel"]

log = logging.getLogger("evstore.node")


@dataclass
class LiveLink:
    """A link past its handshake (checking, or carrying gossip)."""

    mid: str
    peer_key: str
    outbound: bool
    address: str
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    ended: trio.Event = field(default_factory=trio.Event)


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


async def close_channel(channel: SecureChannel) -> None:
    """Say goodbye (FINAL) even while being cancelled, within a short bound."""
    with trio.CancelScope(shield=True), trio.move_on_after(2):
        await channel.aclose()


class Links:
    """The node's links: the live ones by machine id, the dialers, why each link last ended."""

    def __init__(self, rt: Serving, check: SelfCheck) -> None:
        self.rt = rt
        self.check = check
        self.live: dict[str, LiveLink] = {}
        self.dialers: dict[str, Dialer] = {}
        self.reasons: dict[str, str] = {}  # why a link was cut, for its "down" alert
        self.nursery: trio.Nursery | None = None  # the dialers' (and liveness checks')
        self._vv_seen: dict[str, dict[str, int]] = {}

    async def run(self) -> None:
        """Hold the nursery the dialers run in, until cancelled."""
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            try:
                self.reconcile()
                await trio.sleep_forever()
            finally:
                self.nursery = None  # closed to new tasks from here on

    def linkable(self) -> dict[str, Machine]:
        return self.rt.view.linkable(self.rt.config.blocked)

    def reconcile(self) -> None:
        """Cut links the membership no longer allows; dial the members it does."""
        view = self.rt.view
        allowed = self.linkable()
        keep = set(allowed) | set(view.removed if view.cluster else ())
        for mid, link in list(self.live.items()):
            if mid not in keep and not link.ended.is_set():
                self.reasons[mid] = "detached or removed from the cluster"
                link.scope.cancel()
                self.rt.mesh.disconnect(mid)
        targets = self._dial_targets(allowed)
        for mid in [d for d in self.dialers if d not in targets]:
            self.dialers.pop(mid).scope.cancel()
        if self.nursery is None:
            return
        for mid in targets:
            if mid not in self.dialers:
                dialer = Dialer(self, mid)
                self.dialers[mid] = dialer
                self.nursery.start_soon(self._run_dialer, dialer)

    async def _run_dialer(self, dialer: Dialer) -> None:
        try:
            await dialer.run()
        finally:
            if self.dialers.get(dialer.mid) is dialer:
                del self.dialers[dialer.mid]

    def _dial_targets(self, allowed: dict[str, Machine]) -> list[str]:
        k = self.rt.config.fanout
        if k is None or len(allowed) <= k:
            return sorted(allowed)
        me = bytes.fromhex(self.rt.view.origin)

        def rank(mid: str) -> bytes:
            return hashlib.sha256(me + bytes.fromhex(allowed[mid].key)).digest()

        return sorted(sorted(allowed, key=rank)[:k])

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
        return outbound == (self.rt.view.origin < peer_key)

    # ------------------------------------------------------------------ dialling

    async def dial_link(self, m: Machine) -> None:
        """Dial one member, check, and carry gossip until the link ends."""
        channel, address = await self.connect(m)
        link = self.claim(m, True, address)
        if link is None:
            await close_channel(channel)
            return
        try:
            with link.scope:
                await self.check.dialled(channel, m)
                await self.run_mesh(channel, m, address)
        finally:
            link.ended.set()
            await close_channel(channel)

    async def connect(self, m: Machine) -> tuple[SecureChannel, str]:
        """The member's cluster-only port if it announced one, else (or if that fails to
        answer) its admin port; then the handshake, expecting its announced keys."""
        addresses = [a for a in (m.ccs, m.listen) if a]
        for i, address in enumerate(addresses):
            host, port = parse_hostport(address)
            try:
                with trio.fail_after(self.rt.config.dial_timeout):
                    stream = await trio.open_tcp_stream(host, port)
            except (OSError, trio.TooSlowError):
                if i == len(addresses) - 1:
                    raise
                continue
            return await self._handshake(stream, m), address
        raise OperationalError(f"{m.hostname} announces no address")

    async def _handshake(self, stream: trio.SocketStream, m: Machine) -> SecureChannel:
        rt = self.rt
        return await handshake(
            stream, initiator=True, static_x25519=rt.transport, signing_key=rt.signing,
            expected_peer_x25519=bytes.fromhex(m.transport_key),
            authorize=lambda ed, _x: ed == m.key,
            max_message_size=wire.MAX_WIRE_MESSAGE, timeout=rt.config.handshake_timeout)

    def dial_failed(self, m: Machine, exc: BaseException) -> None:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, wire.RemoteRefused) and "duplicate link" in text:
            return
        log.info("link to %s (%s): %s", m.hostname, m.ccs or m.listen, text)
        refused = isinstance(exc, wire.RemoteRefused)
        self.rt.queue(partial(self.rt.book.store_failure, m, text, refused))

    # ------------------------------------------------------------------ gossip

    async def run_mesh(self, channel: SecureChannel, m: Machine, address: str) -> None:
        """Carry gossip on a checked link until it ends (either side's)."""
        self.reasons.pop(m.mid, None)
        tap = Tap(channel, partial(self._peer_vv, m.mid))
        self.rt.queue(partial(self.rt.book.store_address, m.mid, address))
        await self.rt.mesh.run_peer(m.mid, tap, expected_node=channel.peer_ed25519_hex)

    def _peer_vv(self, mid: str, vv: dict[str, int]) -> None:
        if self._vv_seen.get(mid) != vv:  # most resyncs change nothing: no write then
            self._vv_seen[mid] = vv
            self.rt.queue(partial(self.rt.book.store_peer_vv, mid, vv))


class Dialer:
    """Keeps one outbound link to one member: dial, run, back off, dial again."""

    def __init__(self, links: Links, mid: str) -> None:
        self.links = links
        self.mid = mid
        self.scope = trio.CancelScope()
        self.wake = trio.Event()
        self.attempt = 0

    async def run(self) -> None:
        with self.scope:
            while True:
                m = self.links.linkable().get(self.mid)
                if m is None:
                    return
                live = self.links.live.get(self.mid)
                if live is not None and not live.ended.is_set():
                    await live.ended.wait()
                    continue
                await self._once(m)
                await self._pause()

    async def _once(self, m: Machine) -> None:
        started = trio.current_time()
        try:
            await self.links.dial_link(m)
        except LINK_ERRORS as exc:
            self.links.dial_failed(m, exc)
        except Exception:  # a bug or a database error on one link must not stop the node
            log.exception("link to %s failed", m.hostname)
        if trio.current_time() - started > 10:
            self.attempt = 0

    async def _pause(self) -> None:
        cfg = self.links.rt.config
        base = min(cfg.backoff_max, cfg.backoff_min * 2 ** min(self.attempt, 30))
        self.attempt += 1
        delay = base * (0.5 + self.links.rt.rng.random() / 2)
        with trio.move_on_after(delay):
            await self.wake.wait()
        self.wake = trio.Event()
