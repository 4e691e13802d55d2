"""History: the streaming fold equals the reference projection, and a node's history rebuilt
from its log matches its live views at every scope (standalone, cluster, removed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evstore.core import catalog, encoding, events, state
from evstore.core.modes import group_id_of
from evstore.ops import cluster, history
from evstore.ops import settings as ops
from evstore.ops.node import Node, init_home, open_node

KEYS = [nacl.signing.SigningKey(bytes([40 + i]) * 32) for i in range(3)]
ORIGINS = [k.verify_key.encode().hex() for k in KEYS]
VALUES = {
    "dns": lambda n: {"servers": [f"10.1.0.{n}"]},
    "ldap": lambda n: {"servers": [{"name": f"s{n % 2}", "host": f"h{n}", "port": 389}],
                       "queries": []},
    "timezone": lambda n: {"zone": ["UTC", "Europe/Rome"][n % 2]},
}


def _ev(k: int, seq: int, clock: int, kind: str, payload: dict[str, Any]) -> events.Event:
    return events.create(KEYS[k], seq=seq, prev=None if seq == 1 else "1" * 64, clock=clock,
                         wall=clock >> 16, user=f"u{k}", kind=kind, payload=payload)


def _genesis() -> list[events.Event]:
    create = _ev(0, 1, 1 << 16, "cluster.create", {
        "name": "c", "machine": {"hostname": "m0", "serial": "s0"},
        "cluster_settings": {"dns": {"servers": ["1.1.1.1"]}, "users": {"users": [{"name": f"u{i}", "role": "admin", "passphrase_hash": "x"}
                                        for i in range(3)]}},
        "machine_settings": {}})
    gid = group_id_of(create.id)
    out = [create]
    for i in (1, 2):
        out.append(_ev(0, i + 1, (i + 1) << 16, "cluster.admit", {
            "machine_id": ORIGINS[i], "key": ORIGINS[i], "group": gid,
            "machine": {"hostname": f"m{i}", "serial": f"s{i}"}}))
    return out


@st.composite
def scenario(draw: Any) -> list[events.Event]:
    evs = _genesis()
    gid = group_id_of(evs[0].id)
    seqs = {0: 4, 1: 1, 2: 1}
    for _ in range(draw(st.integers(1, 14))):
        k = draw(st.integers(0, 2))
        clock = draw(st.integers(4, 60)) << 16
        kind = draw(st.sampled_from(["config.commit"] * 4 + ["machine.setgroup", "group.add",
                                                              "machine.remove"]))
        if kind == "config.commit":
            section = draw(st.sampled_from(sorted(VALUES)))
            mode = draw(st.sampled_from(["cluster", f"group:{gid}", f"machine:{ORIGINS[1]}"]))
            op = draw(st.sampled_from(["define", "patch", "delete"]))
            value = VALUES[section](draw(st.integers(0, 5)))
            ch: dict[str, Any] = {"mode": mode, "section": section, "op": op, "base": None}
            if op == "define":
                ch["value"] = value
            elif op == "patch":
                ch.update({"set": state.fields_of(section, value), "unset": []})
            payload: dict[str, Any] = {"comment": "", "changes": [ch]}
        elif kind == "machine.setgroup":
            payload = {"machine": ORIGINS[2], "group": gid, "base": None}
        elif kind == "group.add":
            payload = {"name": f"g{clock}"}
        else:
            payload = {"machine": ORIGINS[2], "cutoffs": {ORIGINS[2]: draw(st.integers(0, 3))}}
        evs.append(_ev(k, seqs[k], clock, kind, payload))
        seqs[k] += 1
    return evs


def dump(store: Any, st_: state.Structure) -> bytes:
    sections = {f"{m}|{s}": store.section_value(m, s) for m, s in store.defined_sections()}
    effective = {f"{m}|{s}": list(state.resolve(store, st_, m, s))
                 for m in sorted(st_.machines) for s in sorted(catalog.SECTIONS)}
    return encoding.encode({"sections": sections, "effective": effective, "name": st_.name,
                            "groups": st_.groups, "members": [m.mid for m in st_.members()]})


def cutoffs(evs: list[events.Event]) -> dict[str, int]:
    out: dict[str, int] = {}
    for ev in evs:
        if ev.kind == "machine.remove":
            for origin, seq in ev.payload["cutoffs"].items():
                out[origin] = max(out.get(origin, 0), seq)
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(evs=scenario(), data=st.data())
def test_fold_equals_the_reference_projection(evs: list[events.Event], data: Any) -> None:
    reference = state.MemoryStore()
    state.apply(reference, sorted(evs, key=lambda e: e.order_key))
    ref_st = state.structure_from(reference.structure_winners())
    snap = history.fold(data.draw(st.permutations(evs)), cutoffs(evs))
    assert dump(snap.store, snap.structure) == dump(reference, ref_st)
    assert snap.events == len(evs)
    assert snap.newest == max(evs, key=lambda e: e.order_key)


def test_bounds_admit_what_they_say() -> None:
    ev = _genesis()[1]
    assert history.at_event(ev).admits(ev.order_key)
    assert not history.before_event(ev).admits(ev.order_key)
    assert history.until(ev.clock >> 16).admits(ev.order_key)
    assert not history.until((ev.clock >> 16) - 1).admits(ev.order_key)


# --------------------------------------------------------------------------- on a real node


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    home = tmp_path / "n1"
    init_home(home, hostname="n1", passphrase="pw")
    with open_node(home) as n:
        yield n


def _set(node: Node, mode: str, section: str, value: dict[str, Any]) -> events.Event:
    ops.stage(node, "admin", mode, section, value)
    ops.commit(node, "admin")
    ev = node.log.get(node.conn.execute(
        "SELECT id FROM events ORDER BY rowid DESC LIMIT 1").fetchone()[0])
    assert ev is not None
    return ev


def test_history_follows_the_node_through_its_scopes(node: Node) -> None:
    me = f"machine:{node.mid}"
    standalone = _set(node, me, "dns", {"servers": ["9.9.9.9"]})
    assert history.node_snapshot(node, history.EVERYTHING).digest() == node.state_digest()
    cluster.create(node, "admin", "c")
    in_cluster = _set(node, "cluster", "dns", {"servers": ["1.1.1.1"]})
    assert history.node_snapshot(node, history.EVERYTHING).digest() == node.state_digest()
    then = history.node_snapshot(node, history.at_event(standalone))
    assert then.structure.name is None
    assert then.settings()["machine:n1"]["dns"] == {"servers": ["9.9.9.9"]}
    before = history.node_snapshot(node, history.before_event(in_cluster))
    assert before.structure.name == "c" and before.value("cluster", "dns") == {
        "servers": ["9.9.9.9"]}
    cluster.removemachine(node, "admin", "n1")
    assert node.structure().name is None
    now = history.node_snapshot(node, history.EVERYTHING)
    assert now.structure.name is None and now.digest() == node.state_digest()
    assert history.node_snapshot(node, history.at_event(in_cluster)).structure.name == "c"


def test_open_copy_refuses_what_is_not_a_database(tmp_path: Path) -> None:
    from evstore.core.errors import InvalidInput

    junk = tmp_path / "x.db"
    junk.write_bytes(b"\0" * 4096)
    with pytest.raises(InvalidInput):
        history.open_copy(junk)
    with pytest.raises(InvalidInput, match="no such database file"):
        history.open_copy(tmp_path / "none.db")
