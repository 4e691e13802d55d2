"""A deterministic multi-node simulation of anti-entropy (a module of its own, not conftest,
so tests and a subprocess can import it by a unique name).

Each simulated node is real below the network: an EventLog on its own in-memory SQLite
database with the materialized views, a Mesh from evstore/net/gossip.py, a signing key from
a fixed seed. Links are ``trio.testing.memory_stream_pair()`` streams with a length-prefixed
framing adapter instead of the Noise transport (which has its own tests, and draws ephemeral
keys from os.urandom). Time is trio's MockClock with autojump, so hours of virtual time pass
in milliseconds and nothing sleeps for real.

Every source of nondeterminism is pinned (PITFALLS 23-24): one ``random.Random(seed)`` drives
the schedule, link delays come from per-link generators derived from it, trio's scheduler is
put in its deterministic mode and its private generator seeded, and nothing iterates over a
set of strings. ``SimResult.trace_hash`` hashes every message (time, link, bytes), so two
runs of one seed can be compared exactly.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nacl.signing
import trio
import trio.testing

from evstore.core import encoding, sync
from evstore.net.gossip import InlineLog, Mesh
from evstore.net.transport import LinkTruncated
from evstore.storage import views
from evstore.storage.connect import open_db
from evstore.storage.log import EventLog

T0 = 1767225600000  # 2026-01-01T00:00:00Z: virtual time 0
VIEW_TABLES = (
    ("mode_sections", "mode, section"),
    ("effective", "machine, section"),
    ("reg_winners", "scope, section, field"),
    ("superseded", "scope, section, field, loser"),
)
LIVENESS_BOUND_S = 10.0  # after the final heal, convergence must take no longer (virtual)
CHECK_EVERY_S = 0.01

T = TypeVar("T")


def signing_key(index: int) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(hashlib.sha256(f"evstore-sim-node-{index}".encode()).digest())


@contextmanager
def deterministic_trio(seed: int) -> Iterator[None]:
    """Trio's scheduler in its deterministic mode, its private generator seeded (both are
    private knobs, hence the pinned trio version and the self-test)."""
    run: Any = trio._core._run
    allow, state = run._ALLOW_DETERMINISTIC_SCHEDULING, run._r.getstate()
    run._ALLOW_DETERMINISTIC_SCHEDULING = True
    run._r.seed(seed)
    try:
        yield
    finally:
        run._ALLOW_DETERMINISTIC_SCHEDULING = allow
        run._r.setstate(state)


# --------------------------------------------------------------------------- links


class FramedChannel:
    """Whole messages over a memory stream: 4-byte length, then the bytes.

    ``blackhole`` drops what this end sends (an asymmetric fault: the other direction still
    works); ``delay`` is a per-message latency in seconds (sends are serial, so a link never
    reorders).
    """

    def __init__(
        self, stream: trio.abc.Stream, name: str, delay: Callable[[], float], trace: Trace
    ) -> None:
        self.stream = stream
        self.name = name
        self.delay = delay
        self.trace = trace
        self.blackhole = False
        self._buf = bytearray()

    async def send(self, message: bytes) -> None:
        await trio.sleep(self.delay())
        self.trace.message(self.name, message, dropped=self.blackhole)
        if not self.blackhole:
            await self.stream.send_all(len(message).to_bytes(4, "big") + message)

    async def receive(self) -> bytes:
        await self._fill(4)
        size = int.from_bytes(self._buf[:4], "big")
        await self._fill(4 + size)
        body = bytes(self._buf[4 : 4 + size])
        del self._buf[: 4 + size]
        return body

    async def _fill(self, size: int) -> None:
        while len(self._buf) < size:
            data = await self.stream.receive_some()
            if not data:
                raise LinkTruncated("simulated link ended")
            self._buf += data


@dataclass
class Link:
    """One simulated connection between nodes ``a`` < ``b``."""

    a: int
    b: int
    ends: tuple[FramedChannel, FramedChannel]
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)


# --------------------------------------------------------------------------- trace


class Trace:
    """A running hash of everything that crossed a link, with its virtual time."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.kinds: Counter[str] = Counter()
        self.messages = 0
        self.dropped = 0
        self.bytes = 0

    def note(self, text: str) -> None:
        self._h.update(f"{trio.current_time():.6f} {text}\n".encode())

    def message(self, link: str, data: bytes, *, dropped: bool) -> None:
        self.messages += 1
        self.dropped += dropped
        self.bytes += len(data)
        try:
            self.kinds[type(sync.decode_message(data)).__name__] += 1
        except sync.SyncError:
            self.kinds["invalid"] += 1
        self.note(f"{link} {'drop' if dropped else 'send'} {hashlib.sha256(data).hexdigest()}")

    def hexdigest(self) -> str:
        return self._h.hexdigest()


# --------------------------------------------------------------------------- nodes


def _rebuild_views(conn: Any) -> None:
    """After a settled fork: the views from every applied event, as ``rebuild_views`` does."""
    store = views.SqliteStore(conn)
    store.reset()
    views.on_apply(conn, list(EventLog(conn).iter_all()))


class SimNode:
    """One machine: key, log over in-memory SQLite with views, and its Mesh."""

    def __init__(self, index: int, skew_ms: int, *, ping_interval: float, sync_interval: float):
        self.index = index
        self.name = f"n{index}"
        self.key = signing_key(index)
        self.node_id = self.key.verify_key.encode().hex()
        self.skew_ms = skew_ms
        self.conn = open_db(":memory:")
        # forks of other origins are settled as a serving node settles them (ops/node.py)
        self.log = EventLog(self.conn, on_apply=views.on_apply,
                            settle_forks=lambda origin: origin != self.node_id,
                            on_rewind=_rebuild_views)
        self.mesh = Mesh(
            node=self.node_id,
            log=InlineLog(self.log, now_ms=self.now_ms),
            version="sim-1",
            ping_interval=ping_interval,
            sync_interval=sync_interval,
            wall_ms=self.now_ms,
        )
        self.commits = 0

    def now_ms(self) -> int:
        return T0 + round(trio.current_time() * 1000) + self.skew_ms

    def append(self, kind: str, payload: dict[str, Any]) -> None:
        self.log.append(self.key, user="admin", kind=kind, payload=payload, now_ms=self.now_ms())
        self.mesh.notify_local_change()

    def genesis(self) -> None:
        machine = {"hostname": self.name, "serial": f"SIM{self.index:04d}"}
        if self.index == 0:
            self.append("cluster.create", {"name": "sim", "group_name": "Main_Group",
                                           "machine": machine, "cluster_settings": {
                                               "users": {"users": [{"name": "admin", "role": "admin", "passphrase_hash": "x"}]}}})
        else:
            self.append("cluster.join", {"machine": machine, "machine_settings": {}})

    def commit(self, mode: str, value: int) -> None:
        change = {"mode": mode, "section": "dns", "op": "define", "base": None,
                  "value": {"servers": [f"10.0.0.{value}"]}}
        self.append("config.commit", {"comment": "", "changes": [change]})
        self.commits += 1

    def vector(self) -> dict[str, tuple[int, int]]:
        return {o: (self.log.first_seq(o) or 0, last) for o, last in self.log.version_vector().items()}

    def views_dump(self) -> bytes:
        """The views, canonically encoded, rows in primary-key order."""
        out = []
        for table, key in VIEW_TABLES:
            rows = self.conn.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
            out.append([table, [list(r) for r in rows]])
        return encoding.encode(out)

    def settled(self) -> bool:
        return self.log.pending_count() == 0 and not self.log.held()


# --------------------------------------------------------------------------- the simulation


@dataclass
class SimResult:
    seed: int
    nodes: int
    commits: int
    events: int
    faults: dict[str, int]
    heal_at_s: float
    converged_after_s: float
    diverged_at_heal: bool
    end_s: float
    messages: int
    dropped: int
    bytes: int
    trace_hash: str
    state_hash: str


class Sim:
    """A seeded schedule of commits and link faults over ``n`` nodes, then a heal."""

    def __init__(self, seed: int, n: int, *, steps: int = 40, heal: str = "full",
                 ping_interval: float = 5.0, sync_interval: float = 3.0) -> None:
        self.seed = seed
        self.heal_mode = heal
        self.rng = random.Random(seed)
        self.steps = steps
        self.trace = Trace()
        self.nodes = [
            SimNode(i, self.rng.randint(-2000, 2000), ping_interval=ping_interval,
                    sync_interval=sync_interval)
            for i in range(n)
        ]
        self.links: dict[tuple[int, int], Link] = {}
        self.faults = {"cut": 0, "reset": 0, "restore": 0, "blackhole": 0}
        self.nursery: trio.Nursery | None = None

    # ---- links

    def pairs(self) -> list[tuple[int, int]]:
        n = len(self.nodes)
        return [(a, b) for a in range(n) for b in range(a + 1, n)]

    async def connect(self, a: int, b: int) -> None:
        if (a, b) in self.links:
            return
        assert self.nursery is not None
        link_rng = random.Random(self.rng.getrandbits(64))
        s_a, s_b = trio.testing.memory_stream_pair()
        delay = lambda: link_rng.randrange(1, 40) / 1000  # noqa: E731
        ends = (FramedChannel(s_a, f"n{a}>n{b}", delay, self.trace),
                FramedChannel(s_b, f"n{b}>n{a}", delay, self.trace))
        link = Link(a, b, ends)
        self.links[(a, b)] = link
        self.trace.note(f"connect n{a} n{b}")
        await self.nursery.start(self._run_link, link)

    async def _run_link(self, link: Link, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        na, nb = self.nodes[link.a], self.nodes[link.b]
        with link.scope:
            task_status.started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serve, na, nb, link.ends[0])
                nursery.start_soon(self._serve, nb, na, link.ends[1])
        for end in link.ends:
            await end.stream.aclose()
        link.done.set()

    async def _serve(self, me: SimNode, other: SimNode, channel: FramedChannel) -> None:
        state = await me.mesh.run_peer(other.name, channel, expected_node=other.node_id)
        self.trace.note(f"{me.name}-{other.name} down: {state.error}")
        await channel.stream.aclose()  # the other end sees EOF, as after a TCP close

    async def cut(self, a: int, b: int, *, reset: bool) -> None:
        """Take a link down: ``reset`` closes one end's stream, else both ends are cancelled."""
        link = self.links.pop((a, b))
        self.trace.note(f"cut n{a} n{b} reset={reset}")
        if reset:
            await link.ends[self.rng.randrange(2)].stream.aclose()
        else:
            link.scope.cancel()
        await link.done.wait()

    # ---- the run

    async def within(self, body: Callable[[], Awaitable[T]]) -> T:
        """Run ``body`` with the links' nursery open; then stop every link and timer."""
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            result = await body()
            nursery.cancel_scope.cancel()
        return result

    async def schedule(self) -> SimResult:
        for node in self.nodes:
            node.genesis()
        for a, b in self.pairs():
            if self.rng.random() < 0.7:
                await self.connect(a, b)
        for _ in range(self.steps):
            await trio.sleep(self.rng.randrange(0, 3000) / 1000)
            await self.step()
        await self.partition()
        heal_at = trio.current_time()
        diverged = not self.converged()
        await self.heal()
        converged_after = await self.wait_converged(heal_at)
        return self.result(heal_at, converged_after, diverged)

    async def step(self) -> None:
        r = self.rng.random()
        up = sorted(self.links)
        down = [p for p in self.pairs() if p not in self.links]
        if r < 0.55 or (not up and not down):
            node = self.nodes[self.rng.randrange(len(self.nodes))]
            target = self.nodes[self.rng.randrange(len(self.nodes))]
            mode = "cluster" if self.rng.random() < 0.7 else f"machine:{target.node_id}"
            self.trace.note(f"commit {node.name} {mode}")
            node.commit(mode, self.rng.randrange(1, 255))
        elif r < 0.75 and up:
            reset = self.rng.random() < 0.5
            self.faults["reset" if reset else "cut"] += 1
            await self.cut(*self.rng.choice(up), reset=reset)
        elif r < 0.92 and down:
            self.faults["restore"] += 1
            await self.connect(*self.rng.choice(down))
        elif up:
            link = self.links[self.rng.choice(up)]
            end = link.ends[self.rng.randrange(2)]
            self.faults["blackhole"] += 1
            self.trace.note(f"blackhole {end.name}")
            end.blackhole = True

    async def partition(self) -> None:
        """Split the nodes in two sides and make conflicting commits on both, so the heal
        always has work to do (concurrent writes to one section at cluster mode)."""
        order = list(range(len(self.nodes)))
        self.rng.shuffle(order)
        side = set(order[: self.rng.randrange(1, len(order))])
        self.trace.note(f"partition {sorted(side)}")
        for a, b in sorted(self.links):
            if (a in side) != (b in side):
                await self.cut(a, b, reset=self.rng.random() < 0.5)
        for _ in range(4):
            await trio.sleep(self.rng.randrange(0, 2000) / 1000)
            for members in (sorted(side), sorted(set(order) - side)):
                self.nodes[self.rng.choice(members)].commit("cluster", self.rng.randrange(1, 255))

    def heal_pairs(self) -> list[tuple[int, int]]:
        """The links up after the heal: all of them, or only a line n0-n1-…, so events
        between the line's ends must be relayed."""
        if self.heal_mode == "line":
            return [(i, i + 1) for i in range(len(self.nodes) - 1)]
        return self.pairs()

    async def heal(self) -> None:
        """The heal links fresh and up (blackholed ones replaced, as by a reconnect); in
        "line" mode every other link is cut."""
        self.trace.note(f"heal {self.heal_mode}")
        keep = self.heal_pairs()
        for pair in sorted(self.links):
            link = self.links[pair]
            if pair not in keep or any(end.blackhole for end in link.ends):
                await self.cut(*pair, reset=False)
        for a, b in keep:
            await self.connect(a, b)

    def converged(self) -> bool:
        first = self.nodes[0]
        vector = first.vector()
        if any(n.vector() != vector for n in self.nodes[1:]):
            return False
        if not all(n.settled() for n in self.nodes):
            return False
        dump = first.views_dump()
        return all(n.views_dump() == dump for n in self.nodes[1:])

    async def wait_converged(self, heal_at: float) -> float:
        while not self.converged():
            if trio.current_time() - heal_at > LIVENESS_BOUND_S:
                raise AssertionError(
                    f"seed {self.seed}: no convergence {LIVENESS_BOUND_S} s (virtual) after the "
                    f"heal; vectors: {[n.vector() for n in self.nodes]}"
                )
            await trio.sleep(CHECK_EVERY_S)
        return trio.current_time() - heal_at

    def result(self, heal_at: float, converged_after: float, diverged: bool) -> SimResult:
        state = hashlib.sha256()
        for node in self.nodes:
            state.update(encoding.encode(sorted(node.vector().items())))
            state.update(node.views_dump())
        return SimResult(
            seed=self.seed,
            nodes=len(self.nodes),
            commits=sum(n.commits for n in self.nodes),
            events=self.nodes[0].log.count(),
            faults=dict(self.faults),
            heal_at_s=heal_at,
            converged_after_s=converged_after,
            diverged_at_heal=diverged,
            end_s=trio.current_time(),
            messages=self.trace.messages,
            dropped=self.trace.dropped,
            bytes=self.trace.bytes,
            trace_hash=self.trace.hexdigest(),
            state_hash=state.hexdigest(),
        )

    def close(self) -> None:
        for node in self.nodes:
            node.conn.close()


def run_sim(sim: Sim, body: Callable[[], Awaitable[T]]) -> T:
    """Run ``body`` inside ``sim`` under a fresh MockClock (autojump), deterministically."""
    try:
        with deterministic_trio(sim.seed):
            return trio.run(sim.within, body, clock=trio.testing.MockClock(autojump_threshold=0))
    finally:
        sim.close()


def run_seed(seed: int, nodes: int, *, steps: int = 40, heal: str = "full") -> SimResult:
    """Run one seeded schedule to convergence; the same arguments give the same result."""
    sim = Sim(seed, nodes, steps=steps, heal=heal)
    return run_sim(sim, sim.schedule)


if __name__ == "__main__":  # used by the PYTHONHASHSEED self-test
    import sys

    res = run_seed(int(sys.argv[1]), int(sys.argv[2]), heal=sys.argv[3])
    print(res.trace_hash, res.state_hash)
