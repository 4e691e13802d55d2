"""The planner: what to send a peer is a pure function of two version vectors (``plan``),
cut into groups a reader can hold (``chunk_ranges``) and batches a message can carry
(``batches``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from evstore.core.sync.messages import MAX_BATCH_BYTES, MAX_ITEMS, Item


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
