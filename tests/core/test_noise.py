"""Noise core: published test vectors replayed byte for byte, plus the properties we rely on.

The vectors (cacophony's, filtered to our suite) are read from the shared folder, never copied
into the project: a vector we typed in ourselves would only prove we agree with ourselves.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evstore.core.errors import InvalidInput
from evstore.core.noise import (
    MAX_NONCE,
    CipherState,
    HandshakeState,
    KeyPair,
    NoiseError,
    NonceExhausted,
    parse_protocol_name,
)

VECTOR_FILE = "noise-25519-chachapoly-blake2b.json"
XX = "Noise_XX_25519_ChaChaPoly_BLAKE2b"
XXPSK3 = "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b"


def _vector_path() -> Path | None:
    """EVSTORE_TEST_VECTORS (a folder or the file itself) wins over the shared folder."""
    candidates = []
    env = os.environ.get("EVSTORE_TEST_VECTORS")
    if env:
        candidates += [Path(env), Path(env) / VECTOR_FILE]
    candidates.append(
        Path(__file__).resolve().parent / "../../../shared/test-vectors" / VECTOR_FILE
    )
    return next((p for p in candidates if p.is_file()), None)


def _load_vectors() -> dict[str, dict[str, Any]]:
    path = _vector_path()
    if path is None:
        return {}
    vectors = json.loads(path.read_text())["vectors"]
    return {v["protocol_name"]: v for v in vectors if _supported(v["protocol_name"])}


def _supported(name: str) -> bool:
    try:
        parse_protocol_name(name)
    except ValueError:
        return False
    return True


VECTORS = _load_vectors()


def _need_vectors() -> None:
    if not VECTORS:
        pytest.skip(f"{VECTOR_FILE} not found (set EVSTORE_TEST_VECTORS to its folder)")


# -- vector replay ----------------------------------------------------------------------------


def _bytes(vector: dict[str, Any], key: str) -> bytes | None:
    return bytes.fromhex(vector[key]) if key in vector else None


def _key_pair(vector: dict[str, Any], key: str) -> KeyPair | None:
    private = _bytes(vector, key)
    return KeyPair.from_private(private) if private is not None else None


def _side(vector: dict[str, Any], prefix: str, initiator: bool) -> HandshakeState:
    psks = [bytes.fromhex(p) for p in vector.get(prefix + "psks", [])]
    assert len(psks) <= 1, "vectors with several psks are not supported"
    return HandshakeState(
        vector["protocol_name"],
        initiator=initiator,
        prologue=bytes.fromhex(vector[prefix + "prologue"]),
        s=_key_pair(vector, prefix + "static"),
        e=_key_pair(vector, prefix + "ephemeral"),
        rs=_bytes(vector, prefix + "remote_static"),
        psk=psks[0] if psks else None,
    )


def _replay(vector: dict[str, Any]) -> None:
    initiator, responder = _side(vector, "init_", True), _side(vector, "resp_", False)
    handshake_len = len(parse_protocol_name(vector["protocol_name"]).messages)
    messages = vector["messages"]
    for i, message in enumerate(messages[:handshake_len]):
        sender, receiver = (initiator, responder) if i % 2 == 0 else (responder, initiator)
        _exchange(sender.write_message, receiver.read_message, message)
    assert initiator.get_handshake_hash().hex() == vector["handshake_hash"]
    assert responder.get_handshake_hash().hex() == vector["handshake_hash"]
    i_send, i_recv = initiator.transport_ciphers()
    r_send, r_recv = responder.transport_ciphers()
    for i, message in enumerate(messages[handshake_len:], start=handshake_len):
        from_initiator = handshake_len == 1 or i % 2 == 0
        send, recv = (i_send, r_recv) if from_initiator else (r_send, i_recv)
        _exchange(
            lambda p, c=send: c.encrypt_with_ad(b"", p),
            lambda m, c=recv: c.decrypt_with_ad(b"", m),
            message,
        )


def _exchange(write: Any, read: Any, message: dict[str, str]) -> None:
    payload = bytes.fromhex(message["payload"])
    wire = write(payload)
    assert wire.hex() == message["ciphertext"]
    assert read(wire) == payload


@pytest.mark.parametrize("name", [XX, XXPSK3])
def test_xx_and_xxpsk3_match_the_published_vectors(name: str) -> None:
    _need_vectors()
    assert name in VECTORS, f"{name} missing from the vector file"
    _replay(VECTORS[name])


@pytest.mark.parametrize("name", sorted(VECTORS) or ["(no vector file)"])
def test_every_supported_pattern_matches_its_vector(name: str) -> None:
    _need_vectors()
    _replay(VECTORS[name])


# -- helpers for property tests -----------------------------------------------------------------

keys = st.binary(min_size=32, max_size=32).map(KeyPair.from_private)


def _pair(
    si: KeyPair,
    ei: KeyPair,
    sr: KeyPair,
    er: KeyPair,
    *,
    prologue: bytes = b"",
    psk_i: bytes | None = None,
    psk_r: bytes | None = None,
) -> tuple[HandshakeState, HandshakeState]:
    def name(psk: bytes | None) -> str:
        return XXPSK3 if psk is not None else XX

    init = HandshakeState(name(psk_i), initiator=True, prologue=prologue, s=si, e=ei, psk=psk_i)
    resp = HandshakeState(name(psk_r), initiator=False, prologue=prologue, s=sr, e=er, psk=psk_r)
    return init, resp


def _run(init: HandshakeState, resp: HandshakeState, payloads: list[bytes]) -> None:
    resp.read_message(init.write_message(payloads[0]))
    init.read_message(resp.write_message(payloads[1]))
    resp.read_message(init.write_message(payloads[2]))


def _ready_pair() -> tuple[HandshakeState, HandshakeState]:
    init, resp = _pair(*(KeyPair.from_private(bytes([n]) * 32) for n in (1, 2, 3, 4)))
    _run(init, resp, [b"", b"", b""])
    return init, resp


# -- properties ---------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    si=keys,
    ei=keys,
    sr=keys,
    er=keys,
    prologue=st.binary(max_size=40),
    psk=st.none() | st.binary(min_size=32, max_size=32),
    payloads=st.lists(st.binary(max_size=200), min_size=5, max_size=5),
)
def test_both_sides_agree_on_hash_keys_and_identities(
    si: KeyPair,
    ei: KeyPair,
    sr: KeyPair,
    er: KeyPair,
    prologue: bytes,
    psk: bytes | None,
    payloads: list[bytes],
) -> None:
    init, resp = _pair(si, ei, sr, er, prologue=prologue, psk_i=psk, psk_r=psk)
    _run(init, resp, payloads)
    assert init.get_handshake_hash() == resp.get_handshake_hash()
    assert init.remote_static == sr.public and resp.remote_static == si.public
    i_send, i_recv = init.transport_ciphers()
    r_send, r_recv = resp.transport_ciphers()
    assert r_recv.decrypt_with_ad(b"", i_send.encrypt_with_ad(b"", payloads[3])) == payloads[3]
    assert i_recv.decrypt_with_ad(b"", r_send.encrypt_with_ad(b"", payloads[4])) == payloads[4]


@settings(max_examples=60, deadline=None)
@given(payload=st.binary(max_size=300), position=st.integers(min_value=0), flip=st.integers(1, 255))
def test_tampered_transport_message_is_rejected_and_nonce_kept(
    payload: bytes, position: int, flip: int
) -> None:
    init, resp = _ready_pair()
    send, _ = init.transport_ciphers()
    _, recv = resp.transport_ciphers()
    wire = send.encrypt_with_ad(b"", payload)
    tampered = bytearray(wire)
    tampered[position % len(wire)] ^= flip
    with pytest.raises(NoiseError):
        recv.decrypt_with_ad(b"", bytes(tampered))
    assert recv.nonce == 0
    assert recv.decrypt_with_ad(b"", wire) == payload


@settings(max_examples=60, deadline=None)
@given(which=st.integers(0, 2), position=st.integers(min_value=0), flip=st.integers(1, 255))
def test_tampered_handshake_message_never_completes(which: int, position: int, flip: int) -> None:
    init, resp = _pair(*(KeyPair.from_private(bytes([n]) * 32) for n in (5, 6, 7, 8)))
    order = [(init, resp), (resp, init), (init, resp)]
    with pytest.raises(NoiseError):
        for i, (sender, receiver) in enumerate(order):
            wire = bytearray(sender.write_message(b"payload"))
            if i == which:
                wire[position % len(wire)] ^= flip
            receiver.read_message(bytes(wire))


def test_replayed_transport_message_is_rejected() -> None:
    init, resp = _ready_pair()
    send, _ = init.transport_ciphers()
    _, recv = resp.transport_ciphers()
    wire = send.encrypt_with_ad(b"", b"once")
    recv.decrypt_with_ad(b"", wire)
    with pytest.raises(NoiseError):
        recv.decrypt_with_ad(b"", wire)


def test_nonce_exhaustion_raises_instead_of_wrapping() -> None:
    key = bytes(range(32))
    send, recv = CipherState(key), CipherState(key)
    send.set_nonce(MAX_NONCE - 1)
    recv.set_nonce(MAX_NONCE - 1)
    assert recv.decrypt_with_ad(b"", send.encrypt_with_ad(b"", b"last")) == b"last"
    with pytest.raises(NonceExhausted):
        send.encrypt_with_ad(b"", b"one too many")
    with pytest.raises(NonceExhausted):
        recv.decrypt_with_ad(b"", bytes(32))
    assert send.nonce == MAX_NONCE and recv.nonce == MAX_NONCE


def test_rekey_changes_the_key_and_keeps_both_sides_in_step() -> None:
    send, recv = CipherState(bytes(32)), CipherState(bytes(32))
    before = send.encrypt_with_ad(b"", b"x")
    recv.decrypt_with_ad(b"", before)
    send.rekey()
    recv.rekey()
    assert recv.decrypt_with_ad(b"", send.encrypt_with_ad(b"", b"y")) == b"y"


def test_psk_mismatch_fails_at_the_responder() -> None:
    init, resp = _pair(
        *(KeyPair.from_private(bytes([n]) * 32) for n in (1, 2, 3, 4)),
        psk_i=b"a" * 32,
        psk_r=b"b" * 32,
    )
    with pytest.raises(NoiseError):
        _run(init, resp, [b"", b"", b""])


def test_psk_on_one_side_only_fails_at_the_initiator() -> None:
    init, resp = _pair(
        *(KeyPair.from_private(bytes([n]) * 32) for n in (1, 2, 3, 4)), psk_i=b"a" * 32
    )
    resp.read_message(init.write_message())
    with pytest.raises(NoiseError):
        init.read_message(resp.write_message())


@pytest.mark.parametrize("low_order", [bytes(32), (1).to_bytes(32, "little")])
def test_low_order_ephemeral_is_a_noise_error(low_order: bytes) -> None:
    resp = HandshakeState(
        XX,
        initiator=False,
        s=KeyPair.from_private(b"\x02" * 32),
        e=KeyPair.from_private(b"\x03" * 32),
    )
    resp.read_message(low_order)
    with pytest.raises(NoiseError) as caught:
        resp.write_message()
    assert isinstance(caught.value, InvalidInput)


def test_short_message_is_a_noise_error_and_kills_the_state() -> None:
    resp = HandshakeState(XX, initiator=False, s=KeyPair.from_private(b"\x02" * 32))
    with pytest.raises(NoiseError):
        resp.read_message(b"\x01" * 31)
    with pytest.raises(RuntimeError):
        resp.read_message(b"\x01" * 32)


def test_split_only_once_and_only_when_finished() -> None:
    init = HandshakeState(
        XX,
        initiator=True,
        s=KeyPair.from_private(b"\x01" * 32),
        e=KeyPair.from_private(b"\x02" * 32),
    )
    with pytest.raises(RuntimeError):
        init.split()
    init, _ = _ready_pair()
    init.split()
    with pytest.raises(RuntimeError):
        init.split()


def test_wrong_turn_and_missing_keys_are_caller_errors() -> None:
    init = HandshakeState(XX, initiator=True, s=KeyPair.from_private(b"\x01" * 32))
    with pytest.raises(RuntimeError):
        init.read_message(b"")
    with pytest.raises(ValueError):
        init.write_message()  # no ephemeral and nothing to make one
    with pytest.raises(ValueError):
        HandshakeState(XX, initiator=True)  # XX sends our static key
    with pytest.raises(ValueError):
        HandshakeState(XXPSK3, initiator=True, s=KeyPair.from_private(b"\x01" * 32))
    with pytest.raises(ValueError):
        parse_protocol_name("Noise_XX_448_AESGCM_SHA512")


def test_generate_ephemeral_is_called_only_when_needed() -> None:
    made: list[KeyPair] = []

    def generate() -> KeyPair:
        made.append(KeyPair.from_private(bytes([len(made) + 9]) * 32))
        return made[-1]

    init = HandshakeState(
        XX, initiator=True, s=KeyPair.from_private(b"\x01" * 32), generate_ephemeral=generate
    )
    assert made == []
    assert init.write_message()[:32] == made[0].public


def test_key_pair_repr_hides_the_private_key() -> None:
    pair = KeyPair.from_private(b"\x07" * 32)
    assert (b"\x07" * 32).hex() not in repr(pair)


def test_noise_module_stays_pure() -> None:
    import evstore.core.noise as noise

    tree = ast.parse(Path(noise.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert not imported & {"trio", "sqlite3", "socket", "os", "time", "random", "secrets"}
