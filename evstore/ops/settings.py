"""Reading, staging and committing settings, as the seed's CLI does it.

Staging is per user and invisible to others until ``commit``. Each staged row keeps the
section as it was when first staged (``orig``) and the newest event that had shaped it then
(``base``), so that commit can tell what this user changed from what others committed since:
only the fields this user changed are written (as a ``patch``), concurrent changes to other
fields survive, and a change to the same field by someone else is a conflict that stops the
commit until the user discards or forces.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from evstore.core import admit, catalog, encoding, events, state
from evstore.core.errors import InvalidInput, OperationalError
from evstore.core.modes import CLUSTER, level_of
from evstore.ops.node import Node, now_ms
from evstore.storage import nodetable, notify
from evstore.storage.connect import begin_write, transaction
from evstore.storage.transactions import roll_back

if TYPE_CHECKING:  # commit_plan's five dataclasses cost ~6 ms to define: `show` needs none
    from evstore.core import commit_plan
    from evstore.core.commit_plan import Staged

Value = dict[str, Any]


class Conflict(OperationalError):
    """Staged changes that collide with changes committed by someone else since."""

    def __init__(self, conflicts: list[dict[str, Any]]) -> None:
        names = ", ".join(f"{c['section']}@{c['mode']}" for c in conflicts)
        super().__init__(
            f"nothing committed: {names} changed since you staged it; review with "
            "`evstore changes --diff`, then `commit --discard` to drop yours or `--force`"
        )
        self.conflicts = conflicts


def _dump(v: Any) -> str | None:
    return None if v is None else encoding.encode(v).decode()


def _load(s: str | None) -> Any:
    return None if s is None else encoding.loads_json(s)


# ---------------------------------------------------------------------- reads


def check_allowed(node: Node, section: str, mode: str, *, removal: bool = False) -> None:
    """Refuse a section at a mode its catalog entry does not allow (standalone: anything).
    A section the catalog does not know may only be removed (admit.removable_unknown)."""
    if removal and admit.removable_unknown(section):
        return
    sec = catalog.get(section)
    if not node.in_cluster():
        return
    if level_of(mode) not in sec.levels:
        catalog.check_mode_allowed(section, node.to_display(mode))


def current(node: Node, mode: str, section: str) -> tuple[Value | None, state.Order | None]:
    """The committed value of a section at a mode and the order of the event that shaped it."""
    wins = node.store.winners_of(mode, section)
    value = state.materialize(section, wins)
    ev = state.last_event(wins)
    order = next((w.order for w in wins.values() if w.event == ev), None)
    return value, order


def inherited(node: Node, mode: str, section: str) -> tuple[Value, str]:
    """What ``mode`` inherits for ``section`` from the levels above it: (value, source mode)."""
    st = node.structure()
    level, _, ident = mode.partition(":")
    if level == "machine" and ident in st.machines:
        chain = st.chain(ident)[1:]
    elif level == "group":
        chain = [CLUSTER]
    else:
        chain = []
    levels = catalog.SECTIONS[section].levels if section in catalog.SECTIONS \
        else catalog.ANY_LEVEL
    for m in chain:
        if level_of(m) in levels:
            v = node.store.section_value(m, section)
            if v is not None:
                return v, m
    return state.default_of(section), "default"


def staged_rows(node: Node, user: str) -> list[Staged]:
    out = []
    for mode, section, value, orig, base in nodetable.staged_of(node.conn, user):
        from evstore.core.commit_plan import Staged  # only when there is a row

        b = _load(base)
        out.append(Staged(mode, section, _load(value), _load(orig),
                          (b[0], b[1], b[2]) if b else None))
    return out


def _staged(node: Node, user: str, mode: str, section: str) -> Staged | None:
    for row in staged_rows(node, user):
        if (row.mode, row.section) == (mode, section):
            return row
    return None


def view(node: Node, user: str, mode: str, section: str) -> tuple[Value | None, bool]:
    """The section at a mode as this user sees it (staged changes included): (value, defined)."""
    row = _staged(node, user, mode, section)
    if row is not None:
        return row.value, row.value is not None
    value, _ = current(node, mode, section)
    return value, value is not None


def uninterpretable(node: Node, section: str | None = None) -> list[dict[str, str]]:
    """What the views define that the catalog cannot interpret (a section it does not know,
    a value it refuses: admit.value_reason), {mode, section, reason}: what show, saveconfig
    and loadconfig skip and report (``section``: that section's only)."""
    out = []
    for mode, name in node.store.defined_sections():
        if section is not None and name != section:
            continue
        value = node.store.section_value(mode, name)
        why = admit.value_reason(name, value) if value is not None else None
        if why is not None:
            out.append({"mode": node.to_display(mode), "section": name, "reason": why})
    return out


def live_mode(node: Node, st: state.Structure, mode: str) -> bool:
    """Does ``mode`` exist now? Not a deleted group (a group added again under its name is a
    new group), not a removed machine. Settings of modes gone stay in the log for audit and
    replay, and nowhere else."""
    level, _, ident = mode.partition(":")
    if level == "group":
        return ident in st.groups and ident not in st.deleted
    if level == "machine":
        return ident == node.mid or any(m.mid == ident for m in st.members())
    return st.name is not None or mode != CLUSTER


def defined_at(node: Node, section: str) -> list[str]:
    """The modes (internal) that define a section now (live modes only, as the pages list)."""
    st = node.structure()
    return [m for m, s in node.store.defined_sections()
            if s == section and live_mode(node, st, m)]


def not_affected(node: Node, mode: str, section: str) -> list[str]:
    """Lower modes that override ``section`` and so will not see a change made at ``mode``."""
    st = node.structure()
    level = level_of(mode)
    out = []
    for m in defined_at(node, section):
        lv = level_of(m)
        if m == mode or lv == "cluster":
            continue
        if level == "cluster" or (level == "group" and lv == "machine" and
                                  st.group_of(m.partition(":")[2]) == mode.partition(":")[2]):
            out.append(st.display_mode(m))
    return out


# ---------------------------------------------------------------------- staging


def stage(node: Node, user: str, mode: str, section: str, value: Value | None) -> Value | None:
    """Stage the whole new value of a section at a mode (None: delete, inherit again)."""
    check_allowed(node, section, mode, removal=value is None)
    if value is not None:
        value = catalog.validate(section, value)
    row = _staged(node, user, mode, section)
    if row is not None:
        orig, base = row.orig, row.base
    else:
        orig, base = current(node, mode, section)
    with transaction(node.conn):
        nodetable.stage(node.conn, user, nodetable.StagedRow(
            mode, section, _dump(value), _dump(orig), _dump(list(base)) if base else None,
        ), now_ms())
    return value


@functools.cache
def known_zones() -> frozenset[str]:
    """The time zone names this machine's tz database knows (empty: none to check against)."""
    import zoneinfo  # here: `show` and `get` never need it

    try:
        return frozenset(zoneinfo.available_timezones())
    except (OSError, ValueError):
        return frozenset()


def accept(section: str, value: Any, before: Any = None) -> Value:
    """A value a person entered: known keys only, valid, a known time zone (catalog.accept)."""
    return catalog.accept(section, value, before=before, zones=known_zones())


def stage_input(node: Node, user: str, mode: str, section: str, value: Value) -> Value:
    """Stage a whole value a person typed (``edit``, the web page): keys it adds must be known."""
    check_allowed(node, section, mode)
    before, _ = view(node, user, mode, section)
    out = stage(node, user, mode, section, accept(section, value, before=before))
    assert out is not None
    return out


def stage_set(node: Node, user: str, mode: str, section: str, assignments: list[str]) -> Value:
    """``set SECTION KEY=VALUE…``: at a mode that does not define it yet, start from a copy."""
    check_allowed(node, section, mode)
    value, defined = view(node, user, mode, section)
    start = copy.deepcopy(value) if defined and value is not None else inherited(node, mode, section)[0]
    before = copy.deepcopy(start)
    for a in assignments:
        key, sep, raw = a.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{a!r} is not KEY=VALUE")
        start = catalog.set_path(start, key, raw, section)
    out = stage(node, user, mode, section, accept(section, start, before=before))
    assert out is not None
    return out


def stage_override(node: Node, user: str, mode: str, section: str,
                   copy_from: str | None = None) -> Value:
    """Define settings at this mode: factory defaults, or a copy of another mode's."""
    if copy_from is None:
        value = state.default_of(section)
    else:
        src, defined = view(node, user, copy_from, section)
        if not defined or src is None:
            raise InvalidInput(f"{section} is not defined at {node.to_display(copy_from)}: "
                               "nothing to copy (see `evstore clustershow " + section + "`)")
        value = src
    out = stage(node, user, mode, section, value)
    assert out is not None
    return out


def stage_delete(node: Node, user: str, mode: str, section: str) -> None:
    _, defined = view(node, user, mode, section)
    if not defined:
        catalog.get(section)  # a name the catalog does not know: its error, naming the known
        raise InvalidInput(f"{section} is not defined at {node.to_display(mode)}: nothing to delete")
    stage(node, user, mode, section, None)


def clusterset(node: Node, user: str, mode: str, section: str, *, move: bool,
               to: str) -> list[str]:
    """Copy or move this mode's settings to another mode or to all groups."""
    value, defined = view(node, user, mode, section)
    if not defined or value is None:
        raise InvalidInput(f"{section} is not defined at {node.to_display(mode)}: nothing to "
                           f"{'move' if move else 'copy'}")
    st = node.structure()
    if to == "all-groups":
        targets = [f"group:{g}" for g in sorted(st.groups) if g not in st.deleted]
    else:
        targets = [node.to_internal(to)]
    targets = [t for t in targets if t != mode]
    if not targets:
        raise InvalidInput("the target is the mode the settings are already at")
    for t in targets:
        check_allowed(node, section, t)
    for t in targets:
        stage(node, user, t, section, value)
    if move:
        stage(node, user, mode, section, None)
    return [node.to_display(t) for t in targets]


def clear(node: Node, user: str) -> int:
    with transaction(node.conn):
        count = nodetable.unstage_all(node.conn, user)
    return count


# ---------------------------------------------------------------------- commit


def _conflict_dict(node: Node, c: commit_plan.Conflict) -> dict[str, Any]:
    """A conflict as commands and pages show it (the mode as the user names it)."""
    return {"section": c.section, "mode": node.to_display(c.mode), "fields": c.fields,
            "yours": c.yours, "theirs": c.theirs}


def _now(node: Node, row: Staged) -> commit_plan.Current:
    from evstore.core import commit_plan

    return commit_plan.Current(*current(node, row.mode, row.section))


def plan_commit(node: Node, user: str, *, discard: bool = False,
                force: bool = False) -> tuple[list[dict[str, Any]], list[Staged], list[dict[str, Any]]]:
    """The changes a commit would make, the rows it uses and the conflicts found: the
    staged rows and their sections as they are now, read here, planned by the core
    (evstore/core/commit_plan.py)."""
    from evstore.core import commit_plan

    rows = staged_rows(node, user)
    now = {(r.mode, r.section): _now(node, r) for r in rows}
    plan = commit_plan.plan(rows, now, discard=discard, force=force)
    return ([ch.payload() for ch in plan.changes], plan.used,
            [_conflict_dict(node, c) for c in plan.conflicts])


def describe_changes(node: Node, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for ch in changes:
        d = {"section": ch["section"], "mode": node.to_display(ch["mode"]), "op": ch["op"]}
        if ch["op"] == "patch":
            d["set"] = sorted(ch["set"])
            d["unset"] = ch["unset"]
        out.append(d)
    return out


def commit(node: Node, user: str, comment: str = "", *, discard: bool = False,
           force: bool = False) -> dict[str, Any]:
    """Turn the user's staged changes into one signed, atomic commit event."""
    changes, used, conflicts = plan_commit(node, user, discard=discard, force=force)
    if conflicts and not (discard or force):
        raise Conflict(conflicts)
    if not changes:
        clear(node, user)
        return {"committed": False, "commit": None, "changes": [], "discarded": conflicts}
    keys = [(r.mode, r.section) for r in used]

    def drop_staged() -> None:
        nodetable.unstage(node.conn, user, keys)

    ev = node.log.append(
        node.signing_key, user=user, kind="config.commit",
        payload={"comment": comment, "changes": changes}, now_ms=now_ms(),
        also=drop_staged,
    )  # the log announces it (storage/notify.py)
    return {"committed": True, "commit": ev.id, "changes": describe_changes(node, changes),
            "discarded": conflicts if discard else [], "forced": conflicts if force else [],
            "disabled": node.disabled()}


def _announce(node: Node) -> None:
    """Tell ``evstore run`` (and watchers) on this home that a commit is durable, so it
    leaves for the peers now rather than at the node's next look (storage/notify.py): the
    log does so itself after its own COMMIT, not for an append inside a caller's transaction,
    as ``_commit_one``'s is."""
    if node.conn.in_transaction:
        return  # inside a caller's transaction: not durable yet; the caller's COMMIT is seen
    notify.announce(node.home)


def commit_change(node: Node, user: str, mode: str, section: str, value: Value | None, *,
                  comment: str = "") -> dict[str, Any]:
    """Commit one section's new value at a mode (None: delete it, inherit again) at once:
    read, check and sign in one durable transaction, with no staging row.

    For a caller that is one program (the web pages' save, the library): the CLI's ``set``
    and ``commit`` are two commands and keep staging between them. The write lock is held
    from the read of the current value to the COMMIT, so no other change can slip between
    them and there is never a conflict. This user's staged rows are left alone (a staged
    change of the same fields then shows as a conflict at its own commit, as for anyone's).
    """
    return _commit_one(node, user, mode, section, lambda _cur: value, comment)


def commit_set(node: Node, user: str, mode: str, section: str, assignments: list[str], *,
               comment: str = "") -> dict[str, Any]:
    """``set SECTION KEY=VALUE…`` and ``commit`` as one durable transaction (see
    ``commit_change``); at a mode that does not define the section yet, it starts from what
    the mode inherits."""
    for a in assignments:
        key, sep, _raw = a.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{a!r} is not KEY=VALUE")

    def edit(cur: Value | None) -> Value:
        start = copy.deepcopy(cur) if cur is not None else inherited(node, mode, section)[0]
        for a in assignments:
            key, _, raw = a.partition("=")
            start = catalog.set_path(start, key, raw, section)
        return start

    return _commit_one(node, user, mode, section, edit, comment)


def _commit_one(node: Node, user: str, mode: str, section: str,
                make: Callable[[Value | None], Value | None], comment: str) -> dict[str, Any]:
    from evstore.core import commit_plan

    check_allowed(node, section, mode, removal=admit.removable_unknown(section))
    with transaction(node.conn):
        cur, base = current(node, mode, section)
        value = make(cur)
        if value is not None:
            check_allowed(node, section, mode)  # a section the catalog does not know: refused
        if value is not None:
            value = accept(section, value, before=cur)  # as every value entering
        change = commit_plan.change_of(commit_plan.Staged(mode, section, value, cur, base), cur,
                                       base)
        if change is None:
            return {"committed": False, "commit": None, "changes": [], "discarded": []}
        changes = [change.payload()]
        ev = node.log.append(node.signing_key, user=user, kind="config.commit",
                             payload={"comment": comment, "changes": changes}, now_ms=now_ms())
    _announce(node)
    # no "disabled" report here: it resolves every machine's settings (7% of this call);
    # a caller that shows it asks node.disabled()
    return {"committed": True, "commit": ev.id, "changes": describe_changes(node, changes),
            "discarded": [], "forced": []}


def dry_run(node: Node, user: str) -> dict[str, Any]:
    """Preview a commit: per machine, how its effective settings change, and broken references.

    The would-be event is projected into the real views inside a transaction that is then
    rolled back: the preview runs exactly the code a commit runs, and changes nothing.
    """
    changes, _, conflicts = plan_commit(node, user, force=True)
    st = node.structure()
    members = st.members() if st.name is not None else [st.machines[node.mid]]
    before = {m.mid: node.store.effective_of(m.mid) for m in members}
    machines: list[dict[str, Any]] = []
    broken: list[dict[str, Any]] = []
    begin_write(node.conn)
    try:
        if changes:
            ev = events.create(
                node.signing_key, seq=1, prev=None, clock=node.log.hlc_hwm() + 1, wall=now_ms(),
                user=user, kind="config.commit", payload={"comment": "", "changes": changes},
            )
            state.apply(node.store, [ev])
        for m in members:
            after = node.store.effective_of(m.mid)
            diffs = _effective_diff(node, before[m.mid], after)
            if diffs:
                machines.append({"hostname": m.hostname, "sections": diffs})
            b = {s: v[0] for s, v in before[m.mid].items()}
            a = {s: v[0] for s, v in after.items()}
            for d in catalog.broken_references(b, a):
                broken.append({"hostname": m.hostname, **_as_dict(d)})
    finally:
        roll_back(node.conn)
    return {
        "changes": describe_changes(node, changes),
        "machines": machines,
        "broken_references": broken,
        "conflicts": conflicts,
    }


def _as_dict(d: Any) -> dict[str, Any]:
    if isinstance(d, dict):
        return d
    return {k: getattr(d, k) for k in ("section", "item", "reason") if hasattr(d, k)}


def _effective_diff(node: Node, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section in sorted(set(before) | set(after)):
        b = before.get(section, (None, "default", None))
        a = after.get(section, (None, "default", None))
        if b[0] != a[0] or b[1] != a[1]:
            out[section] = {"before": b[0], "after": a[0],
                            "source_before": node.to_display(b[1]),
                            "source_after": node.to_display(a[1])}
    return out


def changes_list(node: Node, user: str, *, diff: bool = False) -> dict[str, Any]:
    """``evstore changes``: staged rows and what a commit would do with them."""
    out = []
    for row in staged_rows(node, user):
        cur, _ = current(node, row.mode, row.section)
        op = "delete" if row.value is None else ("define" if row.orig is None or cur is None else "patch")
        item: dict[str, Any] = {"section": row.section, "mode": node.to_display(row.mode), "op": op}
        if diff:
            item["committed"] = cur
            item["staged"] = row.value
            from evstore.core import commit_plan

            c = commit_plan.conflict_of(row, _now(node, row))
            item["conflict"] = c is not None
        out.append(item)
    return {"changes": out}
