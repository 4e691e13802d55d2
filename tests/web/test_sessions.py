"""Revocable web sessions (issue 15, item 4).

Before: the session was only a signed cookie, so a copy of it kept working for 12 hours after
logout. Now the cookie names a server-side session (ops/sessions.py) that logout, a deleted
user, a changed role and an idle timeout end; over TLS the cookie is Secure.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from web_helpers import PASS, READER_PASS, Browser, csrf_of

from evstore.ops import sessions, settings, users
from evstore.ops.node import open_node
from evstore.web.app import serve_gui


def _copy(browser: Browser, make_browser: Any, home: Path) -> Browser:
    other: Browser = make_browser(home)
    other.client.cookies.update(browser.client.cookies)
    return other


def test_a_copied_cookie_fails_after_logout(browser: Browser, home: Path,
                                            make_browser: Any) -> None:
    browser.login()
    thief = _copy(browser, make_browser, home)
    assert thief.get("/changes").status_code == 200  # the copy works while logged in
    assert browser.post("/changes", "/logout", {}).status_code == 303
    assert thief.get("/changes").headers["location"].startswith("/login")
    assert browser.get("/changes").status_code == 303


def test_a_changed_role_or_a_deleted_user_ends_the_session(home: Path,
                                                           make_browser: Any) -> None:
    reader = make_browser(home)
    assert reader.login("reader", READER_PASS).status_code == 303
    assert reader.get("/changes").status_code == 200
    with open_node(home) as node:
        value, _ = settings.view(node, "admin", "cluster", "users")
        changed = [{**u, "role": "operator"} if u["name"] == "reader" else u
                   for u in value["users"]]
        settings.stage(node, "admin", "cluster", "users", {**value, "users": changed})
        settings.commit(node, "admin", "promote reader")
    assert reader.get("/changes").status_code == 303  # the role it logged in with is gone
    assert reader.login("reader", READER_PASS).status_code == 303
    assert reader.get("/changes").status_code == 200
    with open_node(home) as node:
        users.delete_user(node, "admin", "reader")
        settings.commit(node, "admin", "drop reader")
    assert reader.get("/changes").status_code == 303


def test_an_idle_session_ends(browser: Browser, monkeypatch: pytest.MonkeyPatch) -> None:
    browser.login()
    assert browser.get("/changes").status_code == 200
    real = sessions.now_ms
    monkeypatch.setattr(sessions, "now_ms", lambda: real() + sessions.IDLE_MS + 1000)
    assert browser.get("/changes").status_code == 303


def _self_signed(where: Path) -> tuple[Path, Path]:
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


async def test_over_tls_the_pages_are_https_and_the_cookie_is_secure(home: Path,
                                                                     tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(lambda task_status: serve_gui(
            home, "127.0.0.1", 0, tls=(cert, key), task_status=task_status))
        base = next(u for u in urls if u.startswith("https://"))

        def visit() -> tuple[int, str]:
            with httpx.Client(base_url=base, verify=False) as c:
                token = csrf_of(c.get("/login").text)
                res = c.post("/login", data={"csrf": token, "username": "admin",
                                             "passphrase": PASS, "next": ""})
                return res.status_code, res.headers.get("set-cookie", "")

        status, cookie = await trio.to_thread.run_sync(visit)
        assert status == 303
        assert "secure" in cookie.lower() and "httponly" in cookie.lower()
        nursery.cancel_scope.cancel()
