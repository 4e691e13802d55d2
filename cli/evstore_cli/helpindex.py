"""``evstore --help`` on a pipe, drawn without typer or rich.

typer draws the top-level help with rich (panels, a wrapped table of commands); importing
typer's rich help costs about ten times the interpreter's own start. The top-level help is
always the same document (the root's usage, its help, the global options and the commands of
``app.HELP_INDEX``), so this module lays it out as typer and rich do on a pipe: the same width
(``COLUMNS``, else 80), the same column widths (rich's rule for shrinking a table, written out
below), the same word wrapping. tests/cli/test_help_index.py compares
the two at many widths. On a terminal typer draws it, with its colours; outside the widths
tested, or with colours forced by the environment, too.
"""

import os
import sys

TYPE_CHECKING = False  # (not typing's: this module is on the fast path of --help)
if TYPE_CHECKING:
    from collections.abc import Sequence

USAGE = "Usage: evstore [OPTIONS] COMMAND [ARGS]..."
# the root's own help (shell.HELP) and its options, as typer lists them; the test compares
ROOT_HELP = "Peer-to-peer configuration store for fleets of machines (cluster, group, machine)."
OPTIONS: "tuple[tuple[str, str, str], ...]" = (
    ("--home", "<path>", "The node's home folder (or EVSTORE_HOME)."),
    ("--user", "<str>", "Acting user (default admin)."),
    ("--passphrase-file", "<path>", "File whose first line is the passphrase."),
    ("--version", "", "Print the version and exit."),
    ("--install-completion", "", "Install completion for the current shell."),
    ("--show-completion", "", "Show completion for the current shell, to copy it or "
                                "customize the installation."),
    ("--help", "", "Show this message and exit."),
)
# the widths at which the layout is compared with typer's (tests/cli/test_help_index.py)
WIDTHS = range(60, 241)
# with one of these set, rich or typer draw colours or take another width
_FORCING = ("FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS", "TTY_COMPATIBLE", "TTY_INTERACTIVE",
            "TERMINAL_WIDTH", "NO_COLOR", "TYPER_RICH_MARKUP_MODE", "_TYPER_FORCE_DISABLE_TERMINAL")


def piped_width() -> "int | None":
    """The width typer draws its help at on this stdout, when that is a pipe this module
    draws for; None when typer must draw it."""
    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):
        return None
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    if tty or encoding != "utf8" or any(k in os.environ for k in _FORCING):
        return None
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() else 80
    return width if width in WIDTHS else None


def render(commands: "Sequence[tuple[str, str]]", width: int) -> str:
    """The whole top-level help at ``width`` columns, as typer prints it on a pipe."""
    blank = " " * width
    out = [blank, _padded(USAGE, width), blank]
    out += [_padded(line, width) for line in wrap(ROOT_HELP, width - 2)]
    out.append(blank)
    out += _panel("Options", _options_rows(width - 4), width)
    out += _panel("Commands", _command_rows(commands, width - 4), width)
    return "\n".join(out) + "\n\n"


def _padded(text: str, width: int) -> str:
    return " " + text.ljust(width - 2) + " "


def _panel(title: str, rows: "list[str]", width: int) -> "list[str]":
    top = "╭─ " + title + " " + "─" * (width - len(title) - 5) + "╮"
    return [top, *("│ " + r + " │" for r in rows), "╰" + "─" * (width - 2) + "╯"]


# ---------------------------------------------------------------------- the two tables


def _options_rows(inner: int) -> "list[str]":
    """The options table: long name, short name, secondary long and short names (all empty
    here), the value's type, the help; one space between columns, none at the edges, and
    narrower columns as rich shrinks a table wider than ``inner``; a narrower one is not
    stretched (the panel pads it)."""
    cells = [[long, "", "", "", kind, text] for long, kind, text in OPTIONS]
    pads = [(0, 1), (1, 1), (1, 1), (1, 1), (1, 1), (1, 0)]
    widths = [max(len(r[i]) for r in cells) + sum(pads[i]) for i in range(6)]
    widths[5] += 1  # typer's help cell ends with a space (help and default, joined)
    if sum(widths) > inner:
        widths = _collapse(widths, inner)
    return [r.ljust(inner) for r in _table(cells, widths, pads)]


def _command_rows(commands: "Sequence[tuple[str, str]]", inner: int) -> "list[str]":
    """The commands table: the names at the width of the longest, the help in the rest."""
    first = max(len(name) for name, _ in commands) + 1
    cells = [[name, text] for name, text in commands]
    return _table(cells, [first, inner - first], [(0, 1), (1, 0)])


def _table(cells: "list[list[str]]", widths: "list[int]",
           pads: "Sequence[tuple[int, int]]") -> "list[str]":
    out: list[str] = []
    for row in cells:
        columns = [wrap(text, w - sum(p)) for text, w, p in zip(row, widths, pads, strict=True)]
        for i in range(max(len(c) for c in columns)):
            out.append("".join(
                " " * p[0] + (c[i] if i < len(c) else "").ljust(w - sum(p)) + " " * p[1]
                for c, w, p in zip(columns, widths, pads, strict=True)))
    return out


# ---------------------------------------------------------------------- rich's rules


def _collapse(widths: "list[int]", limit: int) -> "list[int]":
    """Shrink the widest column(s) until the table fits, never below the next widest, as rich
    narrows a table whose columns may wrap."""
    widths = list(widths)
    while sum(widths) > limit:
        top = max(widths)
        second = max((w for w in widths if w != top), default=0)
        if top == second:
            break
        ratios = [1 if w == top else 0 for w in widths]
        widths = _reduce(sum(widths) - limit, ratios, min(sum(widths) - limit, top - second),
                         widths)
    return widths


def _reduce(total: int, ratios: "list[int]", most: int, values: "list[int]") -> "list[int]":
    """Take ``total`` from ``values`` in proportion to ``ratios``, at most ``most`` each."""
    left, weight, out = total, sum(ratios), []
    for ratio, value in zip(ratios, values, strict=True):
        if ratio and weight > 0:
            taken = min(most, round(ratio * left / weight))
            out.append(value - taken)
            left, weight = left - taken, weight - ratio
        else:
            out.append(value)
    return out


def wrap(text: str, width: int) -> "list[str]":
    """Greedy word wrapping as rich wraps text: each line of ``text`` on its own, a word
    that does not fit starts a new line, a word longer than a line is cut."""
    out: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            if not word:
                continue
            if line and len(line) + 1 + len(word) <= width:
                line += " " + word
                continue
            if line:
                out.append(line)
            while len(word) > width:
                out.append(word[:width])
                word = word[width:]
            line = word
        out.append(line)
    return out
