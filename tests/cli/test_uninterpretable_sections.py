"""Issue 15, item 1's follow-up: a home whose views hold what the catalog cannot interpret (a
section it does not know, a value it refuses: an older home's views, or a newer member's) is
still usable. ``delete`` removes the unknown section; ``saveconfig``, ``loadconfig`` and
``show`` skip such parts and say so instead of failing."""

from __future__ import annotations

from pathlib import Path

import pytest

from evstore.core import admit
from evstore.ops.node import now_ms, open_node
from tests.cli.conftest import Cli

FUTURE = "futuresection"


def _craft(home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Put an unknown section and a refused dns value in the views, as a home built before
    the admissibility rule (or by a newer catalog) holds them: the rule is off while the
    event is applied. Returns the machine's display mode."""
    with monkeypatch.context() as m:
        m.setattr(admit, "_static", lambda ev: None)
        with open_node(home) as node:
            mode = f"machine:{node.mid}"
            node.log.append(node.signing_key, user="admin", kind="config.commit", payload={
                "comment": "old", "changes": [
                    {"mode": mode, "section": FUTURE, "op": "define", "base": None,
                     "value": {"knob": 1}},
                    {"mode": mode, "section": "dns", "op": "define", "base": None,
                     "value": {"servers": {"a": 1}}},
                ]}, now_ms=now_ms())
            assert node.store.section_value(mode, FUTURE) == {"knob": 1}
            return node.to_display(mode)


def test_delete_removes_a_section_the_catalog_does_not_know(
        cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    home = cli.init("old")
    mode = _craft(home, monkeypatch)
    staged = cli(home, "delete", FUTURE, "--json")
    assert staged["mode"] == mode
    cli(home, "commit")
    with open_node(home) as node:
        assert node.store.section_value(f"machine:{node.mid}", FUTURE) is None
        assert node.conn.execute("SELECT count(*) FROM inadmissible").fetchone()[0] == 0
    # only a removal: anything else of an unknown section is still refused (exit 2)
    res = cli(home, "set", FUTURE, "knob=2", code=2)
    assert "unknown section" in res.stderr
    res = cli(home, "delete", FUTURE, code=2)  # gone: a name the catalog does not know
    assert "unknown section" in res.stderr
    res = cli(home, "delete", "ntp", code=2)  # known, defined nowhere here
    assert "not defined" in res.stderr


def test_a_removal_of_an_unknown_section_is_admissible_and_nothing_else() -> None:
    assert admit.section_op_reason(FUTURE, "delete") is None
    assert admit.section_op_reason(FUTURE, "define") is not None
    assert admit.section_op_reason("Bad Name\x1b", "delete") is not None
    assert admit.section_op_reason("dns", "patch") is None


def test_saveconfig_loadconfig_and_show_skip_what_they_cannot_interpret(
        cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = cli.init("old")
    mode = _craft(home, monkeypatch)
    out = tmp_path / "saved.xml"
    saved = cli(home, "saveconfig", str(out), "--json")
    assert sorted((s["section"], s["mode"]) for s in saved["skipped"]) == \
        [("dns", mode), (FUTURE, mode)]
    text = out.read_text()
    assert FUTURE not in text and '"a":1' not in text and "hostname" in text
    res = cli(home, "saveconfig", str(out))
    assert "skipped futuresection" in res.stderr and "skipped dns" in res.stderr

    # a good file loads although the home holds an unknown section (left, and reported)
    loaded = cli(home, "loadconfig", str(out), "--machine", "old", "--json")
    assert [(s["section"], s["mode"]) for s in loaded["skipped"]] == [(FUTURE, mode)]
    assert any(s["section"] == "dns" for s in loaded["staged"])  # the refused value: replaced
    cli(home, "commit")
    assert cli(home, "show", "dns", "--json")["defined"] is False

    shown = cli(home, "show", FUTURE, "--json")
    assert shown["skipped"][0]["mode"] == mode and "unknown section" in \
        shown["skipped"][0]["reason"]
    assert "skipped" in cli(home, "show", FUTURE).stdout
    cli(home, "show", "nosuchsection", code=2)


def test_show_skips_a_value_the_catalog_refuses(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    home = cli.init("old")
    mode = _craft(home, monkeypatch)
    shown = cli(home, "show", "dns", "--mode", mode, "--json")
    assert shown["settings"] is None and "dns.servers" in shown["skipped"]
    eff = cli(home, "show", "dns", "--effective", "--json")
    assert eff["settings"] is None and "dns.servers" in eff["skipped"]
