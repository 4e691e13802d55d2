"""The self-check at the start of every link: is this home behind, or forked from, what its
peers hold of its own events? (restore.py has the rules; docs/protocol.md the messages.)

Before a link carries anything, each side tells the other what it holds of the other's own
origin. The dialling side opens with its head (``open``); the answering side replies with
what it holds of the dialler and its own head (``check``); the dialler answers in kind. Each
side then judges what its peer holds of *its* origin:

* ok: nothing to do (a home that was behind and has now caught up is told so);
* behind: this home was restored from an older copy: it refuses local writes until it has
  caught up with its own events (the ``needs_selfsync`` mark);
* fork: it also wrote while restored: its own events stop leaving (their floor is
  ``HIDDEN``) and an alert asks for ``evstore clusterconfig rekey``.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from evstore.core.state import Machine
from evstore.net import restore, wire
from evstore.net.serving import Serving
from evstore.net.transport import SecureChannel
from evstore.net.view import View

__all__ = ["HIDDEN", "SelfCheck", "floors"]

log = logging.getLogger("evstore.node")
HIDDEN = 1 << 62  # a floor above any seq: the origin is left out of our version vector


def floors(view: View) -> dict[str, int]:
    """The first seq of each origin that may leave. Our own events from before we joined
    never leave (the key we joined with may differ from today's, after a rekey); after a
    fork, none of today's key leave."""
    mark = view.selfsync
    forked = mark is not None and mark[0] == restore.FORK and mark[1] == view.origin
    out = dict.fromkeys(view.retired, HIDDEN)  # what they signed stays here
    out[view.mid] = view.mid_anchor
    out[view.origin] = HIDDEN if forked else view.anchor
    return out


class SelfCheck:
    """Both sides of the check, and what this node does about the verdict."""

    def __init__(self, rt: Serving) -> None:
        self.rt = rt
        self.target = 0  # the seq of our own origin a home found behind must catch up to

    async def dialled(self, channel: SecureChannel, m: Machine) -> None:
        """The dialling side: open with our head, answer the member's check, judge."""
        rt = self.rt
        mine = await rt.db(restore.head_of, rt.node.log, rt.view.origin)
        await wire.send(channel, {"t": "open", "want": "link", "version": rt.config.version,
                                  "head": wire.head_out(mine)})
        check = await wire.receive(channel, "check", timeout=rt.config.request_timeout)
        theirs = wire.head_in(check.get("head"), "check head")
        await self.send_check(channel, m, theirs)
        await self.judge(check, mine)

    async def answered(self, channel: SecureChannel, m: Machine, opened: dict[str, Any]) -> None:
        """The answering side: check what the dialler opened with, then judge its answer."""
        rt = self.rt
        peer_head = wire.head_in(opened.get("head"), "open head")
        mine = await rt.db(restore.head_of, rt.node.log, rt.view.origin)
        await self.send_check(channel, m, peer_head, head=wire.head_out(mine))
        answer = await wire.receive(channel, "check", timeout=rt.config.request_timeout)
        await self.judge(answer, mine)

    async def send_check(self, channel: SecureChannel, m: Machine, peer_head: tuple[int, str],
                         **extra: Any) -> None:
        """Tell the peer what we hold of its origin (its head, and our id at its head seq)."""
        held, at = await self.rt.db(self._record_of, m.key, peer_head[0])
        await wire.send(channel, {"t": "check", "yours": wire.head_out(held), "at": at, **extra})

    def _record_of(self, key: str, seq: int) -> tuple[tuple[int, str], str | None]:
        event_log = self.rt.node.log
        return restore.head_of(event_log, key), restore.id_at(event_log, key, seq)

    async def judge(self, check: dict[str, Any], sent: tuple[int, str]) -> None:
        """What a peer holds of our own origin (we told it our head ``sent``): ok, behind
        (this home was restored) or fork (it also wrote while restored)."""
        theirs = wire.head_in(check.get("yours"), "check yours")
        at = wire.optional_id(check.get("at"), "check at")
        verdict = await self.rt.db(self._verdict, sent, theirs, at)
        log.debug("self-check of %s: peer holds %s, at %s: %s", self.rt.view.hostname, theirs,
                  at, verdict)
        if verdict == restore.FORK:
            await self._forked()
        elif verdict == restore.BEHIND:
            await self._behind(theirs[0])
        else:
            await self.maybe_caught_up()

    def _verdict(self, sent: tuple[int, str], theirs: tuple[int, str], at: str | None) -> str:
        origin = self.rt.view.origin
        event_log = self.rt.node.log
        head = restore.head_of(event_log, origin)[0]
        return restore.verdict(
            sent, lambda s: restore.id_at(event_log, origin, s), theirs, at, head)

    async def _forked(self) -> None:
        rt = self.rt
        mark = rt.view.selfsync
        rt.log.floors[rt.view.origin] = HIDDEN
        if mark is not None and mark[0] == restore.FORK:
            return
        await rt.db(restore.mark, rt.node, restore.FORK, rt.view.origin)
        await rt.refresh()
        detail = ("this machine's own log forked: it wrote while restored from an older copy; "
                  "its changes since then stay here until `evstore clusterconfig rekey`")
        log.error("%s", detail)
        rt.queue(partial(rt.book.alert, "fork", detail))

    async def _behind(self, seq: int) -> None:
        rt = self.rt
        self.target = max(self.target, seq)
        if rt.view.selfsync is None:
            await rt.db(restore.mark, rt.node, restore.BEHIND, rt.view.origin)
            await rt.refresh()
            log.warning("this home was restored from an older copy: catching up with its own "
                        "events (up to seq %s) before it writes again", seq)

    async def maybe_caught_up(self) -> None:
        """Clear the ``behind`` mark once our own events are back up to the target."""
        rt = self.rt
        mark = rt.view.selfsync
        if mark is None or mark[0] != restore.BEHIND:
            return
        head = await rt.db(restore.head_of, rt.node.log, rt.view.origin)
        if head[0] >= self.target:
            await rt.db(restore.clear_mark, rt.node)
            await rt.refresh()
            log.warning("caught up with this machine's own events: local writes allowed again")
