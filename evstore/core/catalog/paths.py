"""``KEY=VALUE`` assignments of ``evstore set`` applied to a section's value.

``set_path`` applies one (``KEY``, ``OBJ.FIELD``, ``LIST.NAME``, ``LIST.NAME.FIELD``,
``LIST[NAME]``...); ``apply_assignments`` applies several, then accepts the result.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

from evstore.core.catalog.plain import _bad
from evstore.core.catalog.schema import Field, Items, Obj, Section
from evstore.core.catalog.sections import get
from evstore.core.catalog.values import _nearest, accept
from evstore.core.encoding import loads_json
from evstore.core.errors import EncodingError, InvalidInput


def parse_value(raw: str, key: str = "") -> Any:
    """VALUE of KEY=VALUE: JSON if it parses as JSON, else the text itself as a string.

    Text that parses but is not a valid evstore value (a float, a duplicate key) is refused
    rather than silently taken as a string.
    """
    try:
        json.loads(raw)
    except ValueError:
        return raw
    try:
        return loads_json(raw)
    except EncodingError as e:
        where = f"{key}={raw}" if key else repr(raw)
        raise InvalidInput(f"{where}: {e} (to store text, write it as a JSON string)") from None


def _split_key(key: str) -> tuple[str, str | None, bool]:
    """``(top, rest, bracketed)``: ``a`` -> (a, None), ``a.b.c`` -> (a, "b.c"),
    ``a[NAME]`` -> (a, NAME), ``a[NAME].f`` -> (a, "NAME\\0f")."""
    bracket, dot = key.find("["), key.find(".")
    if bracket > 0 and (dot < 0 or bracket < dot):
        close = key.rfind("]")
        tail = key[close + 1 :]
        name = key[bracket + 1 : close]
        if close > bracket + 1 and (tail == "" or (tail.startswith(".") and len(tail) > 1)):
            rest = name if not tail else name + "\0" + tail[1:]
            return key[:bracket], rest, True
        raise InvalidInput(f"key {key!r}: write LIST[NAME] or LIST[NAME].FIELD")
    if dot == 0 or key.endswith(".") or not key:
        raise InvalidInput(f"key {key!r} is not valid: write KEY, LIST.NAME or LIST.NAME.FIELD")
    top, _, rest = key.partition(".")
    return top, (rest if dot > 0 else None), False


def _known_keys(fields: Mapping[str, Field] | None, key: str, where: str) -> None:
    """set only writes keys the schema names: a typo fails loudly, naming the nearest key."""
    if fields is not None and key not in fields:
        raise InvalidInput(f"{where}.{key}: unknown key{_nearest(key, fields)}")


def _assign(obj: dict[str, Any], key: str, value: Any) -> None:
    """null removes the key (it takes its default again on validation)."""
    if value is None:
        obj.pop(key, None)
    else:
        obj[key] = value


def _find(items: list[Any], name: str) -> int:
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == name:
            return i
    return -1


def _set_item(items: list[Any], where: str, name: str, value: Any) -> None:
    """LIST.NAME=OBJECT replaces or adds the entry; LIST.NAME=null removes it."""
    i = _find(items, name)
    if value is None:
        if i < 0:
            known = ", ".join(str(x.get("name")) for x in items if isinstance(x, dict)) or "none"
            raise InvalidInput(f"{where} has no entry named {name!r} (entries: {known})")
        del items[i]
        return
    if not isinstance(value, dict):
        raise _bad(f"{where}[{name}]", "an object (or null to remove the entry)", value)
    if value.get("name", name) != name:
        raise InvalidInput(f"{where}[{name}]: the object's name {value['name']!r} differs")
    entry = {"name": name, **value}
    if i < 0:
        items.append(entry)
    else:
        items[i] = entry


def _set_item_field(items: list[Any], where: str, name: str, fld: str, value: Any) -> None:
    """LIST.NAME.FIELD=VALUE sets one field, adding the entry if missing; name= renames."""
    i = _find(items, name)
    if i < 0:
        items.append({"name": name})
        i = len(items) - 1
    entry = dict(items[i])
    if fld == "name":
        if not isinstance(value, str):
            raise _bad(f"{where}[{name}].name", "a name (an entry cannot lose its name)", value)
        if value != name and _find(items, value) >= 0:
            raise InvalidInput(f"{where}: an entry named {value!r} exists already")
    _assign(entry, fld, value)
    items[i] = entry


def _items_path(items: list[Any], rest: str, bracketed: bool) -> tuple[str, str | None]:
    """Split REST of LIST.REST into (item name, field or None).

    Bracketed: NAME\\0FIELD or NAME. Dotted: REST naming an existing entry is that entry;
    else the last dot splits NAME from FIELD, one segment is a whole entry.
    """
    if bracketed:
        name, _, fld = rest.partition("\0")
        return name, (fld or None)
    if _find(items, rest) >= 0 or "." not in rest:
        return rest, None
    name, _, fld = rest.rpartition(".")
    return name, fld


def _top_kind(sec: Section | None, value: Mapping[str, Any], top: str) -> str:
    if sec is not None:
        kind = sec.fields[top].kind
        return "items" if isinstance(kind, Items) else "object" if isinstance(kind, Obj) else ""
    current = value.get(top)
    if isinstance(current, dict):
        return "object"
    return "items" if current is None or isinstance(current, list) else ""


def _sub_fields(sec: Section | None, top: str) -> Mapping[str, Field] | None:
    if sec is None:
        return None
    kind = sec.fields[top].kind
    if isinstance(kind, Items):
        return kind.all_fields
    return kind.fields if isinstance(kind, Obj) else None


def _set_nested(
    sec: Section | None, out: dict[str, Any], top: str, rest: str, bracketed: bool, value: Any
) -> None:
    where = f"{sec.name if sec else 'section'}.{top}"
    kind = _top_kind(sec, out, top)
    if kind == "object" and not bracketed and "." not in rest:
        _known_keys(_sub_fields(sec, top), rest, where)
        obj = dict(out.get(top) or {})
        _assign(obj, rest, value)
        out[top] = obj
        return
    if kind != "items":
        raise InvalidInput(f"{where} is not a list of named entries: set it whole with {top}=...")
    items = list(out.get(top) or [])
    name, fld = _items_path(items, rest, bracketed)
    if fld is None:
        _set_item(items, where, name, value)
    else:
        _known_keys(_sub_fields(sec, top), fld, f"{where}[{name}]")
        _set_item_field(items, where, name, fld, value)
    out[top] = items


def set_path(
    value: Mapping[str, Any] | None,
    key: str,
    raw: str,
    section: str | Section | None = None,
) -> dict[str, Any]:
    """Apply one ``KEY=VALUE`` of ``evstore set`` to a section value; return the new value.

    VALUE is parsed by ``parse_value`` (JSON if it parses, else a string); null means "take it
    away". KEY is one of:

    * ``KEY`` -- a top-level key, set whole (null: back to its default);
    * ``OBJ.FIELD`` -- a field of a top-level object (``default.max_connections=60``);
    * ``LIST.NAME`` -- the entry NAME of an items list: an object replaces or adds it (its
      ``name`` is NAME), null removes it;
    * ``LIST.NAME.FIELD`` -- one field of entry NAME, adding ``{"name": NAME}`` if there is
      none; null removes the field; ``LIST.NAME.name=NEW`` renames the entry;
    * ``LIST[NAME]`` and ``LIST[NAME].FIELD`` -- the same, for names that hold dots. In the
      dotted form a name with dots is found when such an entry exists; otherwise the last
      dot separates the field (``routes.example.com.destinations=[...]``).

    With ``section`` given, only keys its schema names can be set (typos fail loudly; extra
    keys go through ``evstore edit``). The result is not validated: apply every assignment
    of a command, then ``validate`` (``apply_assignments`` does both). ``value`` is not changed.
    """
    sec = get(section) if section is not None else None
    out: dict[str, Any] = copy.deepcopy(dict(value or {}))
    top, rest, bracketed = _split_key(key)
    if sec is not None:
        _known_keys(sec.fields, top, sec.name)
    parsed = parse_value(raw, key)
    if rest is None:
        _assign(out, top, parsed)
    else:
        _set_nested(sec, out, top, rest, bracketed, parsed)
    return out


def apply_assignments(
    section: str | Section, value: Mapping[str, Any] | None, assignments: Iterable[str]
) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` strings in order, then validate the result as a whole."""
    sec = get(section)
    out: dict[str, Any] = dict(value or {})
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{assignment!r}: write KEY=VALUE")
        out = set_path(out, key, raw, sec)
    return accept(sec, out, before=value)
