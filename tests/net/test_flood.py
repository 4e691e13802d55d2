"""A stranger's connection flood must not cut members off (issue 15, item 2).

Before the fix, a node refused every new connection while 128 were in their handshake, so one
process holding idle sockets kept members out: no links, joins or remote requests. Here a
separate process holds 500 idle connections open to each node of a cluster (reopening each one
the node closes), from one address or from a hundred 127.x addresses, while a member restarts
and links again, a new machine joins and ``commitdetail`` asks every member. The gate's own
rules are checked directly too.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from evstore.net import client, preauth
from evstore.ops import cluster as cluster_ops
from tests.net.cluster_helpers import (
    FAST,
    commit,
    db,
    join,
    link_state,
    make_box,
    on,
    running_cluster,
    start,
    stop,
    wait_until,
)

FLOODER = Path(__file__).with_name("flooder.py")
# production's limits (FAST shortens the handshake for other tests)
REAL = dataclasses.replace(FAST, handshake_timeout=10.0, first_message_timeout=2.0)
HELD = 500
MANY = ",".join(f"127.0.{i // 250}.{i % 250 + 2}" for i in range(100))


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.parametrize("sources", ["127.0.0.1", MANY], ids=["one-address", "many-addresses"])
async def test_members_get_through_a_flood_of_idle_connections(tmp_path: Path,
                                                               sources: str) -> None:
    async with running_cluster(tmp_path, ("a", "b"), REAL) as (a, b):
        out = tmp_path / "flooder.out"
        with open(out, "wb") as sink:
            flood = subprocess.Popen(
                [sys.executable, str(FLOODER), str(HELD), sources, a.address, b.address],
                stdout=sink, stderr=subprocess.STDOUT)
        try:
            await wait_until("the flood to start", lambda: b"ready" in out.read_bytes(), 30)
            await trio.sleep(1.0)  # let it fill the nodes' doors

            # a restarted member links again
            async with trio.open_nursery() as nursery:
                await stop(b)
                await start(nursery, b, REAL)
                took = await wait_until("b to link with a again",
                                        lambda: link_state(a.home, "b") == "up", 20)
                # a new machine joins through the flooded member
                c = make_box(tmp_path, "c")
                await join(c, a)
                # commitdetail reaches every member (rpc sessions into flooded nodes)
                await commit(b, "dns", {"servers": ["10.0.0.1"]})
                doc, unreachable = await db(b.home, lambda n: client.commit_detail(n, None))
                assert "a" not in unreachable, unreachable  # (c is not serving: unreachable)
                assert next(m for m in doc["machines"] if m["hostname"] == "a")["arrived"]
                assert _rss_mib() < 400, _rss_mib()
                handle = a.handle
                assert handle is not None and handle.runtime is not None
                gate = handle.runtime.admission.gate
                assert len(gate) <= REAL.max_strangers
                assert gate.evictions > 0 or sources == MANY  # the flood really knocked
                print(f"relinked in {took:.2f} s with {HELD} idle connections per node "
                      f"from {len(sources.split(','))} address(es); "
                      f"{gate.evictions} evictions at a")
                await stop(b)
                nursery.cancel_scope.cancel()
        finally:
            os.kill(flood.pid, signal.SIGTERM)
            flood.wait(10)


def test_the_gate_evicts_the_least_advanced_oldest_first() -> None:
    async def main() -> None:
        gate = preauth.Gate(total=4, per_source=2)
        a1, a2 = gate.admit("10.0.0.1"), gate.admit("10.0.0.1")
        a1.advance(1)  # a1 sent its first message: a2 (idle) goes first
        a3 = gate.admit("10.0.0.1")
        assert a2.evicted and a2.scope.cancel_called and not a1.evicted
        assert gate.held_by("10.0.0.1") == 2
        b1, b2 = gate.admit("10.0.0.2"), gate.admit("10.0.0.3")
        # full (4): a newcomer from anywhere evicts the oldest of the least advanced
        c1 = gate.admit("10.0.0.4")
        assert a3.evicted and not (b1.evicted or b2.evicted or c1.evicted or a1.evicted)
        gate.release(a1)  # a member proved itself: never evicted afterwards
        gate.release(a1)
        for _ in range(10):
            gate.admit("10.0.0.9")
        assert not a1.evicted and len(gate) == 4
        assert preauth.source_of("2001:db8::1") == preauth.source_of("2001:db8::2")
        assert preauth.source_of("::ffff:10.0.0.1") == "10.0.0.1"

    trio.run(main)


def test_a_refused_join_names_the_port_it_dialled(tmp_path: Path) -> None:
    """Before: the message blamed the cluster-only port after dialling the admin port."""
    a = make_box(tmp_path, "a")
    on(a.home, lambda n: cluster_ops.create(n, "admin", "testcluster"))
    c = make_box(tmp_path, "c")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await start(nursery, a, dataclasses.replace(REAL, blocked=frozenset()))
            with trio.socket.socket() as s:  # a port nobody serves a handshake on
                await s.bind(("127.0.0.1", 0))
                s.listen(1)
                port = s.getsockname()[1]

                async def drop() -> None:
                    conn, _ = await s.accept()
                    conn.close()

                nursery.start_soon(drop)
                fake = dataclasses.replace(a, port=port)
                with pytest.raises(Exception) as err:
                    await join(c, fake)
            text = str(err.value)
            assert f"passphrase join dialled to 127.0.0.1:{port}" in text, text
            assert "closed the connection before showing its host key" in text, text
            await stop(a)
            nursery.cancel_scope.cancel()

    trio.run(main)
