"""Events: golden bytes, signing and verification, tamper detection, envelope rules."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evstore.core import clock, encoding, events
from evstore.core.errors import EncodingError, InvalidInput, VerificationError

GOLDEN_KEY = nacl.signing.SigningKey(bytes(range(32)))
GOLDEN_WALL = 1767225600000  # 2026-01-01T00:00:00Z
GOLDEN_PAYLOAD = {"hostname": "alpha.example", "serial": "S-0001", "note": 'café "q"\n'}
GOLDEN_ORIGIN = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
GOLDEN_RAW = (
    b'{"clock":115816896921600000,"kind":"node.init",'
    b'"origin":"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8",'
    b'"payload":{"hostname":"alpha.example","note":"caf\xc3\xa9 \\"q\\"\\u000a",'
    b'"serial":"S-0001"},"prev":null,"seq":1,"user":"admin","v":1,"wall":1767225600000}'
)
GOLDEN_ID = "db0fc7ca6f2ba30b5529f9659f5ea6d642d317f6267660f4806ba9fe6d57834c"
GOLDEN_SIG = (
    "59bff0478f466deed75b225541ed42c7d8e9d77f1254b1ad224f156141d42a7b"
    "6b95b8db0e099a1e004496e4effefb4eb0ea14ea168aabc893b548a4dc042e02"
)


def golden() -> events.Event:
    return events.create(
        GOLDEN_KEY, seq=1, prev=None, clock=clock.pack(GOLDEN_WALL), wall=GOLDEN_WALL,
        user="admin", kind="node.init", payload=GOLDEN_PAYLOAD,
    )


def test_golden_vector_bytes_id_and_signature() -> None:
    ev = golden()
    assert ev.origin == GOLDEN_ORIGIN
    assert ev.raw == GOLDEN_RAW
    assert ev.id == GOLDEN_ID == hashlib.sha256(GOLDEN_RAW).hexdigest()
    assert ev.sig.hex() == GOLDEN_SIG


def test_golden_vector_parses_from_its_bytes_alone() -> None:
    ev = events.parse(GOLDEN_RAW, bytes.fromhex(GOLDEN_SIG))
    assert (ev.origin, ev.seq, ev.prev, ev.kind, ev.user) == (
        GOLDEN_ORIGIN, 1, None, "node.init", "admin"
    )
    assert ev.payload == GOLDEN_PAYLOAD
    assert clock.wall_ms_of(ev.clock) == GOLDEN_WALL


def test_signature_covers_the_context_prefix() -> None:
    nacl.signing.VerifyKey(bytes.fromhex(GOLDEN_ORIGIN)).verify(
        events.SIGNING_CONTEXT + GOLDEN_RAW, bytes.fromhex(GOLDEN_SIG)
    )
    bare = GOLDEN_KEY.sign(GOLDEN_RAW).signature  # signed without the context: refused
    with pytest.raises(VerificationError):
        events.parse(GOLDEN_RAW, bare)


def test_create_then_parse_gives_the_same_event() -> None:
    first = golden()
    second = events.create(
        GOLDEN_KEY, seq=2, prev=first.id, clock=first.clock + 1, wall=GOLDEN_WALL,
        user="ops", kind="config.commit", payload={"changes": [{"section": "dns", "v": -1}]},
    )
    parsed = events.parse(second.raw, second.sig)
    assert parsed == second
    assert parsed.payload == second.payload
    assert parsed.order_key == (second.clock, second.origin, second.id)


@given(st.data())
def test_any_single_byte_flip_of_raw_is_refused(data: st.DataObject) -> None:
    raw = bytearray(GOLDEN_RAW)
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises(InvalidInput):
        events.parse(bytes(raw), bytes.fromhex(GOLDEN_SIG))


@given(st.data())
def test_any_single_byte_flip_of_sig_is_refused(data: st.DataObject) -> None:
    sig = bytearray.fromhex(GOLDEN_SIG)
    pos = data.draw(st.integers(0, len(sig) - 1))
    sig[pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises(VerificationError):
        events.parse(GOLDEN_RAW, bytes(sig))


def test_every_position_flipped_once_is_refused() -> None:
    sig = bytes.fromhex(GOLDEN_SIG)
    for blob, which in ((GOLDEN_RAW, "raw"), (sig, "sig")):
        for pos in range(len(blob)):
            bad = bytearray(blob)
            bad[pos] ^= 0x01
            args = (bytes(bad), sig) if which == "raw" else (GOLDEN_RAW, bytes(bad))
            with pytest.raises(InvalidInput):
                events.parse(*args)


def test_truncated_or_extended_signature_is_refused() -> None:
    sig = bytes.fromhex(GOLDEN_SIG)
    for bad in (sig[:-1], sig + b"\x00", b""):
        with pytest.raises(VerificationError):
            events.parse(GOLDEN_RAW, bad)


def test_another_key_cannot_sign_for_an_origin() -> None:
    other = nacl.signing.SigningKey(bytes(32))
    forged = other.sign(events.SIGNING_CONTEXT + GOLDEN_RAW).signature
    with pytest.raises(VerificationError):
        events.parse(GOLDEN_RAW, forged)


def _signed(env: dict[str, Any]) -> tuple[bytes, bytes]:
    raw = encoding.encode(env)
    return raw, GOLDEN_KEY.sign(events.SIGNING_CONTEXT + raw).signature


def _envelope(**changes: Any) -> dict[str, Any]:
    env = dict(encoding.decode(GOLDEN_RAW))
    env.update(changes)
    return env


@pytest.mark.parametrize(
    "changes",
    [
        {"v": 2},
        {"v": True},  # true == 1 in Python; the bytes say true, so refuse
        {"seq": 0},
        {"seq": True},
        {"seq": 2, "prev": None},  # only seq 1 may lack a prev
        {"seq": 2, "prev": "AB" * 32},
        {"prev": "ab" * 32},  # seq 1 has no prev
        {"clock": -1},
        {"wall": "now"},
        {"user": ""},
        {"kind": 7},
        {"payload": []},
        {"origin": GOLDEN_ORIGIN.upper()},
    ],
)
def test_bad_envelopes_are_refused_even_when_signed(changes: dict[str, Any]) -> None:
    with pytest.raises(EncodingError):
        events.parse(*_signed(_envelope(**changes)))


def test_missing_or_extra_keys_are_refused() -> None:
    env = _envelope()
    del env["user"]
    with pytest.raises(EncodingError):
        events.parse(*_signed(env))
    with pytest.raises(EncodingError):
        events.parse(*_signed(_envelope(extra=1)))


def test_oversized_events_are_refused() -> None:
    with pytest.raises(EncodingError):
        events.create(
            GOLDEN_KEY, seq=1, prev=None, clock=0, wall=0, user="u", kind="k",
            payload={"blob": "x" * events.MAX_EVENT_BYTES},
        )
    with pytest.raises(EncodingError):
        events.parse(b" " * (events.MAX_EVENT_BYTES + 1), bytes(64))


def test_fingerprint_is_pinned() -> None:
    assert events.fingerprint(GOLDEN_ORIGIN) == "56:47:5a:a7:54:63:47:4c:02:85:df:5d:bf:2b:ca:b7"


def test_the_spec_shows_the_golden_vector() -> None:
    """docs/format.md carries the same bytes, id and signature: the spec cannot drift."""
    spec = (Path(__file__).parents[2] / "docs" / "format.md").read_text(encoding="utf-8")
    block = re.search(r"```\n(\{\"clock\".*?)\n```", spec)
    assert block is not None and block.group(1).encode() == GOLDEN_RAW
    assert f"`raw` ({len(GOLDEN_RAW)} bytes" in spec
    for pinned in (GOLDEN_ID, GOLDEN_SIG, GOLDEN_ORIGIN, events.fingerprint(GOLDEN_ORIGIN)):
        assert pinned in spec


@given(seed=st.binary(min_size=32, max_size=32), text=st.text(max_size=40))
def test_create_signs_as_pynacl_does_for_any_key(seed: bytes, text: str) -> None:
    """``create`` signs through libsodium directly (a cached secret key per seed): the
    origin and signature are exactly what PyNaCl's SigningKey gives."""
    key = nacl.signing.SigningKey(seed)
    ev = events.create(key, seq=1, prev=None, clock=5, wall=0, user="u", kind="k",
                       payload={"t": text})
    assert events.origin_of(key) == ev.origin == key.verify_key.encode().hex()
    assert ev.sig == key.sign(events.SIGNING_CONTEXT + ev.raw).signature
    assert events.parse(ev.raw, ev.sig) == ev


def test_events_built_fast_equal_those_built_by_the_constructor() -> None:
    ev = golden()
    again = events.Event(raw=ev.raw, sig=ev.sig, id=ev.id, origin=ev.origin, seq=ev.seq,
                         prev=ev.prev, clock=ev.clock, wall=ev.wall, user=ev.user,
                         kind=ev.kind, payload=ev.payload)
    assert ev == again and hash(ev) == hash(again) and repr(ev) == repr(again)
    with pytest.raises(AttributeError):  # still frozen
        ev.seq = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    "changes",
    [
        {"seq": 0}, {"seq": True}, {"seq": 2, "prev": None}, {"seq": 2, "prev": "AB" * 32},
        {"prev": "ab" * 32}, {"clock": -1}, {"clock": True}, {"wall": "now"}, {"user": ""},
        {"kind": 7}, {"payload": []}, {"payload": {"x": 1.5}}, {"payload": {"x": 2**63}},
    ],
)
def test_create_refuses_what_parse_refuses(changes: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"seq": 1, "prev": None, "clock": 0, "wall": 0, "user": "u",
                              "kind": "k", "payload": {}}
    fields.update(changes)
    with pytest.raises(EncodingError):
        events.create(GOLDEN_KEY, **fields)
