"""Real processes: three ``evstore run`` nodes on free 127.0.0.1 ports, driven by the
``evstore`` command as an operator would (each command its own process too).

Join, commit, SIGKILL one node and bring it back, detach another and change settings on both
sides of that partition, re-attach, converge. Only the processes this test started are
signalled, by PID; every wait polls with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from evstore.ops.node import open_node
from tests.net.cluster_helpers import free_port

PASS = "multiprocess passphrase"
EVSTORE = [sys.executable, "-m", "evstore_cli.app"]


class Machine:
    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.home = root / name
        self.port = free_port()
        self.log = root / f"{name}.log"
        self.proc: trio.Process | None = None

    def digest(self) -> str:
        with open_node(self.home) as node:
            return node.state_digest()


async def evstore(m: Machine, *args: str, code: int = 0) -> Any:
    """Run one ``evstore`` command on ``m``'s home; its JSON output when ``--json``."""
    done = await trio.run_process(
        [*EVSTORE, "--home", str(m.home), *args], capture_stdout=True, capture_stderr=True,
        check=False, env={**os.environ, "EVSTORE_PASSPHRASE": PASS})
    assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
    return json.loads(done.stdout) if "--json" in args and code == 0 else done


async def serve(nursery: trio.Nursery, m: Machine) -> None:
    log = open(m.log, "ab")  # noqa: SIM115 (the child holds it)
    m.proc = await nursery.start(partial_process(
        [*EVSTORE, "--home", str(m.home), "run", "--ping-interval", "1"], log))
    log.close()
    await until(f"{m.name} serves", lambda: b"serving" in m.log.read_bytes(), 15)


def partial_process(cmd: list[str], log: Any) -> Callable[..., Any]:
    async def run(task_status: trio.TaskStatus[trio.Process] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.run_process(cmd, stdout=log, stderr=subprocess.STDOUT, check=False,
                               task_status=task_status)

    return run


async def until(what: str, pred: Callable[[], bool], timeout: float = 10.0) -> float:
    start = trio.current_time()
    with trio.move_on_after(timeout) as scope:
        while not await trio.to_thread.run_sync(pred):
            await trio.sleep(0.05)
    assert not scope.cancelled_caught, f"{what}: not within {timeout} s"
    return trio.current_time() - start


def converged(*ms: Machine) -> Callable[[], bool]:
    return lambda: len({m.digest() for m in ms}) == 1


async def commit(m: Machine, section: str, assignment: str, mode: str = "cluster") -> str:
    await evstore(m, "set", section, assignment, "--mode", mode)
    return str((await evstore(m, "commit", "-m", f"{section} on {m.name}", "--json"))["commit"])


async def stop(m: Machine, sig: int = signal.SIGTERM) -> int:
    assert m.proc is not None
    m.proc.send_signal(sig)
    with trio.fail_after(15):
        code = await m.proc.wait()
    m.proc = None
    return code


async def three_machines(tmp_path: Path) -> tuple[Machine, Machine, Machine]:
    """Homes a, b and c, made by `evstore init` in three processes at once (not served)."""
    a, b, c = (Machine(tmp_path, n) for n in ("a", "b", "c"))
    passfile = tmp_path / "pass.txt"
    passfile.write_text(PASS + "\n")
    async with trio.open_nursery() as nursery:
        for m in (a, b, c):
            nursery.start_soon(evstore, m, "init", "--hostname", m.name, "--listen",
                               f"127.0.0.1:{m.port}", "--admin-passphrase-file", str(passfile))
    return a, b, c


async def test_three_processes_join_survive_a_kill_and_a_partition(tmp_path: Path) -> None:
    a, b, c = await three_machines(tmp_path)
    async with trio.open_nursery() as nursery:
        try:
            await _scenario(nursery, a, b, c)
        finally:
            for m in (a, b, c):  # only what this test started, by PID
                if m.proc is not None and m.proc.returncode is None:
                    m.proc.kill()
            nursery.cancel_scope.cancel()


async def _scenario(nursery: trio.Nursery, a: Machine, b: Machine, c: Machine) -> None:
    for m in (a, b, c):
        await serve(nursery, m)
    await evstore(a, "clusterconfig", "create", "fleet")
    fp = (await evstore(a, "clusterconfig", "fingerprint", "--json"))["fingerprint"]
    for m in (b, c):
        joined = await evstore(m, "clusterconfig", "join", f"127.0.0.1:{a.port}",
                               "--fingerprint", fp, "--yes", "--json")
        assert joined["cluster"] == "fleet"
        assert Path(joined["backup"]).is_file()  # its configuration, saved before the join
    await commit(b, "dns", 'servers=["10.1.1.1"]')
    await until("the cluster agrees", converged(a, b, c))

    # SIGKILL c; a and b carry on; c comes back and catches up
    assert c.proc is not None
    await stop(c, signal.SIGKILL)
    while_down = await commit(a, "ntp", 'servers=["ntp.while.c.is.down"]')
    await until("b has it", converged(a, b))
    await serve(nursery, c)
    await until("c caught up", converged(a, b, c))
    detail = await evstore(a, "commitdetail", while_down, "--json")
    assert {m["hostname"]: m["arrived"] for m in detail["machines"]} == {
        "a": True, "b": True, "c": True}

    # a partition by disconnect: both sides change, then reconnect heals it
    await evstore(a, "clusterconfig", "disconnect", "b")
    status = await evstore(b, "status", "--json")
    assert {p["state"] for p in status["peers"]} == {"disconnected"}
    await commit(a, "timezone", "zone=Europe/Paris")
    warned = await evstore(b, "set", "ldap", 'servers=[{"name": "s1", "host": "ldap.b"}]',
                           "--mode", "cluster")
    done = await evstore(b, "commit", "-m", "while detached")
    assert b"disconnected" in done.stderr and warned.returncode == 0
    assert a.digest() == c.digest() != b.digest()
    await evstore(a, "clusterconfig", "reconnect", "b")
    took = await until("the partition healed", converged(a, b, c), 10)
    assert took < 10
    digests = {(await evstore(m, "status", "--json"))["state_digest"] for m in (a, b, c)}
    assert len(digests) == 1
    check = await evstore(c, "clustercheck", "--json")
    assert check["consistent"] and sorted(check["checked"]) == ["a", "b", "c"]
    for m in (a, b, c):
        assert await stop(m) == 0  # SIGTERM: links closed with FINAL, exit 0
