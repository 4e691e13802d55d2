"""The ``clusterconfig`` group, and the member listing that its commands and menus print.

Below the modules that fill the group: cluster_cmds.py adds the cluster's own operations and
the bare group's menus (cluster_menu.py), node_cmds.py the operations that reach other
machines (``join``, ``disconnect``, ``reconnect``, ``rekey``); the menus run ``join`` and print
the listing as ``clusterconfig list`` does. Each of them imports this module and none needs
the one that imports it, so they form no import cycle.
"""

from __future__ import annotations

from typing import Any

import typer

from evstore_cli import output

clusterconfig = typer.Typer(help="Create and administer the cluster (takes effect at once).",
                            invoke_without_command=True)


def render_list(d: dict[str, Any]) -> None:
    """``clusterconfig list`` and ``listdetail`` as text (the menus' LIST and LISTDETAIL too)."""
    if d["cluster"] is None:
        output.say("this machine is standalone")
        return
    output.say(f"cluster = {d['cluster']}")
    for g in d["groups"]:
        output.say(f"Group {g['name']}:")
        for m in g["machines"]:
            extra = ""
            if "listen" in m:
                extra = (f" listen {m['listen']} ccs {m['ccs'] or '-'} version {m['version']}"
                         f" joined {m['joined']}" + (" DETACHED" if m["detached"] else ""))
            output.say(f"    Machine {m['hostname']} (Serial #: {m['serial']}){extra}")


__all__ = ["clusterconfig", "render_list"]
