"""What the event log gives back, and how a stored row becomes an ``Event`` again.

The results of a write (``IngestResult``, ``Rejected``), the side tables' records
(``HeldEvent``, ``ForkEvidence``), the anchor rule (``is_anchor``) and the caps on what one
origin may park here. Every module of the log (evstore/storage/log.py and the modules it is
made of) reads these; none of them reads the others' tables through here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evstore.core import events
from evstore.core.errors import VerificationError
from evstore.core.events import Event

ANCHOR_KINDS = frozenset(
    {"node.init", "cluster.create", "cluster.join", "node.rekey", "node.standalone"}
)

# Caps on what one origin (and everyone together) may park here (issue 15, item 6): a member
# could otherwise fill the disk with events stamped far ahead (``held``) or above a gap it
# never fills (``pending``). An event past a cap is refused, not stored: anti-entropy offers
# it again once there is room (the version vector still lacks it), so nothing is lost.
MAX_HELD_PER_ORIGIN = 1_000
MAX_PENDING_PER_ORIGIN = 50_000
MAX_PENDING_TOTAL = 200_000
# ``rejected`` keeps validly signed events of non-members as evidence (and a fork's losing
# branch, uncapped); past these caps a non-member's event is still refused but not kept.
MAX_REJECTED_PER_ORIGIN = 1_000
MAX_REJECTED_TOTAL = 20_000

EVENT_COLS = "id, origin, seq, prev, clock, wall, user, kind, raw, sig"
HWM = (
    "MAX(COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'hlc_hwm'), 0), "
    "COALESCE((SELECT MAX(clock) FROM events), 0))"
)
"""The clock's high-water mark: its floor in ``meta`` or the highest clock applied."""

# Where an event comes from when it is placed; also the table it leaves when it moves on.
NEW, PENDING, HELD = "new", "pending", "held"
REJECTED = "rejected"


def is_anchor(event: Event) -> bool:
    """May ``event`` start its origin's chain here, without its predecessor?"""
    return event.seq == 1 or event.kind in ANCHOR_KINDS


@dataclass(frozen=True)
class Rejected:
    """An event refused by ``ingest``; nothing of it was applied."""

    id: str
    reason: str
    origin: str | None = None
    seq: int | None = None


@dataclass
class IngestResult:
    """What one ``ingest`` (or ``release_held``) call did with each event it saw."""

    applied: list[Event] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    forks: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    rewound: list[str] = field(default_factory=list)  # applied here once, now fork evidence
    # Origins one of whose events named as its predecessor another event than the one applied
    # here: the author signed two events at one seq below it, a fork this node has not seen.
    diverged: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "applied": len(self.applied),
            "duplicates": len(self.duplicates),
            "pending": len(self.pending),
            "held": len(self.held),
            "forks": len(self.forks),
            "rejected": len(self.rejected),
            "rewound": len(self.rewound),
        }


@dataclass(frozen=True)
class HeldEvent:
    """An event waiting for local time to reach its clock."""

    event: Event
    received_at: int
    reason: str


@dataclass(frozen=True)
class ForkEvidence:
    """Two different signed events by one origin at one seq: the applied one and the other."""

    origin: str
    seq: int
    applied: Event
    forked: Event
    detected_at: int


def trusted(event_id: str, raw: bytes, sig: bytes) -> Event:
    """Rebuild an event that was verified before it was stored (no signature check)."""
    return events.trusted(raw, sig, event_id)


def verified(row: tuple[Any, ...]) -> Event:
    """Re-verify a stored event: signature, id and every column derived from its bytes."""
    event_id, origin, seq, prev, clk, wall, user, kind, raw, sig = row
    event = events.parse(raw, sig)
    stored = (event_id, origin, seq, prev, clk, wall, user, kind)
    derived = (event.id, event.origin, event.seq, event.prev, event.clock, event.wall,
               event.user, event.kind)
    if stored != derived:
        raise VerificationError(
            f"altered event {event_id[:16]}…: its stored columns do not match its signed bytes"
        )
    return event


def from_row(row: tuple[Any, ...], verify: bool) -> Event:
    """An ``EVENT_COLS`` row as an event, re-verified when ``verify``."""
    return verified(row) if verify else trusted(row[0], row[8], row[9])
