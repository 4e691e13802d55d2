"""Noticing changes to the log that did not come over a link: commits by other processes on
this home, and held-back events whose time has come.

Commits by other processes are announced on the home's change signal (storage/notify.py): the
node waits on its listener's socket and pushes at once, and reads ``PRAGMA data_version`` only
as a fallback (every second, or every 100 ms where the signal cannot work). Both tell the mesh
(which pushes to every peer at once, no batching timer) and refresh the membership view.
Every second, held-back events whose time has come are released (only while some may be held:
an idle node does not touch its database for it).
"""

from __future__ import annotations

import os

import trio

from evstore.core.events import Event
from evstore.net.dbwork import survive
from evstore.net.serving import Serving
from evstore.ops.node import Node, now_ms
from evstore.storage import feed, notify

__all__ = ["PUSH_FIRST", "release_held", "watch_commits"]

PUSH_FIRST = 0.02  # s: a commit's pushes take the database thread before a membership re-read


async def watch_commits(rt: Serving) -> None:
    """Commits by other processes on this home: their announcement (storage/notify.py)
    wakes the node, which pushes at once; ``PRAGMA data_version`` (which our own
    connection's commits do not move) is read after every announcement, and every
    ``poll_interval`` where announcements cannot work here, else every
    ``fallback_poll_interval`` (a committer that does not announce is still seen)."""
    listener = notify.listen(rt.home)
    own = b" %d" % os.getpid()
    heard: list[bytes] = []
    last = -1
    with survive("watching the database"):
        last = await rt.db(feed.data_version, rt.conn)
    try:
        while True:
            if listener is None:
                await trio.sleep(rt.config.poll_interval)
            else:
                with trio.move_on_after(rt.config.fallback_poll_interval):
                    await trio.lowlevel.wait_readable(listener.fileno())
                heard = [h for h in listener.drain() if not h.endswith(own)]
                # Our own commits (ingests) were pushed already: only the database is
                # looked at then, so nodes that share one process (tests) see each
                # other's commits, and a steady stream of our own never starves it.
                if heard:
                    # push first: the peers' writers read the log before this task asks
                    # the database thread whether the membership has to be re-read
                    rt.mesh.notify_local_change()
                    await trio.sleep(PUSH_FIRST)
            with survive("watching the database"):
                version = await rt.db(feed.data_version, rt.conn)
                if version != last:
                    last = version
                    rt.log.held_seen = True  # another process may have held events
                    if not heard:
                        rt.mesh.notify_local_change()
                    await rt.refresh()
    finally:
        if listener is not None:
            listener.close()


async def release_held(rt: Serving) -> None:
    """Held events whose time has come, every ``release_interval`` while any may be held
    (one was at the last look, or an ingest or another process's commit may have held
    one); an idle node does not touch its database for it."""
    rt.log.held_seen = True  # held before we started?
    while True:
        await trio.sleep(rt.config.release_interval)
        if not rt.log.held_seen:
            continue
        rt.log.held_seen = False
        with survive("releasing held-back events"):
            applied, still = await rt.db(_release_due, rt.node)
            rt.log.held_seen = rt.log.held_seen or still
            if applied:
                await rt.ingested(applied)
                rt.mesh.notify_local_change()


def _release_due(node: Node) -> tuple[list[Event], bool]:
    """Release what is due; and is anything still held?"""
    return node.log.release_held(now_ms()), bool(node.log.held())
