"""The sans-I/O session (h11's ``Connection`` shape): bytes and the current time go in,
bytes to send and actions come out; it never reads the log itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from evstore.core.sync.actions import (
    Action,
    Closed,
    Ingest,
    NeedRanges,
    PeerVersionMismatch,
    Pong,
    Ready,
    Send,
)
from evstore.core.sync.codec import decode_message, encode_message
from evstore.core.sync.messages import (
    MAX_BATCH_BYTES,
    MAX_ITEMS,
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
from evstore.core.sync.planner import Range, batches, plan

MAX_OUTSTANDING_PINGS: Final = 8


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
