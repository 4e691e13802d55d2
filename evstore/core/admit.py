"""Admissibility: may an event change the configuration? A pure rule, the same on every node.

A valid signature proves which machine sent an event, not that the event means anything. A
member (hostile, buggy or older) can sign an event of a kind nobody knows, a change to a
section the catalog does not have, a value the catalog refuses, or a change in the name of a
user who does not exist or whose role does not allow it. Such an event is *inadmissible*: it
stays in the log (it is signed and chained, and dropping it would break the chain and fork
detection) but writes no register, on any node.

The rule
--------
``static_reason(event)`` looks at the event alone: a known kind, a payload of the shape its
kind needs, a section of the catalog (or the removal of one it does not know: see
``removable_unknown``), every settings value valid for its catalog section (keys the catalog does not
name are kept, as ``catalog.validate`` keeps them: events already signed keep their meaning).

``reason(event, users)`` adds the acting user: ``users`` is the user database *before* the
event, i.e. folded from the admissible events that come before it in the one total order
(``Event.order_key``), never from when or in what order a node received anything. The user
named by the event must exist there, and its role must allow every change:

* ``admin``: anything;
* ``operator``: settings, not the users (``users``) nor the cluster's structure and join
  entries (``prepjoin``, groups, machines, the cluster name, clustercheck);
* ``guest``: nothing but its own passphrase (a change of the ``users`` section whose only
  effect is the passphrase hash of its own entry);
* ``readonly``: nothing.

The machine's own life-cycle events (``node.init``, ``cluster.create``, ``cluster.admit``,
``cluster.join``, ``machine.announce``, ``node.standalone``, ``node.rekey``) are checked for
shape and catalog validity but not for a role: membership (``state.may_write``) governs them.
``machine.detach`` needs an existing user of any role (it changes no setting).

Where the user database is: the ``users`` section at ``cluster`` when it is defined there at
that point, else the first machine scope (in sorted order) that defines the user.

``Authority`` computes the user database at every point of the order from the events that
write a ``users`` section (few: people and passphrases change rarely), judging each of them
with the same rule in order. An event's verdict therefore depends only on the set of events
ordered before it, so every node holding the same events gives the same verdicts, whatever
order they arrived in; a store re-judges the events after an authority event that arrives
late (evstore/core/state/fold.py).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping
from typing import Any

from evstore.core import catalog
from evstore.core.errors import InvalidInput
from evstore.core.events import Event
from evstore.core.materialize import fields_of, materialize
from evstore.core.registers import excluded
from evstore.core.writes import _base, raw_writes, writes_of

USERS = "users"
CLUSTER = "cluster"

SETTINGS_KINDS = frozenset({"config.commit", "clustercheck.resolve", "config.load"})
LIFECYCLE_KINDS = frozenset({"node.init", "node.standalone", "cluster.create", "cluster.admit",
                             "cluster.join", "machine.announce", "node.rekey"})
STRUCTURE_KINDS = frozenset({"cluster.setname", "group.add", "group.rename", "group.delete",
                             "machine.setgroup", "machine.remove", "clustercheck.ignore"})
ANY_USER_KINDS = frozenset({"machine.detach"})
KINDS = SETTINGS_KINDS | LIFECYCLE_KINDS | STRUCTURE_KINDS | ANY_USER_KINDS

# What each role may do: the one table (evstore/ops/users.py refuses with it before staging).
CAN: dict[str, frozenset[str]] = {
    "admin": frozenset({"settings", "users", "cluster", "own_passphrase"}),
    "operator": frozenset({"settings", "own_passphrase"}),
    "readonly": frozenset(),
    "guest": frozenset({"own_passphrase"}),
}
GUARDED = {"users": "users", "prepjoin": "cluster"}
_SECTION_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")  # what a section's name looks like  # section -> what a change of it needs

UsersState = Mapping[str, Mapping[str, Any]]
"""Scope -> the ``users`` section's value defined there (scopes that do not define it absent)."""


class Inadmissible(Exception):
    """Why an event is inadmissible (internal: ``reason`` returns the text)."""


# --------------------------------------------------------------------------- event alone


def _mode_ok(mode: Any) -> bool:
    if mode == CLUSTER:
        return True
    if not isinstance(mode, str):
        return False
    level, sep, ident = mode.partition(":")
    return bool(sep) and level in ("group", "machine") and bool(ident)


def value_reason(section: Any, value: Any) -> str | None:
    """Why a section's value cannot be interpreted (a section the catalog does not know, a
    value it refuses), or None. What the views hold passed this when its event was admitted;
    an older home's views (or a hand-edited row) may not, and what shows or saves the views
    skips such a part with this reason instead of failing (evstore/ops/xmlconfig.py, show)."""
    if not isinstance(section, str) or section not in catalog.SECTIONS:
        return f"unknown section {section!r}"
    try:
        catalog.validate(section, value)
    except InvalidInput as e:
        return str(e)
    return None


def _section_value(section: Any, value: Any, where: str) -> None:
    why = value_reason(section, value)
    if why is not None:
        raise Inadmissible(f"{where}: {why}")


def removable_unknown(section: Any) -> bool:
    """May ``section``, which the catalog does not know, be removed? Yes when it is a plain
    section name: a removal writes no value, so it needs no catalog to mean something, and it
    is the only way out for a section an older home or a newer member left defined. The one
    rule for it: ``delete`` stages such a removal (evstore/ops/settings.py) and every node
    admits it (``section_op_reason``)."""
    return isinstance(section, str) and section not in catalog.SECTIONS \
        and _SECTION_NAME.fullmatch(section) is not None


def section_op_reason(section: Any, op: Any) -> str | None:
    """Why a change ``op`` of ``section`` is inadmissible for its section alone, or None: a
    section of the catalog, or the removal of a section it does not know."""
    if isinstance(section, str) and section in catalog.SECTIONS:
        return None
    if op == "delete" and removable_unknown(section):
        return None
    return f"unknown section {section!r}"


def _settings_map(value: Any, where: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise Inadmissible(f"{where}: expected an object of sections")
    for section, v in sorted(value.items()):
        _section_value(section, v, where)


def _patch_field(section: str, fld: Any, value: Any, where: str) -> None:
    if not isinstance(fld, str) or not fld or fld.startswith("@"):
        raise Inadmissible(f"{where}: field {fld!r} is not a field name")
    sec = catalog.SECTIONS[section]
    key, sep, name = fld.partition("/")
    spec = sec.fields.get(key)
    try:
        if sep and spec is not None and isinstance(spec.kind, catalog.Items):
            if not isinstance(value, dict) or value.get("name") != name:
                raise Inadmissible(f"{where}: entry {fld!r} must be an object named {name!r}")
            spec.kind.check([value], f"{section}.{key}")
        elif spec is not None:
            if value is not None:
                spec.kind.check(value, f"{section}.{fld}")
        else:  # a key the catalog does not name: kept, as validate keeps it, if plain
            catalog.validate(section, {fld: value})
    except InvalidInput as e:
        raise Inadmissible(f"{where}: {e}") from None


def _change(ch: Any, where: str) -> None:
    if not isinstance(ch, dict):
        raise Inadmissible(f"{where}: a change must be an object")
    mode, section, op = ch.get("mode"), ch.get("section"), ch.get("op")
    if not _mode_ok(mode):
        raise Inadmissible(f"{where}: {mode!r} is not a mode")
    why = section_op_reason(section, op)
    if why is not None or not isinstance(section, str):
        raise Inadmissible(f"{where}: {why}")
    where = f"{where} ({section} at {mode})"
    try:
        _base(ch.get("base"))
    except (KeyError, TypeError, ValueError, IndexError):
        raise Inadmissible(f"{where}: base {ch.get('base')!r} is not [clock, origin, id]") \
            from None
    if op == "define":
        _section_value(section, ch.get("value"), where)
    elif op == "patch":
        sets, unsets = ch.get("set", {}), ch.get("unset", [])
        if not isinstance(sets, dict) or not isinstance(unsets, list) \
                or any(not isinstance(u, str) for u in unsets):
            raise Inadmissible(f"{where}: a patch needs an object 'set' and a list 'unset'")
        for fld, v in sorted(sets.items()):
            _patch_field(section, fld, v, where)
        for fld in unsets:
            key = fld.partition("/")[0]
            spec = catalog.SECTIONS[section].fields.get(key)
            if spec is not None and spec.required and "/" not in fld:
                raise Inadmissible(f"{where}: {section}.{key} is required and cannot be unset")
    elif op != "delete":
        raise Inadmissible(f"{where}: unknown operation {op!r}")


def _needs(payload: Mapping[str, Any], *keys: str) -> None:
    for k in keys:
        if k not in payload:
            raise Inadmissible(f"payload lacks {k!r}")


def _static(ev: Event) -> None:
    kind, p = ev.kind, ev.payload
    if kind not in KINDS:
        raise Inadmissible(f"unknown kind {kind!r}")
    if kind in SETTINGS_KINDS:
        changes = p.get("changes", [])
        if not isinstance(changes, list):
            raise Inadmissible("'changes' must be a list")
        for i, ch in enumerate(changes):
            _change(ch, f"change {i + 1}")
        return  # every key the projection reads is checked above (and its base below)
    elif kind in ("node.init", "node.standalone"):
        _settings_map(p.get("settings"), "settings")
    elif kind == "cluster.create":
        _needs(p, "name")
        _settings_map(p.get("cluster_settings"), "cluster settings")
        _settings_map(p.get("machine_settings"), "machine settings")
    elif kind == "cluster.admit":
        _needs(p, "machine_id", "key", "group")
    elif kind == "cluster.join":
        _settings_map(p.get("machine_settings"), "machine settings")
    elif kind in ("cluster.setname", "group.add"):
        _needs(p, "name")
    elif kind == "group.rename":
        _needs(p, "group", "name")
    elif kind == "group.delete":
        _needs(p, "group", "move_to")
        copies = p.get("copies", [])
        if not isinstance(copies, list):
            raise Inadmissible("'copies' must be a list")
        for c in copies:
            if not isinstance(c, dict):
                raise Inadmissible("a copy must be an object")
            _needs(c, "machine", "section", "value")
            _section_value(c["section"], c["value"], "copy")
    elif kind == "machine.setgroup":
        _needs(p, "machine", "group")
    elif kind == "machine.remove":
        _needs(p, "machine")
    elif kind == "machine.detach":
        _needs(p, "machine", "detached")
    # the shape the projection reads: whatever it cannot read is refused here, not crashed on
    try:
        raw_writes(kind, ev.id, ev.origin, p)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise Inadmissible(f"malformed payload ({type(e).__name__}: {e})") from None


def static_reason(ev: Event) -> str | None:
    """Why ``ev`` is inadmissible whatever came before it, or None."""
    try:
        _static(ev)
    except Inadmissible as e:
        return str(e)
    return None


def writes_users(ev: Event) -> bool:
    """Does ``ev`` write a ``users`` section anywhere (an authority event)?"""
    p = ev.payload
    if ev.kind in SETTINGS_KINDS:
        chs = p.get("changes")
        return isinstance(chs, list) and any(isinstance(c, dict) and c.get("section") == USERS
                                             for c in chs)
    if ev.kind in ("node.init", "node.standalone"):
        return _has_users(p.get("settings"))
    if ev.kind == "cluster.create":
        return _has_users(p.get("cluster_settings")) or _has_users(p.get("machine_settings"))
    if ev.kind == "cluster.join":
        return _has_users(p.get("machine_settings"))
    if ev.kind == "group.delete":
        copies = p.get("copies")
        return isinstance(copies, list) and any(isinstance(c, dict) and c.get("section") == USERS
                                                for c in copies)
    return False


def _has_users(settings: Any) -> bool:
    return isinstance(settings, dict) and USERS in settings


# --------------------------------------------------------------------------- the acting user


def user_entry(users: UsersState, name: str) -> tuple[str, dict[str, Any]] | None:
    """(scope, entry) of the user named ``name`` in the user database, or None."""
    def find(value: Mapping[str, Any]) -> dict[str, Any] | None:
        for u in value.get(USERS, []) or []:
            if isinstance(u, dict) and u.get("name") == name:
                return u
        return None

    if CLUSTER in users:
        got = find(users[CLUSTER])
        return (CLUSTER, got) if got is not None else None
    for scope in sorted(users):
        if scope.startswith("machine:"):
            got = find(users[scope])
            if got is not None:
                return scope, got
    return None


def _users_fields(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return fields_of(USERS, dict(value)) if value else {}


def _only_own_passphrase(ch: Mapping[str, Any], users: UsersState, name: str) -> bool:
    """Is this change of ``users`` nothing but a new passphrase hash for user ``name``?"""
    mode = ch.get("mode")
    before = _users_fields(users.get(str(mode)))
    own = f"{USERS}/{name}"
    if own not in before:
        return False
    op = ch.get("op")
    if op == "patch":
        if ch.get("unset", []) or set(ch.get("set", {})) != {own}:
            return False
        after = {**before, own: ch["set"][own]}
    elif op == "define":
        after = _users_fields(ch.get("value"))
    else:
        return False
    if set(after) != set(before):
        return False
    for fld, old in before.items():
        new = after[fld]
        if fld == own:
            if not isinstance(new, dict) or not isinstance(old, dict):
                return False
            strip = ("passphrase_hash",)
            if {k: v for k, v in new.items() if k not in strip} != \
                    {k: v for k, v in old.items() if k not in strip}:
                return False
        elif new != old:
            return False
    return True


def _role_check(ev: Event, users: UsersState) -> None:
    if ev.kind in LIFECYCLE_KINDS:
        return
    found = user_entry(users, ev.user)
    if found is None:
        raise Inadmissible(f"user {ev.user!r} does not exist at that point")
    role = str(found[1].get("role", ""))
    can = CAN.get(role, frozenset())
    if ev.kind in ANY_USER_KINDS:
        return
    if ev.kind in STRUCTURE_KINDS or ev.kind == "clustercheck.resolve":
        if "cluster" not in can:
            raise Inadmissible(f"user {ev.user!r} has role {role}, which may not change the "
                               "cluster")
        if ev.kind in STRUCTURE_KINDS:
            return
    for ch in ev.payload.get("changes", []):
        section = ch["section"]
        need = GUARDED.get(section, "settings")
        if need in can:
            continue
        if section == USERS and "own_passphrase" in can \
                and _only_own_passphrase(ch, users, ev.user):
            continue
        raise Inadmissible(f"user {ev.user!r} has role {role}, which may not change "
                           f"{section}" + (" (only its own passphrase)"
                                           if "own_passphrase" in can and section == USERS
                                           else ""))


def role_reason(ev: Event, users: UsersState) -> str | None:
    """``reason`` for an event already known to pass ``static_reason`` (cheaper: no catalog
    checks): what a store asks again of the events after a late change of the users."""
    try:
        _role_check(ev, users)
    except Inadmissible as e:
        return str(e)
    return None


def reason(ev: Event, users: UsersState) -> str | None:
    """Why ``ev`` is inadmissible given the user database before it, or None: admissible."""
    try:
        _static(ev)
        _role_check(ev, users)
    except Inadmissible as e:
        return str(e)
    return None


# --------------------------------------------------------------------------- the user database over time


def _users_writes(ev: Event) -> list[Any]:
    return [w for w in writes_of(ev) if w.section == USERS]


def cutoffs_of(ev: Event) -> dict[str, int]:
    """The per-origin seq cutoffs ``ev`` declares (a removal's, a rekey's retired key): the
    same ``@cutoff`` writes the fold takes (evstore/core/writes.py), read from the payload."""
    p = ev.payload
    out: dict[str, int] = {}
    try:
        if ev.kind == "machine.remove" and isinstance(p.get("cutoffs"), dict):
            for origin, seq in p["cutoffs"].items():
                out[str(origin)] = int(seq)
        elif ev.kind == "cluster.admit" and "replaces" in p and "cutoff" in p:
            out[str(p["replaces"])] = int(p["cutoff"])
    except (TypeError, ValueError):
        return {}
    return out


def is_authority(ev: Event) -> bool:
    """Does the user database that judges events depend on ``ev``: it writes a ``users``
    section, or it declares cutoffs (past which a removed origin's writes count nowhere)?"""
    return writes_users(ev) or bool(cutoffs_of(ev))


class Authority:
    """The user database at every point of the total order, from the authority events.

    Built from every event that writes a ``users`` section or declares cutoffs
    (``is_authority``), admissible or not, plus ``cutoffs`` given in advance. Each is judged
    in order against the database before it; the admissible ones' ``users`` writes are folded
    with the register rules of evstore/core/registers.py (a register is its greatest write that
    counts, a section its registers since its last reset), so the database after the last of
    them is exactly what the ``users`` registers hold.

    Cutoffs, as the fold applies them: a removed origin's writes past its cutoff count nowhere,
    whenever they are ordered, so a removed machine cannot reach back before its removal (a
    backdated change of the users) to change a verdict. Which removals count depends on the
    users (their signer's role), so it is found in a first pass along the order: a cutoff
    event is judged against the database before it, without the writes past the cutoffs known
    so far *and its own* (what its signer had not seen cannot have decided it); an admissible
    one adds its cutoffs. The second pass folds the users writes with every admissible
    cutoff, and judges the rest. Both passes depend only on the set of events, so every node
    holding it gives the same verdicts; the database after the last event is what the fold's
    ``users`` registers hold.
    """

    def __init__(self, events: Iterable[Event], cutoffs: Mapping[str, int] | None = None) -> None:
        evs = sorted({e.id: e for e in events}.values(), key=lambda e: e.order_key)
        self.verdicts: dict[str, str | None] = {}
        static: dict[str, str | None] = {}

        def verdict(ev: Event, users: UsersState) -> str | None:  # ``reason``, static part once
            if ev.id not in static:
                static[ev.id] = static_reason(ev)
            why = static[ev.id]
            return why if why is not None else role_reason(ev, users)

        # pass 1: which cutoff events count (each judged as described above)
        cut = dict(cutoffs or {})
        fold = _UsersFold(cut)
        if any(cutoffs_of(ev) for ev in evs):
            for ev in evs:
                own = cutoffs_of(ev)
                if own:
                    wider = _merged(cut, own)
                    why = verdict(ev, fold.under(wider))
                    self.verdicts[ev.id] = why
                    if why is None and wider != cut:
                        cut = wider
                        fold.recut(cut)
                elif verdict(ev, fold.now) is None:  # a users writer
                    fold.add(ev)
            fold = _UsersFold(cut)
        self.cutoffs = cut
        # pass 2: the users writes under every cutoff that counts; snapshots along the order
        self.orders: list[tuple[int, str, str]] = []
        self.snapshots: list[dict[str, dict[str, Any]]] = []
        self._seqs: list[tuple[str, int]] = []
        for ev in evs:
            if ev.id in self.verdicts:  # a cutoff event: its pass-1 verdict
                why = self.verdicts[ev.id]
            else:
                why = verdict(ev, fold.now)
                self.verdicts[ev.id] = why
            if why is None and writes_users(ev):
                fold.add(ev)
            self.orders.append(ev.order_key)
            self.snapshots.append(fold.now)
            self._seqs.append((ev.origin, ev.seq))

    @property
    def last_order(self) -> tuple[int, str, str] | None:
        return self.orders[-1] if self.orders else None

    def first_affected(self, new: Iterable[Event]) -> tuple[int, str, str] | None:
        """Where verdicts may change once the authority events ``new`` are added: the first
        of them, or earlier, the first authority event their cutoffs exclude."""
        new = list(new)
        out = min((e.order_key for e in new), default=None)
        cut: dict[str, int] = {}
        for e in new:
            cut = _merged(cut, cutoffs_of(e))
        if cut:
            for order, (origin, seq) in zip(self.orders, self._seqs, strict=True):
                if origin in cut and seq > cut[origin]:
                    out = order if out is None else min(out, order)
                    break
        return out

    def users_before(self, order: tuple[int, str, str]) -> dict[str, dict[str, Any]]:
        """The user database after every authority event ordered before ``order``."""
        i = bisect.bisect_left(self.orders, order)
        return self.snapshots[i - 1] if i > 0 else {}

    def judge(self, ev: Event) -> str | None:
        """The verdict on any event: an authority event's own, else by the database before it."""
        if ev.id in self.verdicts:
            return self.verdicts[ev.id]
        return reason(ev, self.users_before(ev.order_key))

    def judge_role(self, ev: Event) -> str | None:
        """``judge`` for an event that passes ``static_reason``."""
        if ev.id in self.verdicts:
            return self.verdicts[ev.id]
        return role_reason(ev, self.users_before(ev.order_key))


def _merged(cut: Mapping[str, int], more: Mapping[str, int]) -> dict[str, int]:
    out = dict(cut)
    for origin, seq in more.items():
        out[origin] = max(out.get(origin, seq), seq)  # a cutoff register is its greatest
    return out


class _UsersFold:
    """The admissible ``users`` writes so far and the database they make under one set of
    cutoffs, kept up to date write by write (the order is ascending: a register's newest
    write that counts wins, the last of an event's writes to it as in the fold); another set
    of cutoffs recomputes it from the writes (rare: a removal)."""

    def __init__(self, cut: Mapping[str, int]) -> None:
        self.cut = dict(cut)
        self.history: list[Any] = []
        self.regs: dict[str, dict[str, Any]] = {}  # scope -> field -> winning Write
        self.now: dict[str, dict[str, Any]] = {}

    def add(self, ev: Event) -> None:
        touched = set()
        for w in _users_writes(ev):
            self.history.append(w)
            if not excluded(w, self.cut):
                self.regs.setdefault(w.scope, {})[w.field] = w
                touched.add(w.scope)
        if touched:
            self.now = dict(self.now)
            for scope in touched:
                value = materialize(USERS, self.regs[scope])
                if value is None:
                    self.now.pop(scope, None)
                else:
                    self.now[scope] = value

    def under(self, cut: Mapping[str, int]) -> dict[str, dict[str, Any]]:
        """The database these writes make under ``cut``."""
        if dict(cut) == self.cut:
            return self.now
        return self._fold(cut)[1]

    def recut(self, cut: Mapping[str, int]) -> None:
        if dict(cut) != self.cut:
            self.cut = dict(cut)
            self.regs, self.now = self._fold(cut)

    def _fold(self, cut: Mapping[str, int]
              ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        regs: dict[str, dict[str, Any]] = {}
        for w in self.history:
            if not excluded(w, cut):
                regs.setdefault(w.scope, {})[w.field] = w
        now = {}
        for scope in sorted(regs):
            value = materialize(USERS, regs[scope])
            if value is not None:
                now[scope] = value
        return regs, now


def judge_all(events: Iterable[Event], cutoffs: Mapping[str, int] | None = None
              ) -> dict[str, str]:
    """{event id: reason} for every inadmissible event of a set of events (a full rebuild)."""
    evs = list(events)
    auth = Authority([e for e in evs if is_authority(e)], cutoffs)
    out: dict[str, str] = {}
    for ev in evs:
        why = auth.judge(ev)
        if why is not None:
            out[ev.id] = why
    return out
