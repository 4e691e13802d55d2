"""The node: ``evstore run`` serving one home (docs/protocol.md, "Node runtime").

Theory of operation
-------------------
One process serves a home (an exclusive ``flock`` on ``HOME/run.pid``: homelock.py). Each
generation of the node (runtime.py) opens the database once and does every piece of database
work in a worker thread, one at a time (dbwork.py: one ``CapacityLimiter(1)``, shared with
``gossip.ThreadedLog``), so the trio loop never blocks on SQLite and commands in other
processes meet the node in SQLite. A rekey or a new port ends a generation; ``serve`` starts
the next one, rebinding its ports.

Ports. The admin port (``--listen``) is bound at once, standalone or not; the cluster-only
port (``--ccs``) only where configured. Each connection starts with the Noise handshake
(transport.py, inbound.py). ``admission.verdict`` admits a current member whose X25519 key is
the one its signed membership event announced; on the admin port a stranger is let through
too, but may then say only one thing: a join request (a pre-shared one on the cluster-only
port: joins.py). Members then open a mesh *link* (self-check, then gossip.Mesh) or an *rpc*
session (a command reaching this machine: disconnect, reconnect, commitdetail, clustercheck,
rekey). See service.py.

Links. Every node dials every other member it may link with (``fanout=k``: the k members
first in the order of sha256(my key || their key)), with exponential backoff and seeded
jitter. When two links to one peer cross, the one dialled by the lower key stays (links.py).
A quiet link is kept alive by pings every second, and one that hears nothing for 3 s is
dropped (gossip.py), as is one with no answer to the seed's ping for 2.5 ping intervals
(liveness.py). Link states go to the ``links`` table, and transitions (down, up again, clock
offset past the threshold, refusals) to ``alerts`` (linkbook.py).

Changes. Commits by other processes are announced on the home's change signal
(storage/notify.py): the node waits on its listener's socket and pushes at once, and reads
``PRAGMA data_version`` only as a fallback (changes.py); events from peers by the log wrapper
(``runtime.NodeLog``). Both tell the mesh (which pushes to every peer at once, no batching
timer) and refresh the membership view (view.py), which decides which links may exist: a
removed or detached machine's links are cut as soon as this node learns of it. Every second,
held-back events whose time has come are released (only while some may be held: an idle node
does not touch its database for it).

Restored homes. Before a link carries anything, both sides compare what they hold of each
other's own events (selfcheck.py, restore.py): a node that finds itself behind refuses local
writes until it has caught up; one that finds a fork hides its own events and asks for
``rekey``.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import trio

from evstore.core.errors import EvstoreError
from evstore.net import inbound
from evstore.net.config import NodeConfig
from evstore.net.homelock import HomeLock
from evstore.net.linkbook import peer_vv_of
from evstore.net.runtime import NodeHandle, Runtime
from evstore.net.view import View, load_view

__all__ = ["HomeLock", "NodeConfig", "NodeHandle", "View", "load_view", "peer_vv_of", "run_node",
           "serve"]

log = logging.getLogger("evstore.node")

# A service run beside the node, started with ``nursery.start``: it reports its URLs.
Beside = Callable[..., Awaitable[Any]]


# ---------------------------------------------------------------------- serving


async def serve(
    home: Path,
    *,
    config: NodeConfig | None = None,
    beside: Beside | None = None,
    task_status: trio.TaskStatus[NodeHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``home`` until ``handle.stop()`` or cancellation; ``started`` gets the handle.

    ``beside`` is a service started first in the node's nursery (``evstore run --gui``: the
    CLI passes the web pages, so that this package never imports them); what it reports
    started (its URLs) goes to ``handle.gui``."""
    config = config or NodeConfig()
    lock = HomeLock(home)
    lock.acquire()
    handle = NodeHandle(home)
    try:
        async with trio.open_nursery() as nursery:
            if beside is not None:
                handle.gui = await nursery.start(beside)
            await _generations(home, config, handle, task_status)
            nursery.cancel_scope.cancel()
    finally:
        lock.release()
        handle.finished.set()


async def _generations(home: Path, config: NodeConfig, handle: NodeHandle,
                       task_status: trio.TaskStatus[NodeHandle]) -> None:
    """Run the node; start it again (rebinding its ports) when its keys or ports changed."""
    first = True
    while not handle.stopping:
        rt = Runtime(home, config, handle)
        try:
            listeners = await rt.bind()
            handle.runtime = rt
            handle.addresses = {k: [s.socket.getsockname()[:2] for s in v]
                                for k, v in listeners.items()}

            def ready() -> None:
                nonlocal first
                if first:
                    first = False
                    task_status.started(handle)

            again = await rt.run(listeners, partial(inbound.accept, rt), ready)
        finally:
            rt.close()
        if not again:
            return


def run_node(home: Path, *, config: NodeConfig | None = None,
             beside: Beside | None = None,
             on_ready: Callable[[NodeHandle], None] | None = None,
             metrics: tuple[str, int] | None = None) -> None:
    """``evstore run``: serve until SIGINT or SIGTERM, then close every link with FINAL.
    With ``metrics``, also serve ``/metrics`` there; systemd hears READY=1 once every port is
    bound and STOPPING=1 at a signal."""
    try:
        trio.run(_main, home, config, beside, on_ready, metrics)
    except BaseExceptionGroup as group:
        raise _first_error(group) from None


def _first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        if isinstance(exc, EvstoreError | KeyboardInterrupt):
            return exc
    return group


async def _main(home: Path, config: NodeConfig | None, beside: Beside | None,
                on_ready: Callable[[NodeHandle], None] | None,
                metrics: tuple[str, int] | None = None) -> None:
    from evstore.ops import systemd

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            handle: NodeHandle = await nursery.start(partial(serve, home, config=config,
                                                               beside=beside))
            if metrics is not None:
                from evstore.net import metrics as metrics_mod

                lag = metrics_mod.ApplyLag()
                handle.on_applied = lag.observe
                handle.metrics = await nursery.start(
                    metrics_mod.serve_metrics, *metrics, metrics_mod.node_source(handle, lag))
            if on_ready is not None:
                on_ready(handle)
            systemd.notify("READY=1")  # every port bound (and announced by on_ready)
            nursery.start_soon(_stop_on_signal, signals, handle)
            await handle.finished.wait()
            nursery.cancel_scope.cancel()


async def _stop_on_signal(signals: Any, handle: NodeHandle) -> None:
    from evstore.ops import systemd

    async for signum in signals:
        log.warning("signal %s: closing links and stopping", signum)
        systemd.notify("STOPPING=1")
        handle.stop()
        return

