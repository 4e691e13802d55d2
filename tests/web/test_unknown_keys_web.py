"""The web page's "stage these settings" refuses unknown keys like every other way in (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest
from web_helpers import Browser

from evstore.ops import settings
from evstore.ops.node import open_node

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx`")


def test_a_typo_in_a_key_is_refused_naming_the_nearest(browser: Browser, home: Path) -> None:
    browser.login()
    res = browser.post("/cluster/dns", "/cluster/dns/edit", {"value": '{"server": ["10.0.0.1"]}'})
    assert res.status_code == 400
    assert "dns.server: unknown key; did you mean servers?" in res.text
    with open_node(home) as node:
        assert settings.staged_rows(node, "admin") == []
