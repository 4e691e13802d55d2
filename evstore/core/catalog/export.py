"""The catalog as JSON-ready dicts, for ``evstore sections --json``.
"""

from __future__ import annotations

import copy
from typing import Any

from evstore.core.catalog.levels import _ordered
from evstore.core.catalog.references import REFERENCES
from evstore.core.catalog.sections import _SECTION_LIST, item_fields


def describe() -> list[dict[str, Any]]:
    """The catalog as JSON-ready dicts, in catalog order."""
    return [
        {
            "name": s.name,
            "title": s.title,
            "seed_command": s.seed_command,
            "levels": _ordered(s.levels),
            "clusterable": s.clusterable,
            "default": copy.deepcopy(s.default),
            "keys": list(s.keys),
            "item_keys": sorted(item_fields(s)),
            "schema": {k: f.to_json() for k, f in s.fields.items()},
            "references": [
                {"items": r.items, "field": r.field, "to": f"{r.target_section}.{r.target_items}"}
                for r in REFERENCES
                if r.section == s.name
            ],
            "description": s.description,
        }
        for s in _SECTION_LIST
    ]
