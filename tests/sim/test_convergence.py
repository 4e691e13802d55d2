"""Convergence of anti-entropy in a deterministic simulation (tests/sim/sim_harness.py).

Safety: after any seeded schedule of commits, cuts, resets, restores and one-way blackholes,
then a partition with conflicting commits on both sides and a heal, every node holds the same
version vector and byte-identical views. Liveness: after the heal the cluster converges
within ``LIVENESS_BOUND_S`` of virtual time, also when the heal leaves only a line of links,
so that events between its ends must be relayed. Determinism: one seed gives one trace.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing
from sim_harness import (
    LIVENESS_BOUND_S,
    T0,
    FramedChannel,
    Sim,
    SimNode,
    Trace,
    run_seed,
    run_sim,
    signing_key,
)

from evstore.core import clock, events, sync
from evstore.core.events import Event
from evstore.net.gossip import InlineLog, LinkState, ThreadedLog
from evstore.storage import views
from evstore.storage.connect import open_db
from evstore.storage.log import EventLog

SEEDS = range(30)
STEPS = 60
HERE = Path(__file__).parent


def _shape(seed: int) -> tuple[int, str]:
    """Nodes (3..5) and heal topology per seed."""
    return 3 + seed % 3, ("line" if seed % 2 else "full")


async def wait_until(pred: Callable[[], bool], bound: float) -> float:
    """Virtual seconds until ``pred()`` holds; fails past ``bound``."""
    start = trio.current_time()
    while not pred():
        assert trio.current_time() - start <= bound, "condition not reached in time"
        await trio.sleep(0.01)
    return trio.current_time() - start


# --------------------------------------------------------------------------- random schedules


@pytest.mark.parametrize("seed", SEEDS)
def test_random_schedule_converges(seed: int) -> None:
    nodes, heal = _shape(seed)
    result = run_seed(seed, nodes, steps=STEPS, heal=heal)
    assert result.diverged_at_heal  # the heal had work to do
    assert result.events == result.commits + nodes  # every commit and genesis everywhere
    assert result.converged_after_s <= LIVENESS_BOUND_S  # (run_seed also enforces it)


def test_same_seed_same_trace() -> None:
    first = run_seed(7, 4, steps=STEPS, heal="line")
    second = run_seed(7, 4, steps=STEPS, heal="line")
    assert first == second


def test_different_seeds_different_traces() -> None:
    """The trace really depends on the schedule (the self-test above is not vacuous)."""
    assert run_seed(1, 4, steps=20).trace_hash != run_seed(2, 4, steps=20).trace_hash


def test_trace_does_not_depend_on_hash_randomization() -> None:
    """PITFALLS 23: str hashing differs per process unless PYTHONHASHSEED is set. (The runs
    are compared with each other, not with this process, whose modules were imported at
    collection time.)"""
    outputs = []
    for hash_seed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, str(HERE / "sim_harness.py"), "5", "3", "full"],
            env=env, capture_output=True, text=True, check=True, cwd=HERE,
        )
        outputs.append(done.stdout)
    assert len(set(outputs)) == 1 and len(outputs[0].split()) == 2


# --------------------------------------------------------------------------- relaying


async def _genesis_and_line(sim: Sim) -> None:
    """n0 - n1 - n2, no direct n0 - n2 link, everyone in sync."""
    for node in sim.nodes:
        node.genesis()
    await sim.connect(0, 1)
    await sim.connect(1, 2)
    await wait_until(sim.converged, LIVENESS_BOUND_S)


def _newest_id(node: SimNode) -> str:
    return list(node.log.read_range(node.node_id, 1, 10**9))[-1].id


def test_commit_on_a_reaches_c_through_b() -> None:
    sim = Sim(0, 3)

    async def body() -> tuple[float, float, list[str]]:
        await _genesis_and_line(sim)
        a, c = sim.nodes[0], sim.nodes[2]
        a.commit("cluster", 42)
        a_to_c = await wait_until(lambda: c.log.get(_newest_id(a)) is not None, 1.0)
        c.commit("cluster", 43)
        c_to_a = await wait_until(lambda: a.log.get(_newest_id(c)) is not None, 1.0)
        return a_to_c, c_to_a, sorted(c.mesh.links)

    a_to_c, c_to_a, c_links = run_sim(sim, body)
    assert c_links == ["n1"]  # n2 never talked to n0 directly
    assert a_to_c < 1.0 and c_to_a < 1.0  # pushed and relayed at once, not at a resync


def test_relay_around_a_one_way_blackhole() -> None:
    """n0 -> n2 drops everything, n2 -> n0 works: n0's commit still reaches n2 via n1."""
    sim = Sim(1, 3)

    async def body() -> float:
        await _genesis_and_line(sim)
        await sim.connect(0, 2)
        await wait_until(lambda: sim.nodes[0].mesh.connected() == ["n1", "n2"], 1.0)
        sim.links[(0, 2)].ends[0].blackhole = True
        a, c = sim.nodes[0], sim.nodes[2]
        a.commit("cluster", 7)
        return await wait_until(lambda: c.log.get(_newest_id(a)) is not None, 1.0)

    assert run_sim(sim, body) < 1.0


def test_periodic_resync_repairs_without_new_commits() -> None:
    """Events stuck behind a blackhole arrive once the link is replaced, with no new commit
    to push them: the hello exchange of the reconnect does it."""
    sim = Sim(2, 2)

    async def body() -> float:
        for node in sim.nodes:
            node.genesis()
        await sim.connect(0, 1)
        await wait_until(sim.converged, LIVENESS_BOUND_S)
        sim.links[(0, 1)].ends[0].blackhole = True
        sim.nodes[0].commit("cluster", 9)
        await trio.sleep(30)
        assert not sim.converged()
        await sim.cut(0, 1, reset=True)
        await sim.connect(0, 1)
        return await wait_until(sim.converged, LIVENESS_BOUND_S)

    assert run_sim(sim, body) < 1.0


def test_a_change_nobody_announced_goes_out_at_the_next_resync() -> None:
    """A commit written behind the mesh's back (e.g. by another process before the node
    layer notices) still leaves within one sync interval."""
    sim = Sim(6, 2)

    async def body() -> float:
        for node in sim.nodes:
            node.genesis()
        await sim.connect(0, 1)
        await wait_until(sim.converged, LIVENESS_BOUND_S)
        a = sim.nodes[0]
        a.log.append(a.key, user="admin", kind="config.commit", payload={"changes": []},
                     now_ms=a.now_ms())  # no notify_local_change()
        return await wait_until(sim.converged, LIVENESS_BOUND_S)

    assert 0 < run_sim(sim, body) <= sim.nodes[0].mesh.sync_interval + 0.5


def test_a_long_history_goes_in_batches() -> None:
    sim = Sim(8, 2)

    async def body() -> int:
        for node in sim.nodes:
            node.genesis()
        a = sim.nodes[0]
        for _ in range(1000):
            a.log.append(a.key, user="admin", kind="config.commit", payload={"changes": []},
                         now_ms=a.now_ms())
        await sim.connect(0, 1)
        await wait_until(sim.converged, LIVENESS_BOUND_S)
        return a.mesh.links["n1"].events_out

    assert run_sim(sim, body) == 1001
    assert sim.trace.kinds["EventsMsg"] == 4  # n0: 500 + 500 + 1; n1: its genesis
    assert sim.trace.kinds["HelloMsg"] == 2


# --------------------------------------------------------------------------- the shell


def test_version_mismatch_refuses_the_link_naming_both_versions() -> None:
    sim = Sim(3, 2)
    sim.nodes[1].mesh.version = "sim-2"

    async def body() -> tuple[LinkState, LinkState]:
        for node in sim.nodes:
            node.genesis()
        await sim.connect(0, 1)
        await sim.links[(0, 1)].done.wait()
        return sim.nodes[0].mesh.links["n1"], sim.nodes[1].mesh.links["n0"]

    for state in run_sim(sim, body):
        assert not state.up and state.events_in == 0
        assert state.error is not None and "sim-1" in state.error and "sim-2" in state.error


def test_links_report_state_and_clock_offset() -> None:
    sim = Sim(4, 2)
    seen: list[LinkState] = []
    sim.nodes[0].mesh.on_link_change = seen.append

    async def body() -> None:
        for node in sim.nodes:
            node.genesis()
        await sim.connect(0, 1)
        await wait_until(lambda: sim.nodes[0].mesh.links["n1"].offset_ms is not None, 1.0)
        sim.nodes[0].mesh.disconnect("n1")
        await sim.links[(0, 1)].done.wait()

    run_sim(sim, body)
    skew = sim.nodes[1].skew_ms - sim.nodes[0].skew_ms
    measured = [s for s in seen if s.offset_ms is not None][0]
    assert measured.up and measured.node == sim.nodes[1].node_id
    assert measured.rtt_ms is not None and measured.offset_ms is not None
    assert abs(measured.offset_ms - skew) <= measured.rtt_ms // 2 + 1
    assert seen[0].up and not seen[-1].up and seen[-1].error == "disconnected"


def test_a_bad_message_drops_only_that_link() -> None:
    sim = Sim(5, 3)

    async def body() -> tuple[LinkState, bool]:
        await _genesis_and_line(sim)
        middle = sim.nodes[1]
        ours, theirs = trio.testing.memory_stream_pair()
        trace = Trace()
        rogue = FramedChannel(theirs, "rogue", lambda: 0.0, trace)
        state: list[LinkState] = []

        async def serve() -> None:
            channel = FramedChannel(ours, "n1>rogue", lambda: 0.0, trace)
            state.append(await middle.mesh.run_peer("rogue", channel))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            await rogue.receive()  # n1's hello
            await rogue.send(b'{"t":"hello","node":"zz"}')
        sim.nodes[0].commit("cluster", 5)
        a, c = sim.nodes[0], sim.nodes[2]
        await wait_until(lambda: c.log.get(_newest_id(a)) is not None, 1.0)
        return state[0], middle.mesh.connected() == ["n0", "n2"]

    rogue_state, others_up = run_sim(sim, body)
    assert rogue_state.error is not None and rogue_state.error.startswith("SyncError")
    assert others_up


async def test_threaded_log_matches_inline_log() -> None:
    """ThreadedLog (worker thread, one per database) gives what InlineLog gives."""
    key = signing_key(9)
    logs = []
    for _ in range(2):
        conn = open_db(":memory:")
        logs.append(EventLog(conn, on_apply=views.on_apply))
    writer = logs[0]
    writer.append(key, user="admin", kind="node.init", payload={}, now_ms=T0)
    writer.append(key, user="admin", kind="config.commit", payload={"changes": []}, now_ms=T0 + 1)
    inline, threaded = InlineLog(writer, now_ms=lambda: T0), ThreadedLog(logs[1], now_ms=lambda: T0)
    vv = await inline.version_vector()
    items = await inline.read_events(sync.plan(vv, await threaded.version_vector()))
    applied = await threaded.ingest(items)
    assert [e.raw for e in applied] == [raw for raw, _ in items]
    assert await threaded.version_vector() == vv == {key.verify_key.encode().hex(): (1, 2)}
    assert await threaded.read_events(sync.plan(vv, {})) == items
    for event_log in logs:
        event_log.conn.close()


# --------------------------------------------------------------------------- forks


def _ghost_branches() -> tuple[list[Event], list[Event], list[Event]]:
    """A machine's history that forked: a prefix, the original branch, a later branch."""
    ghost = signing_key(99)
    t = T0 + 500

    def chain(start: list[Event], n: int, at: int, tag: str) -> list[Event]:
        out = list(start)
        for i in range(n):
            prev = out[-1] if out else None
            change = {"mode": "cluster", "section": "ntp", "op": "define", "base": None,
                      "value": {"servers": [f"{tag}{i}.example"]}}
            out.append(events.create(
                ghost, seq=(prev.seq + 1 if prev else 1), prev=prev.id if prev else None,
                clock=clock.pack(at + i), wall=at + i, user="admin", kind="config.commit",
                payload={"comment": tag, "changes": [change]}))
        return out[len(start):]

    prefix = chain([], 2, t, "p")
    return prefix, chain(prefix, 3, t + 1_000, "original"), chain(prefix, 2, t + 9_000, "later")


def test_a_fork_injected_at_both_ends_of_a_line_settles_the_same_everywhere() -> None:
    """n0 - n1 - n2 - n3 - n4: the original branch enters at n0, the later one at n4 (each
    end applies its own first). Equal-length vectors would hide the fork; the evidence is
    pushed, every node keeps the original branch, and the views are byte-identical."""
    sim = Sim(5, 5)
    prefix, original, later = _ghost_branches()

    async def body() -> float:
        for node in sim.nodes:
            node.genesis()
        for a in range(4):
            await sim.connect(a, a + 1)
        await wait_until(sim.converged, LIVENESS_BOUND_S)
        ends = (sim.nodes[0], sim.nodes[4])
        for node, branch in zip(ends, (original, later), strict=True):
            node.log.ingest([(e.raw, e.sig) for e in prefix + branch], now_ms=node.now_ms())
            node.mesh.notify_local_change()
        took = await wait_until(lambda: sim.converged() and all(
            n.log.get(original[-1].id) is not None for n in sim.nodes), LIVENESS_BOUND_S)
        for node in sim.nodes:  # the later branch is evidence everywhere, never applied
            assert node.log.get(later[0].id) is None
            forked = {r[0] for r in node.conn.execute("SELECT id FROM forks")}
            assert later[0].id in forked
        return took

    assert run_sim(sim, body) < LIVENESS_BOUND_S


def test_a_node_that_was_away_when_a_fork_was_found_hears_of_it_on_its_next_link() -> None:
    """n0 holds a fork as evidence (the original branch applied, the later one's first event
    kept beside it) while n1 and n2 hold one branch each, of the same length: the vectors
    are equal, so anti-entropy alone would never show anyone the fork. The evidence a link's
    ends hold goes over when the link comes up, and every node settles the same way."""
    sim = Sim(7, 3)
    prefix, original, later = _ghost_branches()
    original = original[:len(later)]

    async def body() -> float:
        for node in sim.nodes:
            node.genesis()
        n0, n1, n2 = sim.nodes
        for node, branch in ((n0, original), (n1, original), (n2, later)):
            node.log.ingest([(e.raw, e.sig) for e in prefix + branch], now_ms=node.now_ms())
        n0.log.ingest([(later[0].raw, later[0].sig)], now_ms=n0.now_ms())  # found earlier
        assert [f.forked.id for f in n0.log.forks()] == [later[0].id]
        await sim.connect(1, 2)  # neither holds evidence: they look in sync, and stay apart
        await trio.sleep(LIVENESS_BOUND_S / 2)
        assert n2.log.get(later[0].id) is not None and n2.log.get(original[0].id) is None
        await sim.connect(0, 2)
        took = await wait_until(lambda: sim.converged() and all(
            n.log.get(original[-1].id) is not None for n in sim.nodes), LIVENESS_BOUND_S)
        for node in sim.nodes:  # the later branch is evidence everywhere, never applied
            assert node.log.get(later[0].id) is None
        return took

    assert run_sim(sim, body) < LIVENESS_BOUND_S


@pytest.mark.parametrize("original_longer", [True, False])
def test_branches_of_different_lengths_meet_and_settle(original_longer: bool) -> None:
    """n0 holds the original branch, n1 the later one, one of them longer: no node holds
    both, and the vectors differ only by a count. The longer side's next event names an
    event the other does not hold as its predecessor, so the other refuses it, and has the
    sender send all it holds of that origin once: the two events at the parting seq meet,
    and both nodes settle alike."""
    sim = Sim(11, 2)
    prefix, original, later = _ghost_branches()
    if not original_longer:
        original = original[:1]

    async def body() -> float:
        for node in sim.nodes:
            node.genesis()
        n0, n1 = sim.nodes
        for node, branch in ((n0, original), (n1, later)):
            node.log.ingest([(e.raw, e.sig) for e in prefix + branch], now_ms=node.now_ms())
        await sim.connect(0, 1)
        took = await wait_until(lambda: sim.converged() and all(
            n.log.get(original[-1].id) is not None for n in sim.nodes), LIVENESS_BOUND_S)
        for node in sim.nodes:  # the later branch is evidence, never applied
            assert node.log.get(later[0].id) is None
        return took

    assert run_sim(sim, body) < LIVENESS_BOUND_S
