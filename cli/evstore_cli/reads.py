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


# ---------------------------------------------------------------------- the text forms
# What `status` and `show` print without --json; the typer commands (home_cmds.status,
# settings_cmds.show) and the fast path (fast_reads.py) both print through these.


def render_status(s: dict[str, Any]) -> None:
    from evstore_cli import plain

    rows = [
        ["hostname", s["hostname"]], ["serial", s["serial"]], ["version", s["version"]],
        ["cluster", s["cluster"] or "(standalone)"], ["group", s["group"] or "-"],
        ["mode", s["mode"]], ["events", s["events"]], ["fingerprint", s["fingerprint"]],
        ["state digest", s["state_digest"]], ["pending / held / forks",
                                              f"{s['pending']} / {s['held']} / {s['forks']}"],
    ]
    plain.table(None, ["", ""], rows)
    if s["peers"]:
        plain.table("peers", ["hostname", "address", "state", "last seen", "clock offset ms"],
                    [[p["hostname"], p["address"], p["state"], p["last_seen"],
                      p["clock_offset_ms"]] for p in s["peers"]])
    for d in s.get("disabled", []):
        plain.line(f"disabled on {d['hostname']}: {d['section']} {d['item']}: {d['reason']}")
    for a in s["alerts"]:
        plain.line(f"alert {a['at']} {a['kind']}: {a['detail']}")


def render_skipped(d: dict[str, Any]) -> None:
    """``show`` of a section the catalog does not know, defined somewhere."""
    from evstore_cli.plain import line

    for s in d["skipped"]:
        line(f"{s['section']} defined at {s['mode']}: skipped, {s['reason']} "
             "(`evstore delete SECTION` removes it)")


def render_show(d: dict[str, Any]) -> None:
    from evstore_cli.plain import line

    if d.get("skipped"):
        where = d["machine"] if "machine" in d else d["mode"]
        line(f"{d['section']} at {where}: skipped, the catalog cannot interpret it: "
             f"{d['skipped']}")
        return
    if "machine" in d:
        line(f"{d['section']} on {d['machine']} (from {d['source']})")
        line(_pretty(d["settings"]))
        for x in d["disabled"]:
            line(f"disabled: {x['item']}: {x['reason']}")
        return
    if d["defined"]:
        line(f"{d['section']} defined at {d['mode']}:")
        line(_pretty(d["settings"]))
    else:
        line(f"{d['section']} is not defined at {d['mode']}; inheriting from "
             f"{d['inherits_from']}:")
        line(_pretty(d["inherited"]))
    if d["also_defined_at"]:
        line("also defined at: " + ", ".join(d["also_defined_at"]))


def _pretty(v: Any) -> str:
    import json

    return json.dumps(v, indent=2, ensure_ascii=False)
