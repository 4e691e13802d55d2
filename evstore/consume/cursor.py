"""Cursors: a position in one home's feed, as ``TAG-ID`` (see evstore/consume/config.py).

Below both the reader (config.py, which gives a watch's start) and the follower
(watching.py, which stamps each change and checks a start it is given), so neither imports
the other for them. Imports only the standard library and the core's errors: ``evstore get``
loads it.
"""

from __future__ import annotations

from evstore.core.errors import InvalidInput

__all__ = ["format_cursor", "parse_cursor"]


def format_cursor(tag: str | None, position: int) -> str:
    return f"{tag or 'none'}-{position}"


def parse_cursor(text: str, tag: str | None) -> int:
    """The position a cursor names on this home; ``InvalidInput`` for one it never issued."""
    prefix, sep, digits = text.strip().rpartition("-")
    if not sep or not digits.isdigit() or not prefix:
        raise InvalidInput(f"{text!r} is not a cursor (a cursor looks like "
                           f"{format_cursor(tag, 42)!r}: use one that watch printed)")
    if prefix != (tag or "none"):
        raise InvalidInput(f"the cursor {text!r} was not issued by this home (its cursors "
                           f"start with {(tag or 'none') + '-'!r})")
    return int(digits)
