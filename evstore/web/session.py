"""Sessions, CSRF tokens and the login backoff.

A session is a small signed cookie (itsdangerous, keyed by ``web-session.key`` in the home,
mode 0600): the user, a per-session CSRF token, a fingerprint of the user's passphrase hash (so
a passphrase change or a deleted user ends the session) and one flash message. It is HttpOnly
and SameSite=Strict; every POST must carry the session's CSRF token in its form. A visitor who
is not logged in gets an anonymous session holding only a token, so the login form is
protected the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from evstore.core.errors import OperationalError
from evstore.ops.secrets import write_private

KEY_FILE = "web-session.key"
COOKIE = "evstore_session"
MAX_AGE_S = 12 * 3600


def session_key(home: Path) -> bytes:
    """The home's session signing key, made (0600) on first use."""
    path = home / KEY_FILE
    with contextlib.suppress(FileExistsError):
        write_private(path, secrets.token_bytes(32))
    data = path.read_bytes()
    if len(data) < 32:
        raise OperationalError(f"{path} is damaged: delete it (every web session then ends)")
    return data


def passphrase_mark(user_entry: dict[str, Any]) -> str:
    """A short fingerprint of a user's passphrase hash: it changes when the passphrase does."""
    raw = str(user_entry.get("passphrase_hash", "")).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


class Sessions:
    """Reads and writes the signed session cookie."""

    def __init__(self, key: bytes, *, secure: bool = False) -> None:
        self._ser = URLSafeTimedSerializer(key, salt="evstore-web-session")
        self._secure = secure

    def load(self, request: Request) -> dict[str, Any]:
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                data = self._ser.loads(raw, max_age=MAX_AGE_S)
                if isinstance(data, dict) and isinstance(data.get("csrf"), str):
                    return data
            except BadSignature:
                pass
        return new_session()

    def save(self, response: Response, session: dict[str, Any]) -> None:
        response.set_cookie(
            COOKIE, self._ser.dumps(session), max_age=MAX_AGE_S, path="/",
            httponly=True, samesite="strict", secure=self._secure,
        )


def new_session(user: str | None = None, mark: str = "") -> dict[str, Any]:
    """A fresh session (a new CSRF token each time, so a login never reuses an old one)."""
    out: dict[str, Any] = {"csrf": secrets.token_urlsafe(24)}
    if user is not None:
        out.update({"user": user, "mark": mark})
    return out


def csrf_ok(session: dict[str, Any], token: object) -> bool:
    expected = session.get("csrf")
    if not isinstance(token, str) or not isinstance(expected, str) or not token:
        return False
    return hmac.compare_digest(token.encode(), expected.encode())


@dataclass
class _Tries:
    failures: int = 0
    locked_until: float = 0.0
    last: float = 0.0


@dataclass
class Backoff:
    """Slows down repeated wrong passphrases per (user, client address).

    The first ``free`` failures cost nothing; each one after doubles a lockout (1 s, 2 s,
    4 s… up to ``cap``) during which that pair's attempts are refused unchecked. A success
    clears the pair. ``clock`` is injectable so tests need not wait.
    """

    free: int = 3
    cap: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _tries: dict[tuple[str, str], _Tries] = field(default_factory=dict)

    def wait_for(self, key: tuple[str, str]) -> float:
        """Seconds this pair must still wait before its next attempt (0: may try now)."""
        t = self._tries.get(key)
        return max(0.0, t.locked_until - self.clock()) if t else 0.0

    def failed(self, key: tuple[str, str]) -> float:
        """Record a wrong passphrase; returns the lockout it starts, in seconds."""
        self._prune()
        now = self.clock()
        t = self._tries.setdefault(key, _Tries())
        t.failures += 1
        t.last = now
        over = t.failures - self.free
        lockout = 0.0 if over <= 0 else min(self.cap, float(2 ** (over - 1)))
        t.locked_until = now + lockout
        return lockout

    def succeeded(self, key: tuple[str, str]) -> None:
        self._tries.pop(key, None)

    def _prune(self, keep_s: float = 3600.0, most: int = 10_000) -> None:
        if len(self._tries) < most:
            return
        now = self.clock()
        for k in [k for k, t in self._tries.items() if now - t.last > keep_s]:
            del self._tries[k]
