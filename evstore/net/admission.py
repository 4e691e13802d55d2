"""Who may connect, and what guards the door against strangers.

A current member whose X25519 key is the one its signed membership event announced may
connect on either port; on the admin port a stranger is let through too, but may then say only
one thing: a join request (a pre-shared one on the cluster-only port). Until a connection
proves to be a member (or its join credentials hold) it holds a ticket of the
pre-authentication gate (preauth.py). A join's passphrase is guarded against guessing
(core/backoff.py) and hashed in a thread of its own; a member takes a few joins at a time.
"""

from __future__ import annotations

import trio

from evstore.core import backoff
from evstore.net import preauth
from evstore.net.config import NodeConfig
from evstore.net.view import View
from evstore.ops import logins

__all__ = ["MAX_JOINS", "Admission", "verdict"]

MAX_JOINS = 4  # joins one member takes up at a time


class Admission:
    """The door's state, for one generation of the node."""

    def __init__(self, config: NodeConfig) -> None:
        self.gate = preauth.Gate(config.max_strangers, config.strangers_per_source)
        self.guard = backoff.Guard()  # failed join passphrases, per source and overall
        self.failure_alerts = backoff.Throttle()
        self.hashing = logins.Hashing(1)  # argon2, never under the database's limiter
        self.joins = trio.Semaphore(MAX_JOINS)


def verdict(view: View, blocked: frozenset[str], port: str, ed25519: str,
            x25519: str) -> bool | None:
    """May this key pair connect on ``port``? None: not known (yet): re-read and ask again."""
    m = view.by_key(ed25519, removed=True)
    if m is not None:
        return m.transport_key == x25519 and m.hostname not in blocked
    if any(m.mid == ed25519 for m in view.members.values()):
        return False  # a member's old key, after a rekey
    if port == "admin" or ed25519 in view.prepjoin:
        return True
    return None
