"""Messages to bytes and back: canonical JSON for the small messages, a binary batch for
events (the framing is in the package docstring). Decoding is strict: anything but a
well-formed message raises ``SyncError``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from evstore.core import encoding
from evstore.core.errors import EncodingError
from evstore.core.events import MAX_EVENT_BYTES
from evstore.core.sync.messages import (
    MAX_ITEMS,
    MAX_MESSAGE_BYTES,
    MAX_ORIGINS,
    MAX_VERSION_CHARS,
    SIG_BYTES,
    ByeMsg,
    EventsMsg,
    HelloMsg,
    Item,
    Message,
    PingMsg,
    PongMsg,
    PushMsg,
    SyncError,
    VersionVector,
    VVMsg,
)


def _vv_out(vv: Mapping[str, tuple[int, int]]) -> dict[str, list[int]]:
    return {origin: [first, last] for origin, (first, last) in vv.items()}


_BATCH_MARK: Final = 0x00
_BATCH_KINDS: Final = {1: "events", 2: "push"}
_BATCH_HEAD = struct.Struct(">BBH")
_ITEM_HEAD = struct.Struct(">I")


def _batch_out(kind: int, items: Sequence[Item]) -> bytes:
    if not 0 < len(items) <= MAX_ITEMS:
        raise ValueError(f"a batch holds 1 to {MAX_ITEMS} events, not {len(items)}")
    parts = [_BATCH_HEAD.pack(_BATCH_MARK, kind, len(items))]
    for raw, sig in items:
        if not 0 < len(raw) <= MAX_EVENT_BYTES or len(sig) != SIG_BYTES:
            raise ValueError("an event is 1 to MAX_EVENT_BYTES bytes with a 64-byte signature")
        parts += (_ITEM_HEAD.pack(len(raw)), raw, sig)
    return b"".join(parts)


def _batch_in(data: bytes) -> Message:
    """Parse a binary batch strictly: exact lengths, limits, no trailing bytes."""
    if len(data) < _BATCH_HEAD.size:
        raise SyncError("batch message is shorter than its header")
    _mark, kind, count = _BATCH_HEAD.unpack_from(data)
    if kind not in _BATCH_KINDS:
        raise SyncError(f"unknown batch kind {kind}")
    if not 0 < count <= MAX_ITEMS:
        raise SyncError(f"a batch holds 1 to {MAX_ITEMS} events, not {count}")
    view = memoryview(data)
    items: list[Item] = []
    at = _BATCH_HEAD.size
    for _ in range(count):
        if at + _ITEM_HEAD.size > len(data):
            raise SyncError("batch message ends inside an event's length")
        (size,) = _ITEM_HEAD.unpack_from(data, at)
        at += _ITEM_HEAD.size
        if not 0 < size <= MAX_EVENT_BYTES:
            raise SyncError(f"an event of {size} bytes is outside 1..{MAX_EVENT_BYTES}")
        end = at + size + SIG_BYTES
        if end > len(data):
            raise SyncError("batch message ends inside an event")
        items.append((bytes(view[at : at + size]), bytes(view[at + size : end])))
        at = end
    if at != len(data):
        raise SyncError(f"{len(data) - at} bytes after the last event of a batch")
    return EventsMsg(tuple(items)) if kind == 1 else PushMsg(tuple(items))


def _to_wire(msg: Message) -> dict[str, Any]:
    match msg:
        case HelloMsg(node, version, vv):
            return {"t": "hello", "node": node, "version": version, "vv": _vv_out(vv)}
        case VVMsg(vv):
            return {"t": "vv", "vv": _vv_out(vv)}
        case PingMsg(nonce, wall_ms):
            return {"t": "ping", "nonce": nonce, "wall_ms": wall_ms}
        case PongMsg(nonce, echo, wall_ms):
            return {"t": "pong", "nonce": nonce, "wall_ms_echo": echo, "wall_ms": wall_ms}
        case ByeMsg():
            return {"t": "bye"}
    raise TypeError(f"not a sync message: {msg!r}")  # pragma: no cover


def encode_message(msg: Message) -> bytes:
    """The canonical bytes of a message."""
    if isinstance(msg, EventsMsg):
        return _batch_out(1, msg.items)
    if isinstance(msg, PushMsg):
        return _batch_out(2, msg.items)
    return encoding.encode(_to_wire(msg))


# ---- strict decoding: every check raises SyncError with a short reason


def _short(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _int(v: object, what: str, lo: int = 0) -> int:
    if type(v) is not int or not lo <= v <= encoding.INT_MAX:
        raise SyncError(f"{what} must be an integer from {lo} to {encoding.INT_MAX}")
    return v


def _hex(v: object, what: str, max_bytes: int) -> bytes:
    """Lower-case hex of 1..max_bytes bytes, in its one canonical spelling."""
    if not isinstance(v, str) or not 0 < len(v) <= 2 * max_bytes or len(v) % 2:
        raise SyncError(f"{what} must be lower-case hex of 1 to {max_bytes} bytes")
    try:
        data = bytes.fromhex(v)
    except ValueError:
        data = b""
    if data.hex() != v:  # also refuses upper case and the spaces fromhex allows
        raise SyncError(f"{what} must be lower-case hex digits only")
    return data


def _origin(v: object) -> str:
    if not isinstance(v, str) or len(v) != 64:
        raise SyncError("an origin or node must be 64 lower-case hex digits")
    _hex(v, "an origin or node", 32)
    return v


def _vv_in(v: object) -> VersionVector:
    if not isinstance(v, dict):
        raise SyncError("vv must be an object of origin -> [first, last]")
    if len(v) > MAX_ORIGINS:
        raise SyncError(f"vv lists {len(v)} origins, over the limit of {MAX_ORIGINS}")
    out: VersionVector = {}
    for origin, run in v.items():
        if not isinstance(run, list) or len(run) != 2:
            raise SyncError("each vv entry must be [first, last]")
        first, last = _int(run[0], "vv first", 1), _int(run[1], "vv last", 1)
        if first > last:
            raise SyncError(f"vv entry [{first}, {last}] ends before it starts")
        out[_origin(origin)] = (first, last)
    return out


def _version(v: object) -> str:
    if not isinstance(v, str) or not 0 < len(v) <= MAX_VERSION_CHARS:
        raise SyncError(f"version must be a string of 1 to {MAX_VERSION_CHARS} characters")
    return v


_Builder = Callable[[dict[str, Any]], Message]

_SHAPES: Final[dict[str, tuple[frozenset[str], _Builder]]] = {
    "hello": (
        frozenset({"node", "version", "vv"}),
        lambda o: HelloMsg(_origin(o["node"]), _version(o["version"]), _vv_in(o["vv"])),
    ),
    "vv": (frozenset({"vv"}), lambda o: VVMsg(_vv_in(o["vv"]))),
    "ping": (
        frozenset({"nonce", "wall_ms"}),
        lambda o: PingMsg(_int(o["nonce"], "nonce"), _int(o["wall_ms"], "wall_ms")),
    ),
    "pong": (
        frozenset({"nonce", "wall_ms_echo", "wall_ms"}),
        lambda o: PongMsg(
            _int(o["nonce"], "nonce"),
            _int(o["wall_ms_echo"], "wall_ms_echo"),
            _int(o["wall_ms"], "wall_ms"),
        ),
    ),
    "bye": (frozenset(), lambda o: ByeMsg()),
}


def _object_of(data: bytes) -> dict[str, Any]:
    if not isinstance(data, bytes):
        raise SyncError("a message must be bytes")
    if len(data) > MAX_MESSAGE_BYTES:
        raise SyncError(f"message of {len(data)} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
    try:
        obj = encoding.decode(data)
    except EncodingError as e:
        raise SyncError(f"message is not canonical JSON: {e}") from None
    if not isinstance(obj, dict):
        raise SyncError("a message must be a JSON object")
    return obj


def decode_message(data: bytes) -> Message:
    """Parse one message strictly; anything but a well-formed message raises ``SyncError``."""
    if isinstance(data, bytes) and data[:1] == bytes([_BATCH_MARK]):
        if len(data) > MAX_MESSAGE_BYTES:
            raise SyncError(
                f"message of {len(data)} bytes is over the {MAX_MESSAGE_BYTES}-byte limit"
            )
        return _batch_in(data)
    obj = _object_of(data)
    kind = obj.get("t")
    if not isinstance(kind, str) or kind not in _SHAPES:
        raise SyncError(f"unknown message type {_short(kind)}")
    keys, build = _SHAPES[kind]
    missing, extra = sorted(keys - set(obj) - {"t"}), sorted(set(obj) - keys - {"t"})
    if missing or extra:
        raise SyncError(f"{kind} message: missing keys {missing}, unexpected keys {extra}")
    return build(obj)
