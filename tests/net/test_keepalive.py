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


def test_a_stall_of_our_own_loop_is_not_the_peers_silence(tmp_path: Path) -> None:
    """Our loop frozen for twice the link timeout (the mock clock jumps while no task runs,
    as when an overloaded machine does not schedule the process): the ticker wakes that much
    late, and the link stays up (fails when silence is counted in wall time alone)."""
    a, _, _ = _mesh(tmp_path, "a")
    b, _, _ = _mesh(tmp_path, "b")
    ab, ba = Pipe(), Pipe()
    ended: dict[str, LinkState] = {}
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_run, a, "b", End(ab, ba), ended)
            nursery.start_soon(_run, b, "a", End(ba, ab), ended)
            await trio.sleep(5)
            assert a.connected() == ["b"] and b.connected() == ["a"]
            for _ in range(3):
                clock.jump(2 * a.link_timeout)  # nothing ran meanwhile: a stall
                await trio.sleep(5)
                assert a.connected() == ["b"] and b.connected() == ["a"], ended
            assert a.stalled >= 3 * (2 * a.link_timeout - (a.keepalive_interval or 0))
            nursery.cancel_scope.cancel()

    trio.run(main, clock=clock)
    assert all(s.error in (None, "disconnected") for s in ended.values()), ended


def test_one_timer_serves_every_link_and_passes_on_when_its_link_ends(tmp_path: Path) -> None:
    """Three links on one mesh: one ticker at a time; when the link running it ends, another
    takes over, and a peer that then falls silent is still dropped within the timeout."""
    hub, _, _ = _mesh(tmp_path, "hub")
    spokes = {name: _mesh(tmp_path, name)[0] for name in ("s1", "s2", "s3")}
    pipes = {name: (Pipe(), Pipe()) for name in spokes}
    ended: dict[str, LinkState] = {}

    async def main() -> float:
        async with trio.open_nursery() as nursery:
            for name, mesh in spokes.items():
                out, back = pipes[name]
                nursery.start_soon(_run, hub, name, End(out, back), ended)
                nursery.start_soon(_run, mesh, "hub" + name, End(back, out), {})
            await trio.sleep(5)
            assert hub.connected() == ["s1", "s2", "s3"]
            first = hub._ticker
            assert first is not None
            hub.disconnect(first.name)
            await trio.sleep(2)
            assert hub._ticker is not None and hub._ticker is not first
            survivors = [n for n in spokes if n != first.name]
            assert hub.connected() == survivors
            silent = survivors[0]
            frozen_at = trio.current_time()
            for pipe in pipes[silent]:
                pipe.frozen = True
            while silent not in ended:
                await trio.sleep(0.1)
            took = trio.current_time() - frozen_at
            assert hub.connected() == survivors[1:]
            nursery.cancel_scope.cancel()
        return took

    took = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert hub.link_timeout <= took <= hub.link_timeout + 2 * (hub.keepalive_interval or 0)


class CountingLog(InlineLog):
    """A log that counts reads of its version vector."""

    reads = 0

    async def version_vector(self) -> dict[str, tuple[int, int]]:
        self.reads += 1
        return await super().version_vector()


def _idle_reads(tmp: Path, watched: bool) -> int:
    a, _, _ = _mesh(tmp, f"a{watched}")
    b, _, access = _mesh(tmp, f"b{watched}", CountingLog)
    assert isinstance(access, CountingLog)
    a.sync_interval = b.sync_interval = 2.0
    b.watched = watched
    ab, ba = Pipe(), Pipe()

    async def main() -> int:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_run, a, "b", End(ab, ba), {})
            nursery.start_soon(_run, b, "a", End(ba, ab), {})
            await trio.sleep(5)
            before = access.reads
            await trio.sleep(60)  # 30 resyncs, nothing changes
            assert b.connected() == ["a"]
            nursery.cancel_scope.cancel()
        return access.reads - before

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_watched_idle_mesh_does_not_read_its_log_at_every_resync(tmp_path: Path) -> None:
    """The node reports every change (``watched``): a quiet link's resyncs use the vector
    read after the last change, re-read only as a safety net every six sync intervals;
    an unwatched mesh reads at every resync (a change nobody announced still leaves)."""
    assert _idle_reads(tmp_path, watched=False) >= 25
    assert _idle_reads(tmp_path, watched=True) <= 60 / (6 * 2.0) + 1
