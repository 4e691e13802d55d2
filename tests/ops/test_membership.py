"""Join and merge between real homes, with the events carried by hand (no sockets): the rules
of the configuration model, checked where the network layer will later call them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from evstore.core.errors import InvalidInput
from evstore.ops import cluster, membership
from evstore.ops import settings as ops
from evstore.ops.node import Node, init_home, now_ms, open_node

PASS = "pw-for-tests"


@pytest.fixture
def homes(tmp_path: Path) -> Iterator[list[Node]]:
    with ExitStack() as stack:
        nodes = []
        for i, name in enumerate(("a.example", "b.example", "c.example")):
            home = tmp_path / name
            init_home(home, hostname=name, passphrase=PASS, listen=f"127.0.0.{i + 1}:2200")
            nodes.append(stack.enter_context(open_node(home)))
        yield nodes


def sync(src: Node, dst: Node) -> None:
    """Anti-entropy by hand: send dst what src holds and dst lacks."""
    theirs = dst.log.version_vector()
    items = []
    for ev in membership.member_events(src):
        if ev and theirs.get(_origin(ev), 0) < _seq(ev):
            items.append(ev)
    dst.log.ingest(items, now_ms=now_ms())


def _origin(item: tuple[bytes, bytes]) -> str:
    from evstore.core import events

    return events.parse(*item).origin


def _seq(item: tuple[bytes, bytes]) -> int:
    from evstore.core import events

    return events.parse(*item).seq


def join(member: Node, joiner: Node, group: str | None = None) -> None:
    req = membership.join_request(joiner, group)
    membership.admit(member, "admin", req, passphrase=PASS)
    membership.take_up(joiner, "admin", membership.member_events(member))
    sync(joiner, member)


def test_join_replaces_clusterable_settings_and_keeps_machine_only(homes: list[Node]) -> None:
    a, b, _ = homes
    ops.stage(a, "admin", f"machine:{a.mid}", "dns", {"servers": ["10.0.0.1"]})
    ops.commit(a, "admin")
    cluster.create(a, "admin", "americas")
    ops.stage(b, "admin", f"machine:{b.mid}", "dns", {"servers": ["192.168.9.9"]})
    ops.stage(b, "admin", f"machine:{b.mid}", "interfaces", {"interfaces": [
        {"name": "Data1", "address": "10.1.1.1", "netmask": "255.255.255.0"}]})
    ops.commit(b, "admin")
    join(a, b)
    assert b.structure().name == "americas"
    eff = b.store.effective_of(b.mid)
    assert eff["dns"][0]["servers"] == ["10.0.0.1"] and eff["dns"][1] == "cluster"
    assert eff["interfaces"][0]["interfaces"][0]["name"] == "Data1"
    assert a.state_digest() == b.state_digest()
    assert [m.hostname for m in a.structure().members()] == ["a.example", "b.example"]


def test_wrong_passphrase_refuses_join_and_stores_nothing(homes: list[Node]) -> None:
    a, b, _ = homes
    cluster.create(a, "admin", "c")
    before = a.log.count()
    with pytest.raises(InvalidInput):
        membership.admit(a, "admin", membership.join_request(b), passphrase="nope")
    assert a.log.count() == before


def test_mixed_names_and_addresses_refused(homes: list[Node], tmp_path: Path) -> None:
    a, _, _ = homes
    cluster.create(a, "admin", "c")
    init_home(tmp_path / "d", hostname="d", passphrase=PASS, listen="d.example.com:2200")
    with open_node(tmp_path / "d") as d, pytest.raises(InvalidInput, match="mix"):
        membership.admit(a, "admin", membership.join_request(d), passphrase=PASS)


def test_concurrent_changes_converge_and_loser_is_kept(homes: list[Node]) -> None:
    a, b, c = homes
    cluster.create(a, "admin", "c")
    join(a, b)
    join(a, c)
    sync(a, b)
    sync(a, c)
    # partitioned: a and b change the same setting, c another key of another section
    ops.stage(a, "admin", "cluster", "timezone", {"zone": "Europe/Paris"})
    ops.commit(a, "admin")
    ops.stage(b, "admin", "cluster", "timezone", {"zone": "Asia/Tokyo"})
    ops.commit(b, "admin")
    ops.stage_set(c, "admin", "cluster", "ldap", ['servers.s1.host="ldap.example"'])
    ops.commit(c, "admin")
    for src in (a, b, c):
        for dst in (a, b, c):
            if src is not dst:
                sync(src, dst)
    digests = {n.state_digest() for n in (a, b, c)}
    assert len(digests) == 1
    zone = a.store.section_value("cluster", "timezone")
    assert zone is not None and zone["zone"] == "Asia/Tokyo"  # b committed later
    lost = a.store.superseded_rows()
    assert any(r[0][1] == "timezone" for r in lost)


def test_rename_and_setgroup_concurrently_do_not_strand(homes: list[Node]) -> None:
    a, b, _ = homes
    cluster.create(a, "admin", "c")
    cluster.addgroup(a, "admin", "Paris")
    join(a, b)
    sync(a, b)
    cluster.renamegroup(a, "admin", "Paris", "France")
    cluster.setgroup(b, "admin", "b.example", "Paris")
    sync(a, b)
    sync(b, a)
    for n in (a, b):
        st = n.structure()
        assert st.groups[st.group_of(b.mid) or ""] == "France"
    assert a.state_digest() == b.state_digest()


def test_removed_machine_writes_after_cutoff_ignored(homes: list[Node]) -> None:
    a, b, _ = homes
    cluster.create(a, "admin", "c")
    join(a, b)
    cluster.removemachine(a, "admin", "b.example")
    ops.stage(b, "admin", "cluster", "timezone", {"zone": "Asia/Tokyo"})
    ops.commit(b, "admin")  # b has not heard of its removal yet
    sync(b, a)
    assert (a.store.section_value("cluster", "timezone") or {}).get("zone") != "Asia/Tokyo"
    assert [m.hostname for m in a.structure().members()] == ["a.example"]


def test_removed_machine_learns_it_and_flattens(homes: list[Node]) -> None:
    a, b, _ = homes
    cluster.create(a, "admin", "c")
    ops.stage(a, "admin", "cluster", "dns", {"servers": ["10.7.7.7"]})
    ops.commit(a, "admin")
    join(a, b)
    cluster.removemachine(a, "admin", "b.example")
    before = b.log.version_vector()
    sync(a, b)
    applied = [e for e in b.log.iter_all() if e.seq > before.get(e.origin, 0)]
    notes = membership.after_ingest(b, applied)
    assert notes and b.structure().name is None
    assert b.store.section_value(f"machine:{b.mid}", "dns") == {"servers": ["10.7.7.7"]}


def test_clustercheck_lists_resolves_and_ignores_superseded(homes: list[Node]) -> None:
    from evstore.ops import check

    a, b, _ = homes
    cluster.create(a, "admin", "c")
    join(a, b)
    sync(a, b)
    ops.stage(a, "admin", "cluster", "timezone", {"zone": "Europe/Paris"})
    ops.commit(a, "admin")
    ops.stage(b, "admin", "cluster", "timezone", {"zone": "Asia/Tokyo"})
    ops.commit(b, "admin")
    sync(a, b)
    sync(b, a)
    reports = [check.digests_at(n, check.common_point([a.log.version_vector(),
                                                        b.log.version_vector()])) for n in (a, b)]
    assert check.summarize(reports, [])["consistent"]
    [row] = check.superseded(a)
    assert row["loser"]["machine"] == "a.example" and row["winner"]["machine"] == "b.example"
    check.resolve(a, "admin", "timezone@cluster=a.example")
    sync(a, b)
    for n in (a, b):
        assert n.store.section_value("cluster", "timezone") == {"zone": "Europe/Paris"}
        assert check.superseded(n) == []
    assert a.state_digest() == b.state_digest()


def test_ignore_records_review_on_every_machine(homes: list[Node]) -> None:
    from evstore.ops import check

    a, b, _ = homes
    cluster.create(a, "admin", "c")
    join(a, b)
    sync(a, b)
    ops.stage(a, "admin", "cluster", "ntp", {"servers": ["ntp1"]})
    ops.commit(a, "admin")
    ops.stage(b, "admin", "cluster", "ntp", {"servers": ["ntp2"]})
    ops.commit(b, "admin")
    sync(a, b)
    sync(b, a)
    assert len(check.superseded(b)) == 1
    check.ignore(b, "admin", "ntp@cluster")
    sync(b, a)
    assert check.superseded(a) == [] and check.superseded(b) == []


def _learn(src: Node, dst: Node) -> None:
    """Anti-entropy by hand plus the follow-ups the node runs (a removal turns it standalone)."""
    before = dst.log.version_vector()
    sync(src, dst)
    membership.after_ingest(dst, [e for e in dst.log.iter_all()
                                  if e.seq > before.get(e.origin, 0)])


def test_removed_machine_joins_again_as_a_new_membership(homes: list[Node]) -> None:
    a, b, _ = homes
    cluster.create(a, "admin", "c")
    join(a, b)
    ops.stage(b, "admin", "cluster", "ntp", {"servers": ["ntp.before"]})
    ops.commit(b, "admin")  # before its removal: stays valid history
    sync(b, a)
    cluster.removemachine(a, "admin", "b.example")
    ops.stage(b, "admin", "cluster", "timezone", {"zone": "Asia/Tokyo"})
    ops.commit(b, "admin")  # signed after its removal (it has not heard yet): never counts
    _learn(a, b)
    assert b.structure().name is None
    old_key = b.origin
    join(a, b)
    sync(a, b)
    assert b.origin != old_key and b.structure().name == "c"
    assert [m.hostname for m in a.structure().members()] == ["a.example", "b.example"]
    assert b.mid in {m.mid for m in a.structure().members()}
    assert a.state_digest() == b.state_digest()
    assert a.store.section_value("cluster", "ntp") == {"servers": ["ntp.before"]}
    assert (a.store.section_value("cluster", "timezone") or {}).get("zone") != "Asia/Tokyo"
    ops.stage(b, "admin", "cluster", "timezone", {"zone": "Europe/Rome"})
    ops.commit(b, "admin")  # the new membership writes
    sync(b, a)
    assert a.store.section_value("cluster", "timezone") == {"zone": "Europe/Rome"}
    assert a.to_internal("machine:b.example") == f"machine:{b.mid}"
    # and once more: removed again, joins again
    cluster.removemachine(a, "admin", "b.example")
    _learn(a, b)
    join(a, b)
    sync(a, b)
    assert [m.hostname for m in a.structure().members()] == ["a.example", "b.example"]
    assert a.state_digest() == b.state_digest()


def test_a_prepjoin_entry_is_used_up_by_its_join(homes: list[Node]) -> None:
    from evstore.ops import users

    a, b, c = homes
    cluster.create(a, "admin", "c")
    join(a, c)
    users.prepjoin_new(a, "admin", "b.example", "SERIAL", b.origin)
    ops.commit(a, "admin")
    sync(a, c)
    assert [h["name"] for h in users.prepjoin_list(c, "admin")] == ["b.example"]
    req = membership.join_request(b)
    membership.admit(a, "admin", req, preshared=True)
    membership.take_up(b, "admin", membership.member_events(a))
    sync(b, a)
    sync(a, c)
    for n in (a, b, c):
        assert users.prepjoin_list(n, "admin") == [], n.identity().hostname
    with pytest.raises(InvalidInput, match="used up|pre-shared"):
        membership.check_credentials(a, "b.example", b.origin, passphrase=None, preshared=True)


def test_connstatus_resolves_announced_names_and_says_since_when(tmp_path: Path) -> None:
    homes = {}
    for name, listen in (("a", "localhost:2301"), ("b", "localhost:2302"),
                         ("c", "no-such-host.invalid:2303")):
        init_home(tmp_path / name, hostname=name, passphrase=PASS, listen=listen)
        homes[name] = tmp_path / name
    with open_node(homes["a"]) as a, open_node(homes["b"]) as b, open_node(homes["c"]) as c:
        cluster.create(a, "admin", "names")
        join(a, b)
        join(a, c)
        before = now_ms()
        a.append("admin", "machine.detach", {"machine": c.mid, "detached": True})
        rows = {r["hostname"]: r for r in cluster.connstatus(a, now=before + 5000)}
    assert set(rows) == {"b", "c"}
    assert rows["b"]["resolution"]["host"] == "localhost"
    assert rows["b"]["resolution"]["resolves"] is True
    assert rows["b"]["resolution"]["addresses"]
    assert rows["c"]["resolution"] == {"host": "no-such-host.invalid", "resolves": False,
                                       "addresses": []}
    assert rows["b"]["state"] == "down" and rows["b"]["since"] is None
    assert rows["c"]["state"] == "disconnected"
    assert rows["c"]["since"] is not None and 4 <= rows["c"]["for_seconds"] <= 6
