"""Sessions, CSRF tokens and the login backoff.

A session is a small signed cookie (itsdangerous, keyed by ``web-session.key`` in the home,
mode 0600): the user, the id of its server-side row (ops/sessions.py: logout, a passphrase
change, a deleted user, a changed role or 30 idle minutes end it, and a copied cookie with it),
a per-session CSRF token, a fingerprint of the user's passphrase hash and one flash message.
It is HttpOnly, SameSite=Strict, and Secure when the pages are served over TLS; every POST must carry the session's CSRF token in its form. A visitor who
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

from evstore.core.backoff import Backoff as CoreBackoff
from evstore.core.backoff import Guard, Throttle, Verdict
from evstore.core.errors import OperationalError
from evstore.ops.logins import Hashing
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


def new_session(user: str | None = None, mark: str = "", sid: str = "") -> dict[str, Any]:
    """A fresh session (a new CSRF token each time, so a login never reuses an old one).
    A logged-in one carries ``sid``, the id of its row in ``web_sessions`` (ops/sessions.py):
    the cookie is only as good as that row, which logout deletes."""
    out: dict[str, Any] = {"csrf": secrets.token_urlsafe(24)}
    if user is not None:
        out.update({"user": user, "mark": mark, "sid": sid})
    return out


def csrf_ok(session: dict[str, Any], token: object) -> bool:
    expected = session.get("csrf")
    if not isinstance(token, str) or not isinstance(expected, str) or not token:
        return False
    return hmac.compare_digest(token.encode(), expected.encode())


@dataclass
class Backoff:
    """Wrong passphrases at the login form (core/backoff.py): per client address, whatever
    user name it tries, and overall, so neither new names nor many addresses multiply the
    guesses. The first ``free`` failures of an address cost nothing; each later one doubles a
    lockout (1 s, 2 s … up to ``cap``) during which its attempts are refused unchecked.
    Failure alerts are written at most once per address per 10 s (``alerts``).

    Passphrases are checked in worker threads under their own small limiter (``hashing``),
    never under the database's, so a spray of logins does not hold up every page.
    ``clock`` is injectable so tests need not wait.
    """

    free: int = 5
    cap: float = 60.0
    clock: Callable[[], float] = time.monotonic
    hashers: int = 1
    guard: Guard = field(init=False)
    alerts: Throttle = field(default_factory=Throttle)
    hashing: Hashing = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.guard = Guard(per_source=CoreBackoff(free=self.free, cap=self.cap))
        self.hashing = Hashing(self.hashers)

    def check(self, source: str) -> Verdict:
        return self.guard.check(source, self.clock())

    def failed(self, source: str) -> float:
        return self.guard.failed(source, self.clock())

    def succeeded(self, source: str) -> None:
        self.guard.succeeded(source)

    def alert(self, source: str) -> int | None:
        """None: hold this failure's alert back; else write it (with the held-back count)."""
        return self.alerts.take(source, self.clock())

    async def hash_check(self, stored: str, passphrase: str) -> bool:
        """Does ``passphrase`` match ``stored``? In a hashing thread (``hashers`` of them, at
        a lower CPU priority: ops/logins.Hashing)."""
        return await self.hashing.check(stored, passphrase)
