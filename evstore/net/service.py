"""What a serving node answers on its ports, once the handshake has named the caller.

The caller's first message (``open``, wire.py) says what it wants; what it may have depends on
who it proved to be:

* a **member** may open a mesh ``link`` (both sides self-check, then gossip) or an ``rpc``
  session (a removed machine may still open a link, so it learns of its removal at its next
  contact; it then turns standalone and closes it): ``vv``, ``arrival``, ``deliver``, ``digests``, ``head``, ``ids``, ``read``,
  ``rekey``. A detached member may use rpc, but may deliver only its own re-attachment;
* a **stranger** may only ``join``: the member names its cluster and version, waits for one
  request (passphrase join on the admin port only; pre-shared join on either), admits it with
  ``membership.admit``, streams its in-scope events in batches, and takes the joiner's
  ``cluster.join`` event back (joins.py). Anything else is refused with a reason and the
  link closed.

Every refusal is an ``error`` message naming what to do; nothing is stored for a refused
caller (a wrong passphrase leaves only its ``login_failed`` alert).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nacl.exceptions
import nacl.signing

from evstore.core import encoding
from evstore.core.errors import EvstoreError, InvalidInput
from evstore.core.events import Event, fingerprint
from evstore.core.state import Machine
from evstore.core.sync import MAX_ITEMS, batches
from evstore.net import restore, wire
from evstore.net.joins import scope_ranges, serve_join
from evstore.net.runtime import Runtime
from evstore.net.transport import LinkClosed, ProtocolError, SecureChannel
from evstore.ops import check
from evstore.ops.node import Node
from evstore.storage import lookups, nodetable

__all__ = ["converse", "scope_ranges"]

log = logging.getLogger("evstore.node")

RPC_IDLE = 60.0
MAX_IDS = 1000


async def converse(rt: Runtime, channel: SecureChannel, port: str, address: str,
                   admitted: Callable[[], None] = lambda: None) -> None:
    """Serve one authenticated connection according to its ``open`` message. ``admitted``
    is called once the caller proved it may be here (a member, or a joiner whose credentials
    held): until then it counts as unauthenticated (preauth.py)."""
    opened = await wire.receive(channel, "open", timeout=rt.config.handshake_timeout)
    want = wire.text(opened, "want", 16)
    m = await _member(rt, channel, want)
    if m is not None and want == "join" and m.key not in rt.view.spoken:
        m = None  # admitted, its own join not here yet: that join is being taken up again
    if m is not None:
        admitted()
    if not await _same_version(rt, channel, opened, m):
        return
    if m is None:
        await _stranger(rt, channel, port, want, admitted, address)
    elif want == "link":
        await _serve_link(rt, channel, m, opened, address)
    elif want == "rpc":
        await _serve_rpc(rt, channel, m)
    else:
        await wire.send_error(channel, f"{m.hostname} is already a member of cluster "
                              f"{rt.view.cluster}: nothing to join")


async def _member(rt: Runtime, channel: SecureChannel, want: str) -> Machine | None:
    """The member the caller proved to be; a machine admitted a moment ago counts too."""
    m = rt.view.by_key(channel.peer_ed25519_hex, removed=want == "link")
    if m is None and want != "join":
        await rt.refresh()
        m = rt.view.by_key(channel.peer_ed25519_hex, removed=want == "link")
    if m is not None and m.transport_key != channel.peer_x25519_hex:
        raise InvalidInput(f"{m.hostname}'s link used another transport key than it announced")
    return m


async def _same_version(rt: Runtime, channel: SecureChannel, opened: dict[str, Any],
                        m: Machine | None) -> bool:
    theirs = wire.text(opened, "version", 64)
    if theirs == rt.config.version:
        return True
    who = m.hostname if m is not None else "the other machine"
    text = (f"version mismatch: {rt.view.hostname} runs evstore {rt.config.version}, {who} "
            f"runs {theirs}; run the same version on both (disconnect, upgrade, reconnect)")
    if m is not None:
        rt.queue(lambda: rt.book.alert("link_refused", text))
    await wire.send_error(channel, text)
    return False


async def _stranger(rt: Runtime, channel: SecureChannel, port: str, want: str,
                    admitted: Callable[[], None], address: str = "?") -> None:
    if want == "join":
        await serve_join(rt, channel, port, admitted, address)
        return
    fp = fingerprint(channel.peer_ed25519_hex)
    where = f"cluster {rt.view.cluster}" if rt.view.cluster else "a cluster (it is standalone)"
    await wire.send_error(channel, f"{rt.view.hostname} does not know the host key {fp}: it is "
                          f"not a member of {where}; join first")


# ---------------------------------------------------------------------- links


async def _serve_link(rt: Runtime, channel: SecureChannel, m: Machine, opened: dict[str, Any],
                      address: str) -> None:
    refusal = _link_refusal(rt, m)
    if refusal:
        await wire.send_error(channel, refusal)
        return
    link = rt.links.claim(m, False, address)
    if link is None:
        await wire.send_error(channel, "duplicate link: the other one stays")
        return
    try:
        with link.scope:
            await rt.check.answered(channel, m, opened)
            await rt.links.run_mesh(channel, m, m.ccs or m.listen)
    finally:
        link.ended.set()


def _link_refusal(rt: Runtime, m: Machine) -> str | None:
    view = rt.view
    if view.cluster is None:
        return f"{view.hostname} is standalone now: it links with no one"
    if view.detached:
        return (f"{view.hostname} is detached from cluster {view.cluster}: reconnect it first "
                f"(`evstore clusterconfig reconnect {view.hostname}`)")
    if m.detached:
        return (f"{m.hostname} is detached from cluster {view.cluster}: reconnect it first "
                f"(`evstore clusterconfig reconnect {m.hostname}`)")
    return None


# ---------------------------------------------------------------------- rpc

Handler = Callable[["Runtime", SecureChannel, Machine, dict[str, Any]], Awaitable[dict[str, Any]]]


async def _serve_rpc(rt: Runtime, channel: SecureChannel, m: Machine) -> None:
    await wire.send(channel, {"t": "ready", "hostname": rt.view.hostname})
    while True:
        try:
            req = await wire.receive(channel, "req", timeout=RPC_IDLE)
        except LinkClosed:
            return
        op = wire.text(req, "op", 16)
        handler = _OPS.get(op)
        if handler is None:
            await wire.send_error(channel, f"unknown request {op!r}")
            return
        try:
            answer = await handler(rt, channel, m, req)
        except EvstoreError as e:
            await wire.send_error(channel, str(e), e.exit_code)
            return
        await wire.send(channel, {"t": "res", **answer})


async def _op_vv(rt: Runtime, channel: SecureChannel, m: Machine,
                 req: dict[str, Any]) -> dict[str, Any]:
    vv = await rt.db(rt.node.log.version_vector)
    return {"vv": vv, "hostname": rt.view.hostname}


async def _op_arrival(rt: Runtime, channel: SecureChannel, m: Machine,
                      req: dict[str, Any]) -> dict[str, Any]:
    event_id = wire.hex_id(req.get("id"), "arrival id")
    row = await rt.db(_received_at, rt.node, event_id)
    return {"arrived": row is not None, "at": row}


def _received_at(node: Node, event_id: str) -> int | None:
    return lookups.received_at(node.conn, event_id)


async def _op_deliver(rt: Runtime, channel: SecureChannel, m: Machine,
                      req: dict[str, Any]) -> dict[str, Any]:
    """Events a command brings directly (disconnect, reconnect, rekey): in, and acted on,
    before the answer, so a detached machine's links are cut when the command returns."""
    items = wire.items_in(req.get("items"), MAX_ITEMS)
    if m.detached and not _reattaches(items, m):
        raise InvalidInput(f"{m.hostname} is detached: it may deliver only its reconnection")
    applied = await rt.log.ingest(items)
    rt.mesh.notify_local_change()
    return {"applied": len(applied), "vv": await rt.db(rt.node.log.version_vector)}


def _reattaches(items: list[tuple[bytes, bytes]], m: Machine) -> bool:
    for raw, _sig in items:
        env = encoding.loads_json(raw)
        if isinstance(env, dict) and env.get("kind") == "machine.detach":
            payload = env.get("payload") or {}
            if payload.get("machine") == m.mid and payload.get("detached") is False:
                return True
    return False


async def _op_digests(rt: Runtime, channel: SecureChannel, m: Machine,
                      req: dict[str, Any]) -> dict[str, Any]:
    point = req.get("point")
    vv = None if point is None else wire.vv_in(point)
    report = await rt.db(check.digests_at, rt.node, vv)
    return {"report": report}


async def _op_head(rt: Runtime, channel: SecureChannel, m: Machine,
                   req: dict[str, Any]) -> dict[str, Any]:
    origin = wire.hex_id(req.get("origin"), "head origin")
    head = await rt.db(restore.head_of, rt.node.log, origin)
    return {"head": wire.head_out(head)}


async def _op_ids(rt: Runtime, channel: SecureChannel, m: Machine,
                  req: dict[str, Any]) -> dict[str, Any]:
    origin = wire.hex_id(req.get("origin"), "ids origin")
    seqs = req.get("seqs")
    if not isinstance(seqs, list) or len(seqs) > MAX_IDS or any(type(s) is not int for s in seqs):
        raise ProtocolError(f"ids: seqs must be a list of at most {MAX_IDS} integers")

    def lookup() -> list[str | None]:
        return [restore.id_at(rt.node.log, origin, s) for s in seqs]

    return {"ids": await rt.db(lookup)}


async def _op_read(rt: Runtime, channel: SecureChannel, m: Machine,
                   req: dict[str, Any]) -> dict[str, Any]:
    origin = wire.hex_id(req.get("origin"), "read origin")
    first, last = wire.integer(req, "first"), wire.integer(req, "last")
    last = min(last, first + MAX_ITEMS - 1)
    events = await rt.db(rt.node.log.read_range, origin, first, last)
    items = batches([(e.raw, e.sig) for e in events])
    return {"items": wire.items_out(items[0] if items else [])}


async def _op_set_aside(rt: Runtime, channel: SecureChannel, m: Machine,
                        req: dict[str, Any]) -> dict[str, Any]:
    """What this member keeps of an origin without applying it (fork evidence): for a
    rekey whose own branch is the one kept, which issues the other branch's changes again."""
    origin = wire.hex_id(req.get("origin"), "set_aside origin")
    first = wire.integer(req, "first")
    items = await rt.db(rt.node.log.set_aside, origin, first, MAX_ITEMS)
    out = batches(items)
    return {"items": wire.items_out(out[0] if out else [])}


async def _op_rekey(rt: Runtime, channel: SecureChannel, m: Machine,
                    req: dict[str, Any]) -> dict[str, Any]:
    """Admit the caller's fresh host key in place of the one it links with now."""
    new_key = wire.hex_id(req.get("key"), "rekey key")
    proof = wire.hex_bytes(req.get("proof"), "rekey proof", 64)
    message = restore.rekey_proof_message(channel.handshake_hash, m.key, new_key)
    try:
        nacl.signing.VerifyKey(bytes.fromhex(new_key)).verify(message, proof)
    except (nacl.exceptions.BadSignatureError, ValueError):
        raise InvalidInput("the rekey proof does not verify: the new key must sign it") from None
    user = wire.text(req, "user", 64)
    ev = await rt.db(_admit_rekey, rt.node, m, new_key, user)
    await rt.refresh()
    rt.mesh.notify_local_change()
    return {"origin": ev.origin, "seq": ev.seq}


def _admit_rekey(node: Node, m: Machine, new_key: str, user: str) -> Event:
    st = node.structure()
    machine = {k: getattr(m, k) for k in ("hostname", "serial", "listen", "ccs", "version",
                                           "transport_key") if getattr(m, k)}
    create_id = nodetable.get(node.conn, nodetable.CLUSTER_CREATE)
    # The old key's events past what this member holds of it now no longer count, anywhere
    # (``@cutoff``, as for a removed machine): whoever still has the old key (the copy the
    # machine was restored from, say) can no longer change the cluster's settings with it.
    # (None when this member holds none of them: cutting at 0 would drop the machine's join.)
    cutoff = restore.head_of(node.log, m.key)[0] or None
    payload = {
        "machine_id": m.mid, "key": new_key, "replaces": m.key, "machine": machine,
        "group": st.group_of(m.mid), "cluster": create_id, "via": "rekey",
    }
    return node.append(user, "cluster.admit",
                       payload if cutoff is None else {**payload, "cutoff": cutoff})


_OPS: dict[str, Handler] = {
    "vv": _op_vv, "arrival": _op_arrival, "deliver": _op_deliver, "digests": _op_digests,
    "head": _op_head, "ids": _op_ids, "read": _op_read, "rekey": _op_rekey,
    "set_aside": _op_set_aside,
}
