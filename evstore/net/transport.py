"""The secure channel between two nodes: Noise XX over any trio stream.

Theory of operation (docs/protocol.md is the full account)
----------------------------------------------------------
Wire: frames of a 2-byte big-endian length and that many bytes (at most 65535). The first three
frames are the Noise_XX (or XXpsk3, when a pre-shared key is given) handshake messages with
prologue ``b"evstore/1"``; every frame after that is one Noise transport message whose plaintext
starts with a record type byte:

    DATA_MORE  chunk of a message, more chunks follow
    DATA_END   last (or only) chunk of a message
    FINAL      authenticated goodbye: the sender is done; EOF without it is a truncation
    BIND       identity binding, exactly once each way, right after the handshake

Noise authenticates X25519 static keys. A node's identity is its Ed25519 host key, so each side
then sends a BIND record: its Ed25519 public key, the X25519 static key it used, and an Ed25519
signature over ``b"evstore/bind/v1\\x00" + role + h`` where ``h`` is the final handshake hash
(unique to this session, so the signature cannot be replayed into another one) and role is the
signer's (``I``/``R``, so a binding cannot be reflected back). Whether the proven identity is an
admitted member is the caller's decision (``authorize``); the membership layer must also check
that the X25519 key is the one the member announced in its signed membership event.

Until both bindings are checked the link is unauthenticated and held on a short leash: frames of
at most 1 KiB, at most 64 KiB read in all, everything within 10 seconds. Afterwards frames carry
up to 65518 bytes of a message and messages are reassembled up to ``max_message_size``.

Errors: a malformed frame, a failed decryption or a bad binding raise an ``InvalidInput``
(``ProtocolError`` or ``NoiseError``); a link that ended is a ``LinkError``. Either way the
caller drops that link only.
"""

from __future__ import annotations

import hmac
import inspect
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import nacl.exceptions
import nacl.public
import nacl.signing
import trio

from evstore.core.errors import InvalidInput, OperationalError
from evstore.core.noise import TAGLEN, CipherState, HandshakeState, KeyPair, NoiseError

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "HANDSHAKE_TIMEOUT",
    "PROLOGUE",
    "Authorize",
    "HandshakeTimeout",
    "LinkClosed",
    "LinkError",
    "LinkTruncated",
    "NoiseError",
    "PeerRefused",
    "ProtocolError",
    "SecureChannel",
    "handshake",
]

log = logging.getLogger(__name__)

PROLOGUE = b"evstore/1"
PROTOCOL = "Noise_XX_25519_ChaChaPoly_BLAKE2b"
PROTOCOL_PSK = "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b"
BIND_CONTEXT = b"evstore/bind/v1\x00"
ROLE_INITIATOR = b"I"
ROLE_RESPONDER = b"R"

HANDSHAKE_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0
MAX_FRAME = 65535
PREAUTH_MAX_FRAME = 1024
PREAUTH_BUDGET = 64 * 1024
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
MAX_CHUNK = MAX_FRAME - TAGLEN - 1

DATA_MORE = 0
DATA_END = 1
FINAL = 2
BIND = 3
_BIND_LEN = 32 + 32 + 64

Authorize = Callable[[str, str], bool | Awaitable[bool]]


class ProtocolError(InvalidInput):
    """The peer broke the wire protocol (bad frame, bad binding): drop this link."""


class PeerRefused(ProtocolError):
    """The peer proved an identity, but ``authorize`` did not admit it."""


class LinkError(OperationalError):
    """The link has ended; nothing more can be sent or received on it."""


class LinkClosed(LinkError):
    """The link ended cleanly: the peer sent FINAL, or we closed it ourselves."""


class LinkTruncated(LinkError):
    """The stream ended or broke without a FINAL record: a reset, a crash, or an attacker.

    Kept apart from LinkClosed so a cut connection is never mistaken for a finished
    conversation (PITFALLS 19).
    """


class HandshakeTimeout(LinkError):
    """The handshake, binding included, did not finish in time; the link was closed."""


# -- framing --------------------------------------------------------------------------------


class _Frames:
    """Length-prefixed frames over a stream, with the pre-authentication limits.

    Reads ask the stream for no more than the current frame still needs, so a node never
    buffers more than one frame per link, and a half-read frame survives a cancelled call.
    """

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buf = bytearray()
        self._max_frame = PREAUTH_MAX_FRAME
        self._budget: int | None = PREAUTH_BUDGET

    def authenticated(self) -> None:
        """Lift the pre-authentication limits once both identities are proven."""
        self._max_frame = MAX_FRAME
        self._budget = None

    async def read(self) -> bytes | None:
        """The next frame's body, or None on EOF between frames."""
        if not await self._fill(2):
            if self._buf:
                raise LinkTruncated("link ended in the middle of a frame header")
            return None
        size = int.from_bytes(self._buf[:2], "big")
        self._check_size(size)
        if not await self._fill(2 + size):
            raise LinkTruncated("link ended in the middle of a frame")
        body = bytes(self._buf[2 : 2 + size])
        del self._buf[: 2 + size]
        if self._budget is not None:
            self._budget -= 2 + size
        return body

    def _check_size(self, size: int) -> None:
        if size > self._max_frame:
            raise ProtocolError(
                f"frame of {size} bytes before authentication (limit {self._max_frame})"
            )
        if self._budget is not None and 2 + size > self._budget:
            raise ProtocolError(f"peer sent more than {PREAUTH_BUDGET} bytes before authenticating")

    async def _fill(self, size: int) -> bool:
        while len(self._buf) < size:
            try:
                data = await self.stream.receive_some(size - len(self._buf))
            except trio.BrokenResourceError as exc:
                raise LinkTruncated(f"link broke: {exc}") from None
            except trio.ClosedResourceError:
                raise LinkClosed("link is closed") from None
            if not data:
                return False
            self._buf += data
        return True

    async def write(self, body: bytes) -> None:
        if len(body) > MAX_FRAME:
            raise ValueError(f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
        try:
            await self.stream.send_all(len(body).to_bytes(2, "big") + body)
        except trio.BrokenResourceError as exc:
            raise LinkTruncated(f"link broke: {exc}") from None
        except trio.ClosedResourceError:
            raise LinkClosed("link is closed") from None

    async def read_handshake(self) -> bytes:
        body = await self.read()
        if body is None:
            raise LinkTruncated("peer closed the link during the handshake")
        return body


# -- identity binding -----------------------------------------------------------------------


def _bind_message(role: bytes, handshake_hash: bytes) -> bytes:
    return BIND_CONTEXT + role + handshake_hash


def make_binding(
    signing_key: nacl.signing.SigningKey, x25519_public: bytes, role: bytes, handshake_hash: bytes
) -> bytes:
    """Our BIND body: Ed25519 public key, X25519 static key, signature over h."""
    signature = signing_key.sign(_bind_message(role, handshake_hash)).signature
    return bytes(signing_key.verify_key) + x25519_public + signature


def check_binding(
    body: bytes, *, role: bytes, handshake_hash: bytes, remote_static: bytes
) -> bytes:
    """Verify the peer's BIND body and return its Ed25519 public key."""
    if len(body) != _BIND_LEN:
        raise ProtocolError(f"binding record of {len(body)} bytes, expected {_BIND_LEN}")
    ed_public, x_public, signature = body[:32], body[32:64], body[64:]
    if not hmac.compare_digest(x_public, remote_static):
        raise ProtocolError("binding names another X25519 key than the handshake proved")
    try:
        nacl.signing.VerifyKey(ed_public).verify(_bind_message(role, handshake_hash), signature)
    except nacl.exceptions.BadSignatureError:
        raise ProtocolError("binding signature does not verify") from None
    return ed_public


# -- the channel ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Session:
    initiator: bool
    handshake_hash: bytes
    peer_x25519: bytes
    send: CipherState
    receive: CipherState


class SecureChannel(trio.abc.AsyncResource):
    """An authenticated, encrypted, message-oriented link to one peer.

    Made by ``handshake()``. One task may send while another receives; sends are serialized so
    the chunks of two messages never interleave.
    """

    def __init__(self, frames: _Frames, session: _Session, max_message_size: int) -> None:
        self._frames = frames
        self._session = session
        self._max_message_size = max_message_size
        self._peer_ed25519: bytes | None = None
        self._send_lock = trio.StrictFIFOLock()
        self._receive_lock = trio.Lock()
        self._parts: list[bytes] = []
        self._received = 0
        self._closed = False
        self._send_broken = False
        self._receive_error: Exception | None = None

    # -- identity --

    @property
    def initiator(self) -> bool:
        return self._session.initiator

    @property
    def handshake_hash(self) -> bytes:
        """Noise's h: a unique name for this session, the same on both ends."""
        return self._session.handshake_hash

    @property
    def peer_x25519(self) -> bytes:
        return self._session.peer_x25519

    @property
    def peer_x25519_hex(self) -> str:
        return self._session.peer_x25519.hex()

    @property
    def peer_ed25519(self) -> bytes:
        if self._peer_ed25519 is None:
            raise RuntimeError("the peer has not proven its identity yet")
        return self._peer_ed25519

    @property
    def peer_ed25519_hex(self) -> str:
        return self.peer_ed25519.hex()

    # -- records --

    async def _send_record(self, kind: int, body: bytes) -> None:
        frame = self._session.send.encrypt_with_ad(b"", bytes([kind]) + body)
        await self._frames.write(frame)

    async def _receive_record(self) -> tuple[int, bytes]:
        frame = await self._frames.read()
        if frame is None:
            raise LinkTruncated("peer ended the link without a goodbye (no FINAL record)")
        plaintext = self._session.receive.decrypt_with_ad(b"", frame)
        if not plaintext:
            raise ProtocolError("empty record")
        return plaintext[0], plaintext[1:]

    # -- binding (used by handshake) --

    async def _send_binding(self, signing_key: nacl.signing.SigningKey, x25519: bytes) -> None:
        role = ROLE_INITIATOR if self.initiator else ROLE_RESPONDER
        await self._send_record(BIND, make_binding(signing_key, x25519, role, self.handshake_hash))

    async def _receive_binding(self) -> None:
        kind, body = await self._receive_record()
        if kind != BIND:
            raise ProtocolError(f"expected the identity binding, got record type {kind}")
        peer_role = ROLE_RESPONDER if self.initiator else ROLE_INITIATOR
        self._peer_ed25519 = check_binding(
            body,
            role=peer_role,
            handshake_hash=self.handshake_hash,
            remote_static=self.peer_x25519,
        )

    def _authenticated(self) -> None:
        self._frames.authenticated()

    # -- public API --

    async def send(self, message: bytes) -> None:
        """Send one message, split into as many frames as it needs."""
        if len(message) > self._max_message_size:
            raise ValueError(f"message of {len(message)} bytes exceeds {self._max_message_size}")
        async with self._send_lock:
            self._check_can_send()
            try:
                for kind, chunk in _chunks(message):
                    await self._send_record(kind, chunk)
            except BaseException:
                self._send_broken = True  # a half-sent message cannot be taken back
                raise

    def _check_can_send(self) -> None:
        if self._closed:
            raise LinkClosed("link is closed")
        if self._send_broken:
            raise LinkTruncated("an earlier send failed part-way; the link is unusable")

    async def receive(self) -> bytes:
        """The next whole message; LinkClosed after the peer's goodbye."""
        async with self._receive_lock:
            if self._receive_error is not None:
                raise self._receive_error
            try:
                return await self._receive_message()
            except (InvalidInput, LinkError) as exc:
                self._receive_error = exc
                raise

    async def _receive_message(self) -> bytes:
        while True:
            kind, body = await self._receive_record()
            if kind == FINAL:
                self._check_final(body)
                raise LinkClosed("peer closed the link")
            if kind not in (DATA_MORE, DATA_END):
                raise ProtocolError(f"unexpected record type {kind}")
            self._add_part(body)
            if kind == DATA_END:
                message = b"".join(self._parts)
                self._parts, self._received = [], 0
                return message

    def _check_final(self, body: bytes) -> None:
        if body:
            raise ProtocolError("FINAL record with a body")
        if self._parts:
            raise ProtocolError("FINAL record in the middle of a message")

    def _add_part(self, body: bytes) -> None:
        self._received += len(body)
        if self._received > self._max_message_size:
            raise ProtocolError(f"peer's message exceeds {self._max_message_size} bytes")
        self._parts.append(body)

    async def aclose(self) -> None:
        """Say goodbye (FINAL) if we still can, then close the stream, whatever happens."""
        if self._closed:
            return
        self._closed = True
        try:
            with trio.move_on_after(CLOSE_TIMEOUT):
                async with self._send_lock:
                    if not self._send_broken:
                        await self._send_record(FINAL, b"")
        except (LinkError, NoiseError) as exc:
            log.debug("could not send FINAL: %s", exc)
        finally:
            await self._frames.stream.aclose()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        """Messages until the peer's clean goodbye; a truncation still raises."""
        while True:
            try:
                yield await self.receive()
            except LinkClosed:
                return


def _chunks(message: bytes) -> list[tuple[int, bytes]]:
    """Record types and bodies for one message; an empty message is one empty DATA_END."""
    pieces = [message[i : i + MAX_CHUNK] for i in range(0, len(message), MAX_CHUNK)] or [b""]
    return [(DATA_MORE, piece) for piece in pieces[:-1]] + [(DATA_END, pieces[-1])]


# -- the handshake --------------------------------------------------------------------------


async def handshake(
    stream: trio.abc.Stream,
    *,
    initiator: bool,
    static_x25519: nacl.public.PrivateKey | bytes,
    signing_key: nacl.signing.SigningKey,
    psk: bytes | None = None,
    authorize: Authorize | None = None,
    expected_peer_x25519: bytes | None = None,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    timeout: float = HANDSHAKE_TIMEOUT,
    first_timeout: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> SecureChannel:
    """Run the Noise handshake and the identity binding; return the ready channel.

    A responder may give the initiator's first message (a few dozen bytes) a shorter deadline,
    ``first_timeout``, so an idle socket is dropped long before ``timeout``; ``progress(n)``
    hears of each step (1: the first message arrived, 2: the initiator's static key too).

    ``authorize(peer_ed25519_hex, peer_x25519_hex)`` (sync or async) decides whether the proven
    peer is welcome. ``expected_peer_x25519`` lets an initiator that knows whom it is dialling
    refuse an impostor before revealing its own static key. On any failure the stream is
    closed, the reason logged, and the error raised: HandshakeTimeout after ``timeout``
    seconds, a ProtocolError/NoiseError for a bad or refused peer, a LinkError if it vanished.
    """
    frames = _Frames(stream)
    static = _static_pair(static_x25519)
    try:
        with trio.fail_after(timeout):
            channel = await _noise(
                frames, initiator, static, psk, expected_peer_x25519, max_message_size,
                first_timeout, progress or _no_progress,
            )
            await _bind(channel, initiator, signing_key, static.public, authorize)
    except _FirstTooSlow:
        log.info("closing link: no first handshake message within %s s", first_timeout)
        await trio.aclose_forcefully(stream)
        raise HandshakeTimeout(f"no first handshake message within {first_timeout} s") from None
    except trio.TooSlowError:
        log.warning("closing link: handshake did not finish within %s s", timeout)
        await trio.aclose_forcefully(stream)
        raise HandshakeTimeout(f"handshake did not finish within {timeout} s") from None
    except (InvalidInput, LinkError) as exc:
        log.warning("closing link: handshake failed: %s", exc)
        await trio.aclose_forcefully(stream)
        raise
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    channel._authenticated()
    return channel


def _static_pair(static_x25519: nacl.public.PrivateKey | bytes) -> KeyPair:
    raw = static_x25519 if isinstance(static_x25519, bytes) else bytes(static_x25519)
    return KeyPair.from_private(raw)


def _generate_ephemeral() -> KeyPair:
    return KeyPair.from_private(bytes(nacl.public.PrivateKey.generate()))


async def _noise(
    frames: _Frames,
    initiator: bool,
    static: KeyPair,
    psk: bytes | None,
    expected_peer_x25519: bytes | None,
    max_message_size: int,
    first_timeout: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> SecureChannel:
    """The three XX messages; payloads are reserved and must be empty."""
    state = HandshakeState(
        PROTOCOL_PSK if psk is not None else PROTOCOL,
        initiator=initiator,
        prologue=PROLOGUE,
        s=static,
        psk=psk,
        generate_ephemeral=_generate_ephemeral,
    )
    if initiator:
        await frames.write(state.write_message())
        _expect_empty(state.read_message(await frames.read_handshake()))
        _check_expected(state, expected_peer_x25519)
        await frames.write(state.write_message())
    else:
        first = None
        with trio.move_on_after(first_timeout if first_timeout is not None else math.inf):
            first = await frames.read_handshake()
        if first is None:
            raise _FirstTooSlow()
        _expect_empty(state.read_message(first))
        if progress is not None:
            progress(1)
        await frames.write(state.write_message())
        _expect_empty(state.read_message(await frames.read_handshake()))
        _check_expected(state, expected_peer_x25519)
        if progress is not None:
            progress(2)
    return _channel_from(frames, state, max_message_size)


class _FirstTooSlow(Exception):
    """The initiator's first message did not come within its (short) deadline."""


def _no_progress(_stage: int) -> None:
    return None


def _expect_empty(payload: bytes) -> None:
    if payload:
        raise ProtocolError("handshake payloads are reserved and must be empty")


def _check_expected(state: HandshakeState, expected: bytes | None) -> None:
    remote = state.remote_static
    if expected is not None and (remote is None or not hmac.compare_digest(remote, expected)):
        raise PeerRefused("peer's X25519 static key is not the one we expected")


def _channel_from(frames: _Frames, state: HandshakeState, max_message_size: int) -> SecureChannel:
    peer = state.remote_static
    assert peer is not None  # XX always delivers it
    send, receive = state.transport_ciphers()
    session = _Session(state.initiator, state.get_handshake_hash(), peer, send, receive)
    return SecureChannel(frames, session, max_message_size)


async def _bind(
    channel: SecureChannel,
    initiator: bool,
    signing_key: nacl.signing.SigningKey,
    x25519_public: bytes,
    authorize: Authorize | None,
) -> None:
    """Exchange BIND records. The responder proves its identity only to an admitted initiator."""
    if initiator:
        await channel._send_binding(signing_key, x25519_public)
        await channel._receive_binding()
        await _authorize(channel, authorize)
    else:
        await channel._receive_binding()
        await _authorize(channel, authorize)
        await channel._send_binding(signing_key, x25519_public)


async def _authorize(channel: SecureChannel, authorize: Authorize | None) -> None:
    if authorize is None:
        return
    verdict = authorize(channel.peer_ed25519_hex, channel.peer_x25519_hex)
    if inspect.isawaitable(verdict):
        verdict = await verdict
    if verdict is not True:
        raise PeerRefused(f"peer {channel.peer_ed25519_hex[:16]}... is not admitted")
