"""The web pages over a home whose views hold a value the catalog refuses or a section it
does not know (an older home's views): the section page says the value is skipped and why,
instead of failing, and the mode's page still lists every section."""

from __future__ import annotations

from pathlib import Path

import pytest
from web_helpers import Browser

from evstore.core import admit
from evstore.ops.node import now_ms, open_node

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx`")


def _craft(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        m.setattr(admit, "_static", lambda ev: None)
        with open_node(home) as node:
            node.log.append(node.signing_key, user="admin", kind="config.commit", payload={
                "comment": "old", "changes": [
                    {"mode": "cluster", "section": "futuresection", "op": "define",
                     "base": None, "value": {"knob": 1}},
                    {"mode": "cluster", "section": "ntp", "op": "define", "base": None,
                     "value": {"servers": {"a": 1}}},
                ]}, now_ms=now_ms())


def test_pages_skip_what_the_catalog_cannot_interpret(
        browser: Browser, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _craft(home, monkeypatch)
    browser.login()
    res = browser.get("/cluster/ntp")
    assert res.status_code == 200, res.text
    assert "skipped" in res.text and "ntp.servers" in res.text
    assert '"a": 1' not in res.text
    res = browser.get("/cluster/")
    assert res.status_code == 200
