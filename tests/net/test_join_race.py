"""Joins through a member that `evstore run` serves, with the joining machines served too
(issue 17 item 3: "error: peer closed the link" in about one join in twelve).

Three real processes, the second and third machines joined through the first, over and over.
It runs only when ``EVSTORE_JOIN_ROUNDS`` says how many rounds (20 to 35 s each here);
``EVSTORE_JOIN_STRICT=1`` fails a join that needed a retry too, ``EVSTORE_JOIN_PARALLEL=1``
runs the two joins at once. On 2026-12-07, under ``nice``, 25 rounds one after the other,
2 x 10 strict rounds side by side and 2 x 8 strict parallel rounds (122 joins) did not
reproduce the failure; nor did 108 more on 2026-12-08 (strict, sequential and parallel, beside
four helpers' work, a `make check` and a whole `make test`); the fixes it
asked for (the member's log names a join it closed; a join cut off for a passing reason is
tried again, and the member takes up an admission it gave already) have their own tests in
test_cluster_admin_net.py. Every join must succeed as the operator sees it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import trio

from tests.net.test_multiprocess import EVSTORE, PASS, Machine, evstore, serve

ROUNDS = int(os.environ.get("EVSTORE_JOIN_ROUNDS", "0"))
STRICT = bool(os.environ.get("EVSTORE_JOIN_STRICT"))  # a join that needed a retry fails too
PARALLEL = bool(os.environ.get("EVSTORE_JOIN_PARALLEL"))  # the two joins at once


async def _round(root: Path) -> list[str]:
    a, b, c = (Machine(root, n) for n in ("a", "b", "c"))
    passfile = root / "pass.txt"
    passfile.write_text(PASS + "\n")
    for m in (a, b, c):
        await evstore(m, "init", "--hostname", m.name, "--listen", f"127.0.0.1:{m.port}",
                      "--admin-passphrase-file", str(passfile))
    failures = []
    async with trio.open_nursery() as nursery:
        try:
            for m in (a, b, c):
                await serve(nursery, m)
            await evstore(a, "clusterconfig", "create", "fleet")
            fp = (await evstore(a, "clusterconfig", "fingerprint", "--json"))["fingerprint"]

            async def join_one(m: Machine) -> None:
                done = await trio.run_process(
                    [*EVSTORE, "--home", str(m.home), "clusterconfig", "join",
                     f"127.0.0.1:{a.port}", "--fingerprint", fp, "--yes", "--json"],
                    capture_stdout=True, capture_stderr=True, check=False,
                    env={**os.environ, "EVSTORE_PASSPHRASE": PASS})
                retried = done.returncode == 0 and json.loads(done.stdout)["attempts"] > 1
                if done.returncode != 0 or (retried and STRICT):
                    failures.append(f"{m.name}: {done.stderr.decode().strip()}\n"
                                    f"member's log: {a.log.read_text()[-3000:]}")

            if PARALLEL:  # both joins at once
                async with trio.open_nursery() as joins:
                    for m in (b, c):
                        joins.start_soon(join_one, m)
            else:
                for m in (b, c):
                    await join_one(m)
        finally:
            for m in (a, b, c):
                if m.proc is not None and m.proc.returncode is None:
                    m.proc.kill()
            nursery.cancel_scope.cancel()
    return failures


@pytest.mark.skipif(ROUNDS < 1, reason="a long loop: set EVSTORE_JOIN_ROUNDS to run it")
async def test_joins_through_a_served_member_do_not_fail(tmp_path: Path) -> None:
    failures = []
    for i in range(ROUNDS):
        root = tmp_path / f"round{i}"
        root.mkdir()
        failures += await _round(root)
    assert not failures, "\n\n".join(failures)
