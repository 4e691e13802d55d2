"""Where an event goes in its origin's chain, pure: the log's placement rule.

Theory of operation
-------------------
Each origin numbers its events 1, 2, 3… and each names the one before it (``prev``). A log
that receives an event looks at two positions of that origin's chain: the event's own seq
(what is applied there, if anything) and the seq before it. From those alone:

* ``DUPLICATE``: this very event is applied already;
* ``FORK``: another event is applied at its seq: two signed events at one position, kept as
  evidence (which of them stays is the log's settling rule, not this one);
* ``APPEND``: it continues the chain (seq 1, its predecessor applied and named by ``prev``,
  or an anchor that starts a chain of its own after a gap);
* ``GAP``: its predecessor is not here yet: it waits;
* ``BROKEN``: its predecessor is applied but ``prev`` names another event: never applied.

The SQLite log (evstore/storage/log.py) and the simulator's in-memory log
(tests/sim/des.py) both decide with ``place``, so they cannot drift apart.
"""

from __future__ import annotations

import enum

__all__ = ["Outcome", "chain", "place"]


class Outcome(enum.Enum):
    DUPLICATE = "duplicate"
    FORK = "fork"
    APPEND = "append"
    GAP = "gap"
    BROKEN = "broken"


def chain(seq: int, prev: str | None, pred: str | None, *, anchor: bool = False) -> Outcome:
    """How an event at ``seq`` naming ``prev`` joins its chain, given the id applied at
    ``seq - 1`` (``pred``, None: nothing); ``anchor``: it may start a chain after a gap."""
    if seq == 1:
        return Outcome.APPEND
    if pred is None:
        return Outcome.APPEND if anchor else Outcome.GAP
    return Outcome.APPEND if pred == prev else Outcome.BROKEN


def place(event_id: str, seq: int, prev: str | None, taken: str | None, pred: str | None, *,
          anchor: bool = False) -> Outcome:
    """Where an event goes, given the id applied at its seq (``taken``) and at the seq
    before (``pred``); None for a position that holds nothing."""
    if taken is not None:
        return Outcome.DUPLICATE if taken == event_id else Outcome.FORK
    return chain(seq, prev, pred, anchor=anchor)
