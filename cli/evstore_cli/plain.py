"""Text output without typer and, where it can, without rich: lines, and tables as rich draws
them when the output is not a terminal.

Scripts and monitors call ``evstore status`` and ``evstore show`` in loops with their output
piped; importing rich (about 25 ms) would cost more than the read itself. Piped, rich draws a
table in one fixed way (no styles, no wrapping: the console is 4,096 columns wide), and
:func:`table_text` writes exactly those characters, tested against rich itself
(tests/cli/test_plain_tables.py). On a terminal, or for anything rich lays out otherwise (a
character that is not ASCII, a line break inside a cell, colours forced by the environment),
:func:`table` hands the table to rich.
"""

import os
import sys

TYPE_CHECKING = False  # (not typing's: this module is on the fast path of status and show)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, TextIO

# The characters rich drops from plain text are dropped here too, so a line reads the same
# either way.
_DROPPED = dict.fromkeys(map(ord, "\x07\x08\x0b\x0c\x0d"))
# Text from stored data (names, comments, values) never reaches a terminal raw: any other
# control character (ESC starts the sequences that clear or spoof a screen), DEL, the C1
# controls and the bidi controls (which reorder what a line appears to say) are shown as
# visible escapes instead (\x1b, \u202e).
_ESCAPED = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]
            if chr(c) not in "\n\t\x07\x08\x0b\x0c\x0d"}
_ESCAPED.update({c: f"\\u{c:04x}" for c in [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F),
                                              *range(0x2066, 0x206A)]})

# rich's box.HEAVY_HEAD (a table with a header) and box.SQUARE (without one): the top, the
# header's row, the rule under the header, a row, the bottom; each as left, fill, joint, right
_HEADED = ("┏━┳┓", "┃ ┃┃", "┡━╇┩", "│ ││", "└─┴┘")
_SQUARE = ("┌─┬┐", "", "", "│ ││", "└─┴┘")
# what rich lays out itself: line breaks, tabs, and the characters of its markup
_MARKUP = frozenset("\n\t[\\")
# the width of the console rich is given when the output is not a terminal (output.table)
PIPED_WIDTH = 4096
# with one of these set, rich treats a pipe as a terminal (colours, the terminal's width)
_FORCING = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


def printable(text: str) -> str:
    """``text`` as it may be written to a terminal (see ``_ESCAPED``); newlines and tabs
    stay."""
    return text.translate(_DROPPED).translate(_ESCAPED)


def line(text: str, stream: "TextIO | None" = None) -> None:
    """One line of text, made printable, on stdout (or ``stream``), flushed."""
    out = sys.stdout if stream is None else stream
    out.write(printable(text) + "\n")
    out.flush()


def table(title: "str | None", columns: "list[str]", rows: "Sequence[Sequence[Any]]") -> None:
    """A table on stdout: drawn here when the output is piped, by rich otherwise."""
    text = table_text(title, columns, rows) if _piped(sys.stdout) else None
    if text is None:
        _rich_table(title, columns, rows)
        return
    sys.stdout.write(text)
    sys.stdout.flush()


def table_text(title: "str | None", columns: "list[str]",
               rows: "Sequence[Sequence[Any]]") -> "str | None":
    """What rich prints for this table on a piped stdout; None where rich lays it out in a way
    this module does not follow (rich must draw it)."""
    cells = [[printable(c) for c in columns]]
    cells += [["" if v is None else printable(str(v)) for v in r] for r in rows]
    head = printable(title) if title else ""
    if not _simple(head, cells, len(columns)):
        return None
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    if not any(widths) or sum(widths) + 3 * len(widths) + 1 > PIPED_WIDTH:
        return None  # an empty table rich stretches, or one wider than the console
    box = _HEADED if any(columns) else _SQUARE
    out = [head] if head else []
    out.append(_rule(box[0], widths))
    if box is _HEADED:
        out += [_row(box[1], cells[0], widths), _rule(box[2], widths)]
    out += [_row(box[3], r, widths) for r in cells[1:]]
    out.append(_rule(box[4], widths))
    return "\n".join(out) + "\n"


def _simple(title: str, cells: "list[list[str]]", count: int) -> bool:
    """Only ASCII text without tabs, line breaks or rich's markup characters (``[`` and
    ``\\``, which rich's escaping changes), every row as long as the columns."""
    texts = [title, *(c for r in cells for c in r)]
    return (count > 0 and all(len(r) == count for r in cells)
            and all(t.isascii() and not _MARKUP.intersection(t) for t in texts))


def _rule(edges: str, widths: "list[int]") -> str:
    left, fill, joint, right = edges[0], edges[1], edges[2], edges[3]
    return left + joint.join(fill * (w + 2) for w in widths) + right


def _row(edges: str, cells: "list[str]", widths: "list[int]") -> str:
    left, joint, right = edges[0], edges[2], edges[3]
    return left + joint.join(f" {c.ljust(w)} " for c, w in zip(cells, widths, strict=True)) + right


def _piped(stream: "TextIO") -> bool:
    """Is ``stream`` a pipe or a file that rich would treat as one, with UTF-8 text?"""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    return not tty and encoding == "utf8" and not any(os.environ.get(k) for k in _FORCING)


def _rich_table(title: "str | None", columns: "list[str]",
                rows: "Sequence[Sequence[Any]]") -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=escape(printable(title)) if title else None, show_lines=False,
              show_header=any(columns))
    for c in columns:
        t.add_column(c)
    for r in rows:  # stored text: no raw control characters, no rich markup
        t.add_row(*["" if v is None else escape(printable(str(v))) for v in r])
    console = Console(highlight=False, soft_wrap=True, emoji=False)
    if not console.is_terminal:  # piped: nothing is cut to an assumed 80 columns
        console = Console(highlight=False, soft_wrap=True, emoji=False, width=PIPED_WIDTH)
    console.print(t)
