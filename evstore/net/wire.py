"""The node layer's messages: what two evstore processes say before (or instead of) gossip.

Theory of operation
-------------------
Every conversation runs over a ``transport.SecureChannel``. Once the handshake is done, the
*initiator* says what it wants with one ``open`` message; the responder answers according to
who the initiator proved to be (docs/protocol.md, "Node runtime"):

``open``   ``{want, version, head?}``: ``want`` is ``link`` (a mesh link: anti-entropy
           follows), ``rpc`` (one-off requests: a command-line tool reaching a member) or
           ``join`` (a machine that is not a member asks to join). ``version`` is the
           software version; a mismatch is refused naming both versions.
``check``  ``{head?, yours, at}``: the self-check that runs before a mesh link carries
           anything (restored homes, docs/protocol.md).
``error``  ``{message, code}``: the sender refuses; ``code`` is 2 for bad input (a wrong
           passphrase), 1 otherwise. The link ends after it.

The other message types belong to a join (``cluster``, ``join``, ``cancel``, ``admitted``,
``log``, ``end``, ``joined``, ``ok``) or to an rpc session (``ready``, ``req``, ``res``).

Each message is one canonical JSON object (core/encoding.py) with a type key ``"t"``, decoded
strictly: anything else is a ``ProtocolError`` and ends that link only. Events travel as
``[raw_hex, sig_hex]`` pairs in lower-case hex, like anti-entropy's items.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import trio

from evstore.core import encoding
from evstore.core.errors import EncodingError, InvalidInput, OperationalError
from evstore.core.events import MAX_EVENT_BYTES
from evstore.core.sync import MAX_MESSAGE_BYTES, Item
from evstore.net.transport import ProtocolError, SecureChannel

__all__ = [
    "MAX_WIRE_MESSAGE",
    "Head",
    "RemoteRefused",
    "head_in",
    "head_out",
    "items_in",
    "items_out",
    "receive",
    "send",
    "send_error",
]

MAX_WIRE_MESSAGE = MAX_MESSAGE_BYTES
_HEX = "0123456789abcdef"

Head = tuple[int, str]
"""``(seq, event id)`` of an origin's newest event held; ``(0, "")`` when none."""


class RemoteRefused(OperationalError):
    """The other machine refused, and said why."""


class RemoteBadInput(InvalidInput):
    """The other machine refused our input (a wrong passphrase, an unknown group)."""


def encode(msg: dict[str, Any]) -> bytes:
    return encoding.encode(msg)


def decode(data: bytes) -> dict[str, Any]:
    """One message: a canonical JSON object with a string ``t``."""
    if len(data) > MAX_WIRE_MESSAGE:
        raise ProtocolError(f"message of {len(data)} bytes is over {MAX_WIRE_MESSAGE}")
    try:
        obj = encoding.decode(data)
    except EncodingError as e:
        raise ProtocolError(f"message is not canonical JSON: {e}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("t"), str):
        raise ProtocolError("a message must be a JSON object with a type key t")
    return obj


async def send(channel: SecureChannel, msg: dict[str, Any]) -> None:
    await channel.send(encode(msg))


async def send_error(channel: SecureChannel, message: str, code: int = 1) -> None:
    """Tell the peer why we refuse (best effort: it may be gone already)."""
    with trio.move_on_after(2), suppress(OperationalError, InvalidInput, trio.BrokenResourceError):
        await send(channel, {"t": "error", "message": message, "code": code})


async def receive(channel: SecureChannel, *kinds: str, timeout: float) -> dict[str, Any]:
    """The next message, which must be one of ``kinds``; a peer's ``error`` is raised."""
    with trio.fail_after(timeout):
        msg = decode(await channel.receive())
    kind = msg["t"]
    if kind == "error":
        text = str(msg.get("message", "refused"))[:500]
        if msg.get("code") == 2:
            raise RemoteBadInput(text)
        raise RemoteRefused(text)
    if kind not in kinds:
        raise ProtocolError(f"expected {' or '.join(kinds)}, got {kind[:20]!r}")
    return msg


# ---------------------------------------------------------------------- typed fields


def text(msg: dict[str, Any], key: str, limit: int = 256) -> str:
    value = msg.get(key)
    if not isinstance(value, str) or len(value) > limit:
        raise ProtocolError(f"{msg['t']} message: {key} must be a string of at most {limit}")
    return value


def integer(msg: dict[str, Any], key: str) -> int:
    value = msg.get(key)
    if type(value) is not int or value < 0:
        raise ProtocolError(f"{msg['t']} message: {key} must be a non-negative integer")
    return value


def hex_id(value: object, what: str, *, empty: bool = False) -> str:
    """64 lower-case hex digits (a key or an event id); ``""`` too when ``empty``."""
    if empty and value == "":
        return ""
    if not isinstance(value, str) or len(value) != 64 or value.strip(_HEX):
        raise ProtocolError(f"{what} must be 64 lower-case hex digits")
    return value


def head_out(head: Head) -> list[Any]:
    return [head[0], head[1]]


def head_in(value: object, what: str) -> Head:
    if not isinstance(value, list) or len(value) != 2 or type(value[0]) is not int:
        raise ProtocolError(f"{what} must be [seq, id]")
    seq = value[0]
    if seq < 0:
        raise ProtocolError(f"{what}: seq must not be negative")
    return seq, hex_id(value[1], what, empty=seq == 0)


def optional_id(value: object, what: str) -> str | None:
    return None if value is None else hex_id(value, what)


def items_out(items: Sequence[Item]) -> list[list[str]]:
    return [[raw.hex(), sig.hex()] for raw, sig in items]


def hex_bytes(value: object, what: str, limit: int) -> bytes:
    if not isinstance(value, str) or not value or len(value) > 2 * limit or len(value) % 2:
        raise ProtocolError(f"{what} must be lower-case hex of 1 to {limit} bytes")
    if value.strip(_HEX):
        raise ProtocolError(f"{what} must be lower-case hex")
    return bytes.fromhex(value)


def items_in(value: object, limit: int = 500) -> list[Item]:
    """Events as ``[raw_hex, sig_hex]`` pairs; their signatures are checked by the log."""
    if not isinstance(value, list) or len(value) > limit:
        raise ProtocolError(f"items must be a list of at most {limit} events")
    out: list[Item] = []
    for pair in value:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ProtocolError("each event must be [raw_hex, sig_hex]")
        sig = hex_bytes(pair[1], "an event signature", 64)
        if len(sig) != 64:
            raise ProtocolError("an event signature must be 64 bytes")
        out.append((hex_bytes(pair[0], "an event", MAX_EVENT_BYTES), sig))
    return out


def vv_in(value: object) -> dict[str, int]:
    """A plain version vector ``{origin: last seq}``."""
    if not isinstance(value, dict) or len(value) > 10_000:
        raise ProtocolError("vv must be an object of origin -> seq")
    out: dict[str, int] = {}
    for origin, seq in value.items():
        if type(seq) is not int or seq < 0:
            raise ProtocolError("vv seqs must be non-negative integers")
        out[hex_id(origin, "a vv origin")] = seq
    return out
