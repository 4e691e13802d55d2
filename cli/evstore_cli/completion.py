"""Shell completion of the names an operator types: sections, modes, machine hostnames.

typer's ``--install-completion`` / ``--show-completion`` install a script that calls
``evstore`` back with the words typed so far; these callbacks answer for the options and
arguments that take such names. They are cheap: the catalog is a pure module, and the names of
machines and groups come from one read-only query on the home (``--home``, else
``EVSTORE_HOME``). Completion must never fail loudly: any error gives no candidates.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["machines", "modes", "sections"]


def sections(incomplete: str) -> list[str]:
    """The catalog's section names."""
    try:
        from evstore.core import catalog

        return [n for n in sorted(catalog.SECTIONS) if n.startswith(incomplete)]
    except Exception:  # completion never fails loudly
        return []


def _home(ctx: Any) -> Path | None:
    while ctx is not None:
        home = (getattr(ctx, "params", None) or {}).get("home")
        if home:
            return Path(home)
        ctx = getattr(ctx, "parent", None)
    env = os.environ.get("EVSTORE_HOME")
    return Path(env) if env else None


def _names(ctx: Any) -> tuple[list[str], list[str]]:
    """(hostnames of the machines not removed, group names) of the home, or empty lists."""
    home = _home(ctx)
    if home is None:
        return [], []
    try:
        from evstore.storage import feed

        conn = feed.open_reader(home)
        try:
            with feed.snapshot(conn):
                names = feed.names(conn)
        finally:
            conn.close()
    except Exception:  # no home, an old schema, a locked file: no candidates
        return [], []
    hosts = sorted({str(m["hostname"]) for m in names.machines.values()
                    if m.get("hostname") and not m.get("removed")})
    return hosts, sorted(set(names.groups.values()))


def machines(ctx: Any, incomplete: str) -> list[str]:
    """The hostnames of the home's machines."""
    return [h for h in _names(ctx)[0] if h.startswith(incomplete)]


def modes(ctx: Any, incomplete: str) -> list[str]:
    """``cluster``, ``group:NAME`` and ``machine:HOST`` for the home's groups and machines."""
    hosts, groups = _names(ctx)
    every = ["cluster", *(f"group:{g}" for g in groups), *(f"machine:{h}" for h in hosts)]
    return [m for m in every if m.startswith(incomplete)]
