"""A home restored from an old copy: finding out before writing, and recovering from a fork.

Theory of operation
-------------------
A machine numbers its own events 1, 2, 3… Restore its home from last week's copy and it would
number its next event like one it already sent last week: two different signed events at one
``(origin, seq)``, a fork of its own log (PITFALLS 5). Nothing local can tell; its peers can.

**Self-check.** Before a mesh link carries anything, each side tells the other its own head
``(seq, id)`` and answers with what it holds of the other's origin: its head of it and the id
it holds at the other's head seq (``check`` messages, docs/protocol.md). ``verdict`` turns
that into one of three answers for the machine's own origin:

* ``ok``: the peer holds nothing of ours that we lack, and agrees on the ids it holds;
* ``behind``: the peer holds more of our own events than we do: we were restored. The node
  marks the home (``needs_selfsync``) so local writes are refused, lets anti-entropy bring our
  own events back, and clears the mark once its head reaches what the peers reported;
* ``fork``: the peer holds a different event at a seq we also used: we wrote while restored.
  The node keeps the mark, hides its own origin from its version vector (so its losing branch
  never leaves and the peers send it the cluster's branch, which the log records as fork
  evidence) and raises an alert. ``clusterconfig rekey`` recovers.

**Rekey.** The losing branch is this origin's events after the longest prefix a member also
holds (found by bisection over the member's ids). ``adopt_branch`` replaces it, in one
transaction, by the member's events, keeps the losing ones as fork evidence (or ``rejected``
past the member's head), and rebuilds the views; ``reissue`` then signs the losing changes
again under the fresh key, so nothing acknowledged is lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import nacl.signing

from evstore.core.errors import EncodingError, OperationalError, VerificationError
from evstore.core.events import Event, parse
from evstore.core.sync import Item
from evstore.ops.cluster import rebuild_views
from evstore.ops.node import Node, now_ms
from evstore.storage import nodetable, notify
from evstore.storage.connect import transaction
from evstore.storage.log import ANCHOR_KINDS, EventLog

__all__ = [
    "BEHIND",
    "FORK",
    "OK",
    "adopt_branch",
    "clear_mark",
    "head_of",
    "id_at",
    "keep_as_evidence",
    "mark",
    "other_branch",
    "own_fork",
    "read_mark",
    "reissue",
    "rekey_proof_message",
    "unfit_member",
    "verdict",
]

OK, BEHIND, FORK = "ok", "behind", "fork"
MARK_KEY = "needs_selfsync"
REKEY_CONTEXT = b"evstore/rekey/v1\x00"


def verdict(
    sent: tuple[int, str],
    my_id_at: Callable[[int], str | None],
    theirs: tuple[int, str],
    at: str | None,
    head: int,
) -> str:
    """Compare what a peer holds of my origin with my own log (see the module docstring).

    ``sent`` is the head ``(h, id)`` I told the peer and ``at`` the id the peer holds at seq
    ``h`` (None when it holds none there); ``theirs`` is the peer's head of my origin
    ``(n, id)``; ``head`` my head now (it may have moved since I sent ``sent``).
    """
    h, sent_id = sent
    n, their_id = theirs
    if h and at is not None and at != sent_id:
        return FORK
    if n > 0 and my_id_at(n) not in (None, their_id):
        return FORK
    return BEHIND if n > head else OK


# ---------------------------------------------------------------------- reads (DB thread)


def head_of(log: EventLog, origin: str) -> tuple[int, str]:
    """The newest event of ``origin`` held here, as ``(seq, id)``; ``(0, "")`` for none."""
    return log.head(origin)


def id_at(log: EventLog, origin: str, seq: int) -> str | None:
    return None if seq <= 0 else log.id_at(origin, seq)


def read_mark(node: Node) -> tuple[str, str] | None:
    """``(state, origin)`` when the home must catch up with itself first, else None."""
    value = nodetable.get(node.conn, MARK_KEY)
    if value is None:
        return None
    state, _, origin = str(value).partition(" ")
    return state, origin


def mark(node: Node, state: str, origin: str) -> None:
    with transaction(node.conn):
        nodetable.put(node.conn, MARK_KEY, f"{state} {origin}")


def clear_mark(node: Node) -> None:
    with transaction(node.conn):
        nodetable.delete(node.conn, MARK_KEY)


# ---------------------------------------------------------------------- rekey


def rekey_proof_message(handshake_hash: bytes, old_key: str, new_key: str) -> bytes:
    """What the new key signs: it is held by the machine on this very link."""
    return REKEY_CONTEXT + handshake_hash + bytes.fromhex(old_key) + bytes.fromhex(new_key)


WINS, LOSES, UNKNOWN = "wins", "loses", "unknown"


def own_fork(node: Node, origin: str, theirs: Sequence[Item] = ()
             ) -> tuple[str, Event | None] | None:
    """Which branch of this home's own fork every node will keep, or None when the home is
    not marked forked: ``(WINS, other)`` when this home's branch stays (the settling rule
    keeps the earlier event, in the one total order, where the branches part: ``EventLog``),
    ``(LOSES, other)`` when the other one does, ``other`` being that branch's event where they
    part; ``(UNKNOWN, None)`` while no event of the other branch is known here. The other
    branch is known from the fork evidence in this home's log, or from ``theirs``: a member's
    events of ``origin`` (each verified here) of which the first that differs from this
    home's counts as evidence too.
    """
    marked = read_mark(node)
    if marked is None or marked[0] != FORK:
        return None
    pairs = [(f.applied, f.forked) for f in node.log.forks() if f.origin == origin]
    for ev in _verified(theirs, origin):
        mine = node.log.get(id_at(node.log, origin, ev.seq) or "")
        if mine is not None and mine.id != ev.id:
            pairs.append((mine, ev))
            break
    if not pairs:
        return UNKNOWN, None
    ours, other = min(pairs, key=lambda p: p[1].seq)
    return (LOSES if other.order_key < ours.order_key else WINS), other


def unfit_member(fork: tuple[str, Event | None] | None) -> str | None:
    """Why a member that holds all of this home's chain as the home has it cannot be the one
    a rekey goes through, given ``own_fork``; None when it can.

    Such a member leaves nothing of this home's to issue again. That is right when this
    home's branch is the one every node keeps, and wrong when it is the later one: the member
    has not seen the original branch yet, and when it does it drops this home's, whose
    changes no one would then issue again. Without evidence, nothing can be decided yet.
    """
    if fork is None or fork[0] == WINS:
        return None
    if fork[0] == UNKNOWN or fork[1] is None:
        return ("the other branch of this machine's fork has not reached it yet, so the member "
                "cannot be checked")
    return (f"it holds this machine's later branch (from seq {fork[1].seq}) and has not seen "
            "the original one yet")


def other_branch(start: Event, candidates: Sequence[Item]) -> list[Event]:
    """The other branch of a fork, from its event ``start`` where the branches part, as far
    as ``candidates`` (events of any source, each verified here) continue it by ``prev``."""
    by_prev: dict[str, Event] = {}
    for ev in _verified(candidates, start.origin):
        if ev.prev is not None:
            by_prev.setdefault(ev.prev, ev)
    out = [start]
    while out[-1].id in by_prev:
        out.append(by_prev[out[-1].id])
    return out


def _verified(items: Sequence[Item], origin: str) -> Iterator[Event]:
    """The events of ``origin`` among ``items`` whose bytes and signature hold (others skipped:
    they come from a member, and one bad event must not stop a recovery)."""
    for raw, sig in items:
        try:
            ev = parse(raw, sig)
        except (EncodingError, VerificationError):
            continue
        if ev.origin == origin:
            yield ev


def adopt_branch(node: Node, origin: str, prefix: int, originals: Sequence[Item]) -> list[Event]:
    """Replace ``origin``'s events after seq ``prefix`` by a member's; return the losing ones.

    One transaction: the losing events leave ``events`` (kept as fork evidence beside the
    member's event at the same seq, or in ``rejected`` past the member's head), the member's
    events are ingested, and the views are rebuilt.
    """
    log = node.log
    with transaction(node.conn):
        losing = log.read_range(origin, prefix + 1, 1 << 62)
        log.drop_after(origin, prefix)
        result = log.ingest(originals, now_ms=now_ms())
        if result.rejected:
            raise OperationalError(
                f"the member's events do not apply here: {result.rejected[0].reason}; "
                "try another member"
            )
        for ev in losing:
            _keep_as_evidence(node, ev)
        rebuild_views(node)
    notify.announce(node.home)  # after COMMIT: watchers and the node read the new branch
    return losing


def keep_as_evidence(node: Node, evs: Sequence[Event]) -> None:
    """Keep events of another branch of a fork beside this log's (inside a transaction)."""
    for ev in evs:
        if node.log.get(ev.id) is None:
            _keep_as_evidence(node, ev)


def _keep_as_evidence(node: Node, ev: Event) -> None:
    node.log.keep_as_evidence(ev, reason="losing branch of a fork: issued again under a new key",
                              now_ms=now_ms())


def reissue(node: Node, key: nacl.signing.SigningKey, losing: Sequence[Event]) -> list[Event]:
    """Sign the losing branch's changes again under ``key``, as new events, oldest first.

    Anchors (init, create, join, rekey, standalone) belong to the old key's chain and are
    not repeated; everything else (commits, group and machine operations, admits) is.
    """
    out = []
    for ev in losing:
        if ev.kind in ANCHOR_KINDS:
            continue
        payload: dict[str, Any] = json.loads(json.dumps(ev.payload))
        out.append(node.log.append(key, user=ev.user, kind=ev.kind, payload=payload,
                                   now_ms=now_ms()))
    return out
