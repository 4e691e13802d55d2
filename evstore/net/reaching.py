"""A command reaching other machines: the base of every call in client.py.

A command acts as its home's machine (``Caller``): it dials with the home's host key and
transport key, so a member recognises it exactly as it recognises that machine's node, and
opens an ``rpc`` session (service.py) at the member's announced address, the cluster-only port
first. It works the same whether or not ``evstore run`` serves the home. An unreachable
machine is an ``OperationalError`` that names it; where a command reaches several machines it
notes who it reached and why the others were not (``Reach``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nacl.public
import nacl.signing
import trio

from evstore.core.errors import EvstoreError, OperationalError
from evstore.core.state import Machine
from evstore.net import wire
from evstore.net.transport import HANDSHAKE_TIMEOUT, SecureChannel, handshake
from evstore.ops import secrets
from evstore.ops.node import Node, parse_hostport

__all__ = ["DIAL_TIMEOUT", "REPLY_TIMEOUT", "UNREACHABLE", "Caller", "Reach", "Refused", "Rpc",
           "floor_of", "open_rpc", "others", "why"]

T = TypeVar("T")
DIAL_TIMEOUT = 5.0
REPLY_TIMEOUT = 60.0
UNREACHABLE = (EvstoreError, OSError, trio.TooSlowError, trio.BrokenResourceError,
               trio.ClosedResourceError)


class Caller:
    """This home's machine, reaching out: its keys, and its database behind one thread."""

    def __init__(self, node: Node, version: str | None = None) -> None:
        import evstore

        self.node = node
        self.signing: nacl.signing.SigningKey = node.signing_key
        self.transport: nacl.public.PrivateKey = secrets.load_transport_key(node.home)
        self.version = version or evstore.__version__
        self.limiter = trio.CapacityLimiter(1)

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def dial(self, address: str, *, expect: Machine | None = None,
                   authorize: Callable[[str, str], bool] | None = None) -> SecureChannel:
        """TCP, then the Noise handshake as initiator; unreachable names the address."""
        host, port = parse_hostport(address)
        try:
            with trio.fail_after(DIAL_TIMEOUT):
                stream = await trio.open_tcp_stream(host, port)
        except (OSError, trio.TooSlowError) as e:
            raise OperationalError(f"cannot reach {address}: {why(e)}; check the address "
                                   "and that `evstore run` serves there") from None
        if expect is not None:
            key = expect.key
            return await handshake(
                stream, initiator=True, static_x25519=self.transport, signing_key=self.signing,
                expected_peer_x25519=bytes.fromhex(expect.transport_key),
                authorize=lambda ed, _x: ed == key, max_message_size=wire.MAX_WIRE_MESSAGE,
                timeout=HANDSHAKE_TIMEOUT)
        return await handshake(
            stream, initiator=True, static_x25519=self.transport, signing_key=self.signing,
            authorize=authorize, max_message_size=wire.MAX_WIRE_MESSAGE,
            timeout=HANDSHAKE_TIMEOUT)


def why(e: BaseException) -> str:
    """What went wrong, in a few words, for a machine's "unreachable" line."""
    if isinstance(e, trio.TooSlowError):
        return "no answer in time"
    if isinstance(e, OSError):
        return e.strerror or str(e) or type(e).__name__
    return str(e) or type(e).__name__


class Rpc:
    """An rpc session with one member."""

    def __init__(self, channel: SecureChannel, machine: Machine) -> None:
        self.channel = channel
        self.machine = machine

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        await wire.send(self.channel, {"t": "req", "op": op, **args})
        return await wire.receive(self.channel, "res", timeout=REPLY_TIMEOUT)

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            await self.channel.aclose()


async def open_rpc(caller: Caller, m: Machine) -> Rpc:
    """An rpc session with member ``m`` at its announced address (cluster-only port first,
    then the admin port); an unreachable member is an OperationalError naming it."""
    addresses = [a for a in (m.ccs, m.listen) if a]
    errors = []
    for address in addresses:
        try:
            return Rpc(await _rpc_channel(caller, m, address), m)
        except _Unreachable as e:
            errors.append(str(e))
    raise OperationalError(f"{m.hostname} is unreachable: {'; '.join(errors)}")


class _Unreachable(OperationalError):
    """Nobody answered at that address (try the next one)."""


class Refused(OperationalError):
    """The machine answered and refused the session (another software version, say)."""


async def _rpc_channel(caller: Caller, m: Machine, address: str) -> SecureChannel:
    try:
        channel = await caller.dial(address, expect=m)
    except OperationalError as e:
        if str(e).startswith("cannot reach"):
            raise _Unreachable(str(e)) from None
        raise OperationalError(f"{m.hostname} at {address}: {e}") from None
    except UNREACHABLE as e:
        raise OperationalError(f"{m.hostname} at {address}: {why(e)}") from None
    try:
        await wire.send(channel, {"t": "open", "want": "rpc", "version": caller.version})
        await wire.receive(channel, "ready", timeout=REPLY_TIMEOUT)
    except wire.RemoteRefused as e:
        await channel.aclose()
        raise Refused(f"{m.hostname} ({address}) refused: {e}") from None
    except UNREACHABLE as e:
        await channel.aclose()
        raise OperationalError(f"{m.hostname} at {address}: {why(e)}") from None
    return channel


def others(node: Node) -> list[Machine]:
    """The other members with a key (the machines a command reaches); none when standalone."""
    st = node.structure()
    if st.name is None:
        return []
    return [m for m in st.members() if m.mid != node.mid and m.key]



@dataclass
class Reach:
    """Which machines a command reached, and why the others were not."""

    reached: list[str] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"reached": sorted(self.reached),
                "unreachable": [{"hostname": h, "error": e}
                                for h, e in sorted(self.unreachable.items())]}


def floor_of(node: Node, origin: str) -> int:
    """Our first event that may leave: the anchor of our chain in the cluster."""
    return node.log.latest_anchor(origin) or 1

