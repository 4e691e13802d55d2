"""The schema language: ``Kind`` and its kinds (``Str``, ``Int``, ``Bool``, ``Choice``,
``StrList``, ``Obj``, ``Items``), ``Field`` for each key, and ``Section``, one table of
settings. Each kind checks a value and returns it normalized (see the package docstring).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evstore.core.catalog.formats import FORMATS
from evstore.core.catalog.plain import _bad, _has_surrogate, _plain, _show
from evstore.core.errors import InvalidInput


class _Missing:
    """Marks a field without a default (None is a value, so it cannot be the marker)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


# --------------------------------------------------------------------------------------------
# The schema language
# --------------------------------------------------------------------------------------------


class Kind:
    """The type of one value. ``check`` returns the normalized value or raises InvalidInput."""

    def check(self, value: Any, path: str) -> Any:
        raise NotImplementedError

    def expected(self) -> str:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class Str(Kind):
    """A string; optionally non-empty, bounded, matching ``pattern`` or a named ``format``.

    ``hint`` says in words what ``pattern`` means; it is what error messages show.
    """

    non_empty: bool = False
    max_length: int | None = None
    pattern: str | None = None
    hint: str = ""
    format: str | None = None

    def expected(self) -> str:
        if self.format is not None:
            text = FORMATS[self.format][1]
        elif self.hint:
            text = self.hint
        else:
            text = "a non-empty string" if self.non_empty else "a string"
            if self.max_length is not None:
                text += f" of at most {self.max_length} characters"
        return text

    def _fits(self, value: str) -> bool:
        if (self.non_empty or self.format) and not value:
            return False
        if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            return False
        return self.format is None or bool(FORMATS[self.format][0](value))

    def check(self, value: Any, path: str) -> Any:
        if not isinstance(value, str) or not self._fits(value):
            raise _bad(path, self.expected(), value)
        if self.max_length is not None and len(value) > self.max_length:
            raise InvalidInput(
                f"{path}: expected at most {self.max_length} characters, got {len(value)}"
            )
        if _has_surrogate(value):
            raise InvalidInput(f"{path}: string holds a lone surrogate; use valid Unicode text")
        return value

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string", "expected": self.expected()}
        if self.non_empty:
            out["non_empty"] = True
        for key, val in (
            ("max_length", self.max_length),
            ("pattern", self.pattern),
            ("format", self.format),
        ):
            if val is not None:
                out[key] = val
        return out


@dataclass(frozen=True)
class Int(Kind):
    """An integer in ``low..high`` (booleans are not integers here)."""

    low: int
    high: int

    def expected(self) -> str:
        return f"an integer {self.low}..{self.high}"

    def check(self, value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(path, self.expected(), value)
        if not self.low <= value <= self.high:
            raise _bad(path, self.expected(), value)
        return value

    def to_json(self) -> dict[str, Any]:
        return {"type": "integer", "min": self.low, "max": self.high, "expected": self.expected()}


@dataclass(frozen=True)
class Bool(Kind):
    """true or false."""

    def expected(self) -> str:
        return "true or false"

    def check(self, value: Any, path: str) -> Any:
        if not isinstance(value, bool):
            raise _bad(path, self.expected(), value)
        return value

    def to_json(self) -> dict[str, Any]:
        return {"type": "boolean", "expected": self.expected()}


@dataclass(frozen=True)
class Choice(Kind):
    """One string out of a fixed set."""

    options: tuple[str, ...]

    def expected(self) -> str:
        head, last = self.options[:-1], self.options[-1]
        return f"one of {', '.join(head)} or {last}" if head else f"{last!r}"

    def check(self, value: Any, path: str) -> Any:
        if not isinstance(value, str) or value not in self.options:
            raise _bad(path, self.expected(), value)
        return value

    def to_json(self) -> dict[str, Any]:
        return {"type": "string", "choices": list(self.options), "expected": self.expected()}


@dataclass(frozen=True)
class StrList(Kind):
    """A list of strings, each checked by ``item``; duplicates refused when ``unique``."""

    item: Str
    unique: bool = True
    min_items: int = 0

    def expected(self) -> str:
        least = f"at least {self.min_items} " if self.min_items else ""
        return f"a list of {least}strings, each {self.item.expected()}"

    def check(self, value: Any, path: str) -> Any:
        if not isinstance(value, list) or len(value) < self.min_items:
            raise _bad(path, self.expected(), value)
        out = [self.item.check(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if self.unique:
            _refuse_duplicates(out, path)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "list",
            "of": self.item.to_json(),
            "unique": self.unique,
            "min_items": self.min_items,
            "expected": self.expected(),
        }


def _refuse_duplicates(names: list[str], path: str) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise InvalidInput(
                f"{path}[{i}]: {name!r} appears twice (also at [{seen[name]}]); "
                "each entry must be unique"
            )
        seen[name] = i


@dataclass(frozen=True)
class Field:
    """One key of an object: its kind, whether it must be given, and its default."""

    kind: Kind
    required: bool = False
    default: Any = MISSING
    doc: str = ""

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING

    def to_json(self) -> dict[str, Any]:
        out = self.kind.to_json()
        out["required"] = self.required
        if self.has_default:
            out["default"] = copy.deepcopy(self.default)
        if self.doc:
            out["doc"] = self.doc
        return out


def req(kind: Kind, doc: str = "") -> Field:
    """A key that must be given."""
    return Field(kind, required=True, doc=doc)


def opt(kind: Kind, default: Any = MISSING, doc: str = "") -> Field:
    """A key that may be left out; left out (or null) it takes ``default`` if there is one."""
    return Field(kind, default=default, doc=doc)


def _check_fields(fields: Mapping[str, Field], value: Any, path: str, what: str) -> dict[str, Any]:
    """Check an object against its fields; extra keys are kept after a float-free check."""
    if not isinstance(value, dict):
        raise _bad(path, what, value)
    out: dict[str, Any] = {}
    for key, spec in fields.items():
        given = value.get(key)
        if given is not None:
            out[key] = spec.kind.check(given, f"{path}.{key}")
        elif spec.has_default:
            out[key] = spec.kind.check(copy.deepcopy(spec.default), f"{path}.{key}")
        elif spec.required:
            raise InvalidInput(f"{path}.{key}: missing; expected {spec.kind.expected()}")
    for key, given in value.items():
        if not isinstance(key, str):
            raise InvalidInput(f"{path}: object key {_show(key)} is not a string")
        if key not in fields:
            out[key] = _plain(given, f"{path}.{key}", 1)
    return out


@dataclass(frozen=True)
class Obj(Kind):
    """A small object with named fields (extra keys welcome)."""

    fields: Mapping[str, Field]

    def expected(self) -> str:
        return "an object"

    def check(self, value: Any, path: str) -> Any:
        return _check_fields(self.fields, value, path, self.expected())

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "object",
            "fields": {k: f.to_json() for k, f in self.fields.items()},
            "expected": self.expected(),
        }


NAME = Str(
    non_empty=True,
    max_length=255,
    pattern=r"[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?",
    hint="a name (no control characters, no spaces at either end)",
)


@dataclass(frozen=True)
class Items(Kind):
    """A list of objects identified by a unique ``name`` (checked by ``name``), order kept."""

    fields: Mapping[str, Field]
    name: Str = NAME

    @property
    def all_fields(self) -> dict[str, Field]:
        return {"name": req(self.name, "identifies the entry"), **self.fields}

    def expected(self) -> str:
        return "a list of objects, each with a unique name"

    def check(self, value: Any, path: str) -> Any:
        if not isinstance(value, list):
            raise _bad(path, self.expected(), value)
        fields = self.all_fields
        what = "an object with a name"
        out = [_check_fields(fields, v, f"{path}[{i}]", what) for i, v in enumerate(value)]
        _refuse_duplicate_names([item["name"] for item in out], path)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "items",
            "fields": {k: f.to_json() for k, f in self.all_fields.items()},
            "expected": self.expected(),
        }


def _refuse_duplicate_names(names: list[str], path: str) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise InvalidInput(
                f"{path}[{i}].name: {name!r} appears twice (also at [{seen[name]}]); "
                "names must be unique"
            )
        seen[name] = i


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One configuration table. ``default`` is the factory default (None: there is none).

    Treat ``default`` as read-only; ``factory_default`` gives a copy to change.
    """

    name: str
    title: str
    seed_command: str
    levels: frozenset[str]
    default: dict[str, Any] | None
    fields: Mapping[str, Field]
    clusterable: bool = True
    description: str = ""

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.fields)
