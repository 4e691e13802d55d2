"""References between sections, resolved per machine against its effective settings.

A reference that does not resolve there does not make a value invalid: it disables the
referring item on that machine (``check_references``); ``broken_references`` tells what a
change newly breaks, for ``commit --dry-run``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evstore.core.catalog.sections import SECTIONS


@dataclass(frozen=True)
class Reference:
    """Items of ``section.items`` name, in ``field``, an item of ``target_section.target_items``
    (of kind ``target_kind`` when given). ``label`` is what the target is called in messages."""

    section: str
    items: str
    field: str
    target_section: str
    target_items: str
    label: str
    target_kind: str | None = None


REFERENCES: tuple[Reference, ...] = (
    Reference("listeners", "listeners", "interface", "interfaces", "interfaces", "interface"),
    Reference("listeners", "listeners", "footer", "textresources", "resources", "footer", "footer"),
    Reference("ldap", "queries", "server", "ldap", "servers", "LDAP server"),
    Reference(
        "destconfig", "domains", "bounce_profile", "bounceprofiles", "profiles", "bounce profile"
    ),
    Reference("ssh", "authorized_keys", "user", "users", "users", "user"),
    Reference("routes", "routes", "interface", "interfaces", "interfaces", "interface"),
    Reference("interfaces", "interfaces", "port", "ethernet", "ports", "ethernet port"),
)


@dataclass(frozen=True)
class BrokenReference:
    """One reference that does not resolve on a machine."""

    section: str
    item: str
    field: str
    target: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {
            "section": self.section,
            "item": self.item,
            "field": self.field,
            "target": self.target,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Disabled:
    """An item that a machine cannot use because of broken references, and why."""

    section: str
    item: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"section": self.section, "item": self.item, "reason": self.reason}


def _entries(effective: Mapping[str, Any], section: str, key: str) -> list[dict[str, Any]]:
    """The well-formed named entries of ``effective[section][key]`` (anything else skipped).

    A section missing from ``effective`` counts as its factory default.
    """
    value = effective[section] if section in effective else SECTIONS[section].default
    items = value.get(key) if isinstance(value, dict) else None
    if not isinstance(items, list):
        return []
    return [i for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)]


def _why_broken(ref: Reference, target: str, found: dict[str, Any] | None) -> str | None:
    if found is None:
        return f"{ref.label} {json.dumps(target)} is not defined on this machine"
    kind = found.get("kind")
    if ref.target_kind is not None and kind != ref.target_kind:
        return (
            f"{ref.label} {json.dumps(target)} is not defined on this machine "
            f"({json.dumps(target)} is a {kind}, not a {ref.target_kind})"
        )
    return None


def _broken(effective: Mapping[str, Any], ref: Reference) -> list[BrokenReference]:
    targets = {t["name"]: t for t in _entries(effective, ref.target_section, ref.target_items)}
    out = []
    for item in _entries(effective, ref.section, ref.items):
        target = item.get(ref.field)
        if not isinstance(target, str):
            continue
        reason = _why_broken(ref, target, targets.get(target))
        if reason is not None:
            out.append(BrokenReference(ref.section, item["name"], ref.field, target, reason))
    return out


def find_broken(effective: Mapping[str, Any]) -> list[BrokenReference]:
    """Every reference that does not resolve in one machine's effective settings."""
    return [b for ref in REFERENCES for b in _broken(effective, ref)]


def check_references(effective: Mapping[str, Any]) -> list[Disabled]:
    """The items one machine must disable, given its effective settings ({section: value}).

    One entry per item, its reasons joined with "; ", in REFERENCES order then list order.
    """
    reasons: dict[tuple[str, str], list[str]] = {}
    for b in find_broken(effective):
        reasons.setdefault((b.section, b.item), []).append(b.reason)
    return [Disabled(sec, item, "; ".join(why)) for (sec, item), why in reasons.items()]


def broken_references(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[BrokenReference]:
    """The references broken in ``after`` that were not broken in ``before`` (one machine)."""

    def key(b: BrokenReference) -> tuple[str, str, str, str]:
        return (b.section, b.item, b.field, b.target)

    old = {key(b) for b in find_broken(before)}
    return [b for b in find_broken(after) if key(b) not in old]


def dependents(section: str) -> list[Reference]:
    """The references that point into ``section`` (what a change to it may disable)."""
    return [r for r in REFERENCES if r.target_section == section]
