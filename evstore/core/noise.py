"""The Noise Protocol Framework (revision 34), sans-I/O, suite 25519_ChaChaPoly_BLAKE2b.

Theory of operation
-------------------
A handshake is a short scripted exchange of messages. Each message is a list of *tokens*:
``e`` and ``s`` put an ephemeral or static X25519 public key on the wire, ``ee``/``es``/``se``/
``ss`` feed a Diffie-Hellman result into the chaining key, and ``psk`` mixes a pre-shared key in.
Two running values carry the security: ``ck`` (the chaining key, from which every cipher key is
derived) and ``h`` (a hash of everything sent and received). Every ciphertext is encrypted with
``h`` as associated data, so each side notices at once if the two transcripts ever differ. When
the script ends, ``split()`` turns ``ck`` into one key per direction, and ``h`` stays behind as a
unique name for this session: the thing that application-level proofs are bound to (PITFALLS 16).

This module is pure: it never generates keys itself (ephemeral keys are passed in, or made by a
caller-supplied function), so the published test vectors replay byte for byte. It implements the
fifteen fundamental interactive and one-way patterns with at most one ``pskN`` modifier, because
that is a table of data; evstore itself uses only XX and XXpsk3.

Errors: anything a peer can cause (a bad tag, a short message, a low-order public key) raises
``NoiseError``, an ``InvalidInput``: the caller drops that peer and nothing else. Misuse by the
caller (wrong turn, missing key) raises ``ValueError``/``RuntimeError``: a bug, not an attack.
"""

from __future__ import annotations

import hashlib
import hmac
import re as regex
from collections.abc import Callable
from dataclasses import dataclass

import nacl.exceptions
from nacl.bindings import (
    crypto_aead_chacha20poly1305_ietf_decrypt,
    crypto_aead_chacha20poly1305_ietf_encrypt,
    crypto_scalarmult,
    crypto_scalarmult_base,
)

from evstore.core.errors import InvalidInput

DHLEN = 32
HASHLEN = 64
BLOCKLEN = 128
KEYLEN = 32
TAGLEN = 16
PSKLEN = 32
MAX_MESSAGE_LEN = 65535
MAX_NONCE = 2**64 - 1  # reserved by the spec: the last usable nonce is MAX_NONCE - 1
SUITE = "25519_ChaChaPoly_BLAKE2b"


class NoiseError(InvalidInput):
    """A peer's Noise message did not check out; drop that peer, nothing else."""


class NonceExhausted(NoiseError):
    """A cipher key reached its last nonce.

    Wrapping would reuse a (key, nonce) pair and hand an observer the XOR of two plaintexts
    (PITFALLS 14), so the link must end instead. It is a NoiseError so that one ``except``
    in the shell ends the link whichever side ran out.
    """


# -- primitives ---------------------------------------------------------------------------


def blake2b(data: bytes) -> bytes:
    """HASH() of the suite: BLAKE2b with its full 64-byte output."""
    return hashlib.blake2b(data, digest_size=HASHLEN).digest()


def hmac_blake2b(key: bytes, data: bytes) -> bytes:
    """HMAC-HASH() per RFC 2104 with BLAKE2b (block length 128), as Noise §4.3 asks.

    Noise uses HMAC rather than BLAKE2b's own keyed mode so that every hash function plugs
    into one HKDF construction.
    """
    return hmac.new(key, data, hashlib.blake2b).digest()


def hkdf2(chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    """HKDF with two outputs (Noise §4.3)."""
    temp = hmac_blake2b(chaining_key, ikm)
    out1 = hmac_blake2b(temp, b"\x01")
    return out1, hmac_blake2b(temp, out1 + b"\x02")


def hkdf3(chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes, bytes]:
    """HKDF with three outputs, used only by MixKeyAndHash (the ``psk`` token)."""
    temp = hmac_blake2b(chaining_key, ikm)
    out1 = hmac_blake2b(temp, b"\x01")
    out2 = hmac_blake2b(temp, out1 + b"\x02")
    return out1, out2, hmac_blake2b(temp, out2 + b"\x03")


@dataclass(frozen=True, repr=False)
class KeyPair:
    """An X25519 key pair; the repr leaves the private half out so logs never hold it."""

    private: bytes
    public: bytes

    @classmethod
    def from_private(cls, private: bytes) -> KeyPair:
        """Derive the public key, so a caller can never pass a mismatched pair."""
        if len(private) != DHLEN:
            raise ValueError(f"an X25519 private key is {DHLEN} bytes, not {len(private)}")
        return cls(private=bytes(private), public=crypto_scalarmult_base(bytes(private)))

    def __repr__(self) -> str:
        return f"KeyPair(public={self.public.hex()})"


def dh(key_pair: KeyPair, public: bytes) -> bytes:
    """X25519; a low-order peer key (all-zero shared secret) is the peer's fault."""
    try:
        return crypto_scalarmult(key_pair.private, public)
    except nacl.exceptions.RuntimeError:
        raise NoiseError("peer sent a low-order X25519 public key") from None


def _nonce(n: int) -> bytes:
    """The ChaChaPoly nonce layout of Noise §12.3: 32 zero bits, then n little-endian."""
    return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")


# -- CipherState ----------------------------------------------------------------------------


class CipherState:
    """A key and a counter nonce (Noise §5.1).

    Without a key, encryption is the identity: early handshake messages are sent in clear.
    The nonce only moves forward; at MAX_NONCE the state refuses to work (NonceExhausted).
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._k: bytes | None = None
        self._n = 0
        self.initialize_key(key)

    def initialize_key(self, key: bytes | None) -> None:
        if key is not None and len(key) != KEYLEN:
            raise ValueError(f"a cipher key is {KEYLEN} bytes, not {len(key)}")
        self._k = key
        self._n = 0

    def has_key(self) -> bool:
        return self._k is not None

    @property
    def nonce(self) -> int:
        return self._n

    def set_nonce(self, nonce: int) -> None:
        """Only for tests and explicit-nonce protocols; a stream must never move it back."""
        if not 0 <= nonce <= MAX_NONCE:
            raise ValueError("nonce out of range")
        self._n = nonce

    def _next_nonce(self) -> bytes:
        if self._n >= MAX_NONCE:
            raise NonceExhausted("cipher nonce exhausted; the link must be re-established")
        return _nonce(self._n)

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        if self._k is None:
            return plaintext
        ciphertext = crypto_aead_chacha20poly1305_ietf_encrypt(
            plaintext, ad, self._next_nonce(), self._k
        )
        self._n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """Decrypt or raise NoiseError; a failure leaves the nonce where it was (Noise §5.1)."""
        if self._k is None:
            return ciphertext
        nonce = self._next_nonce()
        if len(ciphertext) < TAGLEN:
            raise NoiseError("ciphertext shorter than its authentication tag")
        try:
            plaintext = crypto_aead_chacha20poly1305_ietf_decrypt(ciphertext, ad, nonce, self._k)
        except nacl.exceptions.CryptoError:
            raise NoiseError(
                "message failed authentication (tampered, replayed or wrong key)"
            ) from None
        self._n += 1
        return plaintext

    def rekey(self) -> None:
        """Replace the key by a one-way function of itself (Noise §4.2), nonce unchanged."""
        if self._k is None:
            raise RuntimeError("cannot rekey a CipherState without a key")
        stream = crypto_aead_chacha20poly1305_ietf_encrypt(
            bytes(KEYLEN), b"", _nonce(MAX_NONCE), self._k
        )
        self._k = stream[:KEYLEN]


# -- SymmetricState -------------------------------------------------------------------------


class SymmetricState:
    """The chaining key ``ck`` and transcript hash ``h`` of one handshake (Noise §5.2)."""

    def __init__(self, protocol_name: bytes) -> None:
        if len(protocol_name) <= HASHLEN:
            self._h = protocol_name.ljust(HASHLEN, b"\x00")
        else:
            self._h = blake2b(protocol_name)
        self._ck = self._h
        self._cipher = CipherState()

    def has_key(self) -> bool:
        return self._cipher.has_key()

    def mix_key(self, ikm: bytes) -> None:
        self._ck, temp_k = hkdf2(self._ck, ikm)
        self._cipher.initialize_key(temp_k[:KEYLEN])

    def mix_hash(self, data: bytes) -> None:
        self._h = blake2b(self._h + data)

    def mix_key_and_hash(self, ikm: bytes) -> None:
        self._ck, temp_h, temp_k = hkdf3(self._ck, ikm)
        self.mix_hash(temp_h)
        self._cipher.initialize_key(temp_k[:KEYLEN])

    def get_handshake_hash(self) -> bytes:
        return self._h

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self._cipher.encrypt_with_ad(self._h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self._cipher.decrypt_with_ad(self._h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """Two transport keys: the first for initiator-to-responder, the second back."""
        temp_k1, temp_k2 = hkdf2(self._ck, b"")
        return CipherState(temp_k1[:KEYLEN]), CipherState(temp_k2[:KEYLEN])


# -- handshake patterns ---------------------------------------------------------------------

Tokens = tuple[str, ...]


@dataclass(frozen=True)
class HandshakePattern:
    """Pre-messages and messages of one pattern; message i is the initiator's when i is even."""

    name: str
    initiator_pre: Tokens
    responder_pre: Tokens
    messages: tuple[Tokens, ...]

    def has_psk(self) -> bool:
        return any("psk" in message for message in self.messages)


def _tokens(text: str) -> Tokens:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _pattern(name: str, pre_i: str, pre_r: str, *messages: str) -> HandshakePattern:
    return HandshakePattern(name, _tokens(pre_i), _tokens(pre_r), tuple(map(_tokens, messages)))


_PATTERNS = {
    p.name: p
    for p in (
        _pattern("N", "", "s", "e, es"),
        _pattern("K", "s", "s", "e, es, ss"),
        _pattern("X", "", "s", "e, es, s, ss"),
        _pattern("NN", "", "", "e", "e, ee"),
        _pattern("NK", "", "s", "e, es", "e, ee"),
        _pattern("NX", "", "", "e", "e, ee, s, es"),
        _pattern("KN", "s", "", "e", "e, ee, se"),
        _pattern("KK", "s", "s", "e, es, ss", "e, ee, se"),
        _pattern("KX", "s", "", "e", "e, ee, se, s, es"),
        _pattern("XN", "", "", "e", "e, ee", "s, se"),
        _pattern("XK", "", "s", "e, es", "e, ee", "s, se"),
        _pattern("XX", "", "", "e", "e, ee, s, es", "s, se"),
        _pattern("IN", "", "", "e, s", "e, ee, se"),
        _pattern("IK", "", "s", "e, es, s, ss", "e, ee, se"),
        _pattern("IX", "", "", "e, s", "e, ee, se, s, es"),
    )
}

_NAME_RE = regex.compile(r"Noise_([NKXI]{1,2})(?:psk(\d))?_" + regex.escape(SUITE))


def parse_protocol_name(protocol_name: str) -> HandshakePattern:
    """The pattern a full protocol name asks for, with its psk modifier applied (Noise §9.2)."""
    match = _NAME_RE.fullmatch(protocol_name)
    if match is None or match.group(1) not in _PATTERNS:
        raise ValueError(f"unsupported Noise protocol {protocol_name!r}")
    base = _PATTERNS[match.group(1)]
    if match.group(2) is None:
        return base
    return _with_psk(base, int(match.group(2)))


def _with_psk(base: HandshakePattern, position: int) -> HandshakePattern:
    """psk0 opens the first message; pskN (N >= 1) closes message N."""
    if position > len(base.messages):
        raise ValueError(f"psk{position} is past the end of pattern {base.name}")
    messages = list(base.messages)
    if position == 0:
        messages[0] = ("psk", *messages[0])
    else:
        messages[position - 1] = (*messages[position - 1], "psk")
    return HandshakePattern(
        f"{base.name}psk{position}", base.initiator_pre, base.responder_pre, tuple(messages)
    )


# -- HandshakeState -------------------------------------------------------------------------


class HandshakeState:
    """One side of one handshake (Noise §5.3), driven by write_message/read_message.

    Keys are inputs: ``s`` (own static), ``e`` (own ephemeral, or ``generate_ephemeral`` to
    make one when the pattern needs it), ``rs``/``re`` (the peer's, when a pre-message says
    they are known in advance). After a failed read or write the state is dead: a
    half-updated transcript must never be used again.
    """

    def __init__(
        self,
        protocol_name: str,
        *,
        initiator: bool,
        prologue: bytes = b"",
        s: KeyPair | None = None,
        e: KeyPair | None = None,
        rs: bytes | None = None,
        re: bytes | None = None,
        psk: bytes | None = None,
        generate_ephemeral: Callable[[], KeyPair] | None = None,
    ) -> None:
        self._pattern = parse_protocol_name(protocol_name)
        self._initiator = initiator
        self._s, self._e, self._rs, self._re = s, e, rs, re
        self._psk = psk
        self._generate = generate_ephemeral
        self._index = 0
        self._failed = False
        self._split_done = False
        self._check_inputs()
        self._ss = SymmetricState(protocol_name.encode("ascii"))
        self._ss.mix_hash(prologue)
        self._mix_pre_messages()

    # -- setup --

    def _my_messages(self) -> list[Tokens]:
        start = 0 if self._initiator else 1
        return list(self._pattern.messages[start::2])

    def _my_pre(self) -> Tokens:
        pattern = self._pattern
        return pattern.initiator_pre if self._initiator else pattern.responder_pre

    def _their_pre(self) -> Tokens:
        pattern = self._pattern
        return pattern.responder_pre if self._initiator else pattern.initiator_pre

    def _check_inputs(self) -> None:
        """Refuse a missing key up front, before any transcript state exists."""
        if self._pattern.has_psk() != (self._psk is not None):
            raise ValueError(f"pattern {self._pattern.name} and the psk argument disagree")
        if self._psk is not None and len(self._psk) != PSKLEN:
            raise ValueError(f"a Noise psk is {PSKLEN} bytes, not {len(self._psk)}")
        sends_s = any("s" in message for message in self._my_messages())
        if self._s is None and ("s" in self._my_pre() or sends_s):
            raise ValueError(f"pattern {self._pattern.name} needs our static key")
        if "s" in self._their_pre() and self._rs is None:
            raise ValueError(f"pattern {self._pattern.name} needs the peer's static key")
        if "e" in self._their_pre() and self._re is None:
            raise ValueError(f"pattern {self._pattern.name} needs the peer's ephemeral key")

    def _mix_pre_messages(self) -> None:
        """Initiator's pre-message keys first, then the responder's (Noise §7.1)."""
        sides = (True, False) if self._initiator else (False, True)
        for mine, tokens in zip(
            sides, (self._pattern.initiator_pre, self._pattern.responder_pre), strict=True
        ):
            for token in tokens:
                self._mix_pre_key(token, mine)

    def _mix_pre_key(self, token: str, mine: bool) -> None:
        if token == "s":
            key = self._static_public() if mine else self._rs
        else:
            key = self._ephemeral().public if mine else self._re
        assert key is not None  # _check_inputs guarantees it
        self._ss.mix_hash(key)
        if token == "e" and self._psk is not None:
            self._ss.mix_key(key)

    def _static_public(self) -> bytes:
        if self._s is None:
            raise ValueError("no static key")
        return self._s.public

    def _ephemeral(self) -> KeyPair:
        if self._e is None:
            if self._generate is None:
                raise ValueError("no ephemeral key and no generate_ephemeral function")
            self._e = self._generate()
        return self._e

    # -- the state machine --

    @property
    def initiator(self) -> bool:
        return self._initiator

    @property
    def finished(self) -> bool:
        return self._index >= len(self._pattern.messages)

    @property
    def remote_static(self) -> bytes | None:
        """The peer's static public key, once a message or pre-message has delivered it."""
        return self._rs

    @property
    def remote_ephemeral(self) -> bytes | None:
        return self._re

    def get_handshake_hash(self) -> bytes:
        return self._ss.get_handshake_hash()

    def _begin(self, writing: bool) -> Tokens:
        if self._failed:
            raise RuntimeError("this handshake already failed; start a new one")
        if self.finished:
            raise RuntimeError("the handshake is already finished")
        if writing != ((self._index % 2 == 0) == self._initiator):
            raise RuntimeError("not our turn: " + ("read" if writing else "write") + " next")
        return self._pattern.messages[self._index]

    def write_message(self, payload: bytes = b"") -> bytes:
        """The next handshake message carrying ``payload`` (encrypted once a key exists)."""
        tokens = self._begin(writing=True)
        try:
            out = bytearray()
            for token in tokens:
                self._write_token(token, out)
            out += self._ss.encrypt_and_hash(payload)
        except BaseException:
            self._failed = True
            raise
        if len(out) > MAX_MESSAGE_LEN:
            self._failed = True
            raise ValueError(f"handshake message of {len(out)} bytes exceeds {MAX_MESSAGE_LEN}")
        self._index += 1
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        """Process the peer's next handshake message and return its payload."""
        tokens = self._begin(writing=False)
        try:
            if len(message) > MAX_MESSAGE_LEN:
                raise NoiseError(f"handshake message longer than {MAX_MESSAGE_LEN} bytes")
            pos = 0
            for token in tokens:
                pos = self._read_token(token, message, pos)
            payload = self._ss.decrypt_and_hash(message[pos:])
        except BaseException:
            self._failed = True
            raise
        self._index += 1
        return payload

    def _write_token(self, token: str, out: bytearray) -> None:
        if token == "e":
            public = self._ephemeral().public
            out += public
            self._ss.mix_hash(public)
            if self._psk is not None:
                self._ss.mix_key(public)
        elif token == "s":
            out += self._ss.encrypt_and_hash(self._static_public())
        else:
            self._process_key_token(token)

    def _read_token(self, token: str, message: bytes, pos: int) -> int:
        if token == "e":
            self._re = _take(message, pos, DHLEN)
            self._ss.mix_hash(self._re)
            if self._psk is not None:
                self._ss.mix_key(self._re)
            return pos + DHLEN
        if token == "s":
            size = DHLEN + (TAGLEN if self._ss.has_key() else 0)
            self._rs = self._ss.decrypt_and_hash(_take(message, pos, size))
            return pos + size
        self._process_key_token(token)
        return pos

    def _process_key_token(self, token: str) -> None:
        """The DH tokens and ``psk``; the two letters of a DH token name (initiator, responder)."""
        if token == "psk":
            assert self._psk is not None  # _check_inputs guarantees it
            self._ss.mix_key_and_hash(self._psk)
            return
        initiator_key, responder_key = token[0], token[1]
        mine, theirs = (
            (initiator_key, responder_key) if self._initiator else (responder_key, initiator_key)
        )
        local = self._ephemeral() if mine == "e" else self._s
        remote = self._re if theirs == "e" else self._rs
        if local is None or remote is None:
            raise RuntimeError(f"token {token!r} needs a key this handshake does not have")
        self._ss.mix_key(dh(local, remote))

    def split(self) -> tuple[CipherState, CipherState]:
        """The transport ciphers (initiator-to-responder, responder-to-initiator).

        Allowed once: a second split would restart both nonces at zero under the same keys,
        which is exactly the nonce reuse PITFALLS 14 warns about. The ephemeral private key is
        dropped here, which is what makes the session forward secret.
        """
        if not self.finished or self._failed:
            raise RuntimeError("split() before the handshake finished")
        if self._split_done:
            raise RuntimeError("split() may be called only once per handshake")
        self._split_done = True
        self._e = None
        return self._ss.split()

    def transport_ciphers(self) -> tuple[CipherState, CipherState]:
        """split() ordered for this side: (the one we send with, the one we receive with)."""
        c1, c2 = self.split()
        return (c1, c2) if self._initiator else (c2, c1)


def _take(message: bytes, pos: int, size: int) -> bytes:
    if len(message) < pos + size:
        raise NoiseError("handshake message too short")
    return message[pos : pos + size]
