"""Hybrid logical clock (HLC) arithmetic, packed into one integer.

A clock value is ``(wall_ms << 16) | counter``: the high bits follow wall time in
milliseconds when clocks are sane, the low 16 bits order events within one millisecond, so
"most recent" matches wall time while the order stays causal. The node persists its
high-water mark so the clock never goes backwards across restarts (docs/design.md).

Rules (``now_ms`` is passed in; the core never reads the clock):
* tick (local event): ``max(last + 1, now_ms << 16)``
* observe (remote event with clock ``c``): ``last = max(last, c)``; the next tick is after it.
* an event stamped more than ``max_offset_ms`` ahead of ``now_ms`` is held back, not applied,
  until local time reaches it (refusing it would make replicas with different clocks diverge).
"""

from __future__ import annotations

COUNTER_BITS = 16
COUNTER_MASK = (1 << COUNTER_BITS) - 1
DEFAULT_MAX_OFFSET_MS = 60_000


def pack(wall_ms: int, counter: int = 0) -> int:
    return (wall_ms << COUNTER_BITS) | (counter & COUNTER_MASK)


def wall_ms_of(clock: int) -> int:
    return clock >> COUNTER_BITS


def tick(last: int, now_ms: int) -> int:
    """The clock of a new local event, after ``last``."""
    return max(last + 1, pack(now_ms))


def observe(last: int, remote: int) -> int:
    """The high-water mark after seeing a remote clock value."""
    return max(last, remote)


def too_far_ahead(clock: int, now_ms: int, max_offset_ms: int = DEFAULT_MAX_OFFSET_MS) -> bool:
    """True when ``clock`` lies more than ``max_offset_ms`` ahead of ``now_ms``."""
    return wall_ms_of(clock) > now_ms + max_offset_ms
