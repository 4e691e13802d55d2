"""Tests of core/sync/: the planner (table-driven, like corrosion's compute_available_needs
tests), the message codec (golden bytes, round trips, strict refusals, fuzzing: the decoder
raises SyncError and nothing else) and the sans-I/O session."""

from __future__ import annotations

import contextlib
import hashlib
import struct
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evstore.core import encoding, events
from evstore.core.errors import InvalidInput
from evstore.core.sync import (
    MAX_BATCH_BYTES,
    MAX_ITEMS,
    MAX_MESSAGE_BYTES,
    ByeMsg,
    Closed,
    EventsMsg,
    HelloMsg,
    Ingest,
    Item,
    Message,
    NeedRanges,
    PeerVersionMismatch,
    PingMsg,
    Pong,
    PongMsg,
    PushMsg,
    Range,
    Ready,
    Send,
    Session,
    SyncError,
    VVMsg,
    batches,
    chunk_ranges,
    decode_message,
    encode_message,
    plan,
)

A, B, C = "a" * 64, "b" * 64, "c" * 64
T0 = 1767225600000


def key(name: str) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(hashlib.sha256(name.encode()).digest())


def chain(name: str, n: int) -> list[events.Event]:
    k, out, prev = key(name), [], None
    for seq in range(1, n + 1):
        ev = events.create(k, seq=seq, prev=prev, clock=seq, wall=T0, user="admin",
                           kind="node.init" if seq == 1 else "config.commit",
                           payload={"n": seq})
        out.append(ev)
        prev = ev.id
    return out


def items_of(evs: list[events.Event]) -> list[Item]:
    return [(e.raw, e.sig) for e in evs]


# --------------------------------------------------------------------------- the planner

PLAN_CASES = [
    # (name, mine, theirs, expected ranges)
    ("both empty", {}, {}, []),
    ("I hold nothing", {}, {A: (1, 5)}, []),
    ("peer lacks the origin", {A: (1, 5)}, {}, [Range(A, 1, 5)]),
    ("peer lacks it, my run starts at an anchor", {A: (7, 9)}, {}, [Range(A, 7, 9)]),
    ("peer behind", {A: (1, 5)}, {A: (1, 3)}, [Range(A, 4, 5)]),
    ("peer one behind", {A: (1, 5)}, {A: (1, 4)}, [Range(A, 5, 5)]),
    ("equal", {A: (1, 5)}, {A: (1, 5)}, []),
    ("peer ahead", {A: (1, 5)}, {A: (1, 9)}, []),
    ("peer's head below my anchor", {A: (7, 9)}, {A: (1, 3)}, [Range(A, 7, 9)]),
    ("peer's head just below my anchor", {A: (7, 9)}, {A: (1, 6)}, [Range(A, 7, 9)]),
    ("peer started later, still behind", {A: (1, 9)}, {A: (5, 6)}, [Range(A, 7, 9)]),
    ("peer started later, not behind", {A: (1, 9)}, {A: (5, 9)}, []),
    ("origins only the peer holds", {A: (1, 2)}, {A: (1, 2), B: (1, 4)}, []),
    (
        "several origins, sorted",
        {C: (1, 3), A: (1, 2), B: (2, 8)},
        {B: (2, 4), C: (1, 3)},
        [Range(A, 1, 2), Range(B, 5, 8)],
    ),
]


@pytest.mark.parametrize(
    ("mine", "theirs", "expected"),
    [case[1:] for case in PLAN_CASES],
    ids=[case[0] for case in PLAN_CASES],
)
def test_plan(
    mine: dict[str, tuple[int, int]],
    theirs: dict[str, tuple[int, int]],
    expected: list[Range],
) -> None:
    assert plan(mine, theirs) == expected


runs = st.builds(lambda f, n: (f, f + n), st.integers(1, 20), st.integers(0, 20))
vectors = st.dictionaries(st.sampled_from([A, B, C]), runs)


@given(vectors, vectors)
def test_plan_sends_exactly_what_the_peer_lacks(
    mine: dict[str, tuple[int, int]], theirs: dict[str, tuple[int, int]]
) -> None:
    """Every planned event is mine and not the peer's; after it the peer is level with me."""
    for r in plan(mine, theirs):
        first, last = mine[r.origin]
        assert first <= r.first <= r.last == last
        have = theirs.get(r.origin)
        assert have is None or r.first > have[1]
    after = dict(theirs)
    for r in plan(mine, theirs):
        after[r.origin] = (after.get(r.origin, (r.first, 0))[0], r.last)
    for origin, (_, last) in mine.items():
        assert after[origin][1] >= last


def test_chunk_ranges_cuts_at_the_event_count() -> None:
    groups = list(chunk_ranges([Range(A, 1, 5), Range(B, 3, 4)], max_events=3))
    assert groups == [[Range(A, 1, 3)], [Range(A, 4, 5), Range(B, 3, 3)], [Range(B, 4, 4)]]
    assert list(chunk_ranges([])) == []


def test_batches_respect_count_and_size() -> None:
    small = [(b"x" * 10, b"s" * 64)] * 7
    assert [len(b) for b in batches(small, max_items=3)] == [3, 3, 1]
    assert [len(b) for b in batches(small, max_bytes=200)] == [2, 2, 2, 1]
    huge = [(b"x" * 500, b"s"), (b"y", b"s")]
    assert [len(b) for b in batches(huge, max_bytes=100)] == [1, 1]  # an oversize one goes alone
    assert batches([]) == []


# --------------------------------------------------------------------------- the codec

GOLDEN: list[tuple[Message, bytes]] = [
    (PingMsg(1, 2), b'{"nonce":1,"t":"ping","wall_ms":2}'),
    (PongMsg(1, 2, 3), b'{"nonce":1,"t":"pong","wall_ms":3,"wall_ms_echo":2}'),
    (ByeMsg(), b'{"t":"bye"}'),
    (VVMsg({A: (1, 2)}), b'{"t":"vv","vv":{"' + A.encode() + b'":[1,2]}}'),
    (
        HelloMsg(B, "0.1.0", {}),
        b'{"node":"' + B.encode() + b'","t":"hello","version":"0.1.0","vv":{}}',
    ),
    (  # binary batch: mark 0, kind 2 (push), count 1, length 2, the bytes, the signature
        PushMsg(((b"\x01\xff", b"\x00" * 64),)),
        b"\x00\x02\x00\x01" + b"\x00\x00\x00\x02" + b"\x01\xff" + b"\x00" * 64,
    ),
    (
        EventsMsg(((b"ab", b"\x07" * 64), (b"c", b"\x08" * 64))),
        b"\x00\x01\x00\x02\x00\x00\x00\x02ab" + b"\x07" * 64 + b"\x00\x00\x00\x01c" + b"\x08" * 64,
    ),
]


@pytest.mark.parametrize(("msg", "wire"), GOLDEN)
def test_golden_bytes(msg: Message, wire: bytes) -> None:
    assert encode_message(msg) == wire
    assert decode_message(wire) == msg


hex32 = st.binary(min_size=32, max_size=32).map(bytes.hex)
ints = st.integers(0, encoding.INT_MAX)
wire_vectors = st.dictionaries(
    hex32, st.tuples(st.integers(1, 1000), st.integers(0, 1000)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=5,
)
wire_items = st.lists(
    st.tuples(st.binary(min_size=1, max_size=200), st.binary(min_size=64, max_size=64)),
    min_size=1, max_size=5,
).map(tuple)
messages = st.one_of(
    st.builds(HelloMsg, hex32, st.text(min_size=1, max_size=64), wire_vectors),
    st.builds(VVMsg, wire_vectors),
    st.builds(EventsMsg, wire_items),
    st.builds(PushMsg, wire_items),
    st.builds(PingMsg, ints, ints),
    st.builds(PongMsg, ints, ints, ints),
    st.just(ByeMsg()),
)


@given(messages)
def test_round_trip(msg: Message) -> None:
    assert decode_message(encode_message(msg)) == msg


def _wire(obj: dict[str, Any]) -> bytes:
    return encoding.encode(obj)


GOOD_ITEM = {"raw": "01", "sig": "00" * 64}
SIG = b"\x00" * 64


def _batch(kind: int, items: list[tuple[bytes, bytes]], count: int | None = None) -> bytes:
    """A binary batch built by hand, limits unchecked, to feed the decoder bad ones."""
    out = struct.pack(">BBH", 0, kind, len(items) if count is None else count)
    for raw, sig in items:
        out += struct.pack(">I", len(raw)) + raw + sig
    return out
REFUSED = [
    ("not JSON", b"hello", "canonical JSON"),
    ("not canonical", b'{"t": "bye"}', "canonical JSON"),
    ("not an object", b"[]", "JSON object"),
    ("no type", _wire({}), "unknown message type"),
    ("unknown type", _wire({"t": "gossip"}), "unknown message type"),
    ("type not a string", _wire({"t": 1}), "unknown message type"),
    ("extra key", _wire({"t": "bye", "x": 1}), "unexpected keys ['x']"),
    ("missing key", _wire({"t": "ping", "nonce": 1}), "missing keys ['wall_ms']"),
    ("negative int", _wire({"t": "ping", "nonce": -1, "wall_ms": 0}), "nonce"),
    ("bool for int", _wire({"t": "ping", "nonce": True, "wall_ms": 0}), "nonce"),
    ("string for int", _wire({"t": "ping", "nonce": "1", "wall_ms": 0}), "nonce"),
    ("bad node", _wire({"t": "hello", "node": "zz", "version": "1", "vv": {}}), "node"),
    ("upper-case hex", _wire({"t": "hello", "node": A.upper(), "version": "1", "vv": {}}), "hex"),
    ("empty version", _wire({"t": "hello", "node": A, "version": "", "vv": {}}), "version"),
    ("long version", _wire({"t": "hello", "node": A, "version": "v" * 65, "vv": {}}), "version"),
    ("vv not object", _wire({"t": "vv", "vv": []}), "vv must be an object"),
    ("vv bad origin", _wire({"t": "vv", "vv": {"x": [1, 2]}}), "origin"),
    ("vv bad run", _wire({"t": "vv", "vv": {A: [1]}}), "[first, last]"),
    ("vv backwards", _wire({"t": "vv", "vv": {A: [3, 2]}}), "ends before it starts"),
    ("vv seq 0", _wire({"t": "vv", "vv": {A: [0, 2]}}), "vv first"),
    ("items as JSON", _wire({"t": "events", "items": [GOOD_ITEM]}), "unknown message type"),
    ("batch header cut", b"\x00\x01\x00", "shorter than its header"),
    ("batch kind", _batch(3, [(b"\x01", SIG)]), "unknown batch kind 3"),
    ("no items", b"\x00\x02\x00\x00", "1 to 500 events, not 0"),
    ("too many items", _batch(1, [(b"\x01", SIG)] * (MAX_ITEMS + 1)), "not 501"),
    ("length cut", _batch(1, [(b"\x01", SIG)])[:-66], "inside an event's length"),
    ("event cut", _batch(1, [(b"\x01\x02", SIG)])[:-1], "ends inside an event"),
    ("short sig", _batch(1, [(b"\x01", SIG)], count=2)[:-1] + b"", "ends inside"),
    ("empty raw", _batch(1, [(b"", SIG)]), "outside 1.."),
    ("oversize raw", _batch(1, [(b"\x00" * (events.MAX_EVENT_BYTES + 1), SIG)]), "outside 1.."),
    ("trailing bytes", _batch(1, [(b"\x01", SIG)]) + b"\x00", "1 bytes after the last event"),
    ("oversize batch", b"\x00\x01" + b"\x00" * MAX_MESSAGE_BYTES, "byte limit"),
    ("oversize message", b" " * (MAX_MESSAGE_BYTES + 1), "byte limit"),
    ("float", b'{"nonce":1.5,"t":"ping","wall_ms":0}', "canonical JSON"),
    ("duplicate key", b'{"t":"bye","t":"bye"}', "canonical JSON"),
]


@pytest.mark.parametrize(
    ("data", "reason"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_strict_refusals(data: bytes, reason: str) -> None:
    with pytest.raises(SyncError) as info:
        decode_message(data)
    assert reason in str(info.value)
    assert isinstance(info.value, InvalidInput)
    assert len(str(info.value)) < 200  # a short reason, never the peer's whole message


def _decodes_or_refuses(data: bytes) -> None:
    try:
        msg = decode_message(data)
    except SyncError:
        return
    assert encode_message(msg) == data  # anything accepted is canonical


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_sync_error(data: bytes) -> None:
    _decodes_or_refuses(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=70) | hex32,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["t", "node", "version", "vv", "items", "raw", "sig", "nonce",
                         "wall_ms", "wall_ms_echo", A]), inner, max_size=4),
    max_leaves=12,
)
type_keys = st.sampled_from(["hello", "vv", "events", "push", "ping", "pong", "bye", "x"])


@settings(max_examples=500)
@given(type_keys, st.dictionaries(st.sampled_from(["node", "version", "vv", "items", "nonce",
                                                   "wall_ms", "wall_ms_echo", "x"]), json_values))
def test_near_messages_raise_only_sync_error(kind: str, body: dict[str, Any]) -> None:
    """Well-formed JSON objects with a real type and plausible keys: deep into the checks."""
    try:
        data = encoding.encode({**body, "t": kind})
    except InvalidInput:
        return
    _decodes_or_refuses(data)


@settings(max_examples=300)
@given(messages, st.data())
def test_mangled_messages_raise_only_sync_error(msg: Message, data: st.DataObject) -> None:
    wire = bytearray(encode_message(msg))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(wire) - 1))
        wire[i] = data.draw(st.integers(0, 255))
    _decodes_or_refuses(bytes(wire))


def test_encoder_refuses_batches_outside_the_limits() -> None:
    with pytest.raises(ValueError):
        encode_message(EventsMsg(()))
    with pytest.raises(ValueError):
        encode_message(PushMsg(((b"x", b"s"),) * (MAX_ITEMS + 1)))


# --------------------------------------------------------------------------- the session


def session(node: str, vv: dict[str, tuple[int, int]] | None = None, version: str = "1") -> Session:
    return Session(node=node, version=version, vv=vv or {})


def connected(
    vv_a: dict[str, tuple[int, int]], vv_b: dict[str, tuple[int, int]]
) -> tuple[Session, Session, list[Any], list[Any]]:
    """Two sessions after exchanging hellos, and what each asked for."""
    a, b = session(A, vv_a), session(B, vv_b)
    (hello_a,), (hello_b,) = a.start(), b.start()
    return a, b, a.receive(hello_b, T0), b.receive(hello_a, T0)


def test_hello_exchange_plans_both_ways() -> None:
    a, b, from_a, from_b = connected({A: (1, 5), C: (1, 2)}, {A: (1, 3), B: (1, 4)})
    assert from_a == [Ready(B), NeedRanges((Range(A, 4, 5), Range(C, 1, 2)), push=False)]
    assert from_b == [Ready(A), NeedRanges((Range(B, 1, 4),), push=False)]
    assert a.ready and b.ready and a.peer_node == B


def test_start_once_and_first() -> None:
    s = session(A)
    with pytest.raises(SyncError):
        s.receive(encode_message(ByeMsg()), T0)  # not started
    s.start()
    with pytest.raises(RuntimeError):
        s.start()


def test_hello_must_come_first_and_once() -> None:
    s = session(A)
    s.start()
    with pytest.raises(SyncError, match="expected hello first"):
        s.receive(encode_message(VVMsg({})), T0)
    s.receive(encode_message(HelloMsg(B, "1", {})), T0)
    with pytest.raises(SyncError, match="second hello"):
        s.receive(encode_message(HelloMsg(B, "1", {})), T0)


def test_a_link_to_itself_is_refused() -> None:
    s = session(A)
    s.start()
    with pytest.raises(SyncError, match="this node"):
        s.receive(encode_message(HelloMsg(A, "1", {})), T0)


def test_version_mismatch_names_both_versions_and_says_bye() -> None:
    s = session(A, version="0.1.0")
    s.start()
    actions = s.receive(encode_message(HelloMsg(B, "0.2.0", {B: (1, 9)})), T0)
    mismatch, bye = actions
    assert isinstance(mismatch, PeerVersionMismatch)
    assert "0.1.0" in mismatch.message and "0.2.0" in mismatch.message
    assert bye == Send(encode_message(ByeMsg()))
    assert s.closed
    with pytest.raises(SyncError):
        s.receive(encode_message(PingMsg(1, 1)), T0)


def test_local_change_pushes_once() -> None:
    a, _, _, _ = connected({A: (1, 2)}, {A: (1, 2)})
    assert a.local_changed({A: (1, 4)}) == [NeedRanges((Range(A, 3, 4),), push=True)]
    assert a.local_changed({A: (1, 4)}) == []  # already on its way
    assert a.local_changed({A: (1, 5), B: (1, 1)}) == [
        NeedRanges((Range(A, 5, 5), Range(B, 1, 1)), push=True)
    ]


def test_local_change_before_hello_is_kept_for_the_plan() -> None:
    s = session(A, {A: (1, 2)})
    s.start()
    assert s.local_changed({A: (1, 3)}) == []
    actions = s.receive(encode_message(HelloMsg(B, "1", {})), T0)
    assert actions[1] == NeedRanges((Range(A, 1, 3),), push=False)


def test_received_events_are_not_echoed() -> None:
    evs = chain("origin", 3)
    origin = evs[0].origin
    a, _, _, _ = connected({}, {origin: (1, 3)})
    actions = a.receive(encode_message(PushMsg(tuple(items_of(evs)))), T0)
    assert actions == [Ingest(tuple(items_of(evs)), pushed=True)]
    assert a.local_changed({origin: (1, 3)}) == []  # the peer sent them: it holds them


def test_events_answer_is_not_a_push() -> None:
    evs = chain("origin", 1)
    a, _, _, _ = connected({}, {})
    (action,) = a.receive(encode_message(EventsMsg(tuple(items_of(evs)))), T0)
    assert action == Ingest(tuple(items_of(evs)), pushed=False)


def test_unreadable_event_bytes_are_left_to_the_log() -> None:
    a, _, _, _ = connected({}, {})
    junk = ((b"not json", b"\x00" * 64),)
    assert a.receive(encode_message(PushMsg(junk)), T0) == [Ingest(junk, pushed=True)]


def test_vv_replaces_the_belief_and_replans() -> None:
    a, _, _, _ = connected({A: (1, 5)}, {A: (1, 5)})
    assert a.resync() == [encode_message(VVMsg({A: (1, 5)}))]
    assert a.receive(encode_message(VVMsg({A: (1, 2)})), T0) == [
        NeedRanges((Range(A, 3, 5),), push=False)
    ]


def test_resync_before_hello_sends_nothing() -> None:
    s = session(A)
    s.start()
    assert s.resync() == []


def test_send_events_batches_and_decodes() -> None:
    s = session(A)
    items = items_of(chain("origin", 3)) * 400  # 1200 events
    wires = s.send_events(items, push=True)
    decoded = [decode_message(w) for w in wires]
    assert all(isinstance(m, PushMsg) for m in decoded)
    assert [len(m.items) for m in decoded if isinstance(m, PushMsg)] == [500, 500, 200]
    assert all(len(w) < 2 * MAX_BATCH_BYTES + 64 * 1024 for w in wires)
    (one,) = s.send_events(items[:1])
    assert isinstance(decode_message(one), EventsMsg)
    assert s.send_events([]) == []


def test_ping_pong_measures_offset_and_rtt() -> None:
    a, b, _, _ = connected({}, {})
    ping = a.ping(T0)
    (reply,) = b.receive(ping, T0 + 5_040)  # b's clock runs 5 s ahead; 80 ms round trip
    assert isinstance(reply, Send)
    assert a.receive(reply.data, T0 + 80) == [Pong(offset_ms=5_000, rtt_ms=80)]
    assert a.receive(reply.data, T0 + 90) == []  # a duplicate answer is ignored


def test_pong_with_a_wrong_echo_is_refused() -> None:
    a, _, _, _ = connected({}, {})
    a.ping(T0)
    with pytest.raises(SyncError, match="echoes"):
        a.receive(encode_message(PongMsg(1, T0 + 1, T0)), T0)


def test_only_recent_pings_are_tracked() -> None:
    a, _, _, _ = connected({}, {})
    for i in range(20):
        a.ping(T0 + i)
    assert a.receive(encode_message(PongMsg(1, T0, T0)), T0 + 30) == []
    assert a.receive(encode_message(PongMsg(20, T0 + 19, T0 + 25)), T0 + 31) == [Pong(0, 12)]


def test_ping_needs_an_established_session() -> None:
    s = session(A)
    s.start()
    with pytest.raises(RuntimeError):
        s.ping(T0)


def test_bye_ends_the_session() -> None:
    a, b, _, _ = connected({}, {})
    assert a.receive(b.bye(), T0) == [Closed("the peer ended the session")]
    assert a.closed and b.closed


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=120), max_size=4))
def test_session_raises_only_sync_error(datas: list[bytes]) -> None:
    """A session fed garbage, before and after its hello, refuses with SyncError only."""
    s = session(A)
    s.start()
    for data in [*datas[:1], encode_message(HelloMsg(B, "1", {})), *datas[1:]]:
        with contextlib.suppress(SyncError):
            s.receive(data, T0)


def test_recheck_claims_none_of_the_origins_so_the_peer_sends_them_whole() -> None:
    a, b, _, _ = connected({A: (1, 5), C: (2, 4)}, {A: (1, 7), C: (2, 4)})
    with pytest.raises(RuntimeError):
        session(A).recheck([C])  # not established
    ask = a.recheck([A])
    assert decode_message(ask) == VVMsg({C: (2, 4)})
    assert b.receive(ask, T0) == [NeedRanges((Range(A, 1, 7),), push=False)]
