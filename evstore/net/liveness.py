"""Is a peer still there? Link states to the ``links`` table, and "down" alerts that mean it.

A quiet link is kept alive by pings every second (gossip.py), and one that hears nothing for
3 s is dropped there; the watchdog here also drops one with no answer to the seed's ping for
2.5 ping intervals. Every change of a link's state is written (linkbook.py); a link that went
down is reported down only if it stays down a moment: not one replaced, re-dialled at once,
or cut because a machine was detached.
"""

from __future__ import annotations

from functools import partial

import trio

from evstore.core.state import Machine
from evstore.net.gossip import LinkState
from evstore.net.links import Links
from evstore.net.serving import Serving
from evstore.ops.node import now_ms

__all__ = ["Liveness"]


class Liveness:
    """The mesh's link-change callback, and the watchdog task."""

    def __init__(self, rt: Serving, links: Links) -> None:
        self.rt = rt
        self.links = links

    def link_changed(self, state: LinkState) -> None:
        """A link came up or went down (``Mesh(on_link_change=...)``)."""
        m = self.rt.view.members.get(state.name)
        if m is None:
            return
        self.rt.queue(partial(self.rt.book.store_link, m, state))
        nursery = self.links.nursery
        if not state.up and nursery is not None:
            reason = self.links.reasons.get(m.mid) or state.error or "link lost"
            nursery.start_soon(self._confirm_down, m, reason)

    async def _confirm_down(self, m: Machine, reason: str) -> None:
        """Alert only for a link that stays down: not for one replaced, re-dialled at once,
        or cut because a machine was detached."""
        rt = self.rt
        await trio.sleep(min(2.0, rt.config.ping_interval))
        current = rt.mesh.links.get(m.mid)
        if current is not None and current.up:
            return
        now = rt.view.members.get(m.mid)
        if rt.view.detached or now is None or now.detached:
            return
        rt.queue(partial(rt.book.alert_down, m, f"{m.hostname} is down: {reason}"))

    async def watchdog(self) -> None:
        """A peer that stops answering (no ping, no pong) is dropped, and so reported down."""
        mesh = self.rt.mesh
        limit_ms = int(2.5 * self.rt.config.ping_interval * 1000)
        while True:
            await trio.sleep(max(0.5, self.rt.config.ping_interval / 2))
            now = now_ms()
            for name, state in list(mesh.links.items()):
                if state.up and state.last_seen_ms and now - state.last_seen_ms > limit_ms:
                    self.links.reasons[name] = "stopped answering pings"
                    mesh.disconnect(name)
