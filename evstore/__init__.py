"""evstore: a peer-to-peer, event-sourced configuration store for fleets of machines.

The public surface, for programs that embed the store (the CLI and the web pages use the same):

* ``init_home`` / ``open_node`` / ``Node``: a node's home folder, its log and views;
* ``Event``: one signed event; ``EvstoreError``, ``InvalidInput``, ``OperationalError``;
* ``SECTIONS``: the catalog of settings sections.

Everything else is reachable through its subpackage (``evstore.core``, ``evstore.storage``,
``evstore.ops``, ``evstore.net``) and may change between releases.
"""

__version__ = "0.1.0"

from evstore.core.catalog import SECTIONS  # noqa: E402
from evstore.core.errors import EvstoreError, InvalidInput, OperationalError  # noqa: E402
from evstore.core.events import Event  # noqa: E402
from evstore.ops.node import Node, init_home, open_node  # noqa: E402

__all__ = [
    "SECTIONS",
    "Event",
    "EvstoreError",
    "InvalidInput",
    "Node",
    "OperationalError",
    "__version__",
    "init_home",
    "open_node",
]
