"""``evstore status`` and ``evstore show SECTION ...`` (the JSON and the text forms) without
typer: scripts and monitors call them in loops.

``main`` (app.py) hands the command line here before typer is imported. A line this module
does not recognise exactly (``--help``, the table form, an unknown option, a missing value,
``--``) returns None and typer parses it, so both paths accept the same lines. The documents
are those the typer commands print (``Node.status``; ``reads.show``, which settings_cmds.show
calls too), and so is the text (``reads.render_status``, ``reads.render_show``, drawn without
rich when piped: plain.py); tests/cli/test_startup.py compares them. Errors go through ``output.handled``,
imported only then.
"""

import json
import sys

TYPE_CHECKING = False  # (not typing's: this path imports neither typing nor typer)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

_ROOT_VALUED = ("--home", "--user", "--passphrase-file")  # before the command (shell.root)
# each command's own options (home_cmds.status, settings_cmds.show)
_VALUED = {"status": ("--home", "--user"),
           "show": ("--home", "--user", "--mode", "--machine")}
_FLAGS = {"status": ("--json",), "show": ("--json", "--effective")}


class Line:
    """A plain command line, resolved as typer would resolve it."""

    def __init__(self, command: str, options: "dict[str, str]", root: "dict[str, str]",
                 flags: "set[str]", words: "list[str]") -> None:
        self.command = command
        self.words = words
        self.flags = flags
        self.options = options
        # the command's --home, else the root's; typer gives Path(value), and Path("") is "."
        self.home: str | None = None
        if "--home" in options:
            self.home = options["--home"] or "."
        elif "--home" in root:
            self.home = root["--home"] or "."
        # `user or GLOBAL.user`, where GLOBAL.user is the root's --user or admin
        self.user: str = options.get("--user") or root.get("--user") or "admin"


def parse(args: "Sequence[str]") -> "Line | None":
    """A plain ``status [--json]`` or ``show SECTION [options] [--json]`` line; None for any
    other line (typer answers it)."""
    root: dict[str, str] = {}
    options: dict[str, str] = {}
    flags: set[str] = set()
    words: list[str] = []
    command = ""
    rest = list(args)
    while rest:
        word = rest.pop(0)
        name, eq, inline = word.partition("=")
        valued = _VALUED[command] if command else _ROOT_VALUED
        if name in valued:
            if not eq:
                if not rest or rest[0].startswith("-"):
                    return None  # a missing value (or one click may read otherwise): typer
                inline = rest.pop(0)
            (options if command else root)[name] = inline  # repeated: the last one wins
        elif command and word in _FLAGS[command]:
            flags.add(word)
        elif word.startswith("-"):
            return None  # --help, --, an unknown option: typer's turn
        elif command:
            if command == "status" or words:
                return None  # an extra argument: typer's error
            words.append(word)
        elif word in _VALUED:
            command = word
        else:
            return None
    if not command or (command == "show" and len(words) != 1):
        return None
    return Line(command, options, root, flags, words)


def run(args: "Sequence[str]") -> int | None:
    """Print the command's document; the exit code, or None when typer must parse ``args``."""
    line = parse(args)
    if line is None:
        return None
    from evstore_cli import reads
    from evstore_cli.consume_cmds import hide_hashes

    try:
        data, skipped = _document(line)
    except Exception as e:
        return _failed(e)
    except KeyboardInterrupt as e:
        return _failed(e)
    data = hide_hashes(data)
    if "--json" in line.flags:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    elif line.command == "status":
        reads.render_status(data)
    else:
        (reads.render_skipped if skipped else reads.render_show)(data)
    return 0


def _document(line: Line) -> "tuple[Any, bool]":
    """The command's document, and whether it is show's skipped-parts form."""
    from pathlib import Path

    home = None if line.home is None else Path(line.home)
    if line.command == "show":
        from evstore_cli import reads

        return reads.show(home, line.user, line.words[0], line.options.get("--mode"),
                          "--effective" in line.flags, line.options.get("--machine"))
    from evstore.ops.node import open_node, resolve_home

    with open_node(resolve_home(home)) as node:
        return node.status(line.user), False


def _failed(error: BaseException) -> int:
    """The typer path's handling of ``error`` (one line on stderr, the contract's code)."""
    from evstore_cli.output import handled

    def again() -> None:
        raise error

    try:
        handled(again)()
    except Exception as e:
        code = getattr(e, "exit_code", None)
        if isinstance(code, int):  # typer.Exit: the line was printed
            return code
        raise
    return 0  # pragma: no cover - handled() always raises here
