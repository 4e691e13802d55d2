"""The only place that formats output and errors, and reads passphrases and answers."""

from __future__ import annotations

import functools
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from evstore.core.errors import EvstoreError
from evstore_cli.plain import line as _line
from evstore_cli.plain import printable as printable

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

# Lines of text are written straight to the streams (plain.line), and tables on a pipe are
# drawn without rich (plain.table: the same characters); rich (about 25 ms to import) is
# loaded only for tables on a terminal and progress bars. Stored text never reaches a
# terminal raw (plain.printable, re-exported here).
_consoles: dict[str, Console] = {}


def __getattr__(name: str) -> Any:
    """``console`` and ``err_console``: the rich consoles, made on first use."""
    if name not in ("console", "err_console"):
        raise AttributeError(f"module 'evstore_cli.output' has no attribute {name!r}")
    if name not in _consoles:
        from rich.console import Console

        _consoles[name] = Console(stderr=name == "err_console", highlight=False,
                                  soft_wrap=True, emoji=False)
    return _consoles[name]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one line on stderr and return the exit to raise."""
    _line(f"error: {message}", sys.stderr)
    return typer.Exit(code)


def handled(fn: F) -> F:
    """Map the library's errors to one line on stderr and the contract's exit codes."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EvstoreError as e:
            raise fail(str(e), e.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except Exception as e:  # sqlite3's errors, without importing it for every command
            if not (isinstance(e, OSError) or type(e).__module__ == "sqlite3"):
                raise
            mapped = _storage_failure(e)
            if mapped is e:
                raise
            raise mapped from None

    return wrapper  # type: ignore[return-value]


def _storage_failure(e: BaseException) -> BaseException:
    """A full disk or a read-only home, met while writing: one line, exit 1; anything else
    is raised as it was (a bug: its traceback is wanted)."""
    import sqlite3

    from evstore.core.errors import OperationalError
    from evstore.storage import space
    from evstore_cli.global_options import GLOBAL

    where = Path(GLOBAL.home or os.environ.get("EVSTORE_HOME") or ".")
    full = space.explain(e, where)
    if full is not None:
        return fail(str(full), 1)
    if isinstance(e, sqlite3.OperationalError) and "readonly database" in str(e):
        err = OperationalError(f"the home {where} is read-only: reading works, but this "
                               "command writes; make the home writable and retry")
        return fail(str(err), 1)
    return e


HIDDEN = "(hidden)"


def hide_hashes(data: Any) -> Any:
    """A copy with every passphrase hash replaced by a marker: the CLI never prints one, as
    the web pages never show one (saveconfig's file keeps them: it is a backup)."""
    if isinstance(data, dict):
        return {k: (HIDDEN if k == "passphrase_hash" and v is not None else hide_hashes(v))
                for k, v in data.items()}
    if isinstance(data, list):
        return [hide_hashes(v) for v in data]
    return data


def emit(data: Any, as_json: bool, render: Callable[[Any], None] | None = None) -> None:
    """Exactly one JSON document with --json; otherwise the human rendering."""
    data = hide_hashes(data)
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    elif render is not None:
        render(data)
    else:
        say(json.dumps(data, indent=2, ensure_ascii=False))


def say(text: str) -> None:
    _line(text, sys.stdout)


def warn(text: str) -> None:
    _line(f"warning: {text}", sys.stderr)


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    from evstore_cli import plain

    plain.table(title, columns, rows)


def interactive() -> bool:
    return sys.stdin.isatty() and not os.environ.get("CI")


def confirm(question: str, default: bool = True) -> bool:
    if not interactive():
        return False
    return typer.confirm(question, default=default)


def read_secret_file(path: Path) -> str:
    """A passphrase file holds the passphrase on its first line, without its line ending."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise fail(f"cannot read passphrase file {path}: {e.strerror}") from None
    return text.splitlines()[0] if text else ""


def passphrase(file: Path | None, env: str = "EVSTORE_PASSPHRASE",
               prompt: str = "Passphrase", twice: bool = False) -> str | None:
    """From the file flag, else the environment, else a prompt on a terminal, else None."""
    if file is not None:
        return read_secret_file(file)
    if env in os.environ:
        return os.environ[env]
    if sys.stdin.isatty():
        first = getpass.getpass(f"{prompt}: ")
        if twice and getpass.getpass(f"{prompt} (again): ") != first:
            raise fail("the two passphrases differ")
        return first
    return None
