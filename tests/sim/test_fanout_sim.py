"""The cost simulation of commit to applied on all (tests/sim/fanout_sim.py): it forms the
node's topology, every commit reaches every machine, one seed gives one run, and bounded
relaying sends fewer messages than relaying to every link."""

from __future__ import annotations

from tests.sim import fanout_sim


def test_every_commit_reaches_every_machine_and_a_seed_gives_one_run() -> None:
    first = fanout_sim.run(8, fanout=2, commits=3, seed=3)
    again = fanout_sim.run(8, fanout=2, commits=3, seed=3)
    assert len(first.ms) == 3 and all(ms > 0 for ms in first.ms)
    assert first == again


def test_the_fanout_topology_dials_k_each() -> None:
    sim = fanout_sim.CostSim(20, seed=1, fanout=3, relay_to=3, costs=fanout_sim.Costs())
    degree = [len(n.links) for n in sim.nodes]
    assert min(degree) >= 3 and len(sim.links) <= 20 * 3
    full = fanout_sim.CostSim(6, seed=1, fanout=None, relay_to=None, costs=fanout_sim.Costs())
    assert len(full.links) == 6 * 5 // 2


def test_bounded_relaying_sends_fewer_messages_than_relaying_to_every_link() -> None:
    bounded = fanout_sim.run(10, fanout=4, relay_to=1, commits=3, seed=2)
    every = fanout_sim.run(10, fanout=4, relay_to=9, commits=3, seed=2)
    assert bounded.messages_per_commit < every.messages_per_commit
