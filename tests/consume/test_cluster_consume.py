"""Consumers on a 3-machine cluster of real ``evstore run`` processes on loopback: a watcher on
machine B prints a commit made on machine A; ``get`` answers on a machine whose node is stopped.
Only the processes this test started are signalled, by PID; every wait has a deadline."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import trio

from tests.net.test_multiprocess import (
    EVSTORE,
    PASS,
    Machine,
    commit,
    converged,
    evstore,
    serve,
    stop,
    three_machines,
    until,
)


async def test_a_watcher_on_b_prints_a_commit_made_on_a(tmp_path: Path) -> None:
    a, b, c = await three_machines(tmp_path)
    watcher: trio.Process | None = None
    async with trio.open_nursery() as nursery:
        try:
            watcher = await _scenario(nursery, tmp_path, a, b, c)
        finally:
            for p in [m.proc for m in (a, b, c)] + [watcher]:
                if p is not None and p.returncode is None:
                    p.kill()
            nursery.cancel_scope.cancel()


async def _scenario(nursery: trio.Nursery, tmp: Path, a: Machine, b: Machine,
                    c: Machine) -> trio.Process | None:
    for m in (a, b, c):
        await serve(nursery, m)
    await evstore(a, "clusterconfig", "create", "fleet")
    fp = (await evstore(a, "clusterconfig", "fingerprint", "--json"))["fingerprint"]
    for m in (b, c):
        await evstore(m, "clusterconfig", "join", f"127.0.0.1:{a.port}", "--fingerprint", fp,
                      "--yes", "--json")
    await until("the cluster agrees", converged(a, b, c), 20)

    out = tmp / "watch-b.jsonl"
    with open(out, "wb") as sink:
        watcher = await nursery.start(_process, [
            *EVSTORE, "--home", str(b.home), "watch", "dns", "--json"], sink)
    await until("b's watcher printed the current settings",
                lambda: out.read_bytes().count(b"\n") >= 1)
    await commit(a, "dns", 'servers=["10.42.0.1"]')
    await until("b's watcher printed a's commit",
                lambda: b"10.42.0.1" in out.read_bytes(), 20)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines[-1]["machine"] == "b" and lines[-1]["source"] == "cluster"
    assert lines[-1]["settings"] == {"servers": ["10.42.0.1"]} and not lines[-1]["initial"]
    watcher.send_signal(signal.SIGTERM)
    with trio.fail_after(15):
        assert await watcher.wait() == 0

    await until("c has it", converged(a, b, c), 20)
    assert await stop(c) == 0
    assert await evstore(c, "get", "dns", "servers", "--json") == ["10.42.0.1"]
    other = await evstore(c, "get", "hostname", "hostname", "--machine", "a")
    assert other.stdout == b"a\n"
    for m in (a, b):
        assert await stop(m) == 0
    return watcher


async def _process(cmd: list[str], sink: object,
                   task_status: trio.TaskStatus[trio.Process] = trio.TASK_STATUS_IGNORED) -> None:
    await trio.run_process(cmd, stdout=sink, stderr=None, check=False,
                           env={**os.environ, "EVSTORE_PASSPHRASE": PASS},
                           task_status=task_status)
