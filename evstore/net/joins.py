"""A stranger's join, served by a member (docs/protocol.md, "Join").

The joining side opens with ``want: join`` and sends its credentials at once (no person
answers first): the admin passphrase (admin port only), or ``preshared`` for a key entered
with ``clusterconfig prepjoin``. Only once they hold does it learn the cluster's name and take
one of the member's few join places (``admission.MAX_JOINS``). The member then waits for the
join request (a person may be answering questions on the other side), admits it with
``membership.admit``, streams its in-scope events in batches, and takes the joiner's
``cluster.join`` event back. A refusal is an ``error`` message naming what to do; a wrong
passphrase leaves only its ``login_failed`` alert.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import Any

import trio

from evstore.core import encoding
from evstore.core.errors import EvstoreError, InvalidInput, OperationalError
from evstore.core.sync import Range, batches, chunk_ranges
from evstore.net import preauth, wire
from evstore.net.runtime import Runtime
from evstore.net.transport import ProtocolError, SecureChannel
from evstore.ops import access, logins, membership, secrets
from evstore.ops.node import Node, parse_hostport
from evstore.storage import lookups, nodetable

__all__ = ["scope_ranges", "serve_join"]

log = logging.getLogger("evstore.node")



async def serve_join(rt: Runtime, channel: SecureChannel, port: str,
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
        rt.admission.joins.acquire_nowait()
    except trio.WouldBlock:
        log.warning("refused the join of %s (%s): busy with other joins", creds.get("hostname"),
                    address)
        await wire.send_error(channel, "this member is busy with other joins: try again")
        return
    try:
        await _join_logged(rt, channel, passphrase, preshared, creds, address)
    finally:
        rt.admission.joins.release()


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
    address and overall, and hashed in a thread of its own (``rt.admission.hashing``), never under the
    database's limiter, so guesses cannot hold up gossip."""
    verdict = rt.admission.guard.check(source, trio.current_time())
    if verdict.why == "source":
        raise OperationalError(f"too many wrong passphrases from {source}: wait "
                               f"{int(verdict.wait) + 1} s and try again")
    if verdict.why == "overall":
        raise OperationalError("too many wrong passphrases on this member just now: wait a "
                               "few seconds and try again")
    if verdict.wait > 0:
        await trio.sleep(verdict.wait)
    stored, exists = await rt.db(logins.stored_hash, rt.node, "admin")
    ok = await rt.admission.hashing.run(secrets.check_passphrase, stored, passphrase or "")
    if ok and exists and passphrase is not None:
        rt.admission.guard.succeeded(source)
        return
    rt.admission.guard.failed(source, trio.current_time())
    held = rt.admission.failure_alerts.take(source, trio.current_time())
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
