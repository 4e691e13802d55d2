"""The serving node as its parts see it (``Serving``): what the links, the self-check, the
liveness watch and the change watch use of the node's runtime (runtime.py).

The parts are handed the runtime and call back into it (a self-check that finds this home
behind re-reads the membership, which re-plans the links, which run self-checks): they name
it by this protocol, so that no part imports the module that assembles them.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import nacl.public
import nacl.signing

from evstore.core.events import Event
from evstore.net.config import NodeConfig
from evstore.net.gossip import Mesh, ThreadedLog
from evstore.net.linkbook import LinkBook
from evstore.net.view import View
from evstore.ops.node import Node

__all__ = ["Serving"]

T = TypeVar("T")


class Serving(Protocol):
    """One generation of a serving node (runtime.Runtime), seen from its parts."""

    home: Path
    config: NodeConfig
    conn: sqlite3.Connection
    node: Node
    view: View  # replaced whole by ``refresh``
    log: ThreadedLog
    mesh: Mesh
    book: LinkBook
    rng: random.Random
    signing: nacl.signing.SigningKey
    transport: nacl.public.PrivateKey

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Database work in the node's worker thread (dbwork.py)."""
        ...

    def queue(self, job: Callable[[], None]) -> None:
        """Database work for the state writer, not waited for."""
        ...

    async def refresh(self) -> None:
        """Re-read the membership and act on it."""
        ...

    async def ingested(self, applied: list[Event]) -> None:
        """The follow-ups of events that entered the log."""
        ...
