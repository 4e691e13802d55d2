"""Helpers shared by the web tests (a uniquely named module, importable from tests/web)."""

from __future__ import annotations

import re
import warnings
from typing import Any

with warnings.catch_warnings():  # starlette suggests httpx2; httpx serves these tests alike
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

PASS = "correct horse battery"
READER_PASS = "just looking around"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "page has no CSRF field"
    return found.group(1)



class Browser:
    """A TestClient that keeps cookies, with helpers to log in and to post forms."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, **kw)

    def login(self, user: str = "admin", passphrase: str = PASS, next_: str = "") -> Any:
        token = csrf_of(self.client.get("/login").text)
        return self.client.post("/login", data={"csrf": token, "username": user,
                                                "passphrase": passphrase, "next": next_})

    def post(self, page: str, action: str, data: dict[str, str], *, csrf: bool = True) -> Any:
        """POST ``data`` to ``action`` with the CSRF token of ``page`` (as a browser would)."""
        token = csrf_of(self.client.get(page).text)
        return self.client.post(action, data={**({"csrf": token} if csrf else {}), **data})
