"""A machine restored from an old copy of its home, both ways (PITFALLS 5).

* reconnected before writing: its node finds itself behind on its own events, refuses local
  writes until it has them back, and then writes on: no fork, no lost event;
* written while cut off: its own log forks; the fork is found on reconnect and reported, its
  losing branch never leaves, local writes are refused, and ``clusterconfig rekey`` recovers:
  a fresh key announced through a member, the losing changes issued again, nothing lost.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nacl.signing
import pytest
import trio

from evstore.core import events
from evstore.core.errors import OperationalError
from evstore.net import client, restore
from evstore.net.restore import BEHIND, FORK, OK, verdict
from evstore.ops import check, settings, verify
from evstore.ops.node import Node, now_ms
from tests.net.cluster_helpers import (
    Box,
    commit,
    commit_now,
    db,
    holds,
    on,
    running_cluster,
    same_digest,
    start,
    stop,
    wait_until,
)


def test_verdict_table() -> None:
    ids = {1: "a" * 64, 2: "b" * 64, 3: "c" * 64}
    mine = ids.get
    assert verdict((3, ids[3]), mine, (3, ids[3]), ids[3], 3) == OK
    assert verdict((3, ids[3]), mine, (2, ids[2]), None, 3) == OK  # the peer is behind
    restored = {1: ids[1], 2: ids[2]}.get  # an older copy: no seq 3 here
    assert verdict((2, ids[2]), restored, (3, "d" * 64), ids[2], 2) == BEHIND
    assert verdict((3, ids[3]), mine, (3, "d" * 64), "d" * 64, 3) == FORK  # wrote while restored
    assert verdict((3, ids[3]), mine, (5, "e" * 64), "d" * 64, 3) == FORK  # and the peer has more
    assert verdict((3, ids[3]), mine, (2, "f" * 64), None, 3) == FORK  # a different seq 2
    assert verdict((0, ""), mine, (0, ""), None, 0) == OK


def test_other_branch_follows_prev_links_through_any_source() -> None:
    key = nacl.signing.SigningKey(b"k" * 32)
    stranger = nacl.signing.SigningKey(b"s" * 32)

    def ev(k: nacl.signing.SigningKey, seq: int, prev: str, tag: str) -> events.Event:
        return events.create(k, seq=seq, prev=prev, clock=seq << 16, wall=seq, user="admin",
                             kind="config.commit", payload={"tag": tag})

    start = ev(key, 3, "a" * 64, "other")
    nxt = ev(key, 4, start.id, "next")
    last = ev(key, 5, nxt.id, "last")
    ours = ev(key, 4, "b" * 64, "ours")  # another branch: not followed
    alien = ev(stranger, 4, start.id, "alien")  # another origin: not followed
    forged = (ev(key, 6, last.id, "forged").raw, b"\0" * 64)  # does not verify: dropped
    items = [(e.raw, e.sig) for e in (last, ours, alien, nxt)] + [forged]
    assert [e.id for e in restore.other_branch(start, items)] == [start.id, nxt.id, last.id]


def _copy(box: Box, to: Path) -> None:
    shutil.copytree(box.home, to)


def _restore(box: Box, old: Path) -> None:
    shutil.rmtree(box.home)
    shutil.copytree(old, box.home)


def _value(box: Box, section: str) -> object:
    return on(box.home, lambda n: n.store.section_value("cluster", section))


async def _history(a: Box, b: Box, old: Path) -> list[str]:
    """b commits once, is copied, commits twice more; then b is stopped and restored."""
    first = await commit(b, "dns", {"servers": ["10.0.0.1"]})
    await wait_until("first on a", lambda: holds(a.home, first), 3)
    await stop(b)
    _copy(b, old)
    async with trio.open_nursery() as nursery:
        await start(nursery, b)
        later = [await commit(b, "ntp", {"servers": ["ntp.later"]}),
                 await commit(b, "timezone", {"zone": "Asia/Tokyo"})]
        await wait_until("later ones on a", lambda: all(holds(a.home, x) for x in later), 3)
        await stop(b)
    _restore(b, old)
    return [first, *later]


def _by_old_key(member: Box, rekeyed: Box, ntp: dict[str, object]) -> tuple[bytes, bytes]:
    """A commit signed with the key ``rekeyed`` had before its rekey, next in that key's
    chain as ``member`` holds it."""
    (old_file,) = rekeyed.home.glob("host.key.replaced-*")
    old = nacl.signing.SigningKey(old_file.read_bytes())
    origin = old.verify_key.encode().hex()
    seq, prev = on(member.home, lambda n: restore.head_of(n.log, origin))
    hwm = on(member.home, lambda n: n.log.hlc_hwm())
    ev = events.create(old, seq=seq + 1, prev=prev, clock=hwm + 1, wall=now_ms(), user="admin",
                       kind="config.commit", payload={"comment": "", "changes": [
                           {"mode": "cluster", "section": "ntp", "op": "define", "base": None,
                            "value": ntp}]})
    return ev.raw, ev.sig


async def test_restored_then_reconnected_before_writing_catches_up(tmp_path: Path) -> None:
    async with running_cluster(tmp_path, ("a", "b")) as (a, b):
        acked = await _history(a, b, tmp_path / "old-b")
        assert not holds(b.home, acked[-1])  # the copy predates them
        async with trio.open_nursery() as nursery:
            await start(nursery, b)
            await wait_until("b has its own events back",
                             lambda: all(holds(b.home, x) for x in acked), 5)
            await wait_until("the mark cleared",
                             lambda: on(b.home, lambda n: n.status()["selfsync"]) is None, 5)
            after = await commit(b, "ldap", {"servers": [{"name": "s1", "host": "ldap.x"}]})
            await wait_until("b's next write on a", lambda: holds(a.home, after), 3)
            assert on(a.home, lambda n: n.log.forks()) == []
            assert on(b.home, lambda n: n.log.forks()) == []
            await wait_until("same state", same_digest(a, b), 3)
            await stop(b)


def test_a_marked_home_refuses_local_writes(tmp_path: Path) -> None:
    from tests.net.cluster_helpers import make_box

    box = make_box(tmp_path, "solo")

    def attempt(state: str) -> None:
        with pytest.raises(OperationalError, match="rekey" if state == FORK else "caught up"):
            on(box.home, lambda n: (restore.mark(n, state, n.origin),
                                    commit_now(n, "ntp", {"servers": ["x"]}, "machine:solo")))

    attempt(BEHIND)
    attempt(FORK)
    on(box.home, restore.clear_mark)
    on(box.home, lambda n: commit_now(n, "ntp", {"servers": ["x"]}, "machine:solo"))


async def test_restored_and_written_while_cut_off_forks_then_rekey_recovers(
    tmp_path: Path,
) -> None:
    async with running_cluster(tmp_path, ("a", "b")) as (a, b):
        acked = await _history(a, b, tmp_path / "old-b")
        old_fp = on(b.home, lambda n: n.fingerprint())
        # cut off (its node is not running), b writes: the same seq as one it already sent
        cut_off = on(b.home, lambda n: commit_now(
            n, "ldap", {"servers": [{"name": "s9", "host": "ldap.cutoff"}]}))
        async with trio.open_nursery() as nursery:
            await start(nursery, b)
            await wait_until("the fork found", lambda: on(b.home, lambda n: (
                n.status()["selfsync"], n.status()["forks"] > 0)) == ("fork", True), 5)
            with pytest.raises(OperationalError, match="rekey"):
                on(b.home, lambda n: commit_now(n, "ntp", {"servers": ["refused"]}))
            on(b.home, lambda n: settings.clear(n, "admin"))  # the refused change stays staged
            assert not holds(a.home, cut_off)  # the losing branch never left b
            assert on(b.home, check.open_forks) > 0  # clustercheck reports it
            done = await db(b.home, lambda n: client.rekey(n, "admin"))
            assert done["reissued"] == 1 and done["fingerprint"] != old_fp
            await wait_until("one state again", same_digest(a, b), 10)
            # the old key is retired: the evidence stays, clustercheck has nothing to report
            assert on(b.home, lambda n: n.status()["forks"]) > 0
            await wait_until("no fork left open", lambda: all(
                on(box.home, check.open_forks) == 0 for box in (a, b)), 5)
            for box in (a, b):  # nothing acknowledged is lost, on either side
                assert all(holds(box.home, x) for x in acked)
                ldap = _value(box, "ldap")
                assert isinstance(ldap, dict) and ldap["servers"][0]["host"] == "ldap.cutoff"
            assert on(b.home, lambda n: n.status()["selfsync"]) is None
            after = await commit(b, "ntp", {"servers": ["ntp.after.rekey"]})
            await wait_until("b writes again, under its new key", lambda: holds(a.home, after), 5)
            # whoever kept the old key (the copy b was restored from) writes nothing with it
            forged = _by_old_key(a, b, {"servers": ["ntp.old.key"]})
            assert on(a.home, lambda n: n.log.ingest([forged], now_ms=now_ms()).applied)
            assert _value(a, "ntp") == {"servers": ["ntp.after.rekey"]}
            report = on(a.home, verify.verify_node)  # and `verify` names it
            assert [p["kind"] for p in report["problems"]
                    if "rekey replaced" in p["detail"]] == ["non_member"]
            await stop(b)


async def _original_then_restored(b: Box, seen_by: tuple[Box, ...], old: Path,
                                  set_back_to: int | None = None,
                                  monkeypatch: pytest.MonkeyPatch | None = None
                                  ) -> tuple[str, str]:
    """b is copied, writes the original change (seen by ``seen_by``), is restored from the
    copy and, cut off, writes the later one; with ``set_back_to``, b's clock is back at that
    wall time while it does. Returns the two commits' ids."""
    await stop(b)
    _copy(b, old)
    async with trio.open_nursery() as nursery:
        await start(nursery, b)
        original = await commit(b, "ntp", {"servers": ["ntp.original"]})
        await wait_until("the original seen", lambda: all(
            holds(box.home, original) for box in seen_by), 5)
        await stop(b)
    _restore(b, old)

    def write_later() -> str:
        return on(b.home, lambda n: commit_now(n, "ldap", {
            "servers": [{"name": "s9", "host": "ldap.restored"}]}))

    if set_back_to is None or monkeypatch is None:
        return original, write_later()
    with monkeypatch.context() as m:
        m.setattr(settings, "now_ms", lambda: set_back_to)
        return original, write_later()


async def _finds_its_fork(b: Box) -> None:
    await wait_until("b finds its fork", lambda: on(b.home, lambda n: (
        n.status()["selfsync"], n.status()["forks"] > 0)) == ("fork", True), 10)


def _both_changes_everywhere(*boxes: Box) -> None:
    """Nothing acknowledged is lost, on any machine: the original change and the later one."""
    for box in boxes:
        assert _value(box, "ntp") == {"servers": ["ntp.original"]}
        ldap = _value(box, "ldap")
        assert isinstance(ldap, dict) and ldap["servers"][0]["host"] == "ldap.restored"


async def _copied_at(b: Box, *seen_by: Box) -> int:
    """b's first change, seen by ``seen_by``: the wall time of the copy made next."""
    copied = await commit(b, "dns", {"servers": ["10.0.0.1"]})
    await wait_until("the first change seen", lambda: all(
        holds(box.home, copied) for box in seen_by), 5)
    ev = on(b.home, lambda n: n.log.get(copied))
    assert ev is not None
    return ev.wall


async def test_a_losing_branch_that_reached_a_lagging_peer_is_settled_everywhere(
    tmp_path: Path,
) -> None:
    """The restored machine reaches a peer that lacks its lost events first: that peer takes
    the later branch. When the original branch reaches it, every node settles the fork the
    same way (the earlier branch stays), and rekey issues the later branch's change again."""
    async with running_cluster(tmp_path) as (a, b, c):
        await stop(c)
        original, later = await _original_then_restored(b, (a,), tmp_path / "old-b")
        await stop(a)
        async with trio.open_nursery() as nursery:
            await start(nursery, c)
            await start(nursery, b)
            await wait_until("the later branch on c", lambda: holds(c.home, later), 10)
            await start(nursery, a)
            await wait_until("c settles on the original branch",
                             lambda: holds(c.home, original) and not holds(c.home, later), 10)
            await _finds_its_fork(b)
            done = await db(b.home, lambda n: client.rekey(n, "admin"))
            assert done["reissued"] == 1
            await wait_until("one state everywhere", same_digest(a, b, c), 15)
            assert all(holds(box.home, original) for box in (a, b, c))
            _both_changes_everywhere(a, b, c)
            for box in (a, b, c):
                await stop(box)


async def test_rekey_refuses_a_member_that_holds_only_the_later_branch(tmp_path: Path) -> None:
    """c took the restored machine's later branch and has not seen the original: a rekey
    through it would issue nothing again, and c would drop that branch once the original
    arrived. The rekey refuses c, changes nothing, and succeeds once c has settled (a link
    coming up carries the fork evidence its ends hold, so c learns of the fork from a)."""
    async with running_cluster(tmp_path) as (a, b, c):
        await stop(c)
        original, later = await _original_then_restored(b, (a,), tmp_path / "old-b")
        await stop(a)
        async with trio.open_nursery() as nursery:
            await start(nursery, c)
            await start(nursery, b)
            await wait_until("the later branch on c", lambda: holds(c.home, later), 10)
            await stop(c)
            await start(nursery, a)  # b learns of its fork from a; c does not
            await _finds_its_fork(b)
            await stop(a)
            await stop(b)  # so that b's node does not hand c the fork evidence (on link up)
            await start(nursery, c)
            old_fp = on(b.home, lambda n: n.fingerprint())
            with pytest.raises(OperationalError, match="c: it holds this machine's later branch"):
                await db(b.home, lambda n: client.rekey(n, "admin"))
            assert on(b.home, lambda n: (n.fingerprint(), n.status()["selfsync"])) == (
                old_fp, "fork")  # nothing changed
            await start(nursery, a)  # a holds the evidence b spread: c hears of the fork
            await start(nursery, b)
            await wait_until("c settles on the original branch",
                             lambda: holds(c.home, original) and not holds(c.home, later), 10)
            done = await db(b.home, lambda n: client.rekey(n, "admin"))
            assert done["reissued"] == 1 and done["fingerprint"] != old_fp
            await wait_until("one state everywhere", same_digest(a, b, c), 15)
            _both_changes_everywhere(a, b, c)
            for box in (a, b, c):
                await stop(box)


async def test_a_restored_branch_stamped_first_stays_and_rekey_issues_the_original_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """b is restored together with its clock (a virtual machine's snapshot, say), so the
    change it writes then is stamped before the one it had written after the copy: by the
    settling rule its new branch stays everywhere. The rekey keeps that branch and issues
    the original branch's change again: both changes survive, on every machine."""
    async with running_cluster(tmp_path, ("a", "b")) as (a, b):
        copy_wall = await _copied_at(b, a)
        original, later = await _original_then_restored(  # b's clock back at the copy's time
            b, (a,), tmp_path / "old-b", copy_wall + 1, monkeypatch)
        stamps = [on(box.home, lambda n, i=i: n.log.get(i) or n.log.forks()[0].forked).clock
                  for box, i in ((a, original), (b, later))]
        assert stamps[1] < stamps[0]  # the restored branch is the earlier one
        async with trio.open_nursery() as nursery:
            await start(nursery, b)
            await _finds_its_fork(b)
            done = await db(b.home, lambda n: client.rekey(n, "admin"))
            assert done["reissued"] == 1
            await wait_until("one state again", same_digest(a, b), 15)
            assert all(holds(x.home, later) and not holds(x.home, original) for x in (a, b))
            _both_changes_everywhere(a, b)
            for box in (a, b):
                await stop(box)


async def test_the_restored_branch_kept_through_a_member_that_still_applies_the_original(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As above (b's restored branch is stamped first), but the rekey goes through c, which
    was away when the fork was found and still applies the original branch: the rekey takes
    that branch's events from c itself, keeps b's, and issues the original's change again."""
    async with running_cluster(tmp_path) as (a, b, c):
        copy_wall = await _copied_at(b, a, c)
        original, later = await _original_then_restored(
            b, (a, c), tmp_path / "old-b", copy_wall + 1, monkeypatch)
        await stop(c)
        async with trio.open_nursery() as nursery:
            await start(nursery, b)  # finds its fork through a; c is away
            await _finds_its_fork(b)
            await stop(a)
            await stop(b)
            await start(nursery, c)  # still on the original branch, and no one tells it
            assert holds(c.home, original) and not holds(c.home, later)
            done = await db(b.home, lambda n: client.rekey(n, "admin"))
            assert done["reissued"] == 1 and done["via"] == "c" and done["adopted"] == 0
            await start(nursery, a)
            await start(nursery, b)
            await wait_until("one state everywhere", same_digest(a, b, c), 15)
            assert all(holds(x.home, later) and not holds(x.home, original) for x in (a, b, c))
            _both_changes_everywhere(a, b, c)
            for box in (a, b, c):
                await stop(box)


def test_a_members_first_differing_event_tells_which_branch_stays(tmp_path: Path) -> None:
    """Marked forked with no evidence yet, a home learns which branch stays from the
    member's events: the first that differs from its own is compared by the settling rule."""
    from tests.net.cluster_helpers import make_box

    box = make_box(tmp_path, "solo")

    def seen(fork: tuple[str, events.Event | None] | None) -> tuple[str, int] | None:
        return None if fork is None else (fork[0], 0 if fork[1] is None else fork[1].seq)

    def verdicts(n: Node) -> list[tuple[str, int] | None]:
        mine = n.log.get(restore.head_of(n.log, n.origin)[1])
        assert mine is not None and mine.seq > 1
        restore.mark(n, FORK, n.origin)
        out: list[tuple[str, int] | None] = []
        for clock in (mine.clock - 1, mine.clock + 1):  # stamped before ours, then after
            theirs = events.create(n.signing_key, seq=mine.seq, prev=mine.prev, clock=clock,
                                   wall=mine.wall, user="admin", kind="config.commit",
                                   payload={"comment": "other", "changes": []})
            same = (mine.raw, mine.sig)
            out.append(seen(restore.own_fork(n, n.origin, [same, (theirs.raw, theirs.sig)])))
        out.append(seen(restore.own_fork(n, n.origin)))
        return out

    on(box.home, lambda n: commit_now(n, "ntp", {"servers": ["x"]}, "machine:solo"))
    seq = on(box.home, lambda n: restore.head_of(n.log, n.origin)[0])
    assert on(box.home, verdicts) == [(restore.LOSES, seq), (restore.WINS, seq),
                                      (restore.UNKNOWN, 0)]
