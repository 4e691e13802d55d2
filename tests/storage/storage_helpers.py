"""Helpers for the storage tests: deterministic keys and correctly chained events.

A module of its own (not conftest) so test files can import it by a unique name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import nacl.signing

from evstore.core import clock, events
from evstore.core.events import Event

T0 = 1767225600000  # 2026-01-01T00:00:00Z, the tests' "now"


def key_of(name: str) -> nacl.signing.SigningKey:
    """A deterministic signing key per name: no os.urandom in tests."""
    return nacl.signing.SigningKey(hashlib.sha256(name.encode()).digest())


def make_chain(
    key: nacl.signing.SigningKey,
    n: int,
    *,
    kinds: dict[int, str] | None = None,
    t0: int = T0,
    step_ms: int = 10,
    payload: Callable[[int], dict[str, Any]] | None = None,
) -> list[Event]:
    """Events 1..n of one origin, correctly chained; ``kinds`` overrides the kind per seq."""
    out: list[Event] = []
    prev = None
    for seq in range(1, n + 1):
        kind = (kinds or {}).get(seq, "node.init" if seq == 1 else "config.commit")
        ev = events.create(
            key, seq=seq, prev=prev, clock=clock.pack(t0 + seq * step_ms), wall=t0 + seq * step_ms,
            user="admin", kind=kind, payload=payload(seq) if payload else {"n": seq},
        )
        out.append(ev)
        prev = ev.id
    return out


def wire(evs: list[Event]) -> list[tuple[bytes, bytes]]:
    return [(e.raw, e.sig) for e in evs]
