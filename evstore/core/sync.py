"""Anti-entropy between two nodes: the planner, the wire messages and a sans-I/O session.

Theory of operation
-------------------
Every node holds, per origin (author key), one contiguous run of that origin's events: from
its *anchor* (the seq where the origin's chain inside the cluster starts, not always 1) up to
its head. A *version vector* is therefore ``{origin_hex: (first_seq, last_seq)}``, and it says
exactly which events a node holds. Two nodes reconcile by exchanging vectors: each side then
sends the events it holds that the other lacks. What to send is a pure function of the two
vectors, :func:`plan`; nothing else (no clocks, no history of the link) enters the decision.

Events are immutable, signed and identified by their bytes, and the log ignores duplicates,
so sending too much is only waste, never harm. The protocol leans on that: it is optimistic
about what the peer holds, and every (re)connect and every periodic resync replaces that
belief with the peer's own vector, which makes the exchange eventually complete.

A link carries canonical JSON objects (core/encoding.py), each with a type key ``"t"``:

``hello``   ``{node, version, vv}``: first message each way. ``version`` is the software
            version; a peer running another version is refused, naming both.
``vv``      ``{vv}``: "this is what I hold now; send me what I lack" (periodic resync).
``events``  ``{items}``: events the receiver lacks, in answer to a ``hello`` or ``vv``.
``push``    ``{items}``: events that just entered the sender's log (a local commit, or a
            relay of events it ingested from another peer), sent without being asked.
``ping``    ``{nonce, wall_ms}`` and ``pong`` ``{nonce, wall_ms_echo, wall_ms}``: round-trip
            time and the peer's clock offset, ``offset = peer_wall - (sent + received) / 2``.
``bye``     ``{}``: the sender is done with this session.

Events travel in binary *batch* messages instead (``events`` and ``push``): the byte 0x00
(no JSON message starts with it), a kind byte (1: events, 2: push), the count as an unsigned
16-bit big-endian integer, then per event its length (unsigned 32-bit big-endian), its
canonical bytes and its 64-byte signature, and nothing after. A batch is the bulk of the
traffic: read this way it costs a few slices, where JSON with hex would double the bytes to
encrypt and hold the GIL for milliseconds per batch while it is parsed and re-encoded. The
session never verifies events: the log does, one by one, and a bad event is refused there
without failing the rest of the batch.

Limits. A message is at most ``MAX_MESSAGE_BYTES``; a batch of events at most ``MAX_ITEMS``
events and ``MAX_BATCH_BYTES`` of event bytes (the transport takes up to 16 MiB, but smaller
batches keep memory flat and let the receiver commit as it goes). Decoding is strict: an
unknown type, a missing or extra key, a wrong type, a non-canonical spelling or a limit
exceeded is a :class:`SyncError`, an ``InvalidInput``: a remote error, so the shell drops
that link only (like h11's RemoteProtocolError).

Relaying. When the log changes, for whatever reason, the shell tells every session
(``local_changed``); each session pushes what its peer is not known to hold. Events received
from a peer count as held by that peer, so nothing echoes back. A node thus forwards what it
ingests from one peer to its other peers, and events reach every machine as long as the live
links connect the cluster, even when some direct links are down.

The session (:class:`Session`) is sans-I/O, like h11's ``Connection``: bytes and the
current time go in, bytes to send and *actions* come out. It does not read the log: when it
needs events it asks for ranges (``NeedRanges``); the shell reads them and hands them to
``send_events``, which returns the batched messages. ``Ingest`` asks the shell to put
received events in its log.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from evstore.core import encoding
from evstore.core.errors import EncodingError, InvalidInput
from evstore.core.events import MAX_EVENT_BYTES

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_ITEMS",
    "MAX_MESSAGE_BYTES",
    "Action",
    "ByeMsg",
    "Closed",
    "EventsMsg",
    "HelloMsg",
    "Ingest",
    "Item",
    "Message",
    "NeedRanges",
    "PeerVersionMismatch",
    "PingMsg",
    "Pong",
    "PongMsg",
    "PushMsg",
    "Range",
    "Ready",
    "Send",
    "Session",
    "SyncError",
    "VVMsg",
    "VersionVector",
    "batches",
    "chunk_ranges",
    "decode_message",
    "encode_message",
    "plan",
]

VersionVector = dict[str, tuple[int, int]]
"""``{origin_hex: (first_seq, last_seq)}``: the contiguous run of each origin held."""

Item = tuple[bytes, bytes]
"""One event on the wire: its canonical bytes and its signature."""

MAX_MESSAGE_BYTES: Final = 4 * 1024 * 1024
MAX_ITEMS: Final = 500
MAX_BATCH_BYTES: Final = 1024 * 1024
MAX_ORIGINS: Final = 10_000
MAX_VERSION_CHARS: Final = 64
MAX_OUTSTANDING_PINGS: Final = 8
SIG_BYTES: Final = 64


class SyncError(InvalidInput):
    """A peer broke the anti-entropy protocol: drop that link, and only that link."""


# --------------------------------------------------------------------------- the planner


@dataclass(frozen=True, order=True)
class Range:
    """The events ``first..last`` (inclusive) of one origin."""

    origin: str
    first: int
    last: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1


def plan(
    mine: Mapping[str, tuple[int, int]], theirs: Mapping[str, tuple[int, int]]
) -> list[Range]:
    """Exactly the events I hold that the peer lacks, by origin.

    A peer that lacks an origin gets my whole run of it; a peer behind me gets the rest of my
    run after its head (never below my own first seq: I cannot send what I do not hold).
    """
    out: list[Range] = []
    for origin in sorted(mine):
        first, last = mine[origin]
        have = theirs.get(origin)
        start = first if have is None else max(have[1] + 1, first)
        if start <= last:
            out.append(Range(origin, start, last))
    return out


def chunk_ranges(ranges: Sequence[Range], max_events: int = MAX_ITEMS) -> Iterator[list[Range]]:
    """Cut ranges into groups of at most ``max_events`` events, so a reader's memory stays flat."""
    group: list[Range] = []
    room = max_events
    for r in ranges:
        first = r.first
        while first <= r.last:
            last = min(r.last, first + room - 1)
            group.append(Range(r.origin, first, last))
            room -= last - first + 1
            first = last + 1
            if room == 0:
                yield group
                group, room = [], max_events
    if group:
        yield group


def batches(
    items: Sequence[Item], max_items: int = MAX_ITEMS, max_bytes: int = MAX_BATCH_BYTES
) -> list[list[Item]]:
    """Split events into batches of at most ``max_items`` and ``max_bytes`` (a lone event that
    is larger than ``max_bytes`` still goes, alone)."""
    out: list[list[Item]] = []
    current: list[Item] = []
    size = 0
    for raw, sig in items:
        n = len(raw) + len(sig)
        if current and (len(current) >= max_items or size + n > max_bytes):
            out.append(current)
            current, size = [], 0
        current.append((raw, sig))
        size += n
    if current:
        out.append(current)
    return out


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class HelloMsg:
    node: str
    version: str
    vv: VersionVector


@dataclass(frozen=True)
class VVMsg:
    vv: VersionVector


@dataclass(frozen=True)
class EventsMsg:
    items: tuple[Item, ...]


@dataclass(frozen=True)
class PushMsg:
    items: tuple[Item, ...]


@dataclass(frozen=True)
class PingMsg:
    nonce: int
    wall_ms: int


@dataclass(frozen=True)
class PongMsg:
    nonce: int
    wall_ms_echo: int
    wall_ms: int


@dataclass(frozen=True)
class ByeMsg:
    pass


Message = HelloMsg | VVMsg | EventsMsg | PushMsg | PingMsg | PongMsg | ByeMsg


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


# --------------------------------------------------------------------------- session actions


@dataclass(frozen=True)
class Send:
    """Send these bytes to the peer as one message."""

    data: bytes


@dataclass(frozen=True)
class Ready:
    """The peer's hello was accepted: the link is established with node ``node``."""

    node: str


@dataclass(frozen=True)
class Ingest:
    """Put these events into the local log (``pushed``: a push rather than an answer)."""

    items: tuple[Item, ...]
    pushed: bool


@dataclass(frozen=True)
class NeedRanges:
    """Read these events from the log and pass them to ``Session.send_events(..., push)``."""

    ranges: tuple[Range, ...]
    push: bool


@dataclass(frozen=True)
class PeerVersionMismatch:
    """The peer runs other software; the session is over (a bye is being sent)."""

    node: str
    ours: str
    theirs: str

    @property
    def message(self) -> str:
        return (
            f"peer {self.node[:16]}… runs evstore {self.theirs}, this node runs {self.ours}; "
            "run the same version on both machines"
        )


@dataclass(frozen=True)
class Pong:
    """A clock measurement: the peer's clock minus ours, and the round-trip time."""

    offset_ms: int
    rtt_ms: int


@dataclass(frozen=True)
class Closed:
    """The peer ended the session."""

    reason: str


Action = Send | Ready | Ingest | NeedRanges | PeerVersionMismatch | Pong | Closed


# --------------------------------------------------------------------------- the session


def _extend(vv: VersionVector, origin: str, first: int, last: int) -> None:
    """Record that a node holds ``first..last`` of ``origin`` (only ``last`` drives plans)."""
    have = vv.get(origin)
    vv[origin] = (first, last) if have is None else (min(have[0], first), max(have[1], last))


_ORIGIN_KEY = b',"origin":"'
_SEQ_KEY = b',"seq":'


def _position(raw: bytes) -> tuple[str, int] | None:
    """The (origin, seq) an event's bytes claim, without verifying anything; None if unreadable.

    Read straight from the bytes, without parsing them: in canonical bytes a quote inside a
    string is always escaped, so ``,"`` only ever starts an object key, and the envelope's keys
    are sorted (clock, kind, origin, payload, prev, seq, user, v, wall). Its ``origin`` is
    thus the first ``,"origin":"`` (nothing before the payload can hold another) and its
    ``seq`` the last ``,"seq":`` (nothing after the payload can). Bytes that are not canonical
    may be misread here, harmlessly: the claim only spares resending events the peer has,
    and the log verifies every event it is given.
    """
    i = raw.find(_ORIGIN_KEY)
    j = raw.rfind(_SEQ_KEY)
    if i < 0 or j < 0:
        return None
    origin = raw[i + len(_ORIGIN_KEY) : i + len(_ORIGIN_KEY) + 64]
    digits = raw[j + len(_SEQ_KEY) : j + len(_SEQ_KEY) + 20].split(b",", 1)[0]
    if len(origin) != 64 or origin.strip(b"0123456789abcdef") or not digits.isdigit():
        return None
    seq = int(digits)
    if seq < 1 or digits[0:1] == b"0":
        return None
    return origin.decode("ascii"), seq


class Session:
    """One anti-entropy conversation with one peer, without I/O (see the module docstring).

    ``node`` is this node's id (its Ed25519 public key, hex), ``version`` the software version
    and ``vv`` the log's version vector now. Call ``start`` once and send what it returns;
    then feed every received message to ``receive`` and carry out the actions, and call
    ``local_changed`` whenever the log gained events.
    """

    def __init__(
        self,
        *,
        node: str,
        version: str,
        vv: Mapping[str, tuple[int, int]],
        max_batch_items: int = MAX_ITEMS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self.node = node
        self.version = version
        self.local: VersionVector = dict(vv)
        self.peer_node: str | None = None
        self.peer_vv: VersionVector = {}  # a lower bound of what the peer holds
        self.state = "new"  # new -> started -> ready -> closed
        self._max_items = max_batch_items
        self._max_bytes = max_batch_bytes
        self._next_nonce = 1
        self._pings: dict[int, int] = {}  # nonce -> our wall_ms when sent

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def closed(self) -> bool:
        return self.state == "closed"

    # ---- what the shell calls

    def start(self) -> list[bytes]:
        """The opening messages (our hello)."""
        if self.state != "new":
            raise RuntimeError("Session.start() may be called once, first")
        self.state = "started"
        return [encode_message(HelloMsg(self.node, self.version, dict(self.local)))]

    def receive(self, data: bytes, now_ms: int) -> list[Action]:
        """Handle one message from the peer; raises ``SyncError`` for a bad one."""
        if self.state in ("new", "closed"):
            raise SyncError(f"message received in session state {self.state!r}")
        msg = decode_message(data)
        if self.state == "started" and not isinstance(msg, HelloMsg):
            raise SyncError(f"expected hello first, got {type(msg).__name__}")
        if self.state == "ready" and isinstance(msg, HelloMsg):
            raise SyncError("a second hello on one session")
        return self._dispatch(msg, now_ms)

    def local_changed(self, vv: Mapping[str, tuple[int, int]]) -> list[Action]:
        """The log now holds ``vv``: push the peer what it is not known to hold."""
        self.local = dict(vv)
        if not self.ready:
            return []
        return self._need(plan(self.local, self.peer_vv), push=True)

    def send_events(self, items: Sequence[Item], *, push: bool = False) -> list[bytes]:
        """Messages carrying ``items`` (read for a ``NeedRanges``), batched under the limits."""
        wrap = PushMsg if push else EventsMsg
        return [
            encode_message(wrap(tuple(batch)))
            for batch in batches(items, self._max_items, self._max_bytes)
        ]

    def resync(self) -> list[bytes]:
        """Periodic anti-entropy: tell the peer what we hold, so it sends what we lack."""
        if not self.ready:
            return []
        return [encode_message(VVMsg(dict(self.local)))]

    def recheck(self, origins: Iterable[str]) -> bytes:
        """A resync that claims none of ``origins``' events, so the peer sends all it holds
        of them: for an origin whose chain here and there parted below both heads (a fork
        neither vector shows), the events at the parting seq then meet in one log."""
        if not self.ready:
            raise RuntimeError("recheck only an established session (after the peer's hello)")
        skip = set(origins)
        return encode_message(VVMsg({o: r for o, r in self.local.items() if o not in skip}))

    def ping(self, now_ms: int) -> bytes:
        """A ping; its pong yields a ``Pong`` action with the clock offset."""
        if not self.ready:
            raise RuntimeError("ping only an established session (after the peer's hello)")
        nonce = self._next_nonce
        self._next_nonce += 1
        self._pings[nonce] = now_ms
        while len(self._pings) > MAX_OUTSTANDING_PINGS:
            del self._pings[next(iter(self._pings))]
        return encode_message(PingMsg(nonce, now_ms))

    def bye(self) -> bytes:
        """Our goodbye; the session is over."""
        self.state = "closed"
        return encode_message(ByeMsg())

    # ---- handlers

    def _dispatch(self, msg: Message, now_ms: int) -> list[Action]:
        match msg:
            case HelloMsg():
                return self._on_hello(msg)
            case VVMsg(vv):
                self.peer_vv = dict(vv)
                return self._need(plan(self.local, self.peer_vv), push=False)
            case EventsMsg(items) | PushMsg(items):
                self._note_received(items)
                return [Ingest(items, pushed=isinstance(msg, PushMsg))]
            case PingMsg(nonce, wall_ms):
                return [Send(encode_message(PongMsg(nonce, wall_ms, now_ms)))]
            case PongMsg():
                return self._on_pong(msg, now_ms)
            case ByeMsg():
                self.state = "closed"
                return [Closed("the peer ended the session")]
        raise TypeError(f"not a sync message: {msg!r}")  # pragma: no cover

    def _on_hello(self, msg: HelloMsg) -> list[Action]:
        if msg.version != self.version:
            mismatch = PeerVersionMismatch(msg.node, self.version, msg.version)
            return [mismatch, Send(self.bye())]
        if msg.node == self.node:
            raise SyncError("the peer claims to be this node (a link to itself?)")
        self.peer_node = msg.node
        self.peer_vv = dict(msg.vv)
        self.state = "ready"
        return [Ready(msg.node), *self._need(plan(self.local, self.peer_vv), push=False)]

    def _on_pong(self, msg: PongMsg, now_ms: int) -> list[Action]:
        sent = self._pings.pop(msg.nonce, None)
        if sent is None:
            return []  # a late answer to a ping we no longer track
        if sent != msg.wall_ms_echo:
            raise SyncError("pong echoes a time that its ping did not carry")
        rtt = max(0, now_ms - sent)
        return [Pong(offset_ms=msg.wall_ms - (sent + now_ms) // 2, rtt_ms=rtt)]

    def _need(self, ranges: list[Range], *, push: bool) -> list[Action]:
        """Ask the shell for ``ranges``, and count them as the peer's from now on."""
        if not ranges:
            return []
        for r in ranges:
            _extend(self.peer_vv, r.origin, r.first, r.last)
        return [NeedRanges(tuple(ranges), push=push)]

    def _note_received(self, items: Sequence[Item]) -> None:
        """Events the peer sent us are events it holds: never send them back."""
        for raw, _sig in items:
            pos = _position(raw)
            if pos is not None:
                _extend(self.peer_vv, pos[0], pos[1], pos[1])
