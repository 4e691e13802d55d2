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
  ``cluster.join`` event back. Anything else is refused with a reason and the link closed.

Every refusal is an ``error`` message naming what to do; nothing is stored for a refused
caller (a wrong passphrase leaves only its ``login_failed`` alert).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import nacl.exceptions
import nacl.signing
import trio

from evstore.core import encoding
from evstore.core.errors import EvstoreError, InvalidInput, OperationalError
from evstore.core.events import Event, fingerprint
from evstore.core.state import Machine
from evstore.core.sync import MAX_ITEMS, Range, batches, chunk_ranges
from evstore.net import preauth, restore, wire
from evstore.net.transport import LinkClosed, ProtocolError, SecureChannel
from evstore.ops import access, check, logins, membership, secrets
from evstore.ops.node import Node, parse_hostport
from evstore.storage import lookups, nodetable

if TYPE_CHECKING:
    from evstore.net.node import Runtime

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
        await _serve_join(rt, channel, port, admitted, address)
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
    link = rt.claim(m, False, address)
    if link is None:
        await wire.send_error(channel, "duplicate link: the other one stays")
        return
    try:
        with link.scope:
            peer_head = wire.head_in(opened.get("head"), "open head")
            mine = await rt.db(restore.head_of, rt.node.log, rt.view.origin)
            await rt.send_check(channel, m, peer_head, head=wire.head_out(mine))
            answer = await wire.receive(channel, "check", timeout=rt.config.request_timeout)
            await rt.judge_self(answer, mine)
            await rt.run_mesh(channel, m, m.ccs or m.listen)
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


# ---------------------------------------------------------------------- join


async def _serve_join(rt: Runtime, channel: SecureChannel, port: str,
                      admitted: Callable[[], None] = lambda: None, address: str = "?") -> None:
    """The joining machine proves it may join (the admin passphrase, or a pre-shared entry
    for the key this link proved) before it learns anything about the cluster, and before it
    takes one of the few join places: a stranger learns neither its name nor this machine's."""
    view = rt.view
    if view.cluster is None or view.create_id is None:
        await wire.send_error(channel, "this machine is standalone: join through a member "
                              "of the cluster (or create one with `clusterconfig create`)")
        return
    # the joining side sends its credentials right after ``open``: no person answers first
    creds = await wire.receive(channel, "credentials", timeout=rt.config.handshake_timeout)
    try:
        passphrase, preshared = await _check_credentials(rt, channel, port, creds, address)
    except EvstoreError as e:
        await wire.send_error(channel, str(e), e.exit_code)
        return
    admitted()
    closed = await rt.db(access.refusal, rt.node, "admin")
    if closed is not None:  # a join logs in as its admin: the seed's secondary box takes none
        await wire.send_error(channel, closed + "; join through another member")
        return
    try:
        rt._joins.acquire_nowait()
    except trio.WouldBlock:
        log.warning("refused the join of %s (%s): busy with other joins", creds.get("hostname"),
                    address)
        await wire.send_error(channel, "this member is busy with other joins: try again")
        return
    try:
        await _join_logged(rt, channel, passphrase, preshared, creds, address)
    finally:
        rt._joins.release()


async def _join_logged(rt: Runtime, channel: SecureChannel, passphrase: str | None,
                       preshared: bool, creds: dict[str, Any], address: str) -> None:
    """``_join``, and the node's log says why a join it took up did not end well (the
    joining side retries a join cut off for a passing reason)."""
    who = f"{creds.get('hostname')} ({address})"
    try:
        await _join(rt, channel, passphrase, preshared, creds)
    except trio.Cancelled:
        log.warning("closed the join of %s: this node is stopping or restarting", who)
        raise
    except (EvstoreError, OSError, trio.TooSlowError, trio.BrokenResourceError,
            trio.ClosedResourceError) as exc:
        log.warning("closed the join of %s: %s", who, exc or type(exc).__name__)
        raise


async def _join(rt: Runtime, channel: SecureChannel, passphrase: str | None, preshared: bool,
                creds: dict[str, Any]) -> None:
    """The member's side of a join, once the credentials held."""
    view = rt.view
    await wire.send(channel, {"t": "cluster", "name": view.cluster, "version": rt.config.version,
                              "hostname": view.hostname, "create": view.create_id})
    msg = await wire.receive(channel, "join", "cancel", timeout=rt.config.join_wait)
    if msg["t"] == "cancel":
        return
    try:
        request = await _join_request(rt, channel, msg, creds)
        await rt.db(_admit, rt.node, request, passphrase, preshared)
    except EvstoreError as e:
        log.warning("refused the join of %s: %s", creds.get("hostname"), e)
        await wire.send_error(channel, str(e), e.exit_code)
        return
    await rt.refresh()
    rt.mesh.notify_local_change()
    await wire.send(channel, {"t": "admitted"})
    count = await _send_scope(rt, channel)
    await wire.send(channel, {"t": "end", "count": count})
    joined = await wire.receive(channel, "joined", timeout=rt.config.join_wait)
    await rt.log.ingest(wire.items_in(joined.get("items"), 10))
    rt.mesh.notify_local_change()
    await wire.send(channel, {"t": "ok"})


async def _check_credentials(rt: Runtime, channel: SecureChannel, port: str,
                             creds: dict[str, Any], address: str = "?"
                             ) -> tuple[str | None, bool]:
    preshared = creds.get("preshared") is True
    passphrase = creds.get("passphrase")
    host = creds.get("hostname")
    if passphrase is not None and not isinstance(passphrase, str):
        raise ProtocolError("join: passphrase must be a string")
    if not isinstance(host, str):
        raise ProtocolError("join: hostname must be a string")
    if port == "ccs" and not preshared:
        raise InvalidInput("the cluster-only port takes no passphrase logins: join over the "
                           "admin port, or with a pre-shared key (--preshared)")
    if preshared:
        await rt.db(_credentials_hold, rt.node, host, channel.peer_ed25519_hex, None, True)
        return passphrase, preshared
    await _passphrase_holds(rt, passphrase, preauth.source_of(address.rsplit(":", 1)[0]))
    return passphrase, preshared


async def _passphrase_holds(rt: Runtime, passphrase: str | None, source: str) -> None:
    """The admin passphrase of a join, guarded against guessing (core/backoff.py): per source
    address and overall, and hashed in a thread of its own (``rt.hashing``), never under the
    database's limiter, so guesses cannot hold up gossip."""
    verdict = rt.guard.check(source, trio.current_time())
    if verdict.why == "source":
        raise OperationalError(f"too many wrong passphrases from {source}: wait "
                               f"{int(verdict.wait) + 1} s and try again")
    if verdict.why == "overall":
        raise OperationalError("too many wrong passphrases on this member just now: wait a "
                               "few seconds and try again")
    if verdict.wait > 0:
        await trio.sleep(verdict.wait)
    stored, exists = await rt.db(logins.stored_hash, rt.node, "admin")
    ok = await rt.hashing.run(secrets.check_passphrase, stored, passphrase or "")
    if ok and exists and passphrase is not None:
        rt.guard.succeeded(source)
        return
    rt.guard.failed(source, trio.current_time())
    held = rt.failure_alerts.take(source, trio.current_time())
    if held is not None:
        await rt.db(logins.record_failure, rt.node, "login_failed",
                    f"wrong passphrase for user 'admin' (a join from {source})", held)
    raise InvalidInput("wrong user or passphrase for 'admin': check the passphrase and retry")


def _credentials_hold(node: Node, host: str, key: str, passphrase: str | None,
                      preshared: bool) -> None:
    membership.check_credentials(node, host, key, passphrase=passphrase, preshared=preshared)


async def _join_request(rt: Runtime, channel: SecureChannel, msg: dict[str, Any],
                        creds: dict[str, Any]) -> dict[str, Any]:
    request = msg.get("request")
    if not isinstance(request, dict):
        raise ProtocolError("join: request must be an object")
    if request.get("key") != channel.peer_ed25519_hex or \
            request.get("transport_key") != channel.peer_x25519_hex:
        raise InvalidInput("the join request names other keys than the ones this link proved")
    if request.get("hostname") != creds.get("hostname"):
        raise InvalidInput("the join request names another host than its credentials did")
    await _check_resolves(str(request.get("listen", "")))
    return request


async def _check_resolves(listen: str) -> None:
    """An announced host name must resolve here (the seed's DNS requirement)."""
    host, port = parse_hostport(listen)
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    try:
        await trio.socket.getaddrinfo(host, port)
    except OSError:
        raise InvalidInput(f"the joining machine announces {host}, which does not resolve "
                           "here: fix its DNS entry or announce an IP address") from None


def _admit(node: Node, request: dict[str, Any], passphrase: str | None, preshared: bool) -> None:
    membership.admit(node, "admin", request, passphrase=passphrase, preshared=preshared)


def scope_ranges(node: Node) -> list[Range]:
    """The member's in-scope events as per-origin ranges (cluster.in_scope_events, streamed)."""
    create_id = nodetable.get(node.conn, nodetable.CLUSTER_CREATE)
    create = node.log.get(create_id) if create_id is not None else None
    if create is None:
        return []
    anchors = {create.origin: create.seq}
    rows = lookups.scope_marks(node.conn)
    for origin, seq, raw in rows:
        payload = encoding.loads_json(raw).get("payload", {})
        if payload.get("cluster") == create.id:
            anchors.setdefault(origin, seq)
    vv = node.log.version_vector()
    return [Range(o, first, vv[o]) for o, first in sorted(anchors.items())
            if o in vv and first <= vv[o]]


async def _send_scope(rt: Runtime, channel: SecureChannel) -> int:
    """Stream the in-scope events in batches, so a big log never sits in memory whole."""
    ranges = await rt.db(scope_ranges, rt.node)
    count = 0
    for group in chunk_ranges(ranges):
        items = await rt.db(_read_items, rt.node, group)
        for batch in batches(items):
            await wire.send(channel, {"t": "log", "items": wire.items_out(batch)})
            count += len(batch)
    return count


def _read_items(node: Node, group: list[Range]) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    for r in group:
        out.extend(node.log.read_raw_range(r.origin, r.first, r.last))
    return out
