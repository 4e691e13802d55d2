"""Error types of the core.

Like h11's LocalProtocolError/RemoteProtocolError split: an ``InvalidInput`` is something a
user or a peer sent us (bad JSON, forged event, malformed frame); it is refused and nothing is
stored. Every message says what went wrong and, where possible, what to do.
"""

from __future__ import annotations


class EvstoreError(Exception):
    """Base class of every error evstore raises on purpose."""

    exit_code = 1


class InvalidInput(EvstoreError):
    """Bad input from a user or a peer: refused, nothing changed (exit code 2)."""

    exit_code = 2


class EncodingError(InvalidInput):
    """Bytes or values that are not in evstore's canonical encoding."""


class VerificationError(InvalidInput):
    """An event whose signature, id or hash chain does not check out."""


class OperationalError(EvstoreError):
    """The operation could not be carried out now (peer unreachable, conflict refused)."""

    exit_code = 1
