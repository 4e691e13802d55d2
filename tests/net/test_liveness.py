"""A peer that stops answering without closing its sockets (SIGSTOP: the kernel keeps its
connections open) is reported down by the others within seconds, with the default ping
interval: the links' keepalives notice the silence (gossip.py). After SIGCONT it comes back.

Real ``evstore run`` processes on loopback; only the processes this test started are
signalled, by PID; every wait polls ``evstore status --json`` with a generous deadline, and
the time it took is printed, never asserted.
"""

from __future__ import annotations

import signal
from pathlib import Path

import trio

from tests.net.test_multiprocess import (
    EVSTORE,
    Machine,
    evstore,
    partial_process,
    three_machines,
    until,
)


async def serve_default(nursery: trio.Nursery, m: Machine) -> None:
    """``evstore run`` with the contract's defaults (ping interval 60 s)."""
    log = open(m.log, "ab")  # noqa: SIM115 (the child holds it)
    m.proc = await nursery.start(partial_process([*EVSTORE, "--home", str(m.home), "run"], log))
    log.close()
    await until(f"{m.name} serves", lambda: b"serving" in m.log.read_bytes(), 30)


async def peer_states(m: Machine) -> dict[str, str]:
    status = await evstore(m, "status", "--json")
    return {p["hostname"]: p["state"] for p in status["peers"]}


async def wait_state(m: Machine, peer: str, want: str, timeout: float) -> float:
    start = trio.current_time()
    with trio.move_on_after(timeout) as scope:
        while (await peer_states(m)).get(peer) != want:
            await trio.sleep(0.05)
    assert not scope.cancelled_caught, f"{m.name} never saw {peer} {want} within {timeout} s"
    return trio.current_time() - start


async def test_a_frozen_peer_is_reported_down_and_comes_back(tmp_path: Path) -> None:
    a, b, c = await three_machines(tmp_path)
    async with trio.open_nursery() as nursery:
        try:
            await _scenario(nursery, a, b, c)
        finally:
            for m in (a, b, c):  # only what this test started, by PID
                if m.proc is not None and m.proc.returncode is None:
                    m.proc.send_signal(signal.SIGCONT)
                    m.proc.kill()
            nursery.cancel_scope.cancel()


async def _scenario(nursery: trio.Nursery, a: Machine, b: Machine, c: Machine) -> None:
    for m in (a, b, c):
        await serve_default(nursery, m)
    await evstore(a, "clusterconfig", "create", "fleet")
    fp = (await evstore(a, "clusterconfig", "fingerprint", "--json"))["fingerprint"]
    for m in (b, c):
        await evstore(m, "clusterconfig", "join", f"127.0.0.1:{a.port}", "--fingerprint", fp,
                      "--yes", "--json")
    for m, others in ((a, "bc"), (b, "ac"), (c, "ab")):
        for o in others:
            await wait_state(m, o, "up", 60)

    assert c.proc is not None
    frozen_at = trio.current_time()
    c.proc.send_signal(signal.SIGSTOP)  # its sockets stay open: only silence tells
    seen: dict[str, float] = {}

    async def watch(m: Machine) -> None:
        await wait_state(m, "c", "down", 60)
        seen[m.name] = trio.current_time() - frozen_at

    async with trio.open_nursery() as watchers:
        for m in (a, b):
            watchers.start_soon(watch, m)
    print(f"frozen peer reported down after: {seen}")  # the figure; the target is 5 s

    c.proc.send_signal(signal.SIGCONT)
    back = max([await wait_state(m, "c", "up", 90) for m in (a, b)])
    print(f"back up {back:.1f} s after SIGCONT")
    for m in (a, b, c):
        assert m.proc is not None
        m.proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await m.proc.wait() == 0
        m.proc = None

