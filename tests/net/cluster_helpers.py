"""Real nodes in one trio run: homes on free 127.0.0.1 ports, ``serve`` in a nursery, and the
command-side API (``evstore.net.client``) called in worker threads as the CLI calls it.

Database reads and writes of a test also run in worker threads, so the nodes' own tasks (in
the same trio loop) are never blocked by them. Waits poll with a deadline; nothing sleeps
for a fixed time.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import trio

from evstore.net import client
from evstore.net.node import NodeConfig, NodeHandle, serve
from evstore.ops import cluster as cluster_ops
from evstore.ops import settings
from evstore.ops.node import Node, init_home, open_node

PASS = "pw-for-tests"
T = TypeVar("T")

FAST = NodeConfig(ping_interval=0.5, handshake_timeout=1.0, request_timeout=2.0,
                  backoff_min=0.05, backoff_max=0.5, poll_interval=0.05, release_interval=0.2,
                  join_wait=5.0)


# Ports for the nodes of tests: below the kernel's ephemeral range (32768-60999 here), so that
# no outgoing connection (the flood tests hold hundreds) can take one between this check and
# the node's bind; each pytest-xdist worker draws from its own slice, in a per-process order.
_SLICE = 1500
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
_BASE = 20000 + (int(_WORKER) % 8 if _WORKER.isdigit() else 0) * _SLICE
_order = random.Random(os.getpid())


def free_port(host: str = "127.0.0.1") -> int:
    for _ in range(200):
        port = _BASE + _order.randrange(_SLICE)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # the slice is full: any port the kernel gives
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Box:
    """One machine of a test: its home, its address, and its node while it serves."""

    name: str
    home: Path
    port: int
    ccs_port: int | None = None
    handle: NodeHandle | None = None
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def make_box(tmp: Path, name: str, *, ccs: bool = False) -> Box:
    port = free_port()
    ccs_port = free_port() if ccs else None
    home = tmp / name
    init_home(home, hostname=name, passphrase=PASS, listen=f"127.0.0.1:{port}",
              ccs=f"127.0.0.1:{ccs_port}" if ccs_port else None)
    return Box(name, home, port, ccs_port)


def on(home: Path, fn: Callable[[Node], T]) -> T:
    with open_node(home) as node:
        return fn(node)


async def db(home: Path, fn: Callable[[Node], T]) -> T:
    """Run ``fn(node)`` on a fresh connection in a worker thread."""
    return await trio.to_thread.run_sync(on, home, fn)


async def start(nursery: trio.Nursery, box: Box, config: NodeConfig = FAST) -> NodeHandle:
    """Serve ``box`` in ``nursery`` until ``stop(box)``."""

    async def run(task_status: trio.TaskStatus[NodeHandle] = trio.TASK_STATUS_IGNORED) -> None:
        box.scope = trio.CancelScope()
        with box.scope:
            await serve(box.home, config=config, task_status=task_status)

    box.handle = await nursery.start(run)
    return box.handle


async def stop(box: Box) -> None:
    assert box.handle is not None
    box.handle.stop()
    with trio.fail_after(10):
        await box.handle.finished.wait()
    box.handle = None


def questions() -> client.JoinQuestions:
    return client.JoinQuestions(trust_key=lambda fp, addr: False, confirm=lambda info: True,
                                before_change=lambda info: None)


def join_now(joiner: Box, member: Box, **kw: Any) -> dict[str, Any]:
    """``clusterconfig join`` of ``joiner`` through ``member`` (blocking: run it in a thread)."""
    fp = kw.pop("fingerprint", None) or on(member.home, lambda n: n.fingerprint())
    port = member.ccs_port if kw.pop("ccs", False) else member.port
    opts = client.JoinOptions(address=f"127.0.0.1:{port}", passphrase=kw.pop("passphrase", PASS),
                              fingerprint=fp, **kw)
    with open_node(joiner.home) as node:
        return client.join(node, "admin", opts, questions())


async def join(joiner: Box, member: Box, **kw: Any) -> dict[str, Any]:
    return await trio.to_thread.run_sync(partial(join_now, joiner, member, **kw))


def commit_now(node: Node, section: str, value: dict[str, Any], mode: str = "cluster") -> str:
    settings.stage(node, "admin", node.to_internal(mode), section, value)
    done = settings.commit(node, "admin", f"{section} from {node.identity().hostname}")
    return str(done["commit"])


async def commit(box: Box, section: str, value: dict[str, Any], mode: str = "cluster") -> str:
    return await db(box.home, lambda n: commit_now(n, section, value, mode))


async def digest(box: Box) -> str:
    return await db(box.home, lambda n: n.state_digest())


async def wait_until(what: str, pred: Callable[[], Any], timeout: float = 10.0) -> float:
    """Poll a blocking predicate (in a thread) until it holds; the seconds it took."""
    start = trio.current_time()
    with trio.move_on_after(timeout) as scope:
        while not await trio.to_thread.run_sync(pred):
            await trio.sleep(0.02)
    if scope.cancelled_caught:
        raise AssertionError(f"{what} did not happen within {timeout} s")
    return trio.current_time() - start


def holds(home: Path, event_id: str) -> bool:
    return on(home, lambda n: n.log.get(event_id) is not None)


def same_digest(*boxes: Box) -> Callable[[], bool]:
    return lambda: len({on(b.home, lambda n: n.state_digest()) for b in boxes}) == 1


def alerts(home: Path) -> list[str]:
    return on(home, lambda n: [r[0] for r in n.conn.execute(
        "SELECT detail FROM alerts ORDER BY id")])


def link_state(home: Path, peer: str) -> str | None:
    return on(home, lambda n: next((p["state"] for p in n.peers() if p["hostname"] == peer),
                                   None))


@asynccontextmanager
async def running_cluster(tmp: Path, names: tuple[str, ...] = ("a", "b", "c"),
                          config: NodeConfig = FAST, **configs: NodeConfig
                          ) -> AsyncIterator[list[Box]]:
    """``names[0]`` creates the cluster, the others join through it; every node serves."""
    boxes = [make_box(tmp, n) for n in names]
    on(boxes[0].home, lambda n: cluster_ops.create(n, "admin", "testcluster"))
    async with trio.open_nursery() as nursery:
        for box in boxes:
            await start(nursery, box, configs.get(box.name, config))
        for box in boxes[1:]:
            await join(box, boxes[0])
        await wait_until("the cluster to form", same_digest(*boxes))
        yield boxes
        for box in boxes:
            if box.handle is not None:
                box.handle.stop()
        nursery.cancel_scope.cancel()

