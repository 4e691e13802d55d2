"""Canonical encoding of values: the exact bytes that are hashed and signed.

A value is JSON without floats: ``None``, ``bool``, ``int`` (64-bit signed), ``str``, ``list``
and ``dict`` with ``str`` keys. The encoding is JSON text with no insignificant whitespace,
object keys sorted by their UTF-8 bytes and unique, strings as raw UTF-8 with only ``"``,
``\\`` and the control characters U+0000..U+001F escaped (as ``\\u00xx``, lower-case hex),
integers in shortest decimal form. Floats are refused: they do not round-trip exactly
everywhere. ``decode`` accepts only bytes that ``encode`` would produce (it re-encodes and
compares), so one value has exactly one encoding. docs/format.md is the byte-level spec.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from typing import Any

from evstore.core.errors import EncodingError

orjson: Any
try:  # an optional accelerator: it writes the same bytes (see ``_fast_bytes``)
    orjson = importlib.import_module("orjson")
except ImportError:  # pragma: no cover - depends on the installation
    orjson = None

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
MAX_DEPTH = 64

Value = Any  # None | bool | int | str | list[Value] | dict[str, Value]


# The json module's C encoder, built once, for the fast paths of ``encode`` and ``decode``.
_C_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode



def _json_module_bytes(v: Value) -> bytes | None:
    text = _C_ENCODE(v)
    if "\\" in text:
        return None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return None


def _orjson_bytes() -> Callable[[Value], bytes | None]:
    dumps, sort = orjson.dumps, orjson.OPT_SORT_KEYS

    def fast(v: Value) -> bytes | None:
        try:
            out: bytes = dumps(v, option=sort)
        except TypeError:  # orjson.JSONEncodeError: a lone surrogate, too deep...
            return None
        return None if b"\\" in out else out

    return fast


_fast_bytes: Callable[[Value], bytes | None] = (
    _json_module_bytes if orjson is None else _orjson_bytes()
)
"""The canonical bytes of a value ``_plain`` accepts, or None: then ``_enc`` decides.

Both encoders behind it (orjson when installed, else the json module's C encoder) write, for
those exact types, JSON with no whitespace, keys sorted by code point (the order of their
UTF-8 bytes), strings as raw UTF-8 and integers in shortest form: the canonical text, unless
a string needed an escape. They escape some control characters differently from the
canonical form (``\\n`` where it writes ``\\u000a``), so any backslash in the output sends the
value the slow way; so does anything they refuse (a lone surrogate)."""

_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\\ud800-\udfff]')


def _escape(s: str) -> str:
    if _NEEDS_ESCAPE.search(s) is None:  # the common case: nothing to escape
        return '"' + s + '"'
    out = []
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif o < 0x20:
            out.append(f"\\u{o:04x}")
        elif 0xD800 <= o <= 0xDFFF:
            raise EncodingError("string holds a lone surrogate; use valid Unicode text")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _enc(v: Value, parts: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise EncodingError(f"value nested deeper than {MAX_DEPTH} levels")
    if v is None:
        parts.append("null")
    elif v is True:
        parts.append("true")
    elif v is False:
        parts.append("false")
    elif isinstance(v, int):
        if not INT_MIN <= v <= INT_MAX:
            raise EncodingError(f"integer {v} is outside the signed 64-bit range")
        parts.append(str(int(v)))
    elif isinstance(v, str):
        parts.append(_escape(v))
    elif isinstance(v, (list, tuple)):
        parts.append("[")
        for i, item in enumerate(v):
            if i:
                parts.append(",")
            _enc(item, parts, depth + 1)
        parts.append("]")
    elif isinstance(v, dict):
        keys = list(v.keys())
        for k in keys:
            if not isinstance(k, str):
                raise EncodingError(f"object key {k!r} is not a string")
        parts.append("{")
        for i, k in enumerate(sorted(keys, key=lambda s: s.encode("utf-8", "surrogatepass"))):
            if i:
                parts.append(",")
            parts.append(_escape(k))
            parts.append(":")
            _enc(v[k], parts, depth + 1)
        parts.append("}")
    elif isinstance(v, float):
        raise EncodingError("floating-point numbers are not allowed; use an integer or a string")
    else:
        raise EncodingError(f"cannot encode a value of type {type(v).__name__}")


def _plain(v: Value, depth: int) -> bool:
    """Only the exact types ``encode`` takes, ints in range, str keys, bounded depth?

    Leaves are checked in the loops, not by a call each: most values are leaves, and this
    runs on every event written."""
    t = type(v)
    if t is str or t is bool or v is None:
        return True
    if t is int:
        return bool(INT_MIN <= v <= INT_MAX)
    if depth >= MAX_DEPTH:
        return False
    if t is dict:
        for k in v:
            if type(k) is not str:
                return False
        items = v.values()
    elif t is list:
        items = v
    else:
        return False
    for x in items:
        tx = type(x)
        if tx is str or tx is bool or x is None:
            continue
        if tx is int:
            if not INT_MIN <= x <= INT_MAX:
                return False
        elif not _plain(x, depth + 1):
            return False
    return True


def encode(v: Value) -> bytes:
    """The canonical bytes of ``v``."""
    if _plain(v, 0):
        out = _fast_bytes(v)
        if out is not None:
            return out
    parts: list[str] = []
    _enc(v, parts, 0)
    return "".join(parts).encode("utf-8")


def _no_float(s: str) -> Any:
    raise EncodingError("floating-point numbers are not allowed; use an integer or a string")


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise EncodingError(f"object key {k!r} appears twice")
        out[k] = v
    return out


def _bad_constant(s: str) -> Any:
    raise EncodingError(f"{s} is not allowed")


def loads_json(text: str | bytes) -> Value:
    """Parse JSON text into a value, refusing floats, NaN and duplicate keys."""
    try:
        return json.loads(
            text,
            parse_float=_no_float,
            parse_constant=_bad_constant,
            object_pairs_hook=_no_dupes,
        )
    except EncodingError:
        raise
    except (ValueError, RecursionError) as e:
        raise EncodingError(f"not valid JSON: {e}") from None


# For the fast check of ``decode``: the bytes where a number token may start (",", ":", "[",
# and the start of the text) become "s", decimal digits "0", a minus sign stays, all else "."; a
# number of 19 digits or more (maybe out of the signed 64-bit range) is then a substring.
_NUMBER_SHAPE = bytes(
    0x30 if 0x30 <= b <= 0x39 else 0x73 if b in b",:[" else b if b == 0x2D else 0x2E
    for b in range(256)
)
_LONG_NUMBER = b"s" + b"0" * 19
_LONG_NEGATIVE = b"s-" + b"0" * 19
# One decoder, built once (json.loads with options builds a new one per call). It keeps the
# last of duplicate keys: the comparison with the canonical text then fails, and ``decode``
# takes the slow path, which names the duplicate.
_FAST_DECODER = json.JSONDecoder(parse_float=_no_float, parse_constant=_bad_constant)


_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
_OPENING = frozenset(b"[{")


def _nesting_bound(data: bytes) -> int:
    """At least the nesting depth of the JSON text ``data`` (brackets in strings count too)."""
    opening = data.count(b"[") + data.count(b"{")
    if opening <= MAX_DEPTH:
        return opening
    depth = deepest = 0
    for b in data.translate(None, _NOT_BRACKETS):
        if b in _OPENING:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _plainly_canonical(data: bytes, value: Value) -> bool:
    """A fast check for the common case, with the C encoder of the json module.

    Without a backslash in the bytes no string needed escaping, so the json module's output
    (sorted keys, no whitespace, raw UTF-8) is exactly ``encode``'s; the brackets bound the
    depth and no number of 19 digits or more rules out out-of-range integers. Anything else
    goes the slow way, so this can only say yes where ``encode`` would.
    """
    if b"\\" in data or _nesting_bound(data) > MAX_DEPTH:
        return False
    shape = b"s" + data.translate(_NUMBER_SHAPE)
    if _LONG_NUMBER in shape or _LONG_NEGATIVE in shape:
        return False
    return _fast_bytes(value) == data


_MISSING: Any = object()


def decode(data: bytes) -> Value:
    """Parse canonical bytes; anything ``encode`` would not produce exactly is refused."""
    try:
        value = _FAST_DECODER.decode(data.decode("utf-8"))
    except (ValueError, RecursionError, EncodingError):
        value = _MISSING
    if value is not _MISSING and _plainly_canonical(data, value):
        return value
    value = loads_json(data)  # the precise error: float, duplicate key, bad JSON…
    if encode(value) != data:
        raise EncodingError("bytes are valid JSON but not in canonical form")
    return value

