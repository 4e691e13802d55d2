"""The home's change signal: one process tells the others "the log moved" without polling.

Theory of operation. Every process that wants to hear of changes on a home (``evstore run``,
``evstore watch``, ``open_config().watch()``) opens a :class:`Listener`: a Unix datagram socket
bound in Linux's abstract namespace, under a name derived from the home's real path, and an
empty registration file of the same token in ``HOME/.notify/``. A process that has just
COMMITted a change calls :func:`announce`, which sends one tiny datagram to every registered
listener (never blocking: a full receive queue already holds a wake-up). A registration whose
socket is gone (its process was killed) is removed by the first announcer that finds it dead.

The signal carries no data and is only a hint: a listener always reads what changed from the
database, so a lost, duplicated or stale datagram costs a query, never correctness. Where the
abstract namespace is missing (not Linux) or the home is read-only, :func:`listen` returns
None and callers fall back to polling ``PRAGMA data_version``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # socket and secrets are loaded by a listener, or by an announcement that
    import socket  # finds one: a command that commits where nobody listens loads neither

NOTIFY_DIR = ".notify"
_PREFIX = b"\0evstore-notify/"


def _home_tag(home: Path) -> bytes:
    real = os.path.realpath(home)
    return hashlib.sha256(real.encode()).hexdigest()[:24].encode()


def _address(home_tag: bytes, token: str) -> bytes:
    return _PREFIX + home_tag + b"/" + token.encode()


class Listener:
    """One process's ear on a home. ``fileno()`` is readable when a change was announced."""

    def __init__(self, home: Path, sock: socket.socket, token: str) -> None:
        self.home = home
        self.sock = sock
        self.token = token
        self._registration = home / NOTIFY_DIR / token

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self) -> list[bytes]:
        """Every datagram waiting now (possibly none), without blocking."""
        import socket

        got: list[bytes] = []
        while True:
            try:
                got.append(self.sock.recv(256, socket.MSG_DONTWAIT))
            except (BlockingIOError, InterruptedError):
                return got

    def wait(self, timeout: float | None) -> bool:
        """Block until an announcement arrives or ``timeout`` seconds pass; True if one came."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        return bool(ready)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._registration.unlink()
        self.sock.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def listen(home: str | Path) -> Listener | None:
    """Register this process as a listener on ``home``; None where signals cannot work here."""
    import secrets
    import socket

    home = Path(home)
    if not hasattr(socket, "AF_UNIX") or not sys.platform.startswith("linux"):
        return None
    token = f"{os.getpid()}-{secrets.token_hex(6)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(_address(_home_tag(home), token))
        folder = home / NOTIFY_DIR
        folder.mkdir(mode=0o700, exist_ok=True)
        (folder / token).touch(mode=0o600)
    except OSError:
        sock.close()
        return None
    sock.setblocking(False)
    return Listener(home, sock, token)


def announce(home: str | Path, message: bytes = b"changed") -> int:
    """Tell every listener on ``home`` that something was committed; returns how many heard.

    Never blocks and never raises for a listener's sake: a dead listener's registration is
    removed, a full one is skipped (it already has a wake-up waiting).
    """
    home = Path(home)
    folder = home / NOTIFY_DIR
    try:
        tokens = os.listdir(folder)
    except OSError:
        return 0
    if not tokens:
        return 0
    tag = _home_tag(home)
    payload = message[:200] + b" " + str(os.getpid()).encode()
    heard = 0
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        for token in tokens:
            try:
                sock.sendto(payload, socket.MSG_DONTWAIT, _address(tag, token))
                heard += 1
            except (BlockingIOError, InterruptedError):
                heard += 1
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):
                    (folder / token).unlink()
            except OSError:
                continue
    return heard
