"""What goes over a link: the messages, the two shapes of what they carry (a version vector,
events as bytes and signature), the limits, and ``SyncError``, a peer's broken protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from evstore.core.errors import InvalidInput

VersionVector = dict[str, tuple[int, int]]
"""``{origin_hex: (first_seq, last_seq)}``: the contiguous run of each origin held."""

Item = tuple[bytes, bytes]
"""One event on the wire: its canonical bytes and its signature."""

MAX_MESSAGE_BYTES: Final = 4 * 1024 * 1024
MAX_ITEMS: Final = 500
MAX_BATCH_BYTES: Final = 1024 * 1024
MAX_ORIGINS: Final = 10_000
MAX_VERSION_CHARS: Final = 64
SIG_BYTES: Final = 64


class SyncError(InvalidInput):
    """A peer broke the anti-entropy protocol: drop that link, and only that link."""


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
