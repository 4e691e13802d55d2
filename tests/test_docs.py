"""Docs that cannot drift: every command of the CLI is documented in docs/cli.md, and the
README opens with exactly the two set-up commands."""

from __future__ import annotations

from pathlib import Path

import typer

from evstore_cli.app import app

ROOT = Path(__file__).resolve().parents[1]


def _commands(t: typer.Typer, prefix: str = "evstore") -> list[str]:
    out = []
    for c in t.registered_commands:
        name = c.name or (c.callback.__name__ if c.callback else "")
        out.append(f"{prefix} {name.replace('_', '-')}")
    for g in t.registered_groups:
        if g.typer_instance is not None and prefix == "evstore":
            out.append(f"{prefix} {g.name}")
    return out


def test_every_command_is_documented() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    missing = [c for c in _commands(app) if c not in text and c != "evstore clear"]
    assert not missing, f"document these in docs/cli.md: {missing}"


def test_every_command_has_help() -> None:
    for c in app.registered_commands:
        assert c.callback is not None and (c.help or c.callback.__doc__), c.name


def test_readme_opens_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[0] == "```sh"
    assert lines[1].startswith("make demo") and lines[2].startswith("make test")
    assert lines[3] == "```"
