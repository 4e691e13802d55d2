"""The secure channel over real trio streams: memory pairs, lockstep pairs and loopback TCP.

Misbehaving peers are written by hand from the Noise core (``RawInitiator``), so they can lie
in exactly one place while everything else about them is correct. Time is virtual wherever a
test waits for a timeout (pytest-trio's ``autojump_clock``); nothing sleeps for real.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from evstore.core.errors import InvalidInput
from evstore.core.noise import HandshakeState, KeyPair, NoiseError
from evstore.net.transport import (
    BIND,
    BIND_CONTEXT,
    DATA_END,
    MAX_CHUNK,
    PREAUTH_BUDGET,
    PROLOGUE,
    PROTOCOL,
    ROLE_INITIATOR,
    HandshakeTimeout,
    LinkClosed,
    LinkError,
    LinkTruncated,
    PeerRefused,
    ProtocolError,
    SecureChannel,
    _Frames,
    handshake,
)

PSK = bytes(range(32))


@dataclass(frozen=True)
class Node:
    signing: SigningKey
    static: PrivateKey

    @property
    def ed_public(self) -> bytes:
        return bytes(self.signing.verify_key)

    @property
    def x_public(self) -> bytes:
        return bytes(self.static.public_key)


def make_node(n: int) -> Node:
    return Node(SigningKey(bytes([n]) * 32), PrivateKey(bytes([n + 100]) * 32))


ALICE, BOB, MALLORY = make_node(1), make_node(2), make_node(3)

Outcome = SecureChannel | InvalidInput | LinkError
StreamPair = Callable[[], tuple[trio.abc.Stream, trio.abc.Stream]]


async def attempt(stream: trio.abc.Stream, node: Node, *, initiator: bool, **kw: Any) -> Outcome:
    """A handshake whose expected failures come back as values, so both sides can be checked."""
    keys: dict[str, Any] = {"static_x25519": node.static, "signing_key": node.signing}
    try:
        return await handshake(stream, initiator=initiator, **(keys | kw))
    except (InvalidInput, LinkError) as exc:
        return exc


async def pair_up(
    init_kw: dict[str, Any] | None = None,
    resp_kw: dict[str, Any] | None = None,
    streams: StreamPair = trio.testing.memory_stream_pair,
) -> tuple[Outcome, Outcome]:
    """ALICE dials BOB; the outcome of each side."""
    a, b = streams()
    out: dict[bool, Outcome] = {}

    async def side(
        stream: trio.abc.Stream, node: Node, initiator: bool, kw: dict[str, Any]
    ) -> None:
        out[initiator] = await attempt(stream, node, initiator=initiator, **kw)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(side, a, ALICE, True, init_kw or {})
        nursery.start_soon(side, b, BOB, False, resp_kw or {})
    return out[True], out[False]


async def connected(**kw: Any) -> tuple[SecureChannel, SecureChannel]:
    initiator, responder = await pair_up(**kw)
    assert isinstance(initiator, SecureChannel), initiator
    assert isinstance(responder, SecureChannel), responder
    return initiator, responder


# -- a hand-written peer that can lie ---------------------------------------------------------


async def recv_exact(stream: trio.abc.ReceiveStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = await stream.receive_some(size - len(data))
        if not more:
            raise EOFError
        data += more
    return data


async def raw_read(stream: trio.abc.ReceiveStream) -> bytes:
    size = int.from_bytes(await recv_exact(stream, 2), "big")
    return await recv_exact(stream, size)


async def raw_write(stream: trio.abc.SendStream, body: bytes) -> None:
    await stream.send_all(len(body).to_bytes(2, "big") + body)


class RawInitiator:
    """MALLORY as an initiator, speaking the wire format by hand."""

    def __init__(self, stream: trio.abc.Stream, node: Node = MALLORY) -> None:
        self.stream, self.node = stream, node
        self.state = HandshakeState(
            PROTOCOL,
            initiator=True,
            prologue=PROLOGUE,
            s=KeyPair.from_private(bytes(node.static)),
            e=KeyPair.from_private(b"\x55" * 32),
        )

    async def noise(self) -> None:
        await raw_write(self.stream, self.state.write_message())
        self.state.read_message(await raw_read(self.stream))
        await raw_write(self.stream, self.state.write_message())
        self.h = self.state.get_handshake_hash()
        self.send, self.recv = self.state.transport_ciphers()

    def binding(
        self,
        *,
        signer: SigningKey | None = None,
        claim: bytes | None = None,
        role: bytes = ROLE_INITIATOR,
        h: bytes | None = None,
        x25519: bytes | None = None,
    ) -> bytes:
        signer = signer or self.node.signing
        signed = BIND_CONTEXT + role + (h if h is not None else self.h)
        ed = claim if claim is not None else bytes(signer.verify_key)
        x = x25519 if x25519 is not None else self.node.x_public
        return ed + x + signer.sign(signed).signature

    async def send_record(self, kind: int, body: bytes) -> None:
        await raw_write(self.stream, self.send.encrypt_with_ad(b"", bytes([kind]) + body))

    async def read_record(self) -> bytes:
        return self.recv.decrypt_with_ad(b"", await raw_read(self.stream))


async def against_responder(
    script: Callable[[RawInitiator], Any], **resp_kw: Any
) -> tuple[Outcome, trio.abc.Stream]:
    """Run BOB's handshake against a scripted raw initiator; BOB's outcome and our stream."""
    ours, theirs = trio.testing.memory_stream_pair()
    out: list[Outcome] = []

    async def responder() -> None:
        out.append(await attempt(theirs, BOB, initiator=False, **resp_kw))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(responder)
        await script(RawInitiator(ours))
    return out[0], ours


async def eof_or_reset(stream: trio.abc.ReceiveStream) -> bool:
    try:
        return await stream.receive_some() == b""
    except trio.BrokenResourceError:
        return True


# -- round trips ----------------------------------------------------------------------------


async def test_small_messages_both_ways_with_identities() -> None:
    a, b = await connected(streams=trio.testing.lockstep_stream_pair)
    assert a.peer_ed25519_hex == BOB.ed_public.hex() and a.peer_x25519 == BOB.x_public
    assert b.peer_ed25519_hex == ALICE.ed_public.hex() and b.peer_x25519 == ALICE.x_public
    assert a.handshake_hash == b.handshake_hash and a.initiator and not b.initiator
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.send, b"ping")
        assert await b.receive() == b"ping"
        nursery.start_soon(b.send, b"")
        assert await a.receive() == b""


@pytest.mark.parametrize("size", [MAX_CHUNK, MAX_CHUNK + 1, 70_000, 3 * 65536 + 7])
async def test_large_messages_are_chunked_and_reassembled(size: int) -> None:
    a, b = await connected()
    message = bytes(i % 251 for i in range(size))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.send, message)
        assert await b.receive() == message
    await b.send(message[::-1])
    assert await a.receive() == message[::-1]


async def test_concurrent_senders_never_interleave_chunks() -> None:
    a, b = await connected()
    first, second = b"\x01" * 150_000, b"\x02" * 150_000
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.send, first)
        nursery.start_soon(a.send, second)
    assert {await b.receive(), await b.receive()} == {first, second}


async def test_message_over_the_receivers_limit_is_refused() -> None:
    a, b = await connected(resp_kw={"max_message_size": 100_000})
    await a.send(b"x" * 150_000)
    with pytest.raises(ProtocolError):
        await b.receive()
    with pytest.raises(ValueError):
        await b.send(b"x" * 100_001)


async def test_static_key_may_be_given_as_raw_bytes() -> None:
    a, b = await connected(init_kw={"static_x25519": bytes(ALICE.static)})
    assert b.peer_x25519 == ALICE.x_public


# -- pre-shared keys --------------------------------------------------------------------------


async def test_matching_psk_connects() -> None:
    a, b = await connected(init_kw={"psk": PSK}, resp_kw={"psk": PSK})
    await a.send(b"joined")
    assert await b.receive() == b"joined"


@pytest.mark.parametrize(
    ("init_psk", "resp_psk"),
    [(PSK, PSK[::-1]), (PSK, None), (None, PSK)],
    ids=["different", "initiator-only", "responder-only"],
)
async def test_psk_mismatch_fails_on_both_sides(
    init_psk: bytes | None, resp_psk: bytes | None
) -> None:
    initiator, responder = await pair_up({"psk": init_psk}, {"psk": resp_psk})
    assert not isinstance(initiator, SecureChannel)
    assert not isinstance(responder, SecureChannel)
    assert isinstance(initiator, InvalidInput) or isinstance(responder, InvalidInput)


# -- identity binding and admission -----------------------------------------------------------


async def test_authorize_sees_the_proven_identity_and_can_refuse(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[str, str]] = []

    def authorize(ed_hex: str, x_hex: str) -> bool:
        seen.append((ed_hex, x_hex))
        return False

    with caplog.at_level(logging.WARNING, logger="evstore.net.transport"):
        initiator, responder = await pair_up(resp_kw={"authorize": authorize})
    assert seen == [(ALICE.ed_public.hex(), ALICE.x_public.hex())]
    assert isinstance(responder, PeerRefused)
    assert isinstance(initiator, LinkTruncated)  # the refused side never learns BOB's identity
    assert "not admitted" in caplog.text


async def test_async_authorize_is_awaited() -> None:
    async def authorize(ed_hex: str, x_hex: str) -> bool:
        await trio.lowlevel.checkpoint()
        return ed_hex == BOB.ed_public.hex()

    a, _ = await connected(init_kw={"authorize": authorize})
    assert a.peer_ed25519_hex == BOB.ed_public.hex()


async def test_initiator_refusing_the_responder_ends_the_link() -> None:
    initiator, responder = await pair_up(init_kw={"authorize": lambda ed, x: False})
    assert isinstance(initiator, PeerRefused)
    assert isinstance(responder, SecureChannel)
    with pytest.raises(LinkTruncated):
        await responder.receive()


async def test_unexpected_responder_static_key_is_refused_before_message_three() -> None:
    initiator, responder = await pair_up(init_kw={"expected_peer_x25519": MALLORY.x_public})
    assert isinstance(initiator, PeerRefused)
    assert isinstance(responder, LinkTruncated)


def _bad_bindings() -> dict[str, Callable[[RawInitiator], bytes]]:
    return {
        "claims another identity": lambda raw: raw.binding(claim=ALICE.ed_public),
        "signed for another session": lambda raw: raw.binding(h=bytes(64)),
        "signed in the other role": lambda raw: raw.binding(role=b"R"),
        "names another x25519 key": lambda raw: raw.binding(x25519=ALICE.x_public),
        "truncated": lambda raw: raw.binding()[:100],
    }


@pytest.mark.parametrize("lie", sorted(_bad_bindings()))
async def test_bad_binding_is_refused_before_authorize(lie: str) -> None:
    asked: list[str] = []

    async def script(raw: RawInitiator) -> None:
        await raw.noise()
        await raw.send_record(BIND, _bad_bindings()[lie](raw))
        assert await eof_or_reset(raw.stream)

    outcome, _ = await against_responder(script, authorize=lambda ed, x: asked.append(ed) or True)
    assert isinstance(outcome, ProtocolError), outcome
    assert asked == []


async def test_data_instead_of_binding_is_refused() -> None:
    async def script(raw: RawInitiator) -> None:
        await raw.noise()
        await raw.send_record(DATA_END, b"hello")

    outcome, _ = await against_responder(script)
    assert isinstance(outcome, ProtocolError)


async def test_honest_raw_peer_is_accepted_then_tampering_is_caught() -> None:
    channels: list[Outcome] = []

    async def script(raw: RawInitiator) -> None:
        await raw.noise()
        await raw.send_record(BIND, raw.binding())
        assert (await raw.read_record())[0] == BIND
        frame = bytearray(raw.send.encrypt_with_ad(b"", bytes([DATA_END]) + b"payload"))
        frame[-1] ^= 1
        await raw_write(raw.stream, bytes(frame))

    outcome, _ = await against_responder(script)
    channels.append(outcome)
    assert isinstance(outcome, SecureChannel)
    assert outcome.peer_ed25519 == MALLORY.ed_public
    with pytest.raises(NoiseError):
        await outcome.receive()
    with pytest.raises(NoiseError):  # the link stays failed
        await outcome.receive()


# -- goodbye and truncation -------------------------------------------------------------------


async def test_clean_close_is_link_closed_and_ends_iteration() -> None:
    a, b = await connected()
    await a.send(b"one")
    await a.send(b"two")
    await a.aclose()
    assert [m async for m in b] == [b"one", b"two"]
    with pytest.raises(LinkClosed):
        await b.receive()
    with pytest.raises(LinkClosed):
        await a.send(b"after close")
    await a.aclose()  # idempotent


async def test_eof_without_final_is_truncation() -> None:
    a_stream, b_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(attempt, a_stream, ALICE, initiator=True))
        b = await attempt(b_stream, BOB, initiator=False)
    assert isinstance(b, SecureChannel)
    await a_stream.aclose()  # the stream dies under ALICE's channel: no FINAL
    with pytest.raises(LinkTruncated):
        await b.receive()


async def test_eof_in_the_middle_of_a_frame_is_truncation() -> None:
    async def script(raw: RawInitiator) -> None:
        await raw.noise()
        await raw.send_record(BIND, raw.binding())
        await raw.read_record()
        frame = raw.send.encrypt_with_ad(b"", bytes([DATA_END]) + b"cut short")
        await raw.stream.send_all(len(frame).to_bytes(2, "big") + frame[:5])
        await raw.stream.aclose()

    outcome, _ = await against_responder(script)
    assert isinstance(outcome, SecureChannel)
    with pytest.raises(LinkTruncated):
        await outcome.receive()


# -- limits before authentication -----------------------------------------------------------------


async def test_oversize_length_is_refused_without_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def script(raw: RawInitiator) -> None:
        await raw.stream.send_all(b"\xff\xff")
        assert await eof_or_reset(raw.stream)

    outcome, _ = await against_responder(script)
    assert isinstance(outcome, ProtocolError)
    assert trio.current_time() < 1


async def test_preauth_budget_caps_bytes_read_before_authentication() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    frames = _Frames(theirs)
    for _ in range(PREAUTH_BUDGET // 1000 + 2):
        await raw_write(ours, b"\x00" * 998)
    read = 0
    with pytest.raises(ProtocolError):
        while True:
            read += 2 + len(await frames.read() or b"")
    assert read <= PREAUTH_BUDGET


@pytest.mark.parametrize("stall_after", ["nothing", "one byte", "noise"])
async def test_handshake_times_out_including_binding(
    autojump_clock: trio.testing.MockClock, stall_after: str
) -> None:
    async def script(raw: RawInitiator) -> None:
        if stall_after == "one byte":
            await raw.stream.send_all(b"\x00")
        elif stall_after == "noise":
            await raw.noise()  # but never sends the binding
        assert await eof_or_reset(raw.stream)

    outcome, _ = await against_responder(script)
    assert isinstance(outcome, HandshakeTimeout)
    assert 10 <= trio.current_time() < 11


# -- a real listener ------------------------------------------------------------------------


async def test_tcp_listener_survives_garbage_and_serves_the_next_peer() -> None:
    results_in, results_out = trio.open_memory_channel[Outcome](10)

    async def handler(stream: trio.SocketStream) -> None:
        outcome = await attempt(stream, BOB, initiator=False)
        if isinstance(outcome, SecureChannel):
            async with outcome:
                await outcome.send((await outcome.receive())[::-1])
        await results_in.send(outcome)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        for garbage, error in [
            (b"GET / HTTP/1.1\r\n\r\n", ProtocolError),
            (b"\x00\x05hello", NoiseError),
        ]:
            client = await trio.open_tcp_stream("127.0.0.1", port)
            await client.send_all(garbage)
            assert isinstance(await results_out.receive(), error)
            assert await eof_or_reset(client)
            await client.aclose()
        client = await trio.open_tcp_stream("127.0.0.1", port)
        channel = await handshake(
            client, initiator=True, static_x25519=ALICE.static, signing_key=ALICE.signing
        )
        await channel.send(b"over tcp")
        assert await channel.receive() == b"pct revo"
        with pytest.raises(LinkClosed):
            await channel.receive()
        await channel.aclose()
        assert isinstance(await results_out.receive(), SecureChannel)
        nursery.cancel_scope.cancel()
