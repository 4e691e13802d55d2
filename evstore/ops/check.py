"""clustercheck: compare machines at the same point of the log, list superseded changes,
resolve or ignore them.

Comparing each machine's "now" would report changes still in flight as inconsistencies
(PITFALLS 6). Each machine instead reports its version vector; the check agrees on the point
every reachable machine holds (the component-wise minimum) and asks each for per-section
digests of its state *at that point*, so 50 machines send digests, not configurations.
Machines that lack events others hold, hold events back, hold forks of a key still writing
(``open_forks``), or exclude events are reported too. Superseded concurrent changes are
listed with both versions; ``resolve`` forces one version cluster-wide and ``ignore`` records
that a conflict was reviewed, each as a signed event, so no machine reports that conflict
again.
"""

from __future__ import annotations

import hashlib
from typing import Any

from evstore.core import catalog, encoding, state
from evstore.core.errors import InvalidInput
from evstore.ops.node import Node, iso
from evstore.ops.scope import in_scope_events

VV = dict[str, int]


def _hash(value: Any) -> str:
    return hashlib.sha256(encoding.encode(value)).hexdigest()[:32]


def digests_at(node: Node, vv: VV | None = None) -> dict[str, Any]:
    """This machine's report: its vector, and per-section digests of its state at ``vv``."""
    mine = node.log.version_vector()
    point = mine if vv is None else vv
    evs = [e for e in in_scope_events(node) if e.seq <= point.get(e.origin, 0)]
    store = state.MemoryStore()
    state.apply(store, evs)
    st = state.structure_from(store.structure_winners())
    digests = {f"{st.display_mode(m)}|{s}": _hash(store.section_value(m, s))
               for m, s in store.defined_sections()}
    structure = {"cluster": st.name, "groups": sorted(
        [st.groups[g], sorted(m.hostname for m in st.members() if st.group_of(m.mid) == g)]
        for g in st.groups if g not in st.deleted)}
    digests["@structure"] = _hash(structure)
    lacking = {o: s for o, s in point.items() if mine.get(o, 0) < s}
    return {
        "hostname": node.identity().hostname, "vv": mine, "digests": digests,
        "lacking": lacking, "held": len(node.log.held()), "forks": open_forks(node),
        "pending": node.log.pending_count(), "invalid": len(store.invalid()),
    }


def open_forks(node: Node) -> int:
    """Forks still to be dealt with: those of a key that is still a writer. Once a rekey has
    replaced the forked key (or its machine was removed), a cutoff retires it everywhere and
    its changes were issued again: the evidence stays in the log, for ``status`` and
    ``verify``, but it no longer makes the cluster inconsistent."""
    retired = node.store.cutoffs()
    return sum(1 for f in node.log.forks() if f.origin not in retired)


def common_point(vvs: list[VV]) -> VV:
    """The point of the log every reporting machine holds: the component-wise minimum."""
    if not vvs:
        return {}
    origins = set().union(*vvs)
    return {o: min(v.get(o, 0) for v in vvs) for o in sorted(origins)}


def compare(reports: list[dict[str, Any]], unreachable: list[str]) -> list[dict[str, Any]]:
    """Inconsistencies between reports taken at the same point."""
    out: list[dict[str, Any]] = []
    top: VV = {}
    for r in reports:
        for o, s in r["vv"].items():
            top[o] = max(top.get(o, 0), s)
    for r in reports:
        behind = {o: s for o, s in top.items() if r["vv"].get(o, 0) < s}
        if behind:
            out.append({"hostname": r["hostname"], "kind": "lacks_events",
                        "detail": f"lacks {sum(s - r['vv'].get(o, 0) for o, s in behind.items())}"
                                  " events other machines hold (still in flight, or cut off)"})
        for kind in ("held", "forks", "pending"):
            if r.get(kind):
                out.append({"hostname": r["hostname"], "kind": kind,
                            "detail": f"{r[kind]} {kind} event(s)"})
        if r.get("invalid"):
            out.append({"hostname": r["hostname"], "kind": "invalid",
                        "detail": f"{r['invalid']} inadmissible event(s), kept in the log and "
                                  "applied nowhere (`evstore verify` names them)"})
    keys = sorted(set().union(*(r["digests"] for r in reports))) if reports else []
    for key in keys:
        seen = {r["hostname"]: r["digests"].get(key) for r in reports}
        if len(set(seen.values())) > 1:
            mode, _, section = key.partition("|")
            out.append({"kind": "differs", "section": section or key, "mode": mode,
                        "machines": sorted(seen), "detail": "settings differ at the same point"})
    for host in unreachable:
        out.append({"hostname": host, "kind": "unreachable", "detail": "did not answer"})
    return out


# ---------------------------------------------------------------------- superseded


def _side(node: Node, st: state.Structure, w: state.Write) -> dict[str, Any]:
    host = next((m.hostname for m in st.machines.values() if w.origin in (m.key, m.mid)),
                w.origin[:16])
    return {"value": w.value if w.present else None, "present": w.present, "user": w.user,
            "time": iso(w.wall), "machine": host, "event": w.event}


def superseded(node: Node) -> list[dict[str, Any]]:
    """Concurrent changes that lost, with both versions, not yet resolved or ignored."""
    st = node.structure()
    ignored = node.store.ignored()
    out = []
    for (scope, section, fld), loser, winner in node.store.superseded_rows():
        if f"{loser.event}>{winner.event}" in ignored:
            continue
        out.append({
            "section": section, "mode": st.display_mode(scope), "field": fld,
            "winner": _side(node, st, winner), "loser": _side(node, st, loser),
        })
    return out


def _parse_target(text: str) -> tuple[str, str, str | None]:
    """``SECTION@MODE=HOST`` or ``SECTION@MODE``."""
    left, _, host = text.partition("=")
    section, at, mode = left.partition("@")
    if not at or not section or not mode:
        raise InvalidInput(f"{text!r}: write SECTION@MODE=HOST (resolve) or SECTION@MODE (ignore)")
    catalog.get(section)
    return section, mode, host or None


def resolve(node: Node, user: str, target: str) -> dict[str, Any]:
    """Force HOST's version of SECTION at MODE cluster-wide, as a signed event."""
    section, mode, host = _parse_target(target)
    if host is None:
        raise InvalidInput("--resolve needs SECTION@MODE=HOST: the machine whose version wins")
    internal = node.to_internal(mode)
    rows = [r for r in superseded(node) if r["section"] == section and r["mode"] ==
            node.to_display(internal)]
    from evstore.ops.settings import current

    value, base = current(node, internal, section)
    value = dict(value or state.default_of(section))
    chosen = [r for r in rows if r["loser"]["machine"] == host]
    if not rows:
        raise InvalidInput(f"no superseded change of {section} at {mode} to resolve")
    for r in chosen:
        _put_field(value, section, r["field"], r["loser"])
    ev = node.append(user, "clustercheck.resolve", {"comment": f"clustercheck: {host} wins",
                     "changes": [{"mode": internal, "section": section, "op": "define",
                                  "value": catalog.validate(section, value),
                                  "base": list(base) if base else None}]})
    return {"resolved": f"{section}@{mode}", "winner": host, "event": ev.id}


def _put_field(value: dict[str, Any], section: str, fld: str, side: dict[str, Any]) -> None:
    if fld.startswith("@"):
        return
    key, sep, name = fld.partition("/")
    if sep and key in catalog.item_fields(section):
        items = [i for i in value.get(key, []) if i.get("name") != name]
        if side["present"]:
            items.append(side["value"])
        value[key] = sorted(items, key=lambda i: str(i.get("name")))
    elif side["present"]:
        value[fld] = side["value"]
    else:
        value.pop(fld, None)


def ignore(node: Node, user: str, target: str) -> dict[str, Any]:
    """Record that the superseded changes of SECTION at MODE were reviewed."""
    section, mode, _ = _parse_target(target)
    shown = node.to_display(node.to_internal(mode))
    rows = [r for r in superseded(node) if r["section"] == section and r["mode"] == shown]
    if not rows:
        raise InvalidInput(f"no superseded change of {section} at {mode} to ignore")
    records = [{"loser": r["loser"]["event"], "winner": r["winner"]["event"]} for r in rows]
    ev = node.append(user, "clustercheck.ignore", {"records": records})
    return {"ignored": f"{section}@{mode}", "count": len(records), "event": ev.id}


def local_check(node: Node) -> dict[str, Any]:
    """clustercheck with only this machine's own report (the network adds the others')."""
    report = digests_at(node)
    return summarize([report], [])


def summarize(reports: list[dict[str, Any]], unreachable: list[str]) -> dict[str, Any]:
    inconsistencies = compare(reports, unreachable)
    return {
        "consistent": not inconsistencies,
        "checked": sorted(r["hostname"] for r in reports),
        "point": common_point([r["vv"] for r in reports]),
        "inconsistencies": inconsistencies,
    }
