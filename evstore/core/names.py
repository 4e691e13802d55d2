"""The one rule for every name that is shown: users, the cluster, groups, hostnames and
pre-shared join entries.

Names reach terminals (tables, ``status``), web pages and URLs (``/group/NAME/``), so they are
held to the user-name rule of the catalog (``catalog.USERNAME``): 1 to 64 characters, letters,
digits and ``_ . @ -``, not starting with ``.``, ``@`` or ``-``. That keeps out what did harm:
escape sequences (they clear or spoof the operator's terminal when a name is listed), bidi
overrides (they reorder what a line appears to say) and ``/`` (it clashes with the URLs).
The refusal says which character was the trouble.
"""

from __future__ import annotations

import re
import unicodedata

from evstore.core.errors import InvalidInput

__all__ = ["MAX_NAME", "check"]

MAX_NAME = 64
_RULE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*")
_RULE_TEXT = ("letters, digits and _ . @ - (at most 64, not starting with . @ or -)")
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check(name: str, what: str) -> None:
    """Refuse ``name`` (a ``what`` name: "group", "cluster", "host"…) unless it follows the
    rule; the message names the offending character."""
    if _RULE.fullmatch(name) and len(name) <= MAX_NAME:
        return
    raise InvalidInput(f"{_shown(name)} is not a usable {what} name: {_why(name)}; use "
                       f"{_RULE_TEXT}")


def _why(name: str) -> str:
    if not name:
        return "it is empty"
    if len(name) > MAX_NAME:
        return f"it is {len(name)} characters long"
    for c in name:
        if c == "\x1b":
            return "it holds an escape character (an escape sequence can clear or spoof a terminal)"
        if c in _BIDI:
            return (f"it holds the bidi control U+{ord(c):04X} (it reorders how text is "
                    "displayed)")
        if unicodedata.category(c).startswith("C"):
            return f"it holds the control character U+{ord(c):04X}"
        if c == "/":
            return "it holds '/' (names are parts of the pages' addresses)"
        if c.isspace():
            return "it holds a space"
    if name[0] in ".@-":
        return f"it starts with {name[0]!r}"
    bad = next((c for c in name if not _RULE.fullmatch(c) and c not in ".@-"), "?")
    return f"it holds {bad!r}"


def _shown(name: str) -> str:
    """The name quoted with every unusual character escaped, safe to print anywhere."""
    out = "".join(c if c.isprintable() and c not in _BIDI else f"\\u{ord(c):04x}"
                  for c in name[:80])
    return f"'{out}'" if len(name) <= 80 else f"'{out}…'"
