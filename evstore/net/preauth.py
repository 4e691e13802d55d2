"""Who waits at the door: the budget of connections that have not proved who they are.

A connection is *unauthenticated* from its accept until the caller is known to be a member
(``authorize`` found its key), or, for a stranger asking to join, until its credentials held.
Until then it holds a ticket here, and a ticket can be taken away (its task cancelled, the
socket closed). The door never refuses a newcomer (a single global cap would be a lock anyone
can hold with idle sockets): when a limit is reached, a waiting connection is evicted instead:

* per source (an IPv4 address, an IPv6 /64): at most ``per_source`` tickets; a newcomer from a
  full source evicts one of that source's own;
* overall: at most ``total`` tickets; a newcomer past it evicts one from anywhere.

The victim is the one that has shown the least (``stage``: 0 nothing yet, 1 its first
handshake message, 2 the whole handshake) and, among equals, the oldest. A real peer sends its
first message at once and finishes within a few round trips, so it is rarely the least
advanced for long; an idle socket is the first to go. Together with a short deadline for the
first message (node.py), one process cannot keep members out, whether it uses one address or
many.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass, field

import trio

__all__ = ["Gate", "Ticket", "source_of"]


@dataclass(eq=False)
class Ticket:
    """One unauthenticated connection's place at the door."""

    source: str
    order: int
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    stage: int = 0
    evicted: bool = False
    held: bool = True

    def advance(self, stage: int) -> None:
        self.stage = max(self.stage, stage)


class Gate:
    """The pre-authentication budget of one node (see the module docstring)."""

    def __init__(self, total: int = 128, per_source: int = 8) -> None:
        if total < 1 or per_source < 1:
            raise ValueError("the pre-authentication limits must be at least 1")
        self.total = total
        self.per_source = per_source
        self._tickets: dict[int, Ticket] = {}
        self._by_source: dict[str, dict[int, Ticket]] = {}
        self._order = itertools.count()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._tickets)

    def held_by(self, source: str) -> int:
        return len(self._by_source.get(source, {}))

    def admit(self, host: str) -> Ticket:
        """A ticket for a new connection from ``host``; makes room first if it must."""
        source = source_of(host)
        mine = self._by_source.get(source, {})
        if len(mine) >= self.per_source:
            self._evict(mine)
        if len(self._tickets) >= self.total:
            self._evict(self._tickets)
        ticket = Ticket(source, next(self._order))
        self._tickets[ticket.order] = ticket
        self._by_source.setdefault(source, {})[ticket.order] = ticket
        return ticket

    def release(self, ticket: Ticket) -> None:
        """The connection proved itself, or ended: it no longer counts (idempotent)."""
        if not ticket.held:
            return
        ticket.held = False
        self._tickets.pop(ticket.order, None)
        mine = self._by_source.get(ticket.source)
        if mine is not None:
            mine.pop(ticket.order, None)
            if not mine:
                del self._by_source[ticket.source]

    def _evict(self, pool: dict[int, Ticket]) -> None:
        victim = min(pool.values(), key=lambda t: (t.stage, t.order))
        self.release(victim)
        victim.evicted = True
        victim.scope.cancel()
        self.evictions += 1


def source_of(host: str) -> str:
    """The unit a limit counts: the peer's address, an IPv6 one reduced to its /64 (one
    machine usually holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
