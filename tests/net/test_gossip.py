"""The gossip shell's log access: fork evidence, every fork or only the new ones, never what
may not leave this machine."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nacl.signing
import trio

from evstore.core import clock, events
from evstore.core.events import Event
from evstore.net.gossip import InlineLog
from evstore.storage.connect import open_db
from evstore.storage.log import EventLog

T0 = 1767225600000


def _key(name: str) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(hashlib.sha256(name.encode()).digest())


def _event(key: nacl.signing.SigningKey, seq: int, prev: str | None, tag: str) -> Event:
    return events.create(key, seq=seq, prev=prev, clock=clock.pack(T0 + seq), wall=T0 + seq,
                         user="admin", kind="config.commit", payload={"tag": tag})


def _forked_log(tmp_path: Path) -> tuple[EventLog, dict[str, tuple[Event, Event]]]:
    """Two origins, each with a fork at seq 2 (the rival kept as evidence)."""
    log = EventLog(open_db(tmp_path / "log.db"))
    forks = {}
    for name in ("alpha", "bravo"):
        key = _key(name)
        first = _event(key, 1, None, "first")
        kept, rival = _event(key, 2, first.id, "kept"), _event(key, 2, first.id, "rival")
        log.ingest([(e.raw, e.sig) for e in (first, kept)], now_ms=T0 + 10)
        assert log.ingest([(rival.raw, rival.sig)], now_ms=T0 + 10).forks == [rival.id]
        forks[kept.origin] = (kept, rival)
    return log, forks


def test_every_fork_goes_as_both_events_and_nothing_below_a_floor(tmp_path: Path) -> None:
    log, forks = _forked_log(tmp_path)
    alpha, bravo = sorted(forks)

    def evidence(floors: dict[str, int]) -> list[tuple[bytes, bytes]]:
        return trio.run(InlineLog(log, floors=floors).all_evidence)

    pairs = {o: [(e.raw, e.sig) for e in forks[o]] for o in forks}
    assert evidence({}) == pairs[alpha] + pairs[bravo]  # the kept one first, then the rival
    assert evidence({bravo: 3}) == pairs[alpha]  # bravo's seq 2 may not leave this machine
    assert InlineLog(log).take_evidence() == []  # only what ingests found since the last call
