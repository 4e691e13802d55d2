"""The only place that formats output and errors, and reads passphrases and answers."""

from __future__ import annotations

import functools
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from evstore.core.errors import EvstoreError

console = Console(highlight=False, soft_wrap=True, emoji=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one line on stderr and return the exit to raise."""
    err_console.print(f"error: {message}", markup=False)
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

    return wrapper  # type: ignore[return-value]


def emit(data: Any, as_json: bool, render: Callable[[Any], None] | None = None) -> None:
    """Exactly one JSON document with --json; otherwise the human rendering."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    elif render is not None:
        render(data)
    else:
        console.print(json.dumps(data, indent=2, ensure_ascii=False), markup=False)


def say(text: str) -> None:
    console.print(text, markup=False)


def warn(text: str) -> None:
    err_console.print(f"warning: {text}", markup=False)


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title, show_lines=False, show_header=any(columns))
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    console.print(t)


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
