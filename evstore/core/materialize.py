"""A section's value and its registers, both ways: ``fields_of`` splits a value into its
registers (top-level keys and named entries of items lists), ``materialize`` makes the
value back from the winners of those registers, over the factory default.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from evstore.core import catalog
from evstore.core.registers import DEFINED, RESET, Write


def fields_of(section: str, value: Mapping[str, Any]) -> dict[str, Any]:
    """Split a section value into its registers: top-level keys and named list entries."""
    items = _item_fields(section)
    out: dict[str, Any] = {}
    for key, v in value.items():
        if key in items and isinstance(v, list):
            for item in v:
                out[f"{key}/{item['name']}"] = item
        else:
            out[key] = v
    return out


_ITEM_FIELDS: dict[str, frozenset[str]] = {}


def _item_fields(section: str) -> frozenset[str]:
    """``catalog.item_fields``, remembered: the catalog is fixed, and this runs per write."""
    known = _ITEM_FIELDS.get(section)
    if known is None:
        try:
            known = catalog.item_fields(section)
        except Exception:  # unknown section (a newer peer's): treat every key as a scalar
            known = frozenset()
        if len(_ITEM_FIELDS) < 4096:
            _ITEM_FIELDS[section] = known
    return known


def materialize(section: str, winners: Mapping[str, Write]) -> dict[str, Any] | None:
    """A section's value at one mode from its registers' winners; None when not defined."""
    d = winners.get(DEFINED)
    if d is None or d.value is not True:
        return None
    reset = winners.get(RESET)
    floor = reset.order if reset is not None else (0, "", "")
    items = _item_fields(section)
    out = default_of(section)
    lists: dict[str, list[Any]] = {k: [] for k in items}
    for fld, w in sorted(winners.items()):
        if fld.startswith("@") or w.order < floor or not w.present:
            continue
        key, sep, _name = fld.partition("/")
        if sep and key in items:
            lists[key].append(w.value)
        else:
            out[fld] = copy.deepcopy(w.value)
    for key, entries in lists.items():
        out[key] = sorted(entries, key=lambda it: str(it.get("name", "")))
    return out


def default_of(section: str) -> dict[str, Any]:
    """The factory default of a section (a blank table where it has none)."""
    try:
        sec = catalog.get(section)
    except Exception:
        return {}
    base = copy.deepcopy(sec.default) if sec.default is not None else {}
    for key in catalog.item_fields(section):
        base.setdefault(key, [])
    return base


def last_event(winners: Mapping[str, Write]) -> str | None:
    """The newest event that shaped a section at a mode (for "where did this come from")."""
    reset = winners.get(RESET)
    floor = reset.order if reset is not None else (0, "", "")
    live = [w for w in winners.values() if w.order >= floor]
    return max(live, key=lambda w: w.order).event if live else None
