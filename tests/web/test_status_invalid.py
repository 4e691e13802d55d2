"""The web status page names inadmissible events (issue 15, item 1): an alert and a count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evstore.ops.node import open_node
from evstore.web import auth_pages

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx`")


@pytest.fixture(autouse=True)
def _no_failure_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_pages, "FAILURE_DELAY_S", 0.0)


def test_status_page_shows_inadmissible_events(home: Path, browser: Any) -> None:
    with open_node(home) as node:  # signed with a member's key, in the name of nobody
        node.append("nobody", "config.commit", {"comment": "", "changes": [
            {"mode": "cluster", "section": "dns", "op": "define", "base": None,
             "value": {"servers": ["6.6.6.6"]}}]})
    browser.login()
    page = browser.get("/status").text
    assert "inadmissible" in page and "1 inadmissible event(s)" in page
    assert "6.6.6.6" not in browser.get("/cluster/dns").text
