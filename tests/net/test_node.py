"""The real node (evstore/net/node.py) over loopback sockets, three nodes in one trio run.

Each test builds homes on free 127.0.0.1 ports, serves them with ``serve`` and drives them the
way the commands do (evstore/net/client.py, in worker threads). Pings every 0.5 s and short
timeouts keep it fast; every wait polls with a deadline.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import nacl.public
import nacl.signing
import pytest
import trio

from evstore.core.errors import InvalidInput, OperationalError
from evstore.net import client, wire
from evstore.net.node import HomeLock
from evstore.net.transport import LinkError, PeerRefused, handshake
from evstore.ops import cluster as cluster_ops
from evstore.ops import settings, users
from evstore.ops.node import Node, open_node
from tests.net.cluster_helpers import (
    FAST,
    PASS,
    Box,
    alerts,
    commit,
    db,
    digest,
    holds,
    join,
    link_state,
    make_box,
    on,
    running_cluster,
    same_digest,
    start,
    stop,
    wait_until,
)

# ---------------------------------------------------------------------- join and propagation


async def test_join_then_a_commit_reaches_everyone_at_once(tmp_path: Path) -> None:
    async with running_cluster(tmp_path) as (a, b, c):
        assert await db(c.home, lambda n: n.structure().name) == "testcluster"
        commit_id = await commit(b, "dns", {"servers": ["10.9.9.9"]})
        took = await wait_until("b's commit on a and c",
                                lambda: holds(a.home, commit_id) and holds(c.home, commit_id), 3)
        assert took < 2.0  # pushed at once (pings are every 0.5 s; resync much later)
        assert len({await digest(x) for x in (a, b, c)}) == 1
        detail, unreachable = await db(a.home, lambda n: client.commit_detail(n, commit_id))
        assert not unreachable
        assert [m["hostname"] for m in detail["machines"]] == ["a", "b", "c"]
        assert all(m["arrived"] and m["at"] for m in detail["machines"])
        reports, missing = await db(b.home, client.clustercheck_reports)
        assert missing == [] and sorted(r["hostname"] for r in reports) == ["a", "b", "c"]


async def test_a_commit_is_relayed_when_the_direct_link_is_cut(tmp_path: Path) -> None:
    cut_a = replace(FAST, blocked=frozenset({"c"}))
    cut_c = replace(FAST, blocked=frozenset({"a"}))
    async with running_cluster(tmp_path, a=cut_a, c=cut_c) as (a, b, c):
        assert link_state(a.home, "c") != "up"
        commit_id = await commit(a, "ntp", {"servers": ["ntp.a"]})
        await wait_until("a's commit on c, through b", lambda: holds(c.home, commit_id), 3)
        assert await digest(a) == await digest(c)


async def test_join_over_the_cluster_only_port_needs_a_prepjoin_entry(tmp_path: Path) -> None:
    a = make_box(tmp_path, "a", ccs=True)
    b = make_box(tmp_path, "b")
    on(a.home, lambda n: cluster_ops.create(n, "admin", "ccs"))
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, a)
        assert set(handle.addresses) == {"admin", "ccs"}
        with pytest.raises(OperationalError, match="pre-shared"):
            await join(b, a, ccs=True, preshared=True)
        key, serial = on(b.home, lambda n: (n.origin, n.identity().serial))
        await db(a.home, lambda n: _prepjoin(n, "b", serial, key))
        with pytest.raises(InvalidInput, match="no passphrase logins"):
            await join(b, a, ccs=True)
        done = await join(b, a, ccs=True, preshared=True)
        assert done["cluster"] == "ccs"
        await wait_until("b joined", same_digest(a, b), 3)
        handle.stop()


def _prepjoin(node: Node, host: str, serial: str, key: str) -> None:
    users.prepjoin_new(node, "admin", host, serial, key)
    settings.commit(node, "admin", "expect b")


async def test_fanout_dials_fewer_members_and_still_converges(tmp_path: Path) -> None:
    async with running_cluster(tmp_path, config=replace(FAST, fanout=1)) as (a, b, c):
        assert all(len(x.handle.runtime.links.dialers) <= 1 for x in (a, b, c) if x.handle
                   and x.handle.runtime)
        commit_id = await commit(c, "timezone", {"zone": "Asia/Tokyo"})
        await wait_until("c's commit everywhere",
                         lambda: holds(a.home, commit_id) and holds(b.home, commit_id), 3)


# ---------------------------------------------------------------------- the process


async def test_a_second_run_of_one_home_is_refused_naming_the_first(tmp_path: Path) -> None:
    a = make_box(tmp_path, "a")
    first = HomeLock(a.home)
    first.acquire()
    try:
        with pytest.raises(OperationalError, match=f"PID {os.getpid()}"):
            HomeLock(a.home).acquire()
    finally:
        first.release()
    HomeLock(a.home).acquire()  # free again once the first one let go


async def test_a_standalone_node_binds_its_admin_port_only(tmp_path: Path) -> None:
    a = make_box(tmp_path, "a")
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, a)
        assert handle.addresses == {"admin": [("127.0.0.1", a.port)]}
        stranger = _keys()
        channel = await _dial(a, stranger)
        await wire.send(channel, {"t": "open", "want": "link", "version": "0.1.0"})
        with pytest.raises(wire.RemoteRefused, match="standalone"):
            await wire.receive(channel, "check", timeout=2)
        handle.stop()


# ---------------------------------------------------------------------- liveness


async def test_a_node_that_stops_is_reported_down_then_up_again(tmp_path: Path) -> None:
    async with running_cluster(tmp_path) as (a, b, c):
        await stop(c)
        await wait_until("a sees c down", lambda: link_state(a.home, "c") == "down", 5)
        await wait_until("a's alert", lambda: any("c is down" in x for x in alerts(a.home)), 5)
        commit_id = await commit(a, "ntp", {"servers": ["ntp.while.c.was.down"]})
        async with trio.open_nursery() as nursery:
            await start(nursery, c)
            await wait_until("c catches up", lambda: holds(c.home, commit_id), 5)
            await wait_until("a's up alert",
                             lambda: any("c is up again" in x for x in alerts(a.home)), 5)
            assert link_state(a.home, "c") == "up"
            await stop(c)


async def test_clock_offset_past_the_threshold_raises_an_alert(tmp_path: Path) -> None:
    picky = replace(FAST, clock_alert_ms=-1)  # any measured offset is past it
    async with running_cluster(tmp_path, ("a", "b"), a=picky) as (a, _b):
        await wait_until("a's clock alert",
                         lambda: any("ms off" in x for x in alerts(a.home)), 5)
        offsets = await db(a.home, lambda n: [p["clock_offset_ms"] for p in n.peers()])
        assert offsets and all(isinstance(o, int) for o in offsets)


# ---------------------------------------------------------------------- versions


async def test_another_version_is_refused_naming_both_versions(tmp_path: Path) -> None:
    async with running_cluster(tmp_path, ("a", "b")) as (a, b):
        d = make_box(tmp_path, "d")
        with pytest.raises(OperationalError, match=r"0\.1\.0.*9\.9\.9|9\.9\.9.*0\.1\.0"):
            await join(d, a, version="9.9.9")
        assert await db(d.home, lambda n: n.structure().name) is None
        await stop(b)
        async with trio.open_nursery() as nursery:
            await start(nursery, b, replace(FAST, version="9.9.9"))
            await wait_until("a's alert naming both versions", lambda: any(
                "9.9.9" in x and "0.1.0" in x for x in alerts(a.home)), 5)
            assert link_state(a.home, "b") != "up"
            await stop(b)


# ---------------------------------------------------------------------- join refusals


async def test_a_wrong_passphrase_changes_nothing_anywhere(tmp_path: Path) -> None:
    async with running_cluster(tmp_path, ("a",)) as (a,):
        d = make_box(tmp_path, "d")
        before = await db(a.home, lambda n: n.log.count())
        with pytest.raises(InvalidInput, match="passphrase"):
            await join(d, a, passphrase="not it")
        assert await db(a.home, lambda n: n.log.count()) == before
        assert await db(d.home, lambda n: n.structure().name) is None
        assert any("wrong passphrase" in x for x in alerts(a.home))


async def test_a_stranger_learns_nothing_about_the_cluster(tmp_path: Path) -> None:
    """A machine that completes the handshake but not the credentials learns no names."""
    async with running_cluster(tmp_path, ("a",)) as (a,):
        d = make_box(tmp_path, "d")
        shown: list[dict[str, object]] = []
        fp = await db(a.home, lambda n: n.fingerprint())

        def attempt(passphrase: str) -> None:
            opts = client.JoinOptions(address=f"127.0.0.1:{a.port}", passphrase=passphrase,
                                      fingerprint=fp)
            asked = client.JoinQuestions(trust_key=lambda f, addr: False,
                                         confirm=lambda info: bool(shown.append(info)),
                                         before_change=lambda info: None)
            with open_node(d.home) as node:
                client.join(node, "admin", opts, asked)

        with pytest.raises(InvalidInput) as refused:
            await trio.to_thread.run_sync(attempt, "not it")
        assert shown == []  # never asked to confirm: it was told no cluster name
        assert "testcluster" not in str(refused.value) and "a is" not in str(refused.value)
        with pytest.raises(OperationalError, match="cancelled"):
            await trio.to_thread.run_sync(attempt, PASS)  # right passphrase; says no
        assert shown and shown[0]["name"] == "testcluster"
        assert await db(d.home, lambda n: n.structure().name) is None


async def test_a_wrong_fingerprint_stops_before_the_passphrase_is_sent(tmp_path: Path) -> None:
    async with running_cluster(tmp_path, ("a",)) as (a,):
        d = make_box(tmp_path, "d")
        with pytest.raises(OperationalError, match="impostor"):
            await join(d, a, fingerprint="00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff",
                       passphrase="not it")
        assert not any("wrong passphrase" in x for x in alerts(a.home))
        assert await db(d.home, lambda n: n.structure().name) is None


# ---------------------------------------------------------------------- disconnect


async def test_disconnect_stops_every_exchange_and_reconnect_converges(tmp_path: Path) -> None:
    async with running_cluster(tmp_path) as (a, b, c):
        done = await db(a.home, lambda n: client.set_detached(n, "admin", "c", True))
        assert done["reached"] == ["b", "c"] and done["unreachable"] == []
        for x in (a, b):  # a learns from its own database within a poll interval
            await wait_until(f"{x.name} cut c", lambda x=x: _links_of(x) <= {"a", "b"}, 1)
        assert _links_of(c) == set()
        away = await commit(c, "timezone", {"zone": "America/Chicago"})
        here = await commit(a, "ntp", {"servers": ["ntp.while.c.is.away"]})
        with trio.move_on_after(1):
            await wait_until("c's change to leak", lambda: holds(a.home, away) or
                             holds(b.home, away) or holds(c.home, here), 1)
        assert not holds(a.home, away) and not holds(b.home, away) and not holds(c.home, here)
        await db(a.home, lambda n: client.set_detached(n, "admin", "c", False))
        took = await wait_until("convergence after reconnect", same_digest(a, b, c), 10)
        assert took < 10 and holds(a.home, away) and holds(c.home, here)


def _links_of(box: Box) -> set[str]:
    assert box.handle is not None and box.handle.runtime is not None
    rt = box.handle.runtime
    names = {m.mid: m.hostname for m in rt.view.members.values()}
    return {names.get(mid, mid) for mid in rt.mesh.connected()}


async def test_a_removed_machine_turns_standalone_and_stops_dialing(tmp_path: Path) -> None:
    async with running_cluster(tmp_path) as (a, b, c):
        await db(a.home, lambda n: cluster_ops.removemachine(n, "admin", "c"))
        await wait_until("c learns it", lambda: on(c.home, lambda n: n.structure().name) is None)
        assert c.handle is not None and c.handle.runtime is not None
        await wait_until("c's links closed", lambda: c.handle is not None and
                         c.handle.runtime is not None and not c.handle.runtime.links.dialers and
                         not c.handle.runtime.mesh.connected(), 3)


# ---------------------------------------------------------------------- hostile peers


def _keys() -> tuple[nacl.signing.SigningKey, nacl.public.PrivateKey]:
    return nacl.signing.SigningKey.generate(), nacl.public.PrivateKey.generate()


async def _dial(box: Box, keys: tuple[nacl.signing.SigningKey, nacl.public.PrivateKey]):  # type: ignore[no-untyped-def]
    stream = await trio.open_tcp_stream("127.0.0.1", box.port)
    return await handshake(stream, initiator=True, signing_key=keys[0], static_x25519=keys[1])


async def _closed_within(box: Box, payload: bytes, seconds: float) -> None:
    """Send raw bytes; the node must close the connection within ``seconds``."""
    stream = await trio.open_tcp_stream("127.0.0.1", box.port)
    await stream.send_all(payload)
    with trio.fail_after(seconds):
        while await _read_or_eof(stream):
            pass
    await stream.aclose()


async def _read_or_eof(stream: trio.SocketStream) -> bool:
    try:
        return bool(await stream.receive_some(4096))
    except trio.BrokenResourceError:
        return False


async def test_hostile_peers_are_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    async with running_cluster(tmp_path, ("a", "b")) as (a, b):
        before = await db(a.home, lambda n: (n.log.count(), n.log.pending_count()))
        # a member's host key with another transport key: refused inside the handshake
        b_key = on(b.home, lambda n: n.signing_key)
        with pytest.raises((PeerRefused, OperationalError)):
            ch = await _dial(a, (b_key, nacl.public.PrivateKey.generate()))
            await wire.send(ch, {"t": "open", "want": "link", "version": "0.1.0"})
            await wire.receive(ch, "check", timeout=2)
        # an unknown key may only ask to join: a link or an rpc is refused with a reason
        for want in ("link", "rpc"):
            ch = await _dial(a, _keys())
            await wire.send(ch, {"t": "open", "want": want, "version": "0.1.0"})
            with pytest.raises(wire.RemoteRefused, match="does not know the host key"):
                await wire.receive(ch, "ready", "check", timeout=2)
        # garbage, an oversized frame, and a peer that never finishes its first frame
        await _closed_within(a, os.urandom(600), 2)
        await _closed_within(a, b"\xff\xff" + b"x" * 100, 2)
        await _closed_within(a, b"\x00", FAST.handshake_timeout + 2)
        # a member sending garbage after a good handshake loses that link only
        ch = await _dial(a, (b_key, on(b.home, lambda n: _transport(n))))
        await ch.send(b"this is not canonical json")
        with trio.fail_after(3), pytest.raises(LinkError):
            await ch.receive()
        assert await db(a.home, lambda n: (n.log.count(), n.log.pending_count())) == before
        commit_id = await commit(b, "dns", {"servers": ["10.0.0.53"]})
        await wait_until("a still serves", lambda: holds(a.home, commit_id), 3)


def _transport(node: Node) -> nacl.public.PrivateKey:
    from evstore.ops import secrets

    return secrets.load_transport_key(node.home)

