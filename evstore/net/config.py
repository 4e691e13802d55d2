"""The knobs of a serving node (``NodeConfig``), and what counts as a link's failure.

The defaults are the contract's (docs/protocol.md, "Node runtime"); tests and drills turn
them down to make time pass quickly.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

import evstore
from evstore.core.errors import EvstoreError
from evstore.net.gossip import DEFAULT_KEEPALIVE, DEFAULT_LINK_TIMEOUT, DEFAULT_PING_INTERVAL
from evstore.net.transport import HANDSHAKE_TIMEOUT

__all__ = ["LINK_ERRORS", "NodeConfig"]

# A link ends on one of these without stopping the node: logged, and dialled again later.
LINK_ERRORS = (EvstoreError, OSError, trio.TooSlowError, trio.BrokenResourceError,
               trio.ClosedResourceError)


@dataclass
class NodeConfig:
    """Knobs of a serving node; the defaults are the contract's."""

    ping_interval: float = DEFAULT_PING_INTERVAL
    keepalive_interval: float | None = DEFAULT_KEEPALIVE  # quiet links are pinged this often
    link_timeout: float = DEFAULT_LINK_TIMEOUT  # a link silent this long is down
    sync_interval: float | None = None  # periodic anti-entropy; min(ping, 10 s) by default
    fanout: int | None = None  # None: full mesh (the seed's); k: dial k members only
    clock_alert_ms: int = 5_000
    handshake_timeout: float = HANDSHAKE_TIMEOUT
    request_timeout: float = 30.0
    join_wait: float = 120.0  # a person may be answering questions on the joining side
    backoff_min: float = 0.25
    backoff_max: float = 30.0
    seed: int | None = None  # jitter; by default derived from the host key
    poll_interval: float = 0.1  # where the home's change signal cannot work
    fallback_poll_interval: float = 1.0  # beside it: a committer that does not announce
    release_interval: float = 1.0
    dial_timeout: float = 5.0
    max_strangers: int = 128  # unauthenticated connections in all (preauth.Gate)
    strangers_per_source: int = 8  # … from one address (an IPv6 /64)
    first_message_timeout: float = 2.0  # the handshake's first message is a few dozen bytes
    version: str = evstore.__version__
    blocked: frozenset[str] = frozenset()  # hostnames never linked with (drills and tests)

    @property
    def resync_interval(self) -> float:
        return self.sync_interval if self.sync_interval is not None else min(self.ping_interval,
                                                                              10.0)
