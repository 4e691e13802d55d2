"""What every member reports, asked from one command: ``commitdetail`` (did a commit
arrive, and when) and ``clustercheck`` (each member's digests at one common point of the log).

Members are asked in parallel; one that cannot be reached is reported, not waited for
(``commitdetail`` shows what its links last reported instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio

from evstore.core.errors import InvalidInput, OperationalError
from evstore.core.events import Event
from evstore.core.state import SETTINGS_KINDS, Machine
from evstore.net import wire
from evstore.net.reaching import UNREACHABLE, Caller, Reach, Rpc, open_rpc, others, why
from evstore.ops import check
from evstore.ops.node import Node, iso
from evstore.ops.settings import describe_changes
from evstore.storage import lookups

__all__ = ["clustercheck_reports", "commit_detail", "find_commit"]


# ---------------------------------------------------------------------- commitdetail


def find_commit(node: Node, ref: str | None) -> Event:
    """A commit by id (prefix), or the newest one this node holds."""
    from evstore.ops.history import find_event

    if ref:
        ev = find_event(node.log, ref)
        if ev.kind not in SETTINGS_KINDS:
            raise InvalidInput(f"event {ev.id[:12]} is a {ev.kind}, not a commit")
        return ev
    newest = lookups.newest_of_kinds(node.conn, sorted(SETTINGS_KINDS))
    if newest is None:
        raise InvalidInput("no commit yet: nothing to detail")
    found = node.log.get(newest)
    assert found is not None
    return found


def commit_detail(node: Node, ref: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """What a commit changed and, per machine, whether and when it arrived."""
    ev = find_commit(node, ref)
    own = lookups.received_at(node.conn, ev.id)
    machines = [{"hostname": node.identity().hostname, "arrived": True, "at": iso(own)}]
    reach = Reach()
    targets = others(node)  # once: a machine joining meanwhile is not asked, nor listed
    answers = trio.run(_arrivals, Caller(node), targets, ev, reach)
    machines.extend(answers[m.hostname] if m.hostname in answers
                    else _arrival_fallback(node, m, ev) for m in targets)
    doc = {
        "commit": ev.id, "user": ev.user, "time": iso(ev.wall),
        "comment": ev.payload.get("comment", ""), "origin": _host_of(node, ev.origin),
        "changes": describe_changes(node, list(ev.payload.get("changes", []))),
        "machines": sorted(machines, key=lambda x: str(x["hostname"])),
    }
    return doc, reach.unreachable


async def _arrivals(caller: Caller, targets: Sequence[Machine], ev: Event,
                    reach: Reach) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    async def one(m: Machine) -> None:
        try:
            rpc = await open_rpc(caller, m)
        except OperationalError as e:
            reach.unreachable[m.hostname] = str(e)
            return
        try:
            res = await rpc.call("arrival", id=ev.id)
            at = res.get("at")
            out[m.hostname] = {"hostname": m.hostname, "arrived": res.get("arrived") is True,
                               "at": iso(at) if isinstance(at, int) else None}
        except UNREACHABLE as e:
            reach.unreachable[m.hostname] = why(e)
        finally:
            await rpc.aclose()

    async with trio.open_nursery() as nursery:
        for m in targets:
            nursery.start_soon(one, m)
    return out


def _arrival_fallback(node: Node, m: Machine, ev: Event) -> dict[str, Any]:
    """An unreachable machine: what its links last reported (its version vector)."""
    from evstore.net.linkbook import peer_vv_of

    vv = peer_vv_of(node, m.mid)
    arrived = None if vv is None else vv.get(ev.origin, 0) >= ev.seq
    return {"hostname": m.hostname, "arrived": arrived, "at": None, "reachable": False}


def _host_of(node: Node, origin: str) -> str:
    st = node.structure()
    for m in st.machines.values():
        if origin in (m.key, m.mid):
            return m.hostname
    return origin[:16]



# ---------------------------------------------------------------------- clustercheck


def clustercheck_reports(node: Node) -> tuple[list[dict[str, Any]], list[str]]:
    """Every reachable member's report at one point of the log, and who did not answer."""
    return trio.run(_reports, Caller(node), others(node))


async def _reports(caller: Caller,
                   targets: Sequence[Machine]) -> tuple[list[dict[str, Any]], list[str]]:
    rpcs: dict[str, Rpc] = {}
    vvs: dict[str, dict[str, int]] = {}
    reach = Reach()
    try:
        async with trio.open_nursery() as nursery:
            for m in targets:
                nursery.start_soon(_open_and_vv, caller, m, rpcs, vvs, reach)
        mine = await caller.db(caller.node.log.version_vector)
        point = check.common_point([mine, *vvs.values()])
        reports = [await caller.db(check.digests_at, caller.node, point)]
        async with trio.open_nursery() as nursery:
            for m in targets:
                if m.hostname in vvs:
                    nursery.start_soon(_digests, rpcs[m.hostname], point, reports, reach)
    finally:
        for rpc in rpcs.values():
            await rpc.aclose()
    return reports, sorted(reach.unreachable)


async def _open_and_vv(caller: Caller, m: Machine, rpcs: dict[str, Rpc],
                       vvs: dict[str, dict[str, int]], reach: Reach) -> None:
    try:
        rpc = await open_rpc(caller, m)
        rpcs[m.hostname] = rpc
        vvs[m.hostname] = wire.vv_in((await rpc.call("vv")).get("vv"))
    except UNREACHABLE as e:
        reach.unreachable[m.hostname] = why(e)


async def _digests(rpc: Rpc, point: dict[str, int], reports: list[dict[str, Any]],
                   reach: Reach) -> None:
    try:
        res = await rpc.call("digests", point=point)
    except UNREACHABLE as e:
        reach.unreachable[rpc.machine.hostname] = why(e)
        return
    report = res.get("report")
    if isinstance(report, dict):
        reports.append(report)
