"""evstore: a peer-to-peer, event-sourced configuration store for fleets of machines.

The public surface, for programs that embed the store (the CLI and the web pages use the same):

* ``init_home`` / ``open_node`` / ``Node``: a node's home folder, its log and views;
* ``Event``: one signed event; ``EvstoreError``, ``InvalidInput``, ``OperationalError``;
* ``SECTIONS``: the catalog of settings sections;
* ``open_config`` / ``Config`` / ``Change``: a machine's effective settings, read and
  followed, for the programs that consume them (docs/api.md).

Everything else is reachable through its subpackage (``evstore.core``, ``evstore.storage``,
``evstore.ops``, ``evstore.net``) and may change between releases.

The names are loaded on first use (PEP 562), so that ``import evstore.core.x`` costs only
what it uses: a command-line call imports only what its command needs. To export a name, add
one line to ``_EXPORTS`` (name -> module that defines it).
"""

from __future__ import annotations

import importlib

from evstore._version import __version__

TYPE_CHECKING = False  # not typing's: a program reading one setting should not import typing

_EXPORTS = {
    "SECTIONS": "evstore.core.catalog",
    "EvstoreError": "evstore.core.errors",
    "InvalidInput": "evstore.core.errors",
    "OperationalError": "evstore.core.errors",
    "Event": "evstore.core.events",
    "Node": "evstore.ops.node",
    "init_home": "evstore.ops.node",
    "open_node": "evstore.ops.node",
    "open_config": "evstore.consume",
    "Config": "evstore.consume",
    "Change": "evstore.consume",
}

__all__ = [
    "SECTIONS",
    "Change",
    "Config",
    "Event",
    "EvstoreError",
    "InvalidInput",
    "Node",
    "OperationalError",
    "__version__",
    "init_home",
    "open_config",
    "open_node",
]

if TYPE_CHECKING:  # for type checkers and editors: the same names, imported eagerly
    from typing import Any

    from evstore.consume import Change, Config, open_config
    from evstore.core.catalog import SECTIONS
    from evstore.core.errors import EvstoreError, InvalidInput, OperationalError
    from evstore.core.events import Event
    from evstore.ops.node import Node, init_home, open_node


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'evstore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
