"""Admissibility (issue 15, item 1): the pure rule, and convergence with hostile events.

A member can sign anything. Events that mean nothing (unknown kind, unknown section, a value
the catalog refuses) or that their user may not make (no such user, or a role that does not
allow it) are kept but applied nowhere, and every path (incremental in any order and
batching, the SQLite store, the full rebuild) agrees on which they are and on the views.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_state import KEYS, ORIGINS, SECTIONS, dump

from evstore.core import admit, events, state
from evstore.core.modes import group_id_of
from evstore.storage import rebuild
from evstore.storage.connect import open_db
from evstore.storage.views import SqliteStore, keep_events

# 150 examples in `make test`; the inner loop (`make check`) runs a quick 30
MANY = 30 if os.environ.get("EVSTORE_HYPOTHESIS_PROFILE") == "check" else 150
USERS = [{"name": "admin", "role": "admin", "passphrase_hash": "h-admin"},
         {"name": "op", "role": "operator", "passphrase_hash": "h-op"},
         {"name": "ro", "role": "readonly", "passphrase_hash": "h-ro"},
         {"name": "gu", "role": "guest", "passphrase_hash": "h-gu"}]


def _ev(k: int, seq: int, clock: int, kind: str, payload: dict[str, Any],
        user: str = "admin") -> events.Event:
    return events.create(KEYS[k], seq=seq, prev=None if seq == 1 else "0" * 64, clock=clock,
                         wall=clock >> 16, user=user, kind=kind, payload=payload)


def _genesis() -> list[events.Event]:
    create = _ev(0, 1, 1 << 16, "cluster.create", {
        "name": "c", "group_name": "Main_Group", "machine": {"hostname": "m0", "serial": "s0"},
        "cluster_settings": {"dns": {"servers": ["1.1.1.1"]}, "users": {"users": USERS}},
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


def _commit(*changes: dict[str, Any]) -> dict[str, Any]:
    return {"comment": "", "changes": list(changes)}


def _dns(mode: str = "cluster", value: Any = None) -> dict[str, Any]:
    return {"mode": mode, "section": "dns", "op": "define", "base": None,
            "value": {"servers": ["9.9.9.9"]} if value is None else value}


def _user_patch(name: str, **entry: Any) -> dict[str, Any]:
    return {"mode": "cluster", "section": "users", "op": "patch", "base": None,
            "set": {f"users/{name}": {"name": name, **entry}}, "unset": []}


def _why(ev: events.Event, before: list[events.Event] | None = None) -> str | None:
    return admit.judge_all([*(before if before is not None else _genesis()), ev]).get(ev.id)


# --------------------------------------------------------------------------- the rule, case by case


def test_an_admins_change_is_admissible() -> None:
    assert _why(_ev(1, 1, 9 << 16, "config.commit", _commit(_dns()))) is None


def test_an_unknown_kind_is_refused() -> None:
    why = _why(_ev(1, 1, 9 << 16, "config.explode", {"x": 1}))
    assert why == "unknown kind 'config.explode'"


def test_an_unknown_section_is_refused() -> None:
    ch = {"mode": "cluster", "section": "nosuch", "op": "define", "base": None, "value": {}}
    assert "unknown section 'nosuch'" in str(_why(_ev(1, 1, 9 << 16, "config.commit",
                                                      _commit(ch))))


def test_a_value_the_catalog_refuses_is_refused() -> None:
    ev = _ev(1, 1, 9 << 16, "config.commit", _commit(_dns(value={"servers": {"a": 1}})))
    assert "dns.servers" in str(_why(ev))
    patch = {"mode": "cluster", "section": "dns", "op": "patch", "base": None,
             "set": {"servers": {"a": 1}}, "unset": []}
    assert "dns.servers" in str(_why(_ev(1, 1, 9 << 16, "config.commit", _commit(patch))))


def test_a_malformed_payload_is_refused_not_crashed_on() -> None:
    for kind, payload in [("group.rename", {"name": "x"}), ("config.commit", {"changes": 3}),
                          ("config.commit", {"changes": [{"mode": "cluster"}]}),
                          ("machine.remove", {"machine": "m", "cutoffs": {"o": "x"}})]:
        assert _why(_ev(1, 1, 9 << 16, kind, payload)) is not None, (kind, payload)


def test_an_event_in_the_name_of_nobody_is_refused() -> None:
    why = _why(_ev(1, 1, 9 << 16, "config.commit", _commit(_dns()), user="mallory"))
    assert why == "user 'mallory' does not exist at that point"


def test_roles() -> None:
    add_admin = _commit(_user_patch("eve", role="admin", passphrase_hash="x"))
    cases = [
        ("op", _commit(_dns()), None),
        ("op", add_admin, "may not change users"),
        ("op", {"name": "g"}, "may not change the cluster"),
        ("ro", _commit(_dns()), "may not change dns"),
        ("gu", _commit(_dns()), "may not change dns"),
        ("gu", _commit(_user_patch("gu", role="guest", passphrase_hash="new")), None),
        ("gu", _commit(_user_patch("gu", role="admin", passphrase_hash="new")),
         "only its own passphrase"),
        ("gu", _commit(_user_patch("op", role="operator", passphrase_hash="new")),
         "only its own passphrase"),
        ("ro", _commit(_user_patch("ro", role="readonly", passphrase_hash="new")),
         "may not change users"),
        ("op", _commit(_user_patch("op", role="operator", passphrase_hash="new")), None),
        ("admin", add_admin, None),
    ]
    for user, payload, expect in cases:
        kind = "group.add" if "name" in payload else "config.commit"
        why = _why(_ev(1, 1, 9 << 16, kind, payload, user=user))
        if expect is None:
            assert why is None, (user, payload, why)
        else:
            assert why is not None and expect in why, (user, payload, why)


def test_a_guest_may_define_the_users_section_only_with_its_own_new_passphrase() -> None:
    same = [dict(u) for u in USERS]
    same[3]["passphrase_hash"] = "new"
    ok = {"mode": "cluster", "section": "users", "op": "define", "base": None,
          "value": {"users": same}}
    assert _why(_ev(1, 1, 9 << 16, "config.commit", _commit(ok), user="gu")) is None
    worse = [dict(u) for u in same]
    worse[2]["role"] = "admin"
    bad = {**ok, "value": {"users": worse}}
    assert _why(_ev(1, 1, 9 << 16, "config.commit", _commit(bad), user="gu")) is not None


def test_the_verdict_follows_the_user_database_at_that_point_of_the_order() -> None:
    gen = _genesis()
    made = _ev(0, 4, 5 << 16, "config.commit", _commit(_user_patch("new", role="admin",
                                                                   passphrase_hash="x")))
    before = _ev(1, 1, 4 << 16, "config.commit", _commit(_dns()), user="new")
    after = _ev(1, 2, 6 << 16, "config.commit", _commit(_dns()), user="new")
    bad = admit.judge_all([*gen, made, before, after])
    assert set(bad) == {before.id}
    # an operator cannot create the admin that would then act
    by_op = _ev(2, 1, 5 << 16, "config.commit", _commit(_user_patch("new", role="admin",
                                                                    passphrase_hash="x")),
                user="op")
    bad = admit.judge_all([*gen, by_op, after])
    assert set(bad) == {by_op.id, after.id}


# --------------------------------------------------------------------------- convergence


@st.composite
def hostile(draw: Any) -> list[events.Event]:
    evs = _genesis()
    gid = group_id_of(evs[0].id)
    seqs = {0: 4, 1: 1, 2: 1}
    users = ["admin", "op", "ro", "gu", "ghost", "new"]
    for _ in range(draw(st.integers(1, 14))):
        k = draw(st.integers(0, 2))
        clock = draw(st.integers(4, 40)) << 16
        user = draw(st.sampled_from(users))
        what = draw(st.sampled_from(["dns", "dns", "section", "bad_value", "unknown_kind",
                                     "add_user", "drop_user", "guest_pw", "group",
                                     "remove"]))
        mode = draw(st.sampled_from(["cluster", f"group:{gid}", f"machine:{ORIGINS[1]}"]))
        n = draw(st.integers(0, 5))
        kind = "config.commit"
        if what == "dns":
            section = draw(st.sampled_from(sorted(SECTIONS)))
            payload = _commit({"mode": mode, "section": section, "op": "define",
                               "base": None, "value": SECTIONS[section](n)})
        elif what == "section":
            payload = _commit({"mode": mode, "section": "future", "op": "define",
                               "base": None, "value": {"k": n}})
        elif what == "bad_value":
            payload = _commit(_dns(mode, {"servers": {"n": n}}))
        elif what == "unknown_kind":
            kind, payload = "cluster.takeover", {"n": n}
        elif what == "add_user":
            name = draw(st.sampled_from(["new", "op", "gu"]))
            role = draw(st.sampled_from(["admin", "operator", "readonly", "guest"]))
            payload = _commit(_user_patch(name, role=role, passphrase_hash=f"h{n}"))
        elif what == "drop_user":
            name = draw(st.sampled_from(["new", "op", "gu", "admin"]))
            payload = _commit({"mode": "cluster", "section": "users", "op": "patch",
                               "base": None, "set": {}, "unset": [f"users/{name}"]})
        elif what == "guest_pw":
            payload = _commit(_user_patch("gu", role="guest", passphrase_hash=f"p{n}"))
        elif what == "group":
            kind, payload = "group.add", {"name": f"g{clock}"}
        else:
            kind = "machine.remove"
            payload = {"machine": ORIGINS[2], "cutoffs": {ORIGINS[2]: draw(st.integers(0, 3))}}
        evs.append(_ev(k, seqs[k], clock, kind, payload, user=user))
        seqs[k] += 1
    return evs


def _full(store: Any) -> bytes:
    return dump(store) + repr(sorted(store.invalid().items())).encode()


def _rebuilt(evs: list[events.Event]) -> bytes:
    conn = open_db(":memory:")
    keep_events(conn, evs)
    rebuild.rebuild(conn, evs)
    out = _full(SqliteStore(conn))
    conn.close()
    return out


@settings(max_examples=MANY, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(evs=hostile(), data=st.data())
def test_hostile_events_converge_on_every_path(evs: list[events.Event], data: Any) -> None:
    reference = state.MemoryStore()
    state.apply(reference, sorted(evs, key=lambda e: e.order_key))
    want = _full(reference)
    assert dict(reference.invalid()) == admit.judge_all(evs)
    shuffled = data.draw(st.permutations(evs + data.draw(st.lists(st.sampled_from(evs),
                                                                   max_size=5))))
    incremental = state.MemoryStore()
    i = 0
    while i < len(shuffled):
        n = data.draw(st.integers(1, 4))
        state.apply(incremental, shuffled[i : i + n])
        i += n
    assert _full(incremental) == want
    conn = open_db(":memory:")
    keep_events(conn, evs)
    sq = SqliteStore(conn)
    conn.execute("BEGIN")
    for e in shuffled:
        state.apply(sq, [e])
    assert _full(sq) == want
    conn.execute("COMMIT")
    conn.close()
    assert _rebuilt(evs) == want


def test_a_late_deletion_retracts_what_the_user_did_after_it() -> None:
    gen = _genesis()
    by_op = _ev(1, 1, 9 << 16, "config.commit", _commit(_dns(value={"servers": ["6.6.6.6"]})),
                user="op")
    drop = _ev(0, 4, 8 << 16, "config.commit", _commit(
        {"mode": "cluster", "section": "users", "op": "patch", "base": None, "set": {},
         "unset": ["users/op"]}))
    for store in (state.MemoryStore(), None):
        conn: sqlite3.Connection | None = None
        if store is None:
            conn = open_db(":memory:")
            keep_events(conn, [*gen, by_op, drop])
            conn.execute("BEGIN")
            store = SqliteStore(conn)  # type: ignore[assignment]
        state.apply(store, gen)
        state.apply(store, [by_op])
        assert store.section_value("cluster", "dns") == {"servers": ["6.6.6.6"]}
        state.apply(store, [drop])  # signed earlier, arrives later
        assert store.section_value("cluster", "dns") == {"servers": ["1.1.1.1"]}
        assert set(store.invalid()) == {by_op.id}
        if conn is not None:
            conn.execute("COMMIT")
            conn.close()


# --------------------------------------------------------------------------- removal cutoffs


def test_a_removed_machines_users_change_past_its_cutoff_counts_nowhere() -> None:
    """Machine 2 is removed with cutoff 1 (its first event counts); its key then signs a
    change of the users (seq 2, past the cutoff) stamped *before* its removal, making 'eve'
    an admin. The fold ignores that write; the user database that judges must too, so an
    event in eve's name (signed by machine 1) is inadmissible, on every path and batching."""
    gen = _genesis()
    first = _ev(2, 1, 5 << 16, "config.commit", _commit(_dns()))
    backdated = _ev(2, 2, 6 << 16, "config.commit", _commit(
        _user_patch("eve", role="admin", passphrase_hash="h-eve")))
    by_eve = _ev(1, 1, 8 << 16, "config.commit", _commit(
        _dns(value={"servers": ["6.6.6.6"]})), user="eve")
    removal = _ev(0, 4, 9 << 16, "machine.remove", {
        "machine": ORIGINS[2], "cutoffs": {ORIGINS[2]: 1}})
    evs = [*gen, first, backdated, by_eve, removal]
    verdicts = admit.judge_all(evs)
    assert "user 'eve' does not exist" in verdicts[by_eve.id]
    assert removal.id not in verdicts and first.id not in verdicts
    # the database after everything is what the fold's users registers hold
    auth = admit.Authority([e for e in evs if admit.is_authority(e)])
    ref = state.MemoryStore()
    state.apply(ref, evs)
    assert auth.users_before((1 << 62, "", "")) == {"cluster": ref.section_value("cluster",
                                                                               "users")}
    assert ref.section_value("cluster", "dns") == {"servers": ["9.9.9.9"]}  # first's
    want = _full(ref)
    # the removal arriving last (the others already applied) gives the same
    late = state.MemoryStore()
    state.apply(late, [*gen, first, backdated, by_eve])
    assert late.section_value("cluster", "dns") == {"servers": ["6.6.6.6"]}  # eve counted
    state.apply(late, [removal])
    assert _full(late) == want
    conn = open_db(":memory:")
    keep_events(conn, evs)
    sq = SqliteStore(conn)
    conn.execute("BEGIN")
    for e in reversed(evs):
        state.apply(sq, [e])
    conn.execute("COMMIT")
    assert _full(sq) == want
    assert _rebuilt(evs) == want


def test_a_removal_is_judged_without_what_it_cuts_off() -> None:
    """The removed machine cannot undo its removal by reaching back: a backdated demotion of
    the remover, past its cutoff, does not make the removal inadmissible."""
    gen = _genesis()
    demote = _ev(2, 1, 6 << 16, "config.commit", _commit(
        _user_patch("admin", role="readonly", passphrase_hash="h-admin")))
    removal = _ev(0, 4, 9 << 16, "machine.remove", {
        "machine": ORIGINS[2], "cutoffs": {ORIGINS[2]: 0}})
    verdicts = admit.judge_all([*gen, demote, removal])
    assert removal.id not in verdicts
    ref = state.MemoryStore()
    state.apply(ref, [*gen, demote, removal])
    admin = [u for u in ref.section_value("cluster", "users")["users"] if u["name"] == "admin"]
    assert admin[0]["role"] == "admin"
