"""The fast canonical check in ``decode`` accepts exactly what the reference encoder would."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from evstore.core import encoding
from evstore.core.errors import EncodingError

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**64), 2**64),
                    st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)),
    max_leaves=20)


def _reference_accepts(data: bytes) -> bool:
    try:
        value = encoding.loads_json(data)
        return encoding.encode(value) == data
    except (EncodingError, UnicodeDecodeError):
        return False


def _decode_accepts(data: bytes) -> bool:
    try:
        encoding.decode(data)
        return True
    except (EncodingError, UnicodeDecodeError):
        return False


@settings(max_examples=400, deadline=None)
@given(value=values, sort=st.booleans(), ascii_=st.booleans(), spaced=st.booleans())
def test_fast_path_agrees_with_the_reference(value: object, sort: bool, ascii_: bool,
                                             spaced: bool) -> None:
    seps = (", ", ": ") if spaced else (",", ":")
    try:
        data = json.dumps(value, sort_keys=sort, ensure_ascii=ascii_, separators=seps).encode()
    except (UnicodeEncodeError, ValueError):
        return
    assert _decode_accepts(data) == _reference_accepts(data)
