"""The tables `status`, `show` and the other commands print on a pipe are drawn without rich
(cli/evstore_cli/plain.py): they must be exactly the characters rich draws there."""

from __future__ import annotations

import io
import sys
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evstore_cli import plain

ASCII = st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=12)
ANY = st.text(max_size=6)


def rich_piped(title: str | None, columns: list[str], rows: list[list[Any]]) -> str:
    """What output.table printed with rich before: the console of a pipe, 4,096 columns."""
    t = Table(title=escape(plain.printable(title)) if title else None, show_lines=False,
              show_header=any(columns))
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*["" if v is None else escape(plain.printable(str(v))) for v in r])
    out = io.StringIO()
    Console(file=out, highlight=False, soft_wrap=True, emoji=False, width=plain.PIPED_WIDTH,
            force_terminal=False).print(t)
    return out.getvalue()


@st.composite
def tables(draw: Any, text: Any = ASCII) -> tuple[str | None, list[str], list[list[Any]]]:
    n = draw(st.integers(1, 5))
    headed = draw(st.booleans())
    columns = [draw(st.from_regex(r"[a-z][a-z /]{0,10}", fullmatch=True)) if headed else ""
               for _ in range(n)]
    cell = st.one_of(text, st.none(), st.integers(-10**6, 10**6))
    rows = draw(st.lists(st.lists(cell, min_size=n, max_size=n), max_size=6))
    title = draw(st.one_of(st.none(), st.from_regex(r"[a-z][a-z ]{0,20}", fullmatch=True)))
    return title, columns, rows


@settings(deadline=None)
@given(tables())
def test_ascii_tables_are_drawn_as_rich_draws_them(t: tuple[Any, Any, Any]) -> None:
    title, columns, rows = t
    mine = plain.table_text(title, columns, rows)
    if mine is not None:  # None: a tab or line break, which rich lays out itself
        assert mine == rich_piped(title, columns, rows)


@settings(deadline=None)
@given(tables(ANY))
def test_any_text_is_drawn_as_rich_draws_it_or_left_to_rich(t: tuple[Any, Any, Any]) -> None:
    title, columns, rows = t
    mine = plain.table_text(title, columns, rows)
    assert mine is None or mine == rich_piped(title, columns, rows)


def test_the_tables_the_commands_print() -> None:
    status = [["hostname", "lab1"], ["cluster", "(standalone)"], ["pending / held / forks",
                                                                  "0 / 0 / 0"]]
    peers = [["lab2", "127.0.0.2:2222", "up", "2026-12-08T00:00:00Z", 3], ["lab3", "", "down",
                                                                             None, None]]
    for title, columns, rows in ((None, ["", ""], status),
                                 ("peers", ["hostname", "address", "state", "last seen",
                                            "clock offset ms"], peers),
                                 ("empty", ["a"], [])):
        assert plain.table_text(title, columns, rows) == rich_piped(title, columns, rows)


def test_stored_control_characters_are_escaped_as_before() -> None:
    rows = [["evil\x1b[2Jname", "\u202eabc"]]
    text = plain.table_text(None, ["", ""], rows)
    assert text is None or "\x1b" not in text
    assert "\\x1b[2Jname" in rich_piped(None, ["", ""], rows)


def test_a_terminal_or_forced_colours_go_to_rich(monkeypatch: Any) -> None:
    class Tty(io.StringIO):
        encoding = "utf-8"

        def isatty(self) -> bool:
            return True

    class Pipe(Tty):
        def isatty(self) -> bool:
            return False

    assert not plain._piped(Tty())
    assert plain._piped(Pipe())
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert not plain._piped(Pipe())
    assert not plain._piped(sys.stdin) or not sys.stdin.isatty()
