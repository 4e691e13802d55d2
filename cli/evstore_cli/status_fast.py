"""``evstore status --json`` without typer: scripts and monitors call it in loops.

``main`` (app.py) hands the command line here before typer is imported. A line this module
does not recognise exactly (``--help``, the table form, an unknown or repeated-in-doubt option,
``--``) returns None and typer parses it, so both paths accept the same lines; the result is
the one ``home_cmds.status`` prints (tests/cli/test_startup.py compares them). Errors go
through ``output.handled``, imported only then.
"""

import json
import sys

TYPE_CHECKING = False  # (not typing's: this path imports neither typing nor typer)
if TYPE_CHECKING:
    from collections.abc import Sequence

_ROOT_VALUED = ("--home", "--user", "--passphrase-file")  # before the command (shell.root)
_STATUS_VALUED = ("--home", "--user")  # after it (home_cmds.status)


def parse(args: "Sequence[str]") -> "tuple[str | None, str] | None":
    """(home, user) of a plain ``status --json`` line, as typer would resolve them; None for
    any other line."""
    values: dict[str, dict[str, str]] = {"root": {}, "status": {}}
    place = "root"
    as_json = False
    rest = list(args)
    while rest:
        word = rest.pop(0)
        name, eq, inline = word.partition("=")
        valued = _ROOT_VALUED if place == "root" else _STATUS_VALUED
        if name in valued:
            if not eq:
                if not rest or rest[0].startswith("-"):
                    return None  # a missing value (or one click may read otherwise): typer
                inline = rest.pop(0)
            values[place][name] = inline  # repeated: the last one wins, as in click
        elif place == "status" and word == "--json":
            as_json = True
        elif place == "root" and word == "status":
            place = "status"
        else:
            return None
    if place != "status" or not as_json:
        return None
    # status's --home, else the root's; typer gives Path(value), and Path("") is "." (truthy)
    home = None
    if "--home" in values["status"]:
        home = values["status"]["--home"] or "."
    elif "--home" in values["root"]:
        home = values["root"]["--home"] or "."
    user = values["status"].get("--user") or values["root"].get("--user") or "admin"
    return home, user


def run(args: "Sequence[str]") -> int | None:
    """Print ``status --json``; the exit code, or None when typer must parse ``args``."""
    parsed = parse(args)
    if parsed is None:
        return None
    home, user = parsed
    from evstore_cli.consume_cmds import hide_hashes

    try:
        from pathlib import Path

        from evstore.ops.node import open_node, resolve_home

        with open_node(resolve_home(None if home is None else Path(home))) as node:
            data = node.status(user)
    except Exception as e:
        return _failed(e)
    except KeyboardInterrupt as e:
        return _failed(e)
    sys.stdout.write(json.dumps(hide_hashes(data), indent=2, sort_keys=False,
                                ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0


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
