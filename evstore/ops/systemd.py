"""systemd's readiness protocol (``Type=notify``), in plain socket code.

When systemd starts a service with ``Type=notify`` it puts the path of a datagram socket in
``NOTIFY_SOCKET``; the service sends ``READY=1`` there once it serves, and ``STOPPING=1`` when
it begins to shut down. A name starting with ``@`` is a socket in the abstract namespace (the
``@`` stands for a leading NUL byte). Without ``NOTIFY_SOCKET`` (not under systemd) nothing is
sent. A failure to send is logged, never fatal: a service must not die because its supervisor
went away.
"""

from __future__ import annotations

import logging
import os
import socket

__all__ = ["notify"]

log = logging.getLogger("evstore.systemd")


def notify(state: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``READY=1``) to ``$NOTIFY_SOCKET``; True when it was sent."""
    env = os.environ if environ is None else environ
    where = env.get("NOTIFY_SOCKET")
    if not where:
        return False
    address = "\0" + where[1:] if where.startswith("@") else where
    if not address.startswith(("/", "\0")):
        log.warning("NOTIFY_SOCKET %r is neither a path nor an abstract name; not notifying",
                    where)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as e:
        log.warning("could not tell systemd %s: %s", state, e.strerror or e)
        return False
    return True
