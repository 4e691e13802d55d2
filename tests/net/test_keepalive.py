"""Link keepalives (gossip.py), on two meshes joined by an in-memory channel, in trio's mock
clock: a peer that goes silent without closing is dropped within the link timeout, and a
peer that is only slow to take a backlog into its log is not (it keeps pinging the sender,
whose own pings wait behind the batches)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import nacl.signing
import trio
import trio.testing

from evstore.core import events
from evstore.core.events import Event
from evstore.core.sync import Item
from evstore.net.gossip import InlineLog, LinkState, Mesh
from evstore.storage.connect import open_db
from evstore.storage.log import EventLog

T0 = 1767225600000


class Pipe:
    """One direction of a link; ``frozen`` holds everything back, as a stopped process's
    kernel would keep taking bytes nobody reads."""

    def __init__(self) -> None:
        self.send_side, self.receive_side = trio.open_memory_channel[bytes](1000)
        self.frozen = False

    async def put(self, data: bytes) -> None:
        if not self.frozen:
            await self.send_side.send(data)

    async def get(self) -> bytes:
        while self.frozen:
            await trio.sleep(1)
        return await self.receive_side.receive()


class End:
    """One side's channel: writes into one pipe, reads from the other."""

    def __init__(self, out: Pipe, into: Pipe) -> None:
        self.out, self.into = out, into

    async def send(self, message: bytes) -> None:
        await self.out.put(message)

    async def receive(self) -> bytes:
        return await self.into.get()


class SlowLog(InlineLog):
    """A log that takes ``delay`` seconds (mock time) for every batch it ingests."""

    delay = 0.0

    async def ingest(self, items: Sequence[Item]) -> list[Event]:
        await trio.sleep(self.delay)
        return await super().ingest(items)


def _key(name: str) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(hashlib.sha256(name.encode()).digest())


def _mesh(tmp: Path, name: str, log_type: type[InlineLog] = InlineLog
          ) -> tuple[Mesh, EventLog, InlineLog]:
    log = EventLog(open_db(tmp / f"{name}.db"))
    access = log_type(log, now_ms=lambda: T0 + int(trio.current_time() * 1000))
    mesh = Mesh(node=events.origin_of(_key(name)), log=access, version="t", ping_interval=600,
                sync_interval=600, wall_ms=lambda: T0 + int(trio.current_time() * 1000))
    return mesh, log, access


def _commits(log: EventLog, name: str, count: int) -> None:
    for i in range(count):
        log.append(_key(name), user="admin", kind="config.commit", payload={"i": i},
                   now_ms=T0 + i)


async def _run(mesh: Mesh, name: str, channel: End, out: dict[str, LinkState]) -> None:
    out[name] = await mesh.run_peer(name, channel)


def test_a_silent_peer_is_dropped_within_the_link_timeout(tmp_path: Path) -> None:
    a, _, _ = _mesh(tmp_path, "a")
    b, _, _ = _mesh(tmp_path, "b")
    ab, ba = Pipe(), Pipe()
    ended: dict[str, LinkState] = {}

    async def main() -> float:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_run, a, "b", End(ab, ba), ended)
            nursery.start_soon(_run, b, "a", End(ba, ab), ended)
            await trio.sleep(10)  # a quiet link stays up on keepalives alone
            assert a.connected() == ["b"] and b.connected() == ["a"]
            frozen_at = trio.current_time()
            ba.frozen = ab.frozen = True  # b stops: it neither reads nor writes
            while "b" not in ended:
                await trio.sleep(0.1)
            took = trio.current_time() - frozen_at
            nursery.cancel_scope.cancel()
        return took

    took = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert a.link_timeout <= took <= a.link_timeout + 2 * (a.keepalive_interval or 0)
    assert "stopped answering" in (ended["b"].error or "")


def test_a_peer_slow_to_take_a_backlog_is_not_dropped(tmp_path: Path) -> None:
    a, a_log, _ = _mesh(tmp_path, "a")
    b, b_log, b_access = _mesh(tmp_path, "b", SlowLog)
    assert isinstance(b_access, SlowLog)
    b_access.delay = 2 * a.link_timeout  # each batch takes longer than the link timeout
    _commits(a_log, "a", 1200)  # three batches of at most 500
    ab, ba = Pipe(), Pipe()
    ended: dict[str, LinkState] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_run, a, "b", End(ab, ba), ended)
            nursery.start_soon(_run, b, "a", End(ba, ab), ended)
            while b_log.version_vector().get(events.origin_of(_key("a")), 0) < 1200:
                assert not ended, ended
                await trio.sleep(0.5)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert all(s.error in (None, "disconnected") for s in ended.values()), ended
