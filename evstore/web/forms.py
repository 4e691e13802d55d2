"""A section's settings as an HTML form, built from the catalog, and the form back as a value.

Theory of operation. The catalog (``evstore.core.catalog``) already says, for each section,
which keys exist, their kinds, defaults and docs. :func:`build` turns that into a tree of
plain records the template draws: one labelled input per scalar key (text, number, checkbox,
select), a text area of lines for a list of strings, a fieldset for a small object, and a table
with one row per named entry (edit in place, a remove box per row, one empty row to add) for a
list of entries. A field that names an entry of another section (a reference, such as a
listener's interface) becomes a choice of the names that exist on the machines the settings
reach. :func:`value_of` reads a submitted form back into a JSON value, starting from the value
the form was drawn from, so keys the catalog does not describe (extra keys are welcome) are
kept. The value then goes through the one staging path (``ops.settings.stage_input``), whose
checks are the catalog's own; :func:`field_of_error` finds the input an error message names,
so the page can show the message beside it.

Form names: ``v.KEY`` for a top-level key, ``v.KEY.SUB`` inside an object, ``v.KEY.N.FIELD``
for field FIELD of entry N of list KEY (``new`` for the empty row), ``v.KEY.N.__remove`` for
the remove box; ``shown.NAME`` marks a checkbox that was drawn (an unticked one sends nothing).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from evstore.core import catalog
from evstore.core.catalog import Bool, Choice, Field, Int, Items, Obj, StrList
from evstore.core.errors import InvalidInput

NEW = "new"
REMOVE = "__remove"


@dataclass
class Input:
    """One input: what to draw and the value to show in it (always text; ``checked`` for boxes)."""

    name: str
    label: str
    widget: str  # text, number, checkbox, select, lines
    value: str = ""
    checked: bool = False
    required: bool = False
    default: str = ""
    doc: str = ""
    expected: str = ""
    choices: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # choices some machines lack
    low: int | None = None
    high: int | None = None


@dataclass
class Row:
    index: str
    cells: list[Input]
    remove: str = ""


@dataclass
class Table:
    """A list of named entries: columns, one row each, and an empty row to add one."""

    name: str
    label: str
    doc: str
    columns: list[str]
    rows: list[Row]
    add: Row


@dataclass
class Group:
    """A small object: its inputs under one legend."""

    name: str
    label: str
    doc: str
    inputs: list[Input]


@dataclass
class Form:
    section: str
    parts: list[Input | Table | Group]
    extra_keys: list[str]


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _default_text(spec: Field) -> str:
    if not spec.has_default:
        return ""
    d = spec.default
    if isinstance(d, bool):
        return "on" if d else "off"
    if isinstance(d, list):
        return ", ".join(map(str, d)) if d else "(none)"
    if isinstance(d, dict):
        return ""
    return str(d)


def _text_of(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if isinstance(value, (dict,)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _input(name: str, key: str, spec: Field, value: Any, posted: Mapping[str, str] | None,
           choices: list[str] | None = None, missing: list[str] | None = None) -> Input:
    kind = spec.kind
    out = Input(name=name, label=_label(key), widget="text", required=spec.required,
                default=_default_text(spec), doc=spec.doc, expected=kind.expected())
    if isinstance(kind, Bool):
        out.widget = "checkbox"
        given = (name in posted) if posted is not None else (
            value if isinstance(value, bool) else bool(spec.default is True))
        out.checked = bool(given)
        return out
    if isinstance(kind, Int):
        out.widget, out.low, out.high = "number", kind.low, kind.high
    elif isinstance(kind, Choice):
        out.widget, out.choices = "select", list(kind.options)
    elif isinstance(kind, StrList):
        out.widget = "lines"
    elif choices is not None:
        out.widget, out.choices, out.missing = "select", choices, missing or []
    out.value = posted.get(name, "") if posted is not None else _text_of(value)
    if out.widget == "select" and out.value and out.value not in out.choices:
        out.choices = [*out.choices, out.value]
        out.missing = [*out.missing, out.value]
    return out


def _table(name: str, key: str, spec: Field, kind: Items, value: Any,
           posted: Mapping[str, str] | None, refs: Mapping[str, tuple[list[str], list[str]]]
           ) -> Table:
    fields = kind.all_fields
    entries = value if isinstance(value, list) else []
    if posted is not None:
        seen = {k.split(".")[2] for k in posted if k.startswith(f"{name}.") and k.count(".") >= 3}
        indexes = sorted((i for i in seen if i.isdigit()), key=int)
    else:
        indexes = [str(i) for i in range(len(entries))]

    def row(index: str, entry: Any) -> Row:
        cells = []
        for fkey, fspec in fields.items():
            got = entry.get(fkey) if isinstance(entry, dict) else None
            choice = refs.get(fkey)
            cells.append(_input(f"{name}.{index}.{fkey}", fkey, fspec, got, posted,
                                *(choice if choice else (None, None))))
        return Row(index=index, cells=cells, remove=f"{name}.{index}.{REMOVE}")

    def entry_at(i: str) -> Any:
        return entries[int(i)] if int(i) < len(entries) else None

    rows = [row(i, entry_at(i)) for i in indexes]
    add = row(NEW, None)
    if posted is None:  # a fresh empty row shows the defaults as hints, not as values
        for cell in add.cells:
            cell.checked = cell.widget == "checkbox" and cell.default == "on"
    return Table(name=name, label=_label(key), doc=spec.doc, columns=list(fields),
                 rows=rows, add=add)


def build(section: str, value: Any, *, posted: Mapping[str, str] | None = None,
          references: Mapping[str, Mapping[str, tuple[list[str], list[str]]]] | None = None
          ) -> Form:
    """The form for ``value`` of ``section`` (or, after a refused submit, for what was posted).

    ``references`` maps a list key to {field: (names that exist, names some machines lack)}.
    """
    sec = catalog.get(section)
    current = value if isinstance(value, dict) else {}
    refs = references or {}
    parts: list[Input | Table | Group] = []
    for key, spec in sec.fields.items():
        name = f"v.{key}"
        kind = spec.kind
        if isinstance(kind, Items):
            parts.append(_table(name, key, spec, kind, current.get(key), posted,
                                refs.get(key, {})))
        elif isinstance(kind, Obj):
            got = current.get(key)
            inner: dict[str, Any] = got if isinstance(got, dict) else {}
            inputs = [_input(f"{name}.{k}", k, s, inner.get(k), posted)
                      for k, s in kind.fields.items()]
            parts.append(Group(name=name, label=_label(key), doc=spec.doc, inputs=inputs))
        else:
            parts.append(_input(name, key, spec, current.get(key), posted))
    extra = sorted(k for k in current if k not in sec.fields)
    return Form(section=sec.name, parts=parts, extra_keys=extra)


# ---------------------------------------------------------------------- the form back as a value


def _scalar(spec: Field, text: str, path: str) -> Any:
    """One submitted text as the kind wants it; None when left empty (the key is left out)."""
    kind = spec.kind
    text = text.strip()
    if isinstance(kind, StrList):
        return [ln.strip() for ln in re.split(r"[\n,]", text) if ln.strip()]
    if not text:
        return None
    if isinstance(kind, Int):
        try:
            return int(text)
        except ValueError:
            raise InvalidInput(f"{path}: expected {kind.expected()}, got {text!r}") from None
    return text


def _read_fields(fields: Mapping[str, Field], prefix: str, path: str, form: Mapping[str, str],
                 base: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, spec in fields.items():
        name = f"{prefix}.{key}"
        if isinstance(spec.kind, Bool):
            if f"shown.{name}" in form:
                out[key] = name in form
            continue
        if name not in form:
            continue
        got = _scalar(spec, form[name], f"{path}.{key}")
        if got is None:
            out.pop(key, None)
        else:
            out[key] = got
    return out


def _kept_rows(kind: Items, name: str, form: Mapping[str, str]) -> list[str]:
    """The form rows of a table that make entries, in order: the rows not removed, then the
    new row when any of its fields is filled."""
    seen = {k.split(".")[2] for k in form if k.startswith(f"{name}.") and k.count(".") >= 3}
    rows = [i for i in sorted((i for i in seen if i.isdigit()), key=int)
            if f"{name}.{i}.{REMOVE}" not in form]
    if NEW in seen and any(form.get(f"{name}.{NEW}.{k}", "").strip()
                           for k, spec in kind.all_fields.items()
                           if not isinstance(spec.kind, Bool)):
        rows.append(NEW)
    return rows


def _read_items(kind: Items, name: str, path: str, form: Mapping[str, str],
                before: Any) -> list[dict[str, Any]]:
    entries = before if isinstance(before, list) else []
    out: list[dict[str, Any]] = []
    for index in _kept_rows(kind, name, form):
        i = int(index) if index.isdigit() else len(entries)
        base = dict(entries[i]) if i < len(entries) and isinstance(entries[i], dict) else {}
        out.append(_read_fields(kind.all_fields, f"{name}.{index}", f"{path}[{len(out)}]",
                                form, base))
    return out


def value_of(section: str, before: Any, form: Mapping[str, str]) -> dict[str, Any]:
    """The section's new value from a submitted form (not yet checked: staging checks it)."""
    sec = catalog.get(section)
    value: dict[str, Any] = copy.deepcopy(before) if isinstance(before, dict) else {}
    for key, spec in sec.fields.items():
        name, path = f"v.{key}", f"{sec.name}.{key}"
        kind = spec.kind
        if isinstance(kind, Items):
            if any(k.startswith(name + ".") for k in form):  # a table the form did not draw
                value[key] = _read_items(kind, name, path, form, value.get(key))  # stays
        elif isinstance(kind, Obj):
            got = value.get(key)
            value[key] = _read_fields(kind.fields, name, path, form,
                                      got if isinstance(got, dict) else {})
        else:
            value = _read_fields({key: spec}, "v", sec.name, form, value)
    return value


_PATH_PART = re.compile(r"\.([A-Za-z0-9_]+)|\[(\d+)\]")


def field_of_error(section: str, message: str, form: Mapping[str, str] | None = None
                   ) -> str | None:
    """The form name of the input an error message is about (``dns.servers[2]: …`` names
    ``v.servers``; ``ldap.queries[1].server: …`` names ``v.queries.1.server``, or the row of
    the submitted ``form`` that made entry 1), or None."""
    head = message.split(":", 1)[0].strip()
    if not head.startswith(section + ".") and not head.startswith(section + "["):
        return None
    parts = ["v"]
    sec = catalog.get(section)
    kind: Any = None
    fields: Mapping[str, Field] = sec.fields
    for m in _PATH_PART.finditer(head[len(section):]):
        key, index = m.group(1), m.group(2)
        if key is not None:
            if key not in fields:
                break
            parts.append(key)
            kind = fields[key].kind
            fields = kind.all_fields if isinstance(kind, Items) else (
                kind.fields if isinstance(kind, Obj) else {})
        elif isinstance(kind, Items):
            rows = _kept_rows(kind, ".".join(parts), form) if form is not None else []
            parts.append(rows[int(index)] if int(index) < len(rows) else index)
        else:
            break  # an element of a list of strings: the whole text area
    return ".".join(parts) if len(parts) > 1 else None


def is_form_key(key: str) -> bool:
    return key.startswith(("v.", "shown."))


__all__ = ["Form", "Group", "Input", "Row", "Table", "build", "field_of_error", "is_form_key",
           "value_of"]
