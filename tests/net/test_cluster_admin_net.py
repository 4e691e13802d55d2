"""Cluster operations against served nodes (issue 17): a reconnect refused for a version
mismatch changes nothing on either side (item 7)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import trio

from evstore.core.errors import OperationalError
from evstore.net import client, joining
from tests.net.cluster_helpers import FAST, db, on, running_cluster, start, stop


def _detached(home: Path, name: str) -> bool:
    def check(n):  # type: ignore[no-untyped-def]
        st = n.structure()
        return st.machines[st.find_machine(name)].detached

    return on(home, check)


async def test_a_reconnect_refused_for_a_version_mismatch_changes_nothing(tmp_path: Path) -> None:
    async with running_cluster(tmp_path) as (a, b, c):
        await db(a.home, lambda n: client.set_detached(n, "admin", "c", True))
        await stop(c)
        assert c.handle is None
        async with trio.open_nursery() as nursery:
            await start(nursery, c, dataclasses.replace(FAST, version="99.0.0"))
            counts = {x.name: on(x.home, lambda n: n.log.count()) for x in (a, b, c)}
            for _ in range(2):  # the second try must say the same, not "already connected"
                with pytest.raises(OperationalError, match="version"):
                    await db(a.home, lambda n: client.set_detached(n, "admin", "c", False))
            assert {x.name: on(x.home, lambda n: n.log.count()) for x in (a, b, c)} == counts
            assert _detached(a.home, "c") and _detached(b.home, "c") and _detached(c.home, "c")
            await stop(c)
            nursery.cancel_scope.cancel()


async def test_a_secondary_box_takes_no_join_and_stays_a_member(tmp_path: Path) -> None:
    from tests.net.cluster_helpers import commit, join, make_box, same_digest, wait_until

    async with running_cluster(tmp_path, ("a", "b")) as (a, b):
        await commit(a, "access", {"admin": False, "gui": False}, mode="machine:b")
        await wait_until("b has its access setting", same_digest(a, b))
        async with trio.open_nursery() as nursery:
            c = make_box(tmp_path, "c")
            await start(nursery, c)
            with pytest.raises(OperationalError, match="access.admin"):
                await join(c, b)
            assert on(c.home, lambda n: n.structure().name) is None
            await join(c, a)  # through another member
            await commit(a, "ntp", {"servers": ["ntp.after"]})
            await wait_until("b still follows the cluster", same_digest(a, b, c))
            await stop(c)
            nursery.cancel_scope.cancel()


async def test_a_join_cut_off_for_a_passing_reason_is_tried_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tests.net.cluster_helpers import join, make_box

    async with running_cluster(tmp_path, ("a",)) as (a,):
        assert a.handle is not None and a.handle.runtime is not None
        rt = a.handle.runtime
        for _ in range(4):  # the member is busy with as many joins as it takes at once
            rt.admission.joins.acquire_nowait()

        async def free_later() -> None:  # once the member has turned the join away
            with trio.fail_after(20):
                while "busy with other joins" not in caplog.text:
                    await trio.sleep(0.02)
            for _ in range(4):
                rt.admission.joins.release()

        async with trio.open_nursery() as nursery:
            b = make_box(tmp_path, "b")
            await start(nursery, b)
            nursery.start_soon(free_later)
            done = await join(b, a)
            assert done["cluster"] == "testcluster" and done["attempts"] >= 2
            assert "refused the join of b" in caplog.text and "busy" in caplog.text
            await stop(b)
            nursery.cancel_scope.cancel()


async def test_a_join_cut_off_after_its_admission_is_taken_up_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from evstore.net import wire
    from evstore.ops import membership
    from evstore.ops.node import open_node
    from tests.net.cluster_helpers import PASS, join, make_box, questions

    async with running_cluster(tmp_path, ("a",)) as (a,):
        b = make_box(tmp_path, "b")

        def cut_off_after_admission() -> None:
            fp = on(a.home, lambda n: n.fingerprint())
            opts = client.JoinOptions(address=a.address, passphrase=PASS, fingerprint=fp)
            with open_node(b.home) as node:
                trio.run(_admitted_then_gone, client.Caller(node), opts)

        async def _admitted_then_gone(caller: client.Caller, opts: client.JoinOptions) -> None:
            channel, _key = await joining._join_dial(caller, opts, questions())
            await wire.send(channel, {"t": "open", "want": "join", "version": caller.version})
            await wire.send(channel, {"t": "credentials", "hostname": "b", "preshared": False,
                                      "passphrase": PASS})
            await wire.receive(channel, "cluster", timeout=10)
            request = membership.join_request(caller.node)
            await wire.send(channel, {"t": "join", "request": request})
            await wire.receive(channel, "admitted", timeout=10)
            await channel.aclose()  # gone before taking the log up

        await trio.to_thread.run_sync(cut_off_after_admission)
        await join(b, a)  # the same admission goes on
        assert "closed the join of b" in caplog.text
        admits = on(a.home, lambda n: [e for e in n.log.iter_all() if e.kind == "cluster.admit"])
        assert len(admits) == 1
        assert on(b.home, lambda n: n.structure().name) == "testcluster"
