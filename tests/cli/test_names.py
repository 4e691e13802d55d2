"""Names reach terminals and URLs (issue 15, item 7).

Before: a group name could hold an escape sequence (listing the groups then cleared or spoofed
the operator's terminal), a bidi override or '/' (which clashes with ``/group/NAME/``). Now
every shown name follows the user-name rule, and text printed from stored data never carries
raw control characters.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evstore.core import names
from evstore.core.errors import InvalidInput
from evstore.ops import settings
from evstore.ops.node import init_home, open_node
from evstore_cli.output import printable
from tests.cli.conftest import Cli

BAD = ["evil\x1b[2J\x1b[H", "admin\u202etxt.exe", "a/b", "two words", "", "-dash",
       "x" * 65, "bell\x07"]


@pytest.mark.parametrize("name", BAD, ids=range(len(BAD)))
def test_names_outside_the_rule_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="is not a usable group name") as err:
        names.check(name, "group")
    assert "\x1b" not in str(err.value) and "\u202e" not in str(err.value)


def test_the_rule_is_the_user_name_rule() -> None:
    for good in ("Main_Group", "paris-2", "lab1.example.org", "ops@site"):
        names.check(good, "group")


def test_addgroup_create_prepjoin_and_init_refuse_bad_names(cli: Cli, tmp_path: Path) -> None:
    home = cli.init("lab1")
    res = cli(home, "clusterconfig", "create", "co\x1b[31m", code=2)
    assert "escape character" in res.stderr and "\x1b" not in res.stderr
    cli(home, "clusterconfig", "create", "Co")
    res = cli(home, "clusterconfig", "addgroup", "evil\x1b[2J", code=2)
    assert "escape character" in res.stderr and "\x1b" not in res.stderr
    res = cli(home, "clusterconfig", "addgroup", "a/b", code=2)
    assert "'/'" in res.stderr
    res = cli(home, "clusterconfig", "addgroup", "x\u202eop", code=2)
    assert "U+202E" in res.stderr
    res = cli(home, "clusterconfig", "prepjoin", "new", "h\x1bx", "S9", "00" * 32, code=2)
    assert "escape character" in res.stderr
    with pytest.raises(InvalidInput, match="not a usable host name"):
        init_home(tmp_path / "h2", hostname="bad\x1b[2Jhost", passphrase="pw-for-tests")
    assert not (tmp_path / "h2" / "evstore.db").exists()


def test_stored_text_reaches_the_terminal_escaped(cli: Cli) -> None:
    """A commit comment is free text: it is stored as written, and printed escaped."""
    home = cli.init("lab1")
    with open_node(home) as node:
        settings.stage_set(node, "admin", node.to_internal("machine:lab1"), "dns",
                           ['servers=["192.0.2.1"]'])
        settings.commit(node, "admin", "fine\x1b[2J\x1b[Hspoofed \u202eevil")
    out = cli(home, "audit").stdout
    assert "\x1b" not in out and "\u202e" not in out
    assert "\\u202e" in out  # shown as a visible escape (the table may wrap the rest)


def test_printable_keeps_lines_and_tabs() -> None:
    assert printable("a\tb\nc") == "a\tb\nc"
    assert printable("\x1b[31mred\x9b") == "\\x1b[31mred\\x9b"
