"""``disconnect`` / ``reconnect``: record a machine's detachment, then tell every member
directly, so that when the command returns every reached machine has acted on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio

from evstore.core.errors import InvalidInput, OperationalError
from evstore.core.events import Event
from evstore.core.state import Machine
from evstore.core.sync import MAX_ITEMS, batches
from evstore.net import wire
from evstore.net.reaching import (
    UNREACHABLE,
    Caller,
    Reach,
    Refused,
    floor_of,
    open_rpc,
    others,
    why,
)
from evstore.ops.node import Node

__all__ = ["set_detached"]


async def _deliver(caller: Caller, m: Machine, upto: Event, reach: Reach) -> None:
    """Bring ``m`` our own events up to ``upto``; it acts on them before it answers."""
    try:
        rpc = await open_rpc(caller, m)
    except OperationalError as e:
        reach.unreachable[m.hostname] = str(e)
        return
    try:
        theirs = wire.vv_in((await rpc.call("vv")).get("vv"))
        floor = await caller.db(floor_of, caller.node, upto.origin)
        first = max(theirs.get(upto.origin, 0) + 1, floor)
        for start in range(first, upto.seq + 1, MAX_ITEMS):
            events = await caller.db(caller.node.log.read_range, upto.origin, start,
                                     min(upto.seq, start + MAX_ITEMS - 1))
            for batch in batches([(e.raw, e.sig) for e in events]):
                await rpc.call("deliver", items=wire.items_out(batch))
        reach.reached.append(m.hostname)
    except UNREACHABLE as e:
        reach.unreachable[m.hostname] = why(e)
    finally:
        await rpc.aclose()



async def _deliver_all(caller: Caller, phases: Sequence[Sequence[Machine]], upto: Event) -> Reach:
    """Deliver to each phase's machines in parallel, one phase after the other."""
    reach = Reach()
    for targets in phases:
        async with trio.open_nursery() as nursery:
            for m in targets:
                nursery.start_soon(_deliver, caller, m, upto, reach)
    return reach


def set_detached(node: Node, user: str, machine: str, detached: bool) -> dict[str, Any]:
    """``disconnect`` / ``reconnect``: record it, then tell every member directly.

    Each member (the detached machine too) ingests the event and cuts or re-opens its links
    before it answers, so when this returns every reached machine acts on it.
    """
    st = node.structure()
    if st.name is None:
        raise InvalidInput("this machine is standalone: there is no cluster to disconnect from")
    mid = st.find_machine(machine)
    if mid is None or mid not in {m.mid for m in st.members()}:
        raise InvalidInput(f"no machine named {machine!r} in this cluster "
                           "(see `evstore clusterconfig list`)")
    target = st.machines[mid]
    if target.detached == detached:
        state = "disconnected" if detached else "connected"
        raise InvalidInput(f"{target.hostname} is already {state}")
    if not detached and mid != node.mid:
        trio.run(_may_reconnect, Caller(node), target)
    ev = node.append(user, "machine.detach", {"machine": mid, "detached": detached})
    rest = [m for m in others(node) if m.mid != mid]
    told = [[target]] if mid != node.mid else []
    # disconnect: the machine itself first, so it stops at once; reconnect: it last, so the
    # members already accept it when it dials them
    phases = [*told, rest] if detached else [rest, *told]
    reach = trio.run(_deliver_all, Caller(node), phases, ev)
    return {"machine": target.hostname, "detached": detached, "event": ev.id,
            **reach.as_dict()}


async def _may_reconnect(caller: Caller, target: Machine) -> None:
    """Before a reconnect changes anything: will the machine take it? One that answers and
    refuses (another software version) leaves both sides as they were; one that does not
    answer is re-attached here and learns it at its next contact."""
    try:
        rpc = await open_rpc(caller, target)
    except Refused as e:
        raise OperationalError(f"cannot reconnect {target.hostname}: {e}; nothing was changed "
                               "on either side (run the same version on both, then reconnect)"
                               ) from None
    except OperationalError:
        return
    await rpc.aclose()
