"""One inbound connection, from the first byte to the conversation (service.py).

Each connection starts with the Noise handshake (transport.py), during which ``authorize``
decides from the caller's keys whether it may go on (admission.py). Until it proves to be a
member (or a stranger's join credentials hold) it holds a ticket of the pre-authentication
gate, which may evict it to make room for a newer one (preauth.py).
"""

from __future__ import annotations

import logging
from functools import partial

import trio

from evstore.net import admission, preauth, service, wire
from evstore.net.config import LINK_ERRORS
from evstore.net.links import close_channel
from evstore.net.runtime import Runtime
from evstore.net.transport import handshake

__all__ = ["accept", "authorize"]

log = logging.getLogger("evstore.node")


async def accept(rt: Runtime, port: str, stream: trio.SocketStream) -> None:
    """One inbound connection on ``port`` ("admin" or "ccs"), under its gate ticket until it
    proves itself, then the conversation its ``open`` message asks for."""
    gate = rt.admission.gate
    ticket = gate.admit(_peer_host(stream))
    try:
        with ticket.scope:
            try:
                channel = await handshake(
                    stream, initiator=False, static_x25519=rt.transport,
                    signing_key=rt.signing, authorize=partial(authorize, rt, port, ticket),
                    max_message_size=wire.MAX_WIRE_MESSAGE,
                    timeout=rt.config.handshake_timeout,
                    first_timeout=rt.config.first_message_timeout,
                    progress=ticket.advance)
            except LINK_ERRORS as exc:
                log.info("refused a connection on the %s port: %s", port, exc)
                return
            try:
                await service.converse(rt, channel, port, _peer_address(stream),
                                       admitted=partial(gate.release, ticket))
            except LINK_ERRORS as exc:
                log.info("conversation on the %s port ended: %s", port, exc)
            except Exception:  # a bug in one conversation must not stop the node
                log.exception("conversation on the %s port failed", port)
            finally:
                await close_channel(channel)
    finally:
        gate.release(ticket)
        if ticket.evicted:
            await trio.aclose_forcefully(stream)
            log.info("evicted an unauthenticated connection from %s on the %s port to "
                     "make room", ticket.source, port)


async def authorize(rt: Runtime, port: str, ticket: preauth.Ticket | None, ed25519: str,
                    x25519: str) -> bool:
    """A current member with its announced transport key; on the admin port anyone else
    may go on to ask to join, on the cluster-only port only a prepjoin key. A key not
    known yet makes the node re-read the membership first (it may have just changed).
    A member's connection leaves the pre-authentication gate here."""
    blocked = rt.config.blocked
    verdict = admission.verdict(rt.view, blocked, port, ed25519, x25519)
    if verdict is None:
        await rt.refresh()
        verdict = admission.verdict(rt.view, blocked, port, ed25519, x25519)
    if verdict and ticket is not None and rt.view.by_key(ed25519, removed=True):
        rt.admission.gate.release(ticket)
    return bool(verdict)


def _peer_host(stream: trio.SocketStream) -> str:
    try:
        return str(stream.socket.getpeername()[0])
    except OSError:
        return "?"


def _peer_address(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"
