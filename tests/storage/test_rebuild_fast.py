"""The bulk rebuild's fast path (``rebuild._change_entry``) gives the general path's entries.

Settings events with one change are most of any log, so the fold names the fields they write
without ``state.pair_writes``, the commonest (a patch that unsets nothing) in the fewest
steps. Here, on events near those shapes and far from them (other kinds and ops, several
changes, unsets, fields sorting before ``@defined``, odd bases, strings that need escapes or
look like the JSON around them), whenever the fast path answers, its entry must be the one
the general path makes (the same (scope, section), the same fields in the same order), and
it must refuse every event the general path refuses (decoding an entry runs the general path).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from evstore.core import encoding, events, state
from evstore.storage import rebuild as rebuild_mod
from evstore.storage import views
from evstore.storage.rebuild import _change_entry

ORIGIN = "ab" * 32
EVENT_ID = "cd" * 32

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
TRICKY = st.sampled_from([
    "", "set", '"set":', '},"unset":[]}],"comment":"', "@defined", "@", "@a", "@definedx",
    "0", "!", "a\nb", 'q"q', "back\\slash", "é", "\u2028", "interfaces/eth0", "keys/feature3",
])
STRINGS = TEXT | TRICKY
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(encoding.INT_MIN, encoding.INT_MAX) | STRINGS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(STRINGS, inner, max_size=3),
    max_leaves=8,
)
HEX = st.text("0123456789abcdef", min_size=1, max_size=64)
bases = st.one_of(
    st.none(),
    st.tuples(st.integers(0, 2**62), HEX, HEX).map(list),
    st.tuples(st.integers(0, 2**62), STRINGS, STRINGS).map(list),
    st.sampled_from([[True, "a", "b"], [1, 2, 3], [1, "a"], "x", {"a": 1}, [1, "a", "b", "c"]]),
)


SAFE = st.text(st.characters(min_codepoint=0x41, exclude_characters="\\",
                             exclude_categories=["Cs"]), max_size=6)
"""Text needing no escape, sorting after ``@defined`` when not empty."""
plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(encoding.INT_MIN, encoding.INT_MAX) | SAFE,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SAFE, inner, max_size=3),
    max_leaves=6,
)


def often(common: Any, rare: Any) -> Any:
    """``common`` seven times in eight, else ``rare`` (each event is near the common shape,
    and one in five or so has it all)."""
    return st.integers(0, 7).flatmap(lambda k: rare if k == 0 else common)


@st.composite
def changes(draw: Any) -> dict[str, Any]:
    ch: dict[str, Any] = {
        "mode": draw(often(st.sampled_from(["cluster", "group:g1", f"machine:{ORIGIN}"]),
                           STRINGS | st.integers(0, 3))),
        "section": draw(often(st.sampled_from(["dns", "ldap", "interfaces"]), STRINGS)),
        "op": draw(often(st.just("patch"), st.sampled_from(["define", "delete", "other"]))),
        "base": draw(often(st.none() | st.tuples(st.integers(0, 2**62), HEX, HEX).map(list),
                           bases)),
        "set": draw(often(st.dictionaries(SAFE.filter(bool), plain_values, max_size=3),
                          st.dictionaries(STRINGS, json_values, max_size=3)
                          | st.sampled_from([[], "x", None]))),
        "unset": draw(often(st.just([]), st.sampled_from([["a"], ["@defined"], "ab", [1]])
                            | st.lists(STRINGS, max_size=2))),
    }
    if ch["op"] == "define":
        ch["value"] = draw(st.dictionaries(STRINGS, json_values, max_size=2))
    if draw(often(st.just(False), st.just(True))):
        for key in draw(st.lists(st.sampled_from(sorted(ch)), max_size=2, unique=True)):
            del ch[key]  # a change missing a key: the general path may refuse it
    if draw(often(st.just(False), st.just(True))):
        ch[draw(STRINGS)] = draw(json_values)  # an extra key
    return ch


@st.composite
def settings_events(draw: Any) -> tuple[str, bytes, dict[str, Any]]:
    payload: dict[str, Any] = {
        "changes": draw(often(st.lists(changes(), min_size=1, max_size=1),
                              st.lists(changes(), max_size=3) | st.just("x"))),
        "comment": draw(often(SAFE, STRINGS | st.sampled_from([None, 1, {"set": {}}]))),
    }
    if draw(often(st.just(False), st.just(True))):
        payload[draw(STRINGS)] = draw(json_values)
    env = {
        "v": events.FORMAT_VERSION, "origin": ORIGIN, "seq": draw(st.integers(1, 2**40)),
        "prev": None, "clock": draw(st.integers(0, 2**62)), "wall": draw(st.integers(0, 2**45)),
        "user": draw(often(st.sampled_from(["admin", "é"]), STRINGS.filter(bool))),
        "kind": draw(often(st.sampled_from(["config.commit", "config.load",
                                            "clustercheck.resolve"]),
                           st.sampled_from(["group.add", "cluster.setname"]))),
        "payload": payload,
    }
    raw = encoding.encode(env)
    event_id = hashlib.sha256(raw).hexdigest()
    return event_id, raw, views.fast_loads(raw)


def general(event_id: str, env: dict[str, Any], raw: bytes) -> dict[tuple[str, str], Any] | None:
    """The entries the general path makes, or None when it refuses the event."""
    order = (env["clock"], env["origin"], event_id)
    try:
        pairs = state.pair_writes(env["kind"], event_id, env["origin"], env["payload"])
        return {key: (*order, raw, tuple(fields)) for key, fields in pairs.items()}
    except Exception:
        return None


def one_patch(**change: Any) -> tuple[str, bytes, dict[str, Any]]:
    ch = {"mode": "cluster", "section": "dns", "op": "patch", "base": None,
          "set": {"servers": ["10.0.0.1"]}, "unset": [], **change}
    env = {"v": 1, "origin": ORIGIN, "seq": 3, "prev": "ef" * 32, "clock": 5 << 16,
           "wall": 5, "user": "admin", "kind": "config.commit",
           "payload": {"changes": [ch], "comment": ""}}
    raw = encoding.encode(env)
    return EVENT_ID, raw, views.fast_loads(raw)


@settings(max_examples=1500, deadline=None)
@given(settings_events())
@example(one_patch())
@example(one_patch(set={}))
@example(one_patch(base=[7, ORIGIN, EVENT_ID], set={"b": 1, "a": {"name": "x"}}))
def test_the_fast_path_gives_the_general_entry(ev: tuple[str, bytes, dict[str, Any]]) -> None:
    event_id, raw, env = ev
    fast = _change_entry(event_id, env, raw)
    if fast is None:
        return
    assert general(event_id, env, raw) == {fast[0]: fast[1]}


SHORTEST = ({}, {"base": [7, ORIGIN, EVENT_ID]}, {"set": {"b": 1, "a": [1, None, True, {"z": ""}]}},
            {"section": "ldap", "set": {"queries/q1": {"name": "q1", "filter": "(a=é)"}}},
            {"set": {}}, {"set": {"@defined": False}}, {"set": {"0": 1}},
            {"set": {"a": "line\nbreak"}}, {"set": {"q": 'say "hi"'}}, {"extra": 1})
BUILT = ({"unset": ["a"]}, {"unset": ["servers", "b", "b"]}, {"unset": ["@defined"]},
         {"base": [True, "a", "b"]}, {"base": "x"}, {"base": ["12", 3, None]},
         {"op": "define", "value": {"servers": ["10.0.0.2"]}},
         {"op": "define", "section": "ldap", "set": None,
          "value": {"queries": [{"name": "q", "filter": "x"}], "@reset": 1, "0": 2}},
         {"op": "delete"}, {"op": "delete", "base": [9, "a", "b"], "extra": 1})


@pytest.mark.parametrize("change", SHORTEST + BUILT)
def test_one_change_takes_the_fast_path(change: dict[str, Any]) -> None:
    event_id, raw, env = one_patch(**change)
    got = _change_entry(event_id, env, raw)
    assert got is not None
    assert general(event_id, env, raw) == {got[0]: got[1]}


@pytest.mark.parametrize("change", SHORTEST)
def test_the_commonest_patch_takes_the_shortest_path(
    change: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A patch that unsets nothing, with a plain base, is named in ``_change_entry`` itself."""
    event_id, raw, env = one_patch(**change)
    want = _change_entry(event_id, env, raw)

    def not_here(*args: Any) -> None:
        raise AssertionError("built by the longer path")

    monkeypatch.setattr(rebuild_mod, "_change_names", not_here)
    assert _change_entry(event_id, env, raw) == want


@pytest.mark.parametrize("change", [{"op": "other"}, {"mode": 3}, {"section": ["x"]},
                                    {"set": [1]}, {"unset": [1]}, {"unset": "ab"},
                                    {"op": "define", "value": [1]},
                                    {"op": "define", "value": {"queries": [{"x": 1}]},
                                     "section": "ldap"}])
def test_the_fast_path_leaves_the_rest_to_the_general_path(change: dict[str, Any]) -> None:
    event_id, raw, env = one_patch(**change)
    assert _change_entry(event_id, env, raw) is None


@pytest.mark.parametrize("change", [{"unset": None}, {"set": None}])
def test_a_change_missing_a_key_is_not_copied(change: dict[str, Any]) -> None:
    """Six keys, but not the six of the commonest patch (nor a payload of two keys but
    no comment): the general path's entry, or None, never an error."""
    event_id, raw, env = one_patch()
    ch = env["payload"]["changes"][0]
    for key, value in change.items():
        del ch[key]
        ch["other"] = value
    got = _change_entry(event_id, env, raw)
    assert got is None or general(event_id, env, raw) == {got[0]: got[1]}
    env["payload"]["other"] = env["payload"].pop("comment")
    got = _change_entry(event_id, env, raw)
    assert got is None or general(event_id, env, raw) == {got[0]: got[1]}


def test_several_changes_take_the_general_path() -> None:
    event_id, raw, env = one_patch()
    env["payload"]["changes"] *= 2
    assert _change_entry(event_id, env, raw) is None
    env["kind"] = "group.add"
    assert _change_entry(event_id, env, raw) is None


@st.composite
def plain_patches(draw: Any) -> tuple[str, bytes, dict[str, Any]]:
    """One-change patches that unset nothing (the shortest path's shape), with any fields
    and values: some sort before ``@defined`` or need escapes, bases are plain or odd, the
    change and the payload may hold other keys, ``unset`` may be missing."""
    ch: dict[str, Any] = {
        "mode": draw(st.sampled_from(["cluster", f"machine:{ORIGIN}"]) | STRINGS),
        "section": draw(st.sampled_from(["dns", "ldap", "interfaces"]) | STRINGS),
        "op": "patch", "base": draw(bases),
        "set": draw(st.dictionaries(STRINGS, json_values, max_size=4)),
    }
    if draw(st.booleans()):
        ch["unset"] = []
    if draw(often(st.just(False), st.just(True))):
        ch[draw(STRINGS.filter(lambda k: k not in ("unset", "set")))] = draw(json_values)
    payload: dict[str, Any] = {"changes": [ch], "comment": draw(STRINGS)}
    if draw(often(st.just(False), st.just(True))):
        payload[draw(STRINGS.filter(lambda k: k != "changes"))] = draw(json_values)
    env = {"v": events.FORMAT_VERSION, "origin": ORIGIN, "seq": draw(st.integers(1, 2**40)),
           "prev": None, "clock": draw(st.integers(0, 2**62)),
           "wall": draw(st.integers(0, 2**45)),
           "user": draw(often(st.just("admin"), STRINGS.filter(bool))),
           "kind": draw(st.sampled_from(sorted(state.SETTINGS_KINDS))), "payload": payload}
    raw = encoding.encode(env)
    return hashlib.sha256(raw).hexdigest(), raw, views.fast_loads(raw)


@settings(max_examples=800, deadline=None)
@given(plain_patches())
@example(one_patch(base=[None, None, None]))  # both paths refuse a base they cannot read
def test_the_shortest_path_gives_the_general_entry(
    ev: tuple[str, bytes, dict[str, Any]]
) -> None:
    event_id, raw, env = ev
    got = _change_entry(event_id, env, raw)
    want = general(event_id, env, raw)
    ch = env["payload"]["changes"][0]
    if type(ch["mode"]) is str and type(ch["section"]) is str and want is not None:
        assert got is not None  # every plain patch the general path takes, it takes too
    if got is not None:
        assert want == {got[0]: got[1]}
