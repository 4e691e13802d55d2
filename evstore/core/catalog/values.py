"""Validating a section's value: ``validate`` for any event's, ``accept`` for a person's.

``validate`` keeps keys the schema does not name; ``accept`` refuses a key the value did
not have already, naming the nearest known key (see the package docstring).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from evstore.core.catalog.schema import Field, Items, Obj, Section, Str, _check_fields
from evstore.core.catalog.sections import get
from evstore.core.errors import InvalidInput


def validate(section: str | Section, value: Any) -> dict[str, Any]:
    """Check ``value`` against the section's schema; return it normalized (see the package docstring)."""
    sec = get(section)
    out: dict[str, Any] = _check_fields(sec.fields, value, sec.name, "an object")
    return out


# --------------------------------------------------------------------------------------------
# Values entering from people: keys the schema does not know are typos until proven otherwise
# --------------------------------------------------------------------------------------------


def _nearest(key: str, known: Iterable[str]) -> str:
    """"; did you mean servers?" when a known key is close, else the list of known keys."""
    names = list(known)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]}?"
    return f" (the keys are {', '.join(names) or 'none'})"


def _unknown_in(fields: Mapping[str, Field], value: Any, path: str) -> Iterable[tuple[str, str]]:
    if not isinstance(value, dict):
        return
    for key, given in value.items():
        spec = fields.get(key) if isinstance(key, str) else None
        where = f"{path}.{key}"
        if spec is None:
            yield where, _nearest(str(key), fields)
        elif isinstance(spec.kind, Obj):
            yield from _unknown_in(spec.kind.fields, given, where)
        elif isinstance(spec.kind, Items) and isinstance(given, list):
            for i, item in enumerate(given):
                name = item.get("name") if isinstance(item, dict) else None
                label = name if isinstance(name, str) else str(i)
                yield from _unknown_in(spec.kind.all_fields, item, f"{where}[{label}]")


def unknown_keys(section: str | Section, value: Any) -> dict[str, str]:
    """{path: hint} for every key of ``value`` its schema does not name (entries by name)."""
    sec = get(section)
    return dict(_unknown_in(sec.fields, value, sec.name))


def _check_zones(sec: Section, value: Any, before: Any, zones: Collection[str]) -> None:
    """A zone must be one the caller's time zone database knows (the core holds none)."""
    for key, spec in sec.fields.items():
        if not (isinstance(spec.kind, Str) and spec.kind.format == "zone"):
            continue
        zone = value.get(key) if isinstance(value, dict) else None
        old = before.get(key) if isinstance(before, dict) else None
        if isinstance(zone, str) and zone != old and zone != "UTC" and zone not in zones:
            raise InvalidInput(f"{sec.name}.{key}: {zone!r} is not a time zone this machine "
                               "knows; use an IANA name such as UTC or Europe/Paris")


def accept(section: str | Section, value: Any, before: Any = None,
           zones: Collection[str] | None = None) -> dict[str, Any]:
    """A value entering from a person (edit, set, a web form, a loaded file), normalized.

    ``validate`` keeps keys the schema does not name, because events already signed must keep
    meaning what they meant; a person's input may not add one: ``{"server": [...]}`` is a typo
    of ``servers`` that would otherwise empty the list for every machine. Keys the value had
    already (``before``, stored when this was allowed) stay acceptable. ``zones``, when the
    caller has a time zone database, are the zone names it knows.
    """
    sec = get(section)
    old = unknown_keys(sec, before) if isinstance(before, dict) else {}
    for path, hint in unknown_keys(sec, value).items():
        if path not in old:
            raise InvalidInput(f"{path}: unknown key{hint}")
    out = validate(sec, value)
    if zones:
        _check_zones(sec, out, before, zones)
    return out
