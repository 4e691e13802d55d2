"""Plain JSON values: the check of values no schema names, and bad values shown in messages.

A key the schema does not name is kept as given (an event signed with one keeps its
meaning), checked only to be float-free JSON of bounded depth (``_plain``).
"""

from __future__ import annotations

import json
from typing import Any

from evstore.core.encoding import INT_MAX, INT_MIN
from evstore.core.errors import InvalidInput

_EXTRA_DEPTH = 32  # how deep extra (unschema'd) values may nest


# --------------------------------------------------------------------------------------------
# Rendering values in error messages
# --------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A short rendering of a bad value for an error message."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad(path: str, expected: str, value: Any) -> InvalidInput:
    return InvalidInput(f"{path}: expected {expected}, got {_show(value)}")


def _has_surrogate(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _plain(value: Any, path: str, depth: int = 0) -> Any:
    """Check an extra (unschema'd) value: float-free JSON. Returns a deep copy."""
    if depth > _EXTRA_DEPTH:
        raise InvalidInput(f"{path}: nested deeper than {_EXTRA_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise _bad(path, "an integer in the signed 64-bit range", value)
        return value
    if isinstance(value, str):
        if _has_surrogate(value):
            raise InvalidInput(f"{path}: string holds a lone surrogate; use valid Unicode text")
        return value
    if isinstance(value, float):
        raise InvalidInput(
            f"{path}: floating-point numbers are not allowed; use an integer or a string"
        )
    if isinstance(value, list):
        return [_plain(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return _plain_dict(value, path, depth)
    raise InvalidInput(f"{path}: expected a JSON value, got a {type(value).__name__}")


def _plain_dict(value: dict[Any, Any], path: str, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise InvalidInput(f"{path}: object key {_show(k)} is not a string")
        out[k] = _plain(v, f"{path}.{k}", depth + 1)
    return out
