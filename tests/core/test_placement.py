"""The placement rule (evstore/core/placement.py), table-driven: every outcome, from the two
positions of the chain it looks at."""

from __future__ import annotations

import pytest

from evstore.core.placement import Outcome, chain, place

CASES = [
    # (what, event id, seq, prev, applied at seq, applied at seq-1, anchor, outcome)
    ("the same event again", "e2", 2, "e1", "e2", "e1", False, Outcome.DUPLICATE),
    ("another event at an applied seq", "x2", 2, "e1", "e2", "e1", False, Outcome.FORK),
    ("a fork even when its prev is wrong", "x2", 2, "zz", "e2", "e1", False, Outcome.FORK),
    ("the first event", "e1", 1, None, None, None, False, Outcome.APPEND),
    ("the next event", "e2", 2, "e1", None, "e1", False, Outcome.APPEND),
    ("its predecessor missing", "e3", 3, "e2", None, None, False, Outcome.GAP),
    ("an anchor after a gap", "e3", 3, "e2", None, None, True, Outcome.APPEND),
    ("prev names another event", "e3", 3, "x2", None, "e2", False, Outcome.BROKEN),
    ("an anchor cannot mend a wrong prev", "e3", 3, "x2", None, "e2", True, Outcome.BROKEN),
]


@pytest.mark.parametrize("what,eid,seq,prev,taken,pred,anchor,outcome", CASES,
                         ids=[c[0] for c in CASES])
def test_place(what: str, eid: str, seq: int, prev: str | None, taken: str | None,
               pred: str | None, anchor: bool, outcome: Outcome) -> None:
    assert place(eid, seq, prev, taken, pred, anchor=anchor) is outcome
    if taken is None:
        assert chain(seq, prev, pred, anchor=anchor) is outcome
