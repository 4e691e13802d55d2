"""The event envelope, its canonical bytes, signing and verification.

An event is immutable. Its canonical bytes are the canonical encoding (core/encoding.py) of
the envelope object::

    {"v": 1, "origin": hex32, "seq": n, "prev": hex32|null, "clock": int, "wall": ms,
     "user": str, "kind": str, "payload": {...}}

``origin`` is the author's Ed25519 public key, ``seq`` counts that author's events 1, 2, 3…
without gaps, ``prev`` is the id of the author's event ``seq - 1`` (null for seq 1), ``clock``
is the hybrid logical clock (core/clock.py) and ``wall`` the author's wall time in ms, for
display only. The event id is SHA-256 of the canonical bytes; the signature is Ed25519 over
``SIGNING_CONTEXT + bytes``. Stored and sent: the bytes verbatim and the signature.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from evstore.core import encoding
from evstore.core.errors import EncodingError, VerificationError

if TYPE_CHECKING:  # PyNaCl (libsodium's bindings) is loaded where a key is used: reading
    import nacl.signing  # a home (status, show, get) signs and checks nothing

FORMAT_VERSION = 1
SIGNING_CONTEXT = b"evstore/event/v1\x00"
ENVELOPE_KEYS = frozenset(
    {"v", "origin", "seq", "prev", "clock", "wall", "user", "kind", "payload"}
)
MAX_EVENT_BYTES = 60 * 1024


_HEX32 = re.compile(r"[0-9a-f]{64}")


def _is_hex32(s: object) -> bool:
    return isinstance(s, str) and _HEX32.fullmatch(s) is not None


def fingerprint(origin_hex: str) -> str:
    """The short, human-comparable fingerprint of a public key (SHA-256, colon-separated)."""
    digest = hashlib.sha256(bytes.fromhex(origin_hex)).hexdigest()[:32]
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))


@dataclass(frozen=True)
class Event:
    """One signed event: its verbatim bytes and signature, and the fields parsed from them."""

    raw: bytes
    sig: bytes
    id: str
    origin: str
    seq: int
    prev: str | None
    clock: int
    wall: int
    user: str
    kind: str
    payload: dict[str, Any] = field(hash=False, compare=False)

    @property
    def order_key(self) -> tuple[int, str, str]:
        """The one total order of events used everywhere: clock, then origin, then id."""
        return (self.clock, self.origin, self.id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "origin": self.origin,
            "seq": self.seq,
            "prev": self.prev,
            "clock": self.clock,
            "wall": self.wall,
            "user": self.user,
            "kind": self.kind,
            "payload": self.payload,
        }


def event_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _check_envelope(env: Any) -> None:
    if not isinstance(env, dict) or set(env) != ENVELOPE_KEYS:
        raise EncodingError("event envelope must have exactly the keys " + ", ".join(sorted(ENVELOPE_KEYS)))
    if type(env["v"]) is not int or env["v"] != FORMAT_VERSION:  # true == 1 in Python
        raise EncodingError(f"event format version {env['v']!r} is not supported (this software reads {FORMAT_VERSION})")
    if not _is_hex32(env["origin"]):
        raise EncodingError("event origin must be 64 lower-case hex digits")
    _check_fields(env["seq"], env["prev"], env["clock"], env["wall"], env["user"], env["kind"],
                  env["payload"])


def _check_fields(seq: Any, prev: Any, clk: Any, wall: Any, user: Any, kind: Any,
                  payload: Any) -> None:
    """The envelope's rules for the fields besides ``v`` and ``origin``."""
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise EncodingError("event seq must be an integer >= 1")
    if seq == 1:
        if prev is not None:
            raise EncodingError("the first event of an origin has no prev")
    elif not _is_hex32(prev):
        raise EncodingError("event prev must be 64 lower-case hex digits (null only at seq 1)")
    if not isinstance(clk, int) or isinstance(clk, bool) or clk < 0:
        raise EncodingError("event clock must be a non-negative integer")
    if not isinstance(wall, int) or isinstance(wall, bool) or wall < 0:
        raise EncodingError("event wall must be a non-negative integer")
    if not isinstance(user, str) or not user:
        raise EncodingError("event user must be a non-empty string")
    if not isinstance(kind, str) or not kind:
        raise EncodingError("event kind must be a non-empty string")
    if not isinstance(payload, dict):
        raise EncodingError("event payload must be an object")


_new_object = object.__new__


def _from_parts(raw: bytes, sig: bytes, env: dict[str, Any], known_id: str | None = None) -> Event:
    # Filled through __dict__: a frozen dataclass's __init__ sets each field with
    # object.__setattr__, several times slower, and events are built by the million.
    ev: Event = _new_object(Event)
    ev.__dict__.update(
        raw=raw, sig=sig, id=known_id or event_id(raw), origin=env["origin"], seq=env["seq"],
        prev=env["prev"], clock=env["clock"], wall=env["wall"], user=env["user"],
        kind=env["kind"], payload=env["payload"],
    )
    return ev


def trusted(raw: bytes, sig: bytes, known_id: str | None = None) -> Event:
    """Rebuild an event from bytes that were verified before they were stored (no signature
    check): for reading one's own log fast. Anything from outside goes through ``parse``."""
    return _from_parts(raw, sig, encoding.decode(raw), known_id)


def create(
    signing_key: nacl.signing.SigningKey,
    *,
    seq: int,
    prev: str | None,
    clock: int,
    wall: int,
    user: str,
    kind: str,
    payload: dict[str, Any],
) -> Event:
    """Build, encode and sign a new event."""
    _check_fields(seq, prev, clock, wall, user, kind, payload)
    origin, secret = _key_material(bytes(signing_key))
    env = {
        "v": FORMAT_VERSION,
        "origin": origin,
        "seq": seq,
        "prev": prev,
        "clock": clock,
        "wall": wall,
        "user": user,
        "kind": kind,
        "payload": payload,
    }
    raw = encoding.encode(env)
    if len(raw) > MAX_EVENT_BYTES:
        raise EncodingError(
            f"event is {len(raw)} bytes, over the {MAX_EVENT_BYTES}-byte limit; split the change"
        )
    import nacl.bindings

    sig = nacl.bindings.crypto_sign(SIGNING_CONTEXT + raw, secret)[:64]
    return _from_parts(raw, sig, env)


def origin_of(signing_key: nacl.signing.SigningKey) -> str:
    """The origin (public key, 64 hex digits) of the events ``signing_key`` signs."""
    return _key_material(bytes(signing_key))[0]


@lru_cache(maxsize=16)
def _key_material(seed: bytes) -> tuple[str, bytes]:
    """A key's origin and libsodium's 64-byte secret key (what ``SigningKey.sign`` uses), kept
    for the few keys a process signs with: signing then skips PyNaCl's wrapper objects."""
    import nacl.bindings

    public, secret = nacl.bindings.crypto_sign_seed_keypair(seed)
    return bytes(public).hex(), bytes(secret)


def unverified(raw: bytes, sig: bytes) -> Event:
    """Decode an event from outside and check its envelope, but not yet its signature.

    The first half of ``parse``, for callers that check many signatures at once
    (``check_signature``, which releases the GIL): nothing may use the event before that.
    Raises ``EncodingError`` for bytes that are not a canonical envelope or a signature of the
    wrong length.
    """
    if len(raw) > MAX_EVENT_BYTES:
        raise EncodingError(f"event of {len(raw)} bytes is over the {MAX_EVENT_BYTES}-byte limit")
    env = encoding.decode(raw)
    _check_envelope(env)
    if len(sig) != 64:
        raise VerificationError("event signature must be 64 bytes")
    return _from_parts(raw, sig, env)


@lru_cache(maxsize=4096)
def _verify_key(origin: str) -> nacl.signing.VerifyKey:
    import nacl.signing

    return nacl.signing.VerifyKey(bytes.fromhex(origin))


def check_signature(event: Event) -> None:
    """The second half of ``parse``: raise ``VerificationError`` unless the signature holds."""
    import nacl.exceptions

    try:
        _verify_key(event.origin).verify(SIGNING_CONTEXT + event.raw, event.sig)
    except nacl.exceptions.BadSignatureError:
        raise VerificationError(
            f"forged or altered event: signature does not match origin {event.origin[:16]}… "
            f"seq {event.seq}"
        ) from None


def parse(raw: bytes, sig: bytes) -> Event:
    """Parse and fully verify an event from its bytes and signature.

    Raises ``EncodingError`` for bytes that are not a canonical envelope and
    ``VerificationError`` for a signature that does not match.
    """
    event = unverified(raw, sig)
    check_signature(event)
    return event
