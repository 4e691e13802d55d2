"""Batches checked on several threads give exactly what checking one by one gives."""

from __future__ import annotations

import random
from typing import Any

from storage_helpers import T0, key_of, make_chain, wire

from evstore.core import events
from evstore.core.errors import InvalidInput
from evstore.core.events import Event
from evstore.storage import checking
from evstore.storage.log import EventLog

B, C = key_of("checking-b"), key_of("checking-c")


def _spoiled(chain: list[Event], rng: random.Random) -> tuple[list[Any], set[int]]:
    """The chain's items with some spoiled in each way, spread over many chunks."""
    items: list[Any] = wire(chain)
    bad: set[int] = set()
    for i in rng.sample(range(len(items)), 12):
        raw, sig = items[i]
        how = i % 4
        if how == 0:
            items[i] = (raw, bytes([sig[0] ^ 1]) + sig[1:])  # forged signature
        elif how == 1:
            items[i] = (raw.replace(b'"user":"admin"', b'"user":"admiN"'), sig)  # altered
        elif how == 2:
            items[i] = (b"{not json", sig)
        else:
            items[i] = ("text", sig)  # not bytes
        bad.add(i)
    return items, bad


def test_a_large_batch_is_checked_in_parallel_like_one_by_one() -> None:
    chain = make_chain(B, 5 * checking.CHUNK + 7)
    items, bad = _spoiled(chain, random.Random(7))
    parallel = list(checking.check_all(items))
    serial = [checking.check_one(raw, sig) for raw, sig in items]
    assert len(parallel) == len(items)
    for i, (p, s) in enumerate(zip(parallel, serial, strict=True)):
        if i in bad:
            assert isinstance(p, InvalidInput) and str(p) == str(s)
        else:
            assert isinstance(p, Event) and p == s == chain[i]


def test_check_one_agrees_with_parse() -> None:
    ev = make_chain(C, 1)[0]
    assert checking.check_one(ev.raw, ev.sig) == events.parse(ev.raw, ev.sig)


def test_ingest_of_a_large_spoiled_batch_applies_exactly_the_good_prefix(log: EventLog) -> None:
    chain = make_chain(B, 4 * checking.CHUNK)
    items, bad = _spoiled(chain, random.Random(11))
    result = log.ingest(items, now_ms=T0)
    first_bad = min(bad)
    # events after the first spoiled one wait for their missing predecessor
    assert [e.id for e in result.applied] == [e.id for e in chain[:first_bad]]
    assert len(result.rejected) == len(bad)
    assert log.version_vector() == {chain[0].origin: first_bad}
    # the good originals of the spoiled ones fill the gaps: the whole chain applies
    log.ingest([(chain[i].raw, chain[i].sig) for i in sorted(bad)], now_ms=T0)
    assert log.version_vector() == {chain[0].origin: len(chain)}
