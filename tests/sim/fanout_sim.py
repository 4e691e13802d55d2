"""Commit to applied on all, for clusters too big for this machine's processes (issue 16).

Theory of operation
-------------------
Two cores cannot run 100 ``evstore run`` processes, so the 100-machine figure comes from
this simulation: des.Sim (the real ``sync.Session`` on every link end, real signed events,
the real merge) with its time counted in MICROSECONDS and a cost model: every machine is
one CPU that does one thing at a time, and each thing it does takes the time measured on
real links (``Costs``): taking a message off a link (decrypt, decode, the session),
sending one (read, encode, encrypt, write), a durable ingest that applied something (the
flush and the views), and the commit itself. A message that arrives while its machine is
busy waits. The wire adds ``latency_us``. No faults: this measures speed, des.py tests
safety.

The links and the relaying are the node's (evstore/net/node.py, gossip.py):

* full mesh (``fanout=None``): every machine links to every other; the origin pushes to
  all, and events that came straight from their origin are not relayed;
* ``fanout=k``: every machine dials the k others first in the order of
  sha256(its key || theirs), links are those dials in both directions, and what a machine
  receives goes on to all its other links (as the node does), or with ``relay_to=r`` to r
  of them picked with the seeded generator (gossip.Mesh's ``relay_to``), never back to the
  sender.

``python -m tests.sim.fanout_sim --nodes 100 --fanout 4`` prints the figures.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from evstore.core import sync
from tests.sim import des


@dataclass(frozen=True)
class Costs:
    """CPU time of one machine, in microseconds, per thing it does."""

    receive_us: int = 250  # one message taken off a link
    send_us: int = 150  # one message read from the log and written to a link
    ingest_us: int = 5_000  # a durable ingest that applied events (flush + views)
    commit_us: int = 5_000  # the local commit itself
    latency_us: tuple[int, int] = (50, 150)  # the wire


IDLE_MACHINE = Costs(receive_us=120, send_us=80, ingest_us=1_000, commit_us=1_000)


@dataclass
class Figures:
    nodes: int
    fanout: int | None
    relay_to: int | None
    links: int
    ms: list[float] = field(default_factory=list)  # commit to applied on all, per commit
    messages_per_commit: float = 0.0
    ingests_per_commit: float = 0.0

    def pct(self, p: float) -> float:
        xs = sorted(self.ms)
        return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]


class CostSim(des.Sim):
    """des.Sim with a CPU per machine and the node's topology and relaying."""

    def __init__(self, nodes: int, *, seed: int, fanout: int | None, relay_to: int | None,
                 costs: Costs) -> None:
        cfg = des.Config(
            seed=seed, nodes=nodes, commits=0, latency_ms=costs.latency_us,
            resync_ms=10_000_000, ping_ms=600_000_000, writer_ms=0, skew_ms=0,
            reconnect_ms=(20, 500), liveness_bound_ms=0, trace_keep=1_000, verify=False)
        self.fanout = fanout
        self.relay_to = relay_to
        self.costs = costs
        super().__init__(cfg)
        self.faulty = False
        self.busy = [0] * nodes  # when each machine's CPU is free again
        self.cur: int | None = None  # the machine whose work is running now
        self.extra = 0  # µs of CPU that work has used so far
        self.applied_at: dict[str, list[int]] = {}  # watched event id -> times applied
        self.ingests = 0

    # ---- topology (node.py's _dial_targets)

    def _topology(self) -> list[tuple[int, int]]:
        n, k = self.cfg.nodes, self.fanout
        if k is None or k >= n - 1:
            return [(a, b) for a in range(n) for b in range(a + 1, n)]
        ids = [des.node_key(self.cfg.seed, i).verify_key.encode() for i in range(n)]
        pairs: set[tuple[int, int]] = set()
        for i in range(n):
            ranked = sorted((j for j in range(n) if j != i),
                            key=lambda j: hashlib.sha256(ids[i] + ids[j]).digest())
            pairs |= {(min(i, j), max(i, j)) for j in ranked[:k]}
        return sorted(pairs)

    # ---- the CPU of each machine

    def on_cpu(self, node: int, work: des.Action, cost: int = 0) -> None:
        """Run ``work`` on ``node`` when its CPU is free; its sends leave as it finishes."""
        if self.busy[node] > self.now:
            self.at(self.busy[node], functools.partial(self.on_cpu, node, work, cost))
            return
        self.cur, self.extra = node, cost
        try:
            work()
        finally:
            self.busy[node] = self.now + self.extra
            self.cur, self.extra = None, 0

    def _arrival(self, link: des.Link, end: int) -> int:
        sender = link.a if end == 0 else link.b
        if self.cur == sender:
            self.extra += self.costs.send_us
        when = self.now + self.extra + self.rng.randint(*self.cfg.latency_ms)
        when = max(when, link.last_arrival[end])  # a link is a stream: FIFO
        link.last_arrival[end] = when
        return when

    def deliver(self, link: des.Link, conn: des.Conn, end: int, data: bytes, number: int,
                hello: bool) -> None:
        node = link.a if end == 0 else link.b
        self.on_cpu(node, functools.partial(des.Sim.deliver, self, link, conn, end, data,
                                            number, hello), self.costs.receive_us)

    def _push(self, link: des.Link, conn: des.Conn, end: int) -> None:
        node = link.a if end == 0 else link.b
        self.on_cpu(node, functools.partial(des.Sim._push, self, link, conn, end))

    def _resync(self, link: des.Link, conn: des.Conn, end: int) -> None:
        node = link.a if end == 0 else link.b
        self.on_cpu(node, functools.partial(des.Sim._resync, self, link, conn, end))

    # ---- ingest and relaying (gossip.Peer._ingest, Mesh.relay)

    def _carry_out(self, link: des.Link, conn: des.Conn, end: int, action: sync.Action) -> None:
        if not isinstance(action, sync.Ingest):
            des.Sim._carry_out(self, link, conn, end, action)
            return
        me = link.a if end == 0 else link.b
        peer = self.nodes[link.b if end == 0 else link.a]
        node = self.nodes[me]
        applied = node.log.ingest(action.items)
        self.counts["ingested_items"] += len(action.items)
        if not applied:
            return
        self.ingests += 1
        self.extra += self.costs.ingest_us
        for ev in applied:
            if ev.id in self.applied_at:
                self.applied_at[ev.id].append(self.now + self.extra)
        self._maybe_join(node)
        if self.fanout is None and all(ev.origin == peer.id for ev in applied):
            return  # full mesh: the origin pushed to every machine itself
        others = [ln for ln in node.links if ln is not link and ln.conn is not None]
        if self.relay_to is not None and len(others) > self.relay_to:
            others = self.rng.sample(others, self.relay_to)
        self._push_on(node, others)

    def _push_on(self, node: des.Node, links: Sequence[des.Link]) -> None:
        for ln in links:
            conn, end = ln.conn, ln.end(node.index)
            if conn is not None and not conn.push_queued[end]:
                conn.push_queued[end] = True
                self.after(self.cfg.writer_ms, functools.partial(self._push, ln, conn, end))

    # ---- the measurement

    def commit_one(self, origin: int) -> str:
        node = self.nodes[origin]
        ev = node.append("config.commit", self._config_change(node), self.now)
        self.applied_at[ev.id] = []
        self.extra += self.costs.commit_us
        self.changed(node)
        return ev.id

    def _commit_into(self, box: list[str], origin: int) -> None:
        box.append(self.commit_one(origin))

    def measure(self, commits: int, gap_us: int = 300_000) -> Figures:
        self.genesis()
        for link in self.links:
            self.kick(link)
        bound = 600_000_000
        while not (self.settled() and all(n.joined for n in self.nodes[1:])):
            self.run_until(self.now + 50_000)
            if self.now > bound:
                raise RuntimeError("the cluster did not form")
        self.run_until(self.now + 1_000_000)
        figs = Figures(self.cfg.nodes, self.fanout, self.relay_to, len(self.links))
        msgs0, ingests0 = self.counts["messages"], self.ingests
        for _ in range(commits):
            origin = self.rng.randrange(self.cfg.nodes)
            start = max(self.now, self.busy[origin])
            self.run_until(start)
            box: list[str] = []
            self.on_cpu(origin, functools.partial(self._commit_into, box, origin))
            ev_id = box[0]
            deadline = self.now + 60_000_000
            while len(self.applied_at[ev_id]) < self.cfg.nodes - 1 and self.now < deadline:
                self.run_until(self.now + 1_000)
            times = self.applied_at.pop(ev_id)
            if len(times) < self.cfg.nodes - 1:
                raise RuntimeError(f"commit {ev_id[:12]} reached {len(times)} machines")
            figs.ms.append((max(times) - start) / 1000)
            self.run_until(self.now + gap_us)
        figs.messages_per_commit = (self.counts["messages"] - msgs0) / commits
        figs.ingests_per_commit = (self.ingests - ingests0) / commits
        return figs


def run(nodes: int, *, fanout: int | None, relay_to: int | None = None, commits: int = 30,
        seed: int = 1, costs: Costs = Costs()) -> Figures:
    return CostSim(nodes, seed=seed, fanout=fanout, relay_to=relay_to, costs=costs
                   ).measure(commits)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--fanout", type=int, default=None)
    ap.add_argument("--relay-to", type=int, default=None)
    ap.add_argument("--commits", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ingest-us", type=int, default=Costs.ingest_us)
    ap.add_argument("--receive-us", type=int, default=Costs.receive_us)
    ap.add_argument("--send-us", type=int, default=Costs.send_us)
    a = ap.parse_args(argv)
    costs = Costs(receive_us=a.receive_us, send_us=a.send_us, ingest_us=a.ingest_us,
                  commit_us=a.ingest_us)
    f = run(a.nodes, fanout=a.fanout, relay_to=a.relay_to, commits=a.commits, seed=a.seed,
            costs=costs)
    print(f"{f.nodes} machines, fanout {f.fanout}, relay to {f.relay_to}, {f.links} links, "
          f"costs {costs}: commit to applied on all p50 {f.pct(50):.1f} ms, p99 "
          f"{f.pct(99):.1f} ms, max {max(f.ms):.1f} ms; {f.messages_per_commit:.0f} messages "
          f"and {f.ingests_per_commit:.0f} applying ingests a commit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
