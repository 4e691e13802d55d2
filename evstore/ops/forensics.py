"""Audit and forensics: who changed what (audit), where each value comes from (blame), what
changed between two times (diff), the configuration at any point of a log copy (replay), the
integrity of a log (verify, in evstore/ops/verify.py), and undoing by staging (revert and
rollback), which are then reviewed and committed like any change.

Everything here reads the signed log; nothing rewrites it. Times are the wall-time part of
each event's clock (the clock is what orders events, so "at T" and "before E" agree with the
order the merge uses), shown in ISO 8601 UTC.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evstore.core import catalog, clock, state
from evstore.core.errors import InvalidInput, OperationalError
from evstore.core.events import Event
from evstore.core.modes import CLUSTER
from evstore.core.state import SETTINGS_KINDS, Write
from evstore.core.timeparse import format_iso, parse_time
from evstore.ops import history
from evstore.ops import settings as settings_ops
from evstore.ops import users as users_ops
from evstore.ops.history import Progress, Snapshot
from evstore.ops.node import Node, now_ms
from evstore.ops.verify import verify_conn, verify_db, verify_node
from evstore.storage import audit as audit_index
from evstore.storage.connect import transaction
from evstore.storage.log import EventLog

Value = dict[str, Any]
_GUARDED = {"users": "users", "prepjoin": "cluster"}  # section -> what the role must allow

__all__ = [
    "audit", "blame", "diff", "replay", "revert", "rollback", "stage_targets", "verify_conn",
    "verify_db", "verify_node",
]


def _iso(clk: int) -> str:
    return format_iso(clock.wall_ms_of(clk))


# --------------------------------------------------------------------------- audit


def audit(
    node: Node,
    since: str | int | None = None,
    until: str | int | None = None,
    user: str | None = None,
    section: str | None = None,
    mode: str | None = None,
    origin: str | None = None,
    kind: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Changes in the log, oldest first: one row per change of a commit, one per other event."""
    return audit_index.run(
        node.conn, now_ms(), since=since, until=until, user=user, section=section, mode=mode,
        origin=origin, kind=kind, limit=limit,
    )


# --------------------------------------------------------------------------- blame


def _machine(st: state.Structure, name: str | None, default: str) -> str:
    if name is None:
        return default
    mid = st.find_machine(name)
    if mid is None or mid not in {m.mid for m in st.members()}:
        known = ", ".join(m.hostname for m in st.members())
        raise InvalidInput(f"no machine named {name!r} (machines: {known or 'none'})")
    return mid


def _blame_row(key: str, value: Any, w: Write | None, source: str) -> dict[str, Any]:
    return {
        "key": key, "value": value, "source": source,
        "event": w.event if w else None, "user": w.user if w else None,
        "time": _iso(w.order[0]) if w else None,
    }


def _writer(wins: dict[str, Write], fld: str) -> Write | None:
    """The write a value of this field comes from: its own register, else the define."""
    reset = wins.get(state.RESET)
    floor = reset.order if reset is not None else (0, "", "")
    w = wins.get(fld)
    if w is not None and w.present and w.order >= floor:
        return w
    return reset or wins.get(state.DEFINED)


def _blame_rows(section: str, value: Value, wins: dict[str, Write], source: str) -> list[dict[str, Any]]:
    items = catalog.item_fields(section)
    rows = []
    for key in sorted(value):
        entries = value[key]
        if key in items and isinstance(entries, list) and entries:
            for entry in entries:
                name = entry.get("name") if isinstance(entry, dict) else None
                rows.append(_blame_row(f"{key}[{name}]", entry, _writer(wins, f"{key}/{name}"),
                                       source))
        else:
            rows.append(_blame_row(key, entries, _writer(wins, key), source))
    return rows


def blame(node: Node, section: str, machine: str | None = None) -> dict[str, Any]:
    """For each top-level key and named entry of a machine's effective section: its source."""
    catalog.get(section)
    st = node.structure()
    mid = _machine(st, machine, node.mid)
    value, source, event = state.resolve(node.store, st, mid, section)
    if source == "default":
        values = [_blame_row(k, value[k], None, "default") for k in sorted(value)]
    else:
        wins = node.store.winners_of(source, section)
        values = _blame_rows(section, value, wins, st.display_mode(source))
    return {"section": section, "machine": st.machines[mid].hostname,
            "source": st.display_mode(source), "event": event, "values": values}


# --------------------------------------------------------------------------- diff


def _effective_changes(before: dict[str, Any], after: dict[str, Any],
                       a: Snapshot, b: Snapshot) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section in sorted(set(before) | set(after)):
        bv, bs, _ = before.get(section, (None, "default", None))
        av, as_, _ = after.get(section, (None, "default", None))
        if bv != av or bs != as_:
            out[section] = {"before": bv, "after": av,
                            "source_before": a.structure.display_mode(bs),
                            "source_after": b.structure.display_mode(as_)}
    return out


def _hostname(mid: str, *snaps: Snapshot) -> str:
    for snap in snaps:
        m = snap.structure.machines.get(mid)
        if m is not None and m.hostname:
            return m.hostname
    return mid


def _diff_machines(node: Node, machine: str | None, a: Snapshot, b: Snapshot) -> list[str]:
    if machine is None:
        return sorted(a.members() | b.members(), key=lambda mid: _hostname(mid, b, a))
    for st in (node.structure(), b.structure, a.structure):
        mid = st.find_machine(machine)
        if mid is not None:
            return [mid]
    raise InvalidInput(f"no machine named {machine!r} in this log (see `evstore clusterconfig list`)")


def diff(node: Node, from_t: str, to_t: str | None = None,
         machine: str | None = None) -> dict[str, Any]:
    """How each machine's effective settings changed between two times."""
    now = now_ms()
    lo = parse_time(from_t, now)
    hi = parse_time(to_t, now) if to_t else now
    if lo > hi:
        raise InvalidInput("--from is after --to: swap them")
    a = history.node_snapshot(node, history.until(lo))
    b = history.node_snapshot(node, history.until(hi))
    machines = []
    for mid in _diff_machines(node, machine, a, b):
        before = a.effective(mid) if mid in a.members() else {}
        after = b.effective(mid) if mid in b.members() else {}
        machines.append({"hostname": _hostname(mid, b, a),
                         "changes": _effective_changes(before, after, a, b)})
    return {"from": format_iso(lo), "to": format_iso(hi), "machines": machines}


# --------------------------------------------------------------------------- replay


def _replay_bound(log: EventLog, until_t: str | None, at: str | None) -> tuple[history.Bound, str | None, str | None]:
    if until_t is not None and at is not None:
        raise InvalidInput("give --until or --at, not both")
    if at is not None:
        ev = history.find_event(log, at)
        return history.at_event(ev), _iso(ev.clock), ev.id
    if until_t is not None:
        t = parse_time(until_t, now_ms())
        return history.until(t), format_iso(t), None
    return history.EVERYTHING, None, None


def _check_verified(conn: sqlite3.Connection, progress: Progress | None) -> dict[str, Any]:
    report = verify_conn(conn, progress)
    if not report["ok"]:
        first = report["problems"][0]
        raise OperationalError(
            f"the log does not verify ({len(report['problems'])} problem(s), first: "
            f"{first['kind']} at {first['origin']} seq {first['seq']}: {first['detail']}); "
            "run `evstore verify DBFILE` for the list, or replay without --verify"
        )
    return report


def replay(
    db_file: str | Path,
    until_t: str | None = None,
    at: str | None = None,
    machine: str | None = None,
    verify: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Rebuild the configuration from a copy of any node's database, offline, as of a point.

    The file (and its -wal) is read into memory and never modified; ``verify`` first checks
    every signature, id, column and chain and refuses a log that does not verify.
    """
    conn = history.open_copy(Path(db_file))
    try:
        log = EventLog(conn)
        if verify:
            _check_verified(conn, progress)
        bound, as_of, event = _replay_bound(log, until_t, at)
        snap = history.snapshot(log, history.owner_keys(conn), bound, progress)
        return _replay_doc(snap, as_of, event, machine, verify)
    finally:
        conn.close()


def _replay_doc(snap: Snapshot, as_of: str | None, event: str | None, machine: str | None,
                verified: bool) -> dict[str, Any]:
    if as_of is None and snap.newest is not None:
        as_of = _iso(snap.newest.clock)
    doc: dict[str, Any] = {
        "as_of": as_of, "at": event, "cluster": snap.structure.name, "groups": snap.groups(),
        "settings": snap.settings(), "events": snap.events, "state_digest": snap.digest(),
        "verified": verified,
    }
    if machine is not None:
        mid = _machine(snap.structure, machine, "")
        doc["machine"] = snap.structure.machines[mid].hostname
        doc["effective"] = {s: v for s, (v, _, _) in snap.effective(mid).items()}
    return doc


# --------------------------------------------------------------------------- staging helpers


def _live_now(node: Node, mode: str) -> bool:
    st = node.structure()
    level, _, ident = mode.partition(":")
    if level == "group":
        return ident in st.groups and ident not in st.deleted
    if level == "machine":
        return ident in {m.mid for m in st.members()} or (st.name is None and ident == node.mid)
    return mode == CLUSTER and st.name is not None


def _op(current: Value | None, target: Value | None) -> str:
    if target is None:
        return "delete"
    return "define" if current is None else "change"


Target = tuple[str, str, Value | None]


def stage_targets(node: Node, user: str, targets: Iterable[Target]) -> list[dict[str, Any]]:
    """Stage each (mode, section, value) that differs from what the user sees, atomically.

    Users and join entries are staged only for a user whose role may change them.
    """
    changed = []
    for mode, section, target in targets:
        current, _ = settings_ops.view(node, user, mode, section)
        if current != target:
            changed.append((mode, section, current, target))
    for section in sorted({c[1] for c in changed} & set(_GUARDED)):
        users_ops.require(node, user, _GUARDED[section])
    with transaction(node.conn):
        for mode, section, _, target in changed:
            settings_ops.stage(node, user, mode, section, target)
    return [{"section": section, "mode": node.to_display(mode), "op": _op(current, target)}
            for mode, section, current, target in changed]


def _skip(node: Node, mode: str, section: str, reason: str) -> dict[str, Any]:
    return {"section": section, "mode": node.to_display(mode), "reason": reason}


# --------------------------------------------------------------------------- revert


def _from_fields(section: str, fields: dict[str, Any]) -> Value:
    items = catalog.item_fields(section)
    out: Value = {key: [] for key in items}
    for fld, v in fields.items():
        key, sep, _ = fld.partition("/")
        if sep and key in items:
            out[key].append(v)
        else:
            out[fld] = v
    for key in items:
        out[key] = sorted(out[key], key=lambda it: str(it.get("name", "")))
    return out


def _unpatched(section: str, current: Value, before: Value | None, fields: Iterable[str]) -> Value:
    """``current`` with the given fields put back as they were in ``before``."""
    now_f = state.fields_of(section, current)
    old_f = state.fields_of(section, before if before is not None else state.default_of(section))
    for fld in fields:
        if fld in old_f:
            now_f[fld] = old_f[fld]
        else:
            now_f.pop(fld, None)
    return _from_fields(section, now_f)


def _inverse(node: Node, user: str, ch: dict[str, Any], before: Value | None) -> Value | None | str:
    """The value that undoes one change, or a reason it cannot be undone."""
    mode, section = ch["mode"], ch["section"]
    if ch.get("op") != "patch":
        return before
    current, defined = settings_ops.view(node, user, mode, section)
    if not defined or current is None:
        return "deleted since that commit: nothing to revert"
    fields = [*ch.get("set", {}), *ch.get("unset", [])]
    return _unpatched(section, current, before, fields)


def _commit_event(node: Node, ref: str) -> Event:
    ev = history.find_event(node.log, ref)
    if ev.kind not in SETTINGS_KINDS:
        raise InvalidInput(f"event {ev.id[:12]} is a {ev.kind}, not a commit of settings; "
                           "cluster operations are undone with `evstore clusterconfig`")
    return ev


def revert(node: Node, user: str, commit_ref: str) -> dict[str, Any]:
    """Stage the inverse of one past commit: what it changed goes back to what it was.

    A define or delete puts the whole section back as it was just before the commit; a patch
    puts back only the keys and entries it changed, so later changes to others stay.
    """
    ev = _commit_event(node, commit_ref)
    before = history.node_snapshot(node, history.before_event(ev))
    targets: list[Target] = []
    skipped = []
    for ch in ev.payload.get("changes", []):
        mode, section = ch["mode"], ch["section"]
        if section not in catalog.SECTIONS or not _live_now(node, mode):
            skipped.append(_skip(node, mode, section, "that mode or section no longer exists"))
            continue
        target = _inverse(node, user, ch, before.value(mode, section))
        if isinstance(target, str):
            skipped.append(_skip(node, mode, section, target))
        else:
            targets.append((mode, section, target))
    staged = stage_targets(node, user, targets)
    return {"commit": ev.id, "time": _iso(ev.clock), "user": ev.user, "staged": staged,
            "skipped": skipped}


# --------------------------------------------------------------------------- rollback


def _check_in_scope(node: Node, t: int) -> None:
    anchor = history.node_anchor(node)
    if anchor is not None and clock.wall_ms_of(anchor.clock) > t:
        what = "this cluster was created or joined" if node.in_cluster() else "this machine's history starts"
        raise InvalidInput(f"{format_iso(t)} is before {what} ({_iso(anchor.clock)}): roll back "
                           "to a time after it (see `evstore audit`)")


# what rollback leaves as it is unless asked: (why, the flag that includes it)
_USERS_SECTIONS = frozenset({"users", "ssh"})
_MEMBERSHIP_SECTIONS = frozenset({"prepjoin"})


def _left_alone(sec: catalog.Section, mode: str, then: Snapshot, *, machine: bool,
                users: bool) -> str | None:
    """Why rollback leaves (mode, section) as it is, or None to roll it back."""
    if sec.name in _MEMBERSHIP_SECTIONS:
        return "join entries belong to membership, which rollback never changes"
    if sec.name in _USERS_SECTIONS and not users:
        return "users are kept (pass --include-users to roll them back too)"
    if not sec.clusterable and not machine:
        return ("a machine's own settings are kept (pass --include-machine-settings to roll "
                "them back too)")
    if mode.startswith("machine:") and not then.live(mode):
        return "that machine was not a member then: its settings are kept"
    return None


def _removed(section: str, current: Value | None, target: Value | None) -> list[str]:
    """The keys and named entries a change takes away (what makes it destructive)."""
    if current is None:
        return []
    now = state.fields_of(section, current)
    after = state.fields_of(section, target) if target is not None else {}
    return sorted(k for k in now if k not in after)


def rollback(node: Node, user: str, to_t: str, *, include_machine_settings: bool = False,
             include_users: bool = False) -> dict[str, Any]:
    """Stage whatever brings the cluster's shared settings back to how they were at ``to_t``.

    Membership is never touched; users and each machine's own (machine-only) settings stay as
    they are unless included, and a machine that joined after ``to_t`` keeps its settings.
    The staged list puts anything destructive (a deletion, a key or entry taken away) first.
    """
    t = parse_time(to_t, now_ms())
    _check_in_scope(node, t)
    then = history.node_snapshot(node, history.until(t))
    pairs = set(node.store.defined_sections()) | set(then.store.defined_sections())
    pairs |= {(r.mode, r.section) for r in settings_ops.staged_rows(node, user)}
    targets: list[Target] = []
    skipped: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    removes: dict[tuple[str, str], list[str]] = {}
    for mode, section in sorted(pairs):
        if section not in catalog.SECTIONS:
            continue
        if not _live_now(node, mode):
            if then.value(mode, section) is not None and then.live(mode):
                skipped.append(_skip(node, mode, section, "that mode no longer exists"))
            continue
        target = then.value(mode, section)
        current, _ = settings_ops.view(node, user, mode, section)
        if current == target:
            continue
        why = _left_alone(catalog.SECTIONS[section], mode, then,
                          machine=include_machine_settings, users=include_users)
        if why is not None:
            kept.append(_skip(node, mode, section, why))
            continue
        removes[(node.to_display(mode), section)] = _removed(section, current, target)
        targets.append((mode, section, target))
    staged = stage_targets(node, user, targets)
    for s in staged:
        s["removes"] = removes.get((s["mode"], s["section"]), [])
        s["destructive"] = s["op"] == "delete" or bool(s["removes"])
    staged.sort(key=lambda s: not s["destructive"])
    return {"to": format_iso(t), "staged": staged, "skipped": skipped, "kept": kept}
