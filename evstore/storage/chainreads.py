"""Reads of the chain tables that the serving node makes outside the log's own writing:
``anchors`` (each origin's contiguous chain held here) and ``forks`` (the other event found at
a position of a chain, kept as evidence).

evstore/net/node.py asks which origins have a chain here (the keys that have spoken, which
decides who may link); evstore/net/gossip.py sends the fork evidence, both events of each
fork, so that peers holding different branches of equal length find the fork.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["ForkPair", "fork_pairs", "origins"]

_PAIRS = ("SELECT f.raw, f.sig, e.raw, e.sig, f.origin, f.seq FROM forks AS f JOIN events AS e "
          "ON e.id = f.applied_id")


class ForkPair(NamedTuple):
    """One fork: the event set aside (``other``) and the one applied at its position (``kept``)."""

    other_raw: bytes
    other_sig: bytes
    kept_raw: bytes
    kept_sig: bytes
    origin: str
    seq: int


def origins(conn: sqlite3.Connection) -> frozenset[str]:
    """Every origin with a chain here (an ``anchors`` row)."""
    return frozenset(r[0] for r in conn.execute("SELECT origin FROM anchors"))


def fork_pairs(conn: sqlite3.Connection, fork_ids: Sequence[str] | None = None) -> list[ForkPair]:
    """The forks with these ids, in that order (every fork held, for None: by position)."""
    if fork_ids is None:
        rows = conn.execute(_PAIRS + " ORDER BY f.origin, f.seq, f.id").fetchall()
    else:
        rows = [row for fid in fork_ids
                for row in conn.execute(_PAIRS + " WHERE f.id = ?", (fid,)).fetchall()]
    return [ForkPair(*r) for r in rows]
