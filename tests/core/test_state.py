"""Convergence of the configuration state: the same events, in any order, with duplicates and
in any batches, give byte-identical views; the SQLite store equals the in-memory reference."""

from __future__ import annotations

import sqlite3
from typing import Any

import nacl.signing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evstore.core import encoding, events, state
from evstore.core.modes import group_id_of
from evstore.storage.connect import open_db
from evstore.storage.views import SqliteStore, keep_events

KEYS = [nacl.signing.SigningKey(bytes([i + 1]) * 32) for i in range(3)]
ORIGINS = [k.verify_key.encode().hex() for k in KEYS]


def _ev(k: int, seq: int, clock: int, kind: str, payload: dict[str, Any]) -> events.Event:
    return events.create(KEYS[k], seq=seq, prev=None if seq == 1 else "0" * 64, clock=clock,
                         wall=clock >> 16, user="admin", kind=kind, payload=payload)


def _genesis() -> list[events.Event]:
    create = _ev(0, 1, 1 << 16, "cluster.create", {
        "name": "c", "group_name": "Main_Group", "machine": {"hostname": "m0", "serial": "s0"},
        "cluster_settings": {"dns": {"servers": ["1.1.1.1"]}, "users": {"users": [{"name": "admin", "role": "admin", "passphrase_hash": "x"}]}},
        "machine_settings": {},
    })
    gid = group_id_of(create.id)
    out = [create]
    for i in (1, 2):
        out.append(_ev(0, i + 1, (i + 1) << 16, "cluster.admit", {
            "machine_id": ORIGINS[i], "key": ORIGINS[i], "group": gid,
            "machine": {"hostname": f"m{i}", "serial": f"s{i}"},
        }))
    return out


SECTIONS = {
    "dns": lambda n: {"servers": [f"10.0.0.{n}"]},
    "timezone": lambda n: {"zone": ["UTC", "Europe/Paris", "America/New_York"][n % 3]},
    "ldap": lambda n: {"servers": [{"name": f"s{n % 2}", "host": f"h{n}", "port": 389}],
                       "queries": []},
}


@st.composite
def change(draw: Any, gid: str) -> dict[str, Any]:
    section = draw(st.sampled_from(sorted(SECTIONS)))
    mode = draw(st.sampled_from(["cluster", f"group:{gid}", f"machine:{ORIGINS[1]}"]))
    op = draw(st.sampled_from(["define", "patch", "delete"]))
    n = draw(st.integers(0, 5))
    base = draw(st.one_of(st.none(), st.just([1 << 16, ORIGINS[0], "0" * 64])))
    ch: dict[str, Any] = {"mode": mode, "section": section, "op": op, "base": base}
    value = SECTIONS[section](n)
    if op == "define":
        ch["value"] = value
    elif op == "patch":
        ch["set"] = state.fields_of(section, value)
        ch["unset"] = []
    return ch


@st.composite
def scenario(draw: Any) -> list[events.Event]:
    evs = _genesis()
    gid = group_id_of(evs[0].id)
    seqs = {0: 4, 1: 1, 2: 1}
    for _ in range(draw(st.integers(1, 12))):
        k = draw(st.integers(0, 2))
        clock = draw(st.integers(4, 40)) << 16
        kind = draw(st.sampled_from(["config.commit"] * 4 + ["machine.setgroup",
                                                              "group.add", "machine.remove"]))
        if kind == "config.commit":
            payload = {"comment": "", "changes": [draw(change(gid))]}
        elif kind == "machine.setgroup":
            payload = {"machine": ORIGINS[2], "group": gid, "base": None}
        elif kind == "group.add":
            payload = {"name": f"g{clock}"}
        else:
            payload = {"machine": ORIGINS[2], "cutoffs": {ORIGINS[2]: draw(st.integers(0, 3))}}
        evs.append(_ev(k, seqs[k], clock, kind, payload))
        seqs[k] += 1
    return evs


def dump(store: Any) -> bytes:
    """Everything the views hold, canonically encoded."""
    st_ = state.structure_from(store.structure_winners())
    sections = {f"{m}|{s}": store.section_value(m, s) for m, s in store.defined_sections()}
    effective = {}
    for m in sorted(st_.machines):
        for s in sorted(SECTIONS):
            effective[f"{m}|{s}"] = list(state.resolve(store, st_, m, s))
    return encoding.encode({"sections": sections, "effective": effective,
                            "name": st_.name, "groups": st_.groups})


def _sqlite(evs: list[events.Event]) -> tuple[sqlite3.Connection, SqliteStore]:
    """A store over a database whose log holds ``evs`` (a history is read from the events)."""
    conn = open_db(":memory:")
    keep_events(conn, evs)
    return conn, SqliteStore(conn)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(evs=scenario(), data=st.data())
def test_any_order_duplicates_and_batches_converge(evs: list[events.Event], data: Any) -> None:
    reference = state.MemoryStore()
    state.apply(reference, sorted(evs, key=lambda e: e.order_key))
    shuffled = data.draw(st.permutations(evs + data.draw(st.lists(st.sampled_from(evs), max_size=5))))
    incremental = state.MemoryStore()
    i = 0
    while i < len(shuffled):
        n = data.draw(st.integers(1, 4))
        state.apply(incremental, shuffled[i : i + n])
        i += n
    assert dump(incremental) == dump(reference)
    conn, sq = _sqlite(evs)
    conn.execute("BEGIN")
    for e in shuffled:
        state.apply(sq, [e])
    assert dump(sq) == dump(reference)
    conn.execute("COMMIT")
    conn.close()


def test_concurrent_changes_to_different_entries_both_survive() -> None:
    evs = _genesis()
    base = [evs[0].clock, evs[0].origin, evs[0].id]
    a = _ev(1, 1, 10 << 16, "config.commit", {"comment": "", "changes": [
        {"mode": "cluster", "section": "ldap", "op": "patch", "base": base,
         "set": {"servers/a": {"name": "a", "host": "ha", "port": 389}}, "unset": []}]})
    b = _ev(2, 1, 10 << 16, "config.commit", {"comment": "", "changes": [
        {"mode": "cluster", "section": "ldap", "op": "patch", "base": base,
         "set": {"servers/b": {"name": "b", "host": "hb", "port": 389}}, "unset": []}]})
    store = state.MemoryStore()
    state.apply(store, [*evs, b, a])
    names = [s["name"] for s in store.section_value("cluster", "ldap")["servers"]]
    assert names == ["a", "b"]
    assert not store.lost


def test_same_field_latest_wins_and_loser_is_recorded() -> None:
    evs = _genesis()
    base = [evs[0].clock, evs[0].origin, evs[0].id]
    old = _ev(1, 1, 10 << 16, "config.commit", {"comment": "", "changes": [
        {"mode": "cluster", "section": "timezone", "op": "patch", "base": base,
         "set": {"zone": "Europe/Paris"}, "unset": []}]})
    new = _ev(2, 1, 11 << 16, "config.commit", {"comment": "", "changes": [
        {"mode": "cluster", "section": "timezone", "op": "patch", "base": base,
         "set": {"zone": "Asia/Tokyo"}, "unset": []}]})
    for order in ([old, new], [new, old]):
        store = state.MemoryStore()
        state.apply(store, [*evs, *order])
        assert store.section_value("cluster", "timezone") == {"zone": "Asia/Tokyo"}
        [(loser, winner)] = store.lost[("cluster", "timezone", "zone")]
        assert (loser.event, winner.event) == (old.id, new.id)


def test_defined_but_empty_overrides_with_empty() -> None:
    """The seed's LDAP example: the group defines settings with no queries; machines have none."""
    evs = _genesis()
    gid = group_id_of(evs[0].id)
    c = _ev(1, 1, 10 << 16, "config.commit", {"comment": "", "changes": [
        {"mode": "cluster", "section": "ldap", "op": "define", "base": None, "value": {
            "servers": [{"name": "s", "host": "h", "port": 389}],
            "queries": [{"name": q, "server": "s", "base": "dc=x", "filter": "(uid={u})"}
                        for q in "abc"]}},
        {"mode": f"group:{gid}", "section": "ldap", "op": "define", "base": None,
         "value": {"servers": [], "queries": []}}]})
    store = state.MemoryStore()
    state.apply(store, [*evs, c])
    st_ = state.structure_from(store.structure_winners())
    value, source, _ = state.resolve(store, st_, ORIGINS[1], "ldap")
    assert value["queries"] == [] and source == f"group:{gid}"


def test_removal_cutoff_ignores_later_events_everywhere() -> None:
    evs = _genesis()
    base = [evs[0].clock, evs[0].origin, evs[0].id]
    late = _ev(2, 2, 20 << 16, "config.commit", {"comment": "", "changes": [
        {"mode": "cluster", "section": "timezone", "op": "patch", "base": base,
         "set": {"zone": "Asia/Tokyo"}, "unset": []}]})
    removal = _ev(0, 4, 10 << 16, "machine.remove",
                  {"machine": ORIGINS[2], "cutoffs": {ORIGINS[2]: 1}})
    for order in ([late, removal], [removal, late]):
        store = state.MemoryStore()
        state.apply(store, [*evs, *order])
        assert store.section_value("cluster", "timezone") is None or \
            store.section_value("cluster", "timezone")["zone"] != "Asia/Tokyo"


class _CountingStore(state.MemoryStore):
    """Counts the history reads of each (scope, section)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: dict[tuple[str, str], int] = {}

    def section_history(self, scope: str, section: str) -> list[state.Write]:
        self.reads[(scope, section)] = self.reads.get((scope, section), 0) + 1
        return super().section_history(scope, section)


def test_a_removal_reads_each_section_history_once() -> None:
    """A moved cutoff recomputes every register the origin wrote: many fields of a section
    share one history, which is read once for all of them (SqliteStore derives each write
    from its event: reading it again per field cost three times as much)."""
    evs = _genesis()
    ldap = {"servers": [{"name": f"s{i}", "host": "h", "port": 389} for i in range(6)],
            "queries": []}
    commits = [_ev(2, seq, (4 + seq) << 16, "config.commit", {"comment": "", "changes": [
        {"mode": "cluster", "section": "ldap", "op": "define", "base": None, "value": ldap}]})
        for seq in (1, 2, 3)]
    removal = _ev(0, 4, 20 << 16, "machine.remove",
                  {"machine": ORIGINS[2], "cutoffs": {ORIGINS[2]: 1}})
    store = _CountingStore()
    state.apply(store, [*evs, *commits])
    store.reads.clear()
    state.apply(store, [removal])
    assert store.reads[("cluster", "ldap")] == 1
    assert len([r for r in store.regs_of_origin(ORIGINS[2]) if r[:2] == ("cluster", "ldap")]) > 6
    reference = state.MemoryStore()
    state.apply(reference, [*evs, commits[0]])
    assert store.section_value("cluster", "ldap") == reference.section_value("cluster", "ldap")


def test_a_rekey_admission_retires_the_old_key_past_its_cutoff() -> None:
    """A rekeyed machine's old key is cut off like a removed machine's: its events up to the
    cutoff the admission names still count, its later ones nowhere, in any order."""
    evs = _genesis()
    base = [evs[0].clock, evs[0].origin, evs[0].id]

    def zone(seq: int, clock: int, name: str) -> events.Event:
        return _ev(2, seq, clock << 16, "config.commit", {"comment": "", "changes": [
            {"mode": "cluster", "section": "timezone", "op": "patch", "base": base,
             "set": {"zone": name}, "unset": []}]})

    counted, late = zone(1, 8, "Europe/Paris"), zone(2, 20, "Asia/Tokyo")
    new_key = "ab" * 32
    rekey = _ev(0, 4, 10 << 16, "cluster.admit", {
        "machine_id": ORIGINS[2], "key": new_key, "replaces": ORIGINS[2], "cutoff": 1,
        "group": group_id_of(evs[0].id), "machine": {"hostname": "m2", "serial": "s2"}})
    for order in ([counted, late, rekey], [rekey, late, counted], [late, rekey, counted]):
        store = state.MemoryStore()
        state.apply(store, [*evs, *order])
        assert store.section_value("cluster", "timezone") == {"zone": "Europe/Paris"}
        st_ = state.structure_from(store.structure_winners())
        assert st_.machines[ORIGINS[2]].key == new_key
