"""``clusterconfig rekey``: a fresh host key, announced through a member.

The member admits the new key (``service._op_rekey``) against a proof signed over the
handshake; this home first adopts the branch of its own chain that the cluster holds, and
issues the losing branch's changes again under the new key (restore.py has the rules).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import nacl.public
import nacl.signing
import trio

from evstore.core.errors import InvalidInput, OperationalError
from evstore.core.events import Event, fingerprint
from evstore.core.state import Machine
from evstore.core.sync import MAX_ITEMS, Item, batches
from evstore.net import restore, wire
from evstore.net.reaching import Caller, Rpc, floor_of, open_rpc, others
from evstore.ops import membership
from evstore.ops.node import Node
from evstore.storage import nodetable
from evstore.storage.connect import transaction

__all__ = ["rekey"]


def rekey(node: Node, user: str) -> dict[str, Any]:
    """A fresh host key, announced through a member; the losing branch issued again."""
    if not node.in_cluster():
        raise InvalidInput("this machine is standalone: a rekey is announced through a member "
                           "of its cluster; there is none")
    candidates = [m for m in others(node) if not m.detached]
    if not candidates:
        raise OperationalError("no other member to announce the new key through")
    return trio.run(_rekey, Caller(node), user, candidates)


class _NotThrough(OperationalError):
    """This member cannot take the rekey (``restore.unfit_member``): try another."""


async def _rekey(caller: Caller, user: str, candidates: Sequence[Machine]) -> dict[str, Any]:
    failures: dict[str, str] = {}
    unfit = False
    for m in candidates:
        try:
            rpc = await open_rpc(caller, m)
        except OperationalError as e:
            failures[m.hostname] = str(e)
            continue
        try:
            return await _rekey_through(caller, rpc, user)
        except _NotThrough as e:
            failures[m.hostname], unfit = str(e), True
        finally:
            await rpc.aclose()
    what = "; ".join(f"{h}: {e}" for h, e in sorted(failures.items()))
    if unfit:
        raise OperationalError(
            f"no member reached can take the rekey ({what}); nothing was changed: run it again "
            "once a member that holds this machine's original branch is reachable (status "
            "shows the fork's alert), or once the original has reached the others")
    raise OperationalError(f"could not reach a member to announce the new key: {what}")


async def _rekey_through(caller: Caller, rpc: Rpc, user: str) -> dict[str, Any]:
    node = caller.node
    old = node.origin
    prefix, originals = await _cluster_branch(caller, rpc, old)
    head = (await caller.db(restore.head_of, node.log, old))[0]
    fork = await caller.db(restore.own_fork, node, old, originals)
    other: list[Event] = []
    if fork is not None and fork[0] == restore.WINS and fork[1] is not None:
        # This home's branch is the one every node keeps: keep it, and issue the other
        # branch's changes again instead (it has this home's evidence, the member's, and
        # the member's own events if it still applies that branch).
        other = await _other_branch(caller, rpc, fork[1], originals)
        prefix, originals = head, []
    elif not originals and prefix >= head:
        why = restore.unfit_member(fork)
        if why is not None:  # nothing changed yet: only reads so far
            raise _NotThrough(why)
    new_key = nacl.signing.SigningKey.generate()
    new_pub = new_key.verify_key.encode().hex()
    proof = new_key.sign(restore.rekey_proof_message(rpc.channel.handshake_hash, old,
                                                     new_pub)).signature
    res = await rpc.call("rekey", key=new_pub, proof=proof.hex(), user=user)
    admit = await _read_through(caller, rpc, wire.hex_id(res.get("origin"), "origin"),
                                wire.integer(res, "seq"))
    done = await caller.db(_switch_key, node, user, new_key, prefix, originals, admit, other)
    await _push_new_chain(caller, rpc, new_pub)
    return {"fingerprint": fingerprint(new_pub), "old_fingerprint": fingerprint(old),
            "reissued": done, "adopted": len(originals), "via": rpc.machine.hostname}


async def _cluster_branch(caller: Caller, rpc: Rpc, origin: str) -> tuple[int, list[Item]]:
    """The longest prefix of our own chain the member agrees with, and its events after it."""
    node = caller.node
    mine = await caller.db(restore.head_of, node.log, origin)
    theirs = wire.head_in((await rpc.call("head", origin=origin)).get("head"), "head")
    lo = await caller.db(floor_of, node, origin) - 1
    hi = min(mine[0], theirs[0])
    while lo < hi:  # largest s in [lo, hi] on which we agree (lo: before our chain, agreed)
        mid = (lo + hi + 1) // 2
        same = await _same_at(caller, rpc, origin, mid)
        lo, hi = (mid, hi) if same else (lo, mid - 1)
    originals = await _read_through(caller, rpc, origin, theirs[0], start=lo + 1)
    return lo, originals


async def _other_branch(caller: Caller, rpc: Rpc, start: Event,
                        applied_there: list[Item]) -> list[Event]:
    """The other branch of this home's fork, from ``start`` on: from this home's evidence, the
    member's evidence and the member's applied events (``restore.other_branch``)."""
    mine = await caller.db(caller.node.log.set_aside, start.origin, start.seq, MAX_ITEMS)
    got = wire.items_in((await rpc.call("set_aside", origin=start.origin,
                                        first=start.seq)).get("items"), MAX_ITEMS)
    return restore.other_branch(start, [*mine, *got, *applied_there])


async def _same_at(caller: Caller, rpc: Rpc, origin: str, seq: int) -> bool:
    ids = (await rpc.call("ids", origin=origin, seqs=[seq])).get("ids")
    ours = await caller.db(restore.id_at, caller.node.log, origin, seq)
    return isinstance(ids, list) and len(ids) == 1 and ids[0] == ours


async def _read_through(caller: Caller, rpc: Rpc, origin: str, last: int,
                        start: int | None = None) -> list[Item]:
    """The member's events of ``origin`` from ``start`` (default: after our head) to ``last``."""
    if start is None:
        start = (await caller.db(restore.head_of, caller.node.log, origin))[0] + 1
    out: list[Item] = []
    while start <= last:
        got = wire.items_in((await rpc.call("read", origin=origin, first=start,
                                            last=last)).get("items"), MAX_ITEMS)
        if not got:
            raise OperationalError(f"{rpc.machine.hostname} did not send events {start}..{last}")
        out.extend(got)
        start += len(got)
    return out


def _switch_key(node: Node, user: str, new_key: nacl.signing.SigningKey, prefix: int,
                originals: list[Item], admit: list[Item], other: Sequence[Event] = ()) -> int:
    """Adopt the cluster's branch, take the new key, anchor it, issue the losing changes again
    (this home's after ``prefix``, or ``other``: the branch its own one wins over)."""
    old = node.origin
    mid = node.mid
    with transaction(node.conn):
        nodetable.insert_new(node.conn, "machine_id", mid)
    losing = restore.adopt_branch(node, old, prefix, originals)
    if other:  # kept as evidence here too, so that every link carries the fork (gossip)
        with transaction(node.conn):
            restore.keep_as_evidence(node, other)
    result = node.log.ingest(admit, now_ms=_now())
    if result.rejected:
        raise OperationalError(f"the member's admission does not apply: "
                               f"{result.rejected[0].reason}")
    membership.swap_key_files(node.home, old, new_key)
    node._key = new_key
    node.log.append(new_key, user=user, kind="node.rekey", payload={
        "cluster": nodetable.get(node.conn, nodetable.CLUSTER_CREATE), "machine_id": mid,
        "replaces": old,
        "machine": node.identity().announce(node.transport_pub)}, now_ms=_now())
    reissued = restore.reissue(node, new_key, [*losing, *other])
    restore.clear_mark(node)
    return len(reissued)


def _now() -> int:
    return time.time_ns() // 1_000_000


async def _push_new_chain(caller: Caller, rpc: Rpc, origin: str) -> None:
    head = await caller.db(restore.head_of, caller.node.log, origin)
    events = await caller.db(caller.node.log.read_range, origin, 1, head[0])
    for batch in batches([(e.raw, e.sig) for e in events]):
        await rpc.call("deliver", items=wire.items_out(batch))
