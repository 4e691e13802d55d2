"""Bounded relaying (gossip.Mesh ``relay_to``), on meshes joined by in-memory channels in
trio's mock clock: a hub that receives events from one spoke relays them at once to k of
its other links, picked by its seeded generator; the others get them at the next resync."""

from __future__ import annotations

import random
from pathlib import Path

import trio
import trio.testing

from evstore.core import events
from evstore.net.gossip import Mesh
from tests.net.test_keepalive import End, Pipe, _commits, _key, _mesh, _run

SPOKES = [f"s{i}" for i in range(6)]


def _star(tmp: Path, relay_to: int | None, seed: int) -> tuple[list[str], list[str]]:
    """Spoke s0 commits; which spokes hold it 0.5 s later (pushes), and which 2 resyncs later."""
    tmp.mkdir()
    hub, _, _ = _mesh(tmp, "hub")
    hub.relay_to, hub.rng = relay_to, random.Random(seed)
    spokes: dict[str, tuple[Mesh, object]] = {}
    for name in SPOKES:
        mesh, log, _ = _mesh(tmp, name)
        mesh.sync_interval = 5.0
        spokes[name] = (mesh, log)
    hub.sync_interval = 5.0
    origin = events.origin_of(_key("s0"))

    def holding() -> list[str]:
        return [n for n, (_, log) in spokes.items()
                if n != "s0" and log.version_vector().get(origin, 0) >= 1]  # type: ignore[attr-defined]

    async def main() -> tuple[list[str], list[str]]:
        async with trio.open_nursery() as nursery:
            for name, (mesh, _) in spokes.items():
                out, back = Pipe(), Pipe()
                nursery.start_soon(_run, hub, name, End(out, back), {})
                nursery.start_soon(_run, mesh, "hub", End(back, out), {})
            await trio.sleep(1)
            assert len(hub.connected()) == len(SPOKES)
            s0, s0_log = spokes["s0"]
            _commits(s0_log, "s0", 1)  # type: ignore[arg-type]
            s0.notify_local_change()
            await trio.sleep(0.5)  # pushes only: well before any resync
            early = holding()
            await trio.sleep(2 * 5.0 + 1)
            late = holding()
            nursery.cancel_scope.cancel()
        return early, late

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_hub_relays_to_k_links_at_once_and_the_rest_get_it_at_resync(tmp_path: Path) -> None:
    early, late = _star(tmp_path / "k2", relay_to=2, seed=1)
    assert len(early) == 2
    assert late == SPOKES[1:]


def test_without_a_bound_every_other_link_is_pushed_to(tmp_path: Path) -> None:
    early, late = _star(tmp_path / "all", relay_to=None, seed=1)
    assert early == late == SPOKES[1:]


def test_the_choice_follows_the_seed(tmp_path: Path) -> None:
    picks = [_star(tmp_path / f"r{i}", relay_to=2, seed=seed)[0]
             for i, seed in enumerate((7, 7, 8, 9, 10))]
    assert picks[0] == picks[1]
    assert len({tuple(p) for p in picks}) > 1
