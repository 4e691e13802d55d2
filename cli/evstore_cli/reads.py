"""What ``evstore show`` prints, computed without typer: the typer command (settings_cmds.py)
and the fast path (fast_reads.py) both call :func:`show`, so they cannot differ."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def show(home: Path | None, who: str, section: str, mode: str | None, effective: bool,
         machine: str | None) -> tuple[dict[str, Any], bool]:
    """The document ``show`` prints, and whether it is the skipped-parts form (a section the
    catalog does not know, defined somewhere)."""
    from evstore.core import admit, catalog
    from evstore.ops import settings as ops
    from evstore.ops import web_support
    from evstore.ops.node import open_node, resolve_home

    if section not in catalog.SECTIONS:
        with open_node(resolve_home(home)) as node:
            parts = ops.uninterpretable(node, section)
        if not parts:
            catalog.get(section)  # the catalog's error, naming the known sections
        return {"section": section, "defined": True, "settings": None, "skipped": parts}, True
    with open_node(resolve_home(home)) as node:
        if effective or machine:
            return effective_of(node, section, machine), False
        internal = node.to_internal(mode) if mode else node.mode_of(who)
        value, defined = ops.view(node, who, internal, section)
        data = {"section": section, "mode": node.to_display(internal), "defined": defined,
                "settings": value}
        if not defined:
            inh, src = ops.inherited(node, internal, section)
            data["inherits_from"] = node.to_display(src)
            data["inherited"] = inh
            data["settings"] = None
        why = admit.value_reason(section, value) if defined else None
        if why is not None:
            data["settings"] = None
            data["skipped"] = why
        here = node.to_display(internal)
        data["also_defined_at"] = [m for m in web_support.defined_modes(node, who, section)
                                   if m != here]
    return data, False


def effective_of(node: Any, section: str, machine: str | None) -> dict[str, Any]:
    """``show --effective``: a machine's effective settings of ``section`` and their source."""
    from evstore.core import admit, catalog
    from evstore.core.errors import InvalidInput

    st = node.structure()
    mid = node.mid if machine is None else st.find_machine(machine)
    if mid is None:
        raise InvalidInput(f"no machine named {machine!r} (see `evstore clusterconfig list`)")
    eff = node.store.effective_of(mid)
    value, source, event = eff.get(section, (None, "default", None))
    everything = {s: v[0] for s, v in eff.items() if admit.value_reason(s, v[0]) is None}
    why = admit.value_reason(section, value) if value is not None else None
    disabled = [d for d in catalog.check_references(everything) if d.section == section]
    out = {
        "section": section, "machine": st.machines[mid].hostname,
        "source": node.to_display(source), "event": event, "settings": value,
        "disabled": [{"item": d.item, "reason": d.reason} for d in disabled],
    }
    if why is not None:
        out["settings"] = None
        out["skipped"] = why
    return out
