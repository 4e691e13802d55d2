"""The canonical encoding: one value, exactly one byte string, and nothing else accepted."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from evstore.core import encoding
from evstore.core.errors import EncodingError

ints = st.integers(min_value=encoding.INT_MIN, max_value=encoding.INT_MAX)
texts = st.text(st.characters(exclude_categories=["Cs"]))  # lone surrogates are not text
scalars = st.none() | st.booleans() | ints | texts
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=5),
    max_leaves=25,
)
objects = st.dictionaries(texts, values, min_size=2, max_size=6)


@given(values)
def test_round_trip(v: Any) -> None:
    assert encoding.decode(encoding.encode(v)) == v


@given(values)
def test_encoding_is_a_fixed_point(v: Any) -> None:
    raw = encoding.encode(v)
    assert encoding.encode(encoding.decode(raw)) == raw


@given(objects, st.randoms(use_true_random=False))
def test_key_insertion_order_does_not_matter(d: dict[str, Any], rnd: Any) -> None:
    items = list(d.items())
    rnd.shuffle(items)
    assert encoding.encode(dict(items)) == encoding.encode(d)


@given(values)
def test_standard_json_reads_the_same_value(v: Any) -> None:
    assert json.loads(encoding.encode(v)) == v


@given(values)
def test_pretty_printed_json_is_refused(v: Any) -> None:
    pretty = json.dumps(v, indent=1, ensure_ascii=False).encode()
    assume(pretty != encoding.encode(v))
    with pytest.raises(EncodingError):
        encoding.decode(pretty)


@given(objects)
def test_unsorted_keys_are_refused(d: dict[str, Any]) -> None:
    keys = sorted(d, key=lambda k: k.encode(), reverse=True)
    body = ",".join(
        json.dumps(k, ensure_ascii=False) + ":" + encoding.encode(d[k]).decode() for k in keys
    )
    with pytest.raises(EncodingError):
        encoding.decode(("{" + body + "}").encode())


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_are_refused_both_ways(f: float) -> None:
    with pytest.raises(EncodingError):
        encoding.encode({"x": f})
    with pytest.raises(EncodingError):
        encoding.decode(b'{"x":' + repr(f).encode() + b"}")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1,"a":2}',  # duplicate key
        b'{"a":1 }',  # whitespace
        b' {"a":1}',
        b'{"a":1}\n',
        b"1.0",
        b"1e3",
        b"-0",
        b"01",
        b"NaN",
        b"Infinity",
        b'"\\u0041"',  # escape where UTF-8 is canonical
        b'"\\/"',
        b'"\\n"',  # control characters are written \u000a, not \n
        b'"\\u001F"',  # upper-case hex
        b'"\\ud800"',  # lone surrogate
        b'"\\ud83d\\ude00"',  # a pair: canonical form is the raw UTF-8 character
        b"9223372036854775808",  # beyond signed 64-bit
        b"\xef\xbb\xbf{}",  # byte-order mark
        '{"a":1}'.encode("utf-16"),
        b'"\xff"',  # not UTF-8
        b"[" * 70 + b"]" * 70,  # deeper than MAX_DEPTH
        b"",
        b"{",
    ],
)
def test_non_canonical_bytes_are_refused(raw: bytes) -> None:
    with pytest.raises(EncodingError):
        encoding.decode(raw)


@pytest.mark.parametrize(
    "value", [1.5, {1: "x"}, {"s": {1, 2}}, b"bytes", 2**63, -(2**63) - 1, "\ud800", {"\ud800": 1}]
)
def test_unencodable_values_are_refused(value: Any) -> None:
    with pytest.raises(EncodingError):
        encoding.encode(value)


def test_deep_nesting_is_refused() -> None:
    v: Any = 0
    for _ in range(encoding.MAX_DEPTH + 1):
        v = [v]
    with pytest.raises(EncodingError):
        encoding.encode(v)


def test_pinned_bytes() -> None:
    value = {"z": [1, -2, None, True, False], "a": "é\"\\\x01\x7f", "é": {}, "B": ""}
    assert encoding.encode(value) == (
        b'{"B":"","a":"\xc3\xa9\\"\\\\\\u0001\x7f","z":[1,-2,null,true,false],"\xc3\xa9":{}}'
    )


def test_keys_sort_by_utf8_bytes_not_utf16_units() -> None:
    # UTF-16 (JavaScript's string order) puts U+1F600 (a surrogate pair, d83d…) before U+FF61;
    # UTF-8 bytes (ef bd a1 < f0 9f 98 80), like code points, put U+FF61 first.
    raw = encoding.encode({"\U0001f600": 1, "\uff61": 2})
    assert raw.index("\uff61".encode()) < raw.index("\U0001f600".encode())


def _slow(v: Any) -> bytes:
    parts: list[str] = []
    encoding._enc(v, parts, 0)
    return "".join(parts).encode("utf-8")


FAST_ENCODERS = [pytest.param(encoding._json_module_bytes, id="json-module")]
if encoding.orjson is not None:
    FAST_ENCODERS.append(pytest.param(encoding._orjson_bytes(), id="orjson"))


@pytest.mark.parametrize("fast", FAST_ENCODERS)
@given(v=values | objects)
def test_fast_encoders_write_the_canonical_bytes_or_step_aside(fast: Any, v: Any) -> None:
    # Whichever encoder is installed, the fast path writes exactly the slow path's bytes, or
    # declines (an escape was needed) and leaves the value to the slow path.
    out = fast(v)
    assert out is None or out == _slow(v)
    assert encoding.encode(v) == _slow(v)


@pytest.mark.parametrize("fast", FAST_ENCODERS)
@pytest.mark.parametrize("value", ["\ud800", {"\udfff": 1}, "a\nb", "\x7f\u2028é", {"\U0001f600": 1, "\uff61": 2}])
def test_fast_encoders_on_edge_strings(fast: Any, value: Any) -> None:
    try:
        expected: bytes | None = _slow(value)
    except EncodingError:
        expected = None
    out = fast(value)
    assert out is None or out == expected
