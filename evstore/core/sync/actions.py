"""What a ``Session`` asks its shell to do: send bytes, ingest events, read ranges of the
log, report a peer's version, clock or goodbye.
"""

from __future__ import annotations

from dataclasses import dataclass

from evstore.core.sync.messages import Item
from evstore.core.sync.planner import Range


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
