"""The web pages at unit level: Starlette's TestClient against the app, over real homes."""

from __future__ import annotations

import os
import socket
import stat
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from web_helpers import PASS, READER_PASS, Browser, csrf_of

from evstore.ops import check, forensics, settings, users
from evstore.ops.node import open_node
from evstore.web import auth_pages
from evstore.web.session import KEY_FILE, Backoff
from evstore.web.shell import mode_of_path, mode_url, safe_next
from evstore_cli.app import app as cli_app
from tests.scenarios import superseded_time_zone

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx`")

PAGES = ["/", "/machine/lab1/", "/cluster/dns", "/group/Paris/dns", "/machine/S1/dns",
         "/changes", "/changes/preview", "/members", "/status", "/audit", "/blame", "/commits",
         "/commits/abcdef123456", "/clustercheck", "/go?mode=cluster", "/no/such/page", "/cluster/dns/override"]


@pytest.fixture(autouse=True)
def _no_failure_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_pages, "FAILURE_DELAY_S", 0.0)


def staged(home: Path, user: str = "admin") -> list[Any]:
    with open_node(home) as node:
        return settings.staged_rows(node, user)


# ---------------------------------------------------------------------- login


@pytest.mark.parametrize("url", PAGES)
def test_every_page_redirects_to_login_without_a_session(browser: Browser, url: str) -> None:
    res = browser.get(url)
    assert res.status_code == 303
    assert res.headers["location"].startswith("/login")


def test_login_page_and_static_assets_need_no_login(browser: Browser) -> None:
    assert browser.get("/login").status_code == 200
    assert browser.get("/static/app.js").status_code == 200
    assert browser.get("/static/app.css").status_code == 200


def test_login_lands_in_the_login_hosts_machine_mode(browser: Browser) -> None:
    res = browser.login()
    assert res.status_code == 303 and res.headers["location"] == "/machine/lab1/"
    page = browser.get("/machine/lab1/")
    assert page.status_code == 200 and "Mode — <strong>Machine: lab1</strong>" in page.text


def test_login_returns_to_the_page_asked_for_but_never_off_site(browser: Browser) -> None:
    assert browser.get("/cluster/dns").headers["location"] == "/login?next=%2Fcluster%2Fdns"
    assert browser.login(next_="/cluster/dns").headers["location"] == "/cluster/dns"
    assert safe_next("//evil.example/x") is None and safe_next("https://x") is None


def test_session_cookie_is_httponly_strict_and_the_key_private(browser: Browser,
                                                               home: Path) -> None:
    cookie = browser.login().headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert stat.S_IMODE(os.stat(home / KEY_FILE).st_mode) == 0o600


def test_pages_send_security_headers(browser: Browser) -> None:
    browser.login()
    res = browser.get("/cluster/dns")
    assert "script-src 'self'" in res.headers["content-security-policy"]
    assert res.headers["x-frame-options"] == "DENY"


def test_wrong_passphrase_is_refused_and_recorded(browser: Browser, home: Path) -> None:
    res = browser.login(passphrase="not it")
    assert res.status_code == 401 and "wrong user or passphrase" in res.text
    assert browser.get("/changes").status_code == 303
    with open_node(home) as node:
        alerts = node.status()["alerts"]
    assert any(a["kind"] == "login_failed" for a in alerts)


def test_repeated_wrong_passphrases_lock_the_address_out(home: Path, make_browser: Any,
                                                         backoff: Backoff) -> None:
    now = [1000.0]
    backoff.clock = lambda: now[0]
    b = make_browser(home)
    for _ in range(backoff.free + 1):
        assert b.login(passphrase="nope").status_code == 401
    locked = b.login()
    assert locked.status_code == 429 and "wait" in locked.text
    now[0] += 60
    assert b.login().status_code == 303


def test_changing_the_user_name_does_not_get_past_the_lockout(home: Path, make_browser: Any,
                                                              backoff: Backoff) -> None:
    """Before: the lockout counted per (user, address), so a new name each time got a fresh
    allowance and guessing went on at full speed."""
    now = [1000.0]
    backoff.clock = lambda: now[0]
    b = make_browser(home)
    for i in range(backoff.free + 1):
        assert b.login(user=f"guess{i}", passphrase="nope").status_code == 401
    assert b.login(user="someone-new", passphrase="nope").status_code == 429
    assert b.login().status_code == 429  # the right passphrase is not even checked
    with open_node(home) as node:
        kinds = [a["kind"] for a in node.status()["alerts"]]
    assert kinds.count("login_failed") == 1  # the others were held back (rate-limited)


def test_many_addresses_are_paced_overall() -> None:
    now = [0.0]
    b = Backoff(clock=lambda: now[0])
    for i in range(b.guard.overall_free + 3):
        assert not b.check(f"10.0.0.{i}").refused
        b.failed(f"10.0.0.{i}")
    now[0] += 10
    waits = [b.check(f"10.1.0.{i}") for i in range(200)]
    assert waits[0].wait == 0 and waits[1].wait > 0  # paced: one check per interval
    assert any(v.why == "overall" for v in waits)  # and past max_wait, refused as busy


def test_backoff_doubles_and_clears_on_success() -> None:
    now = [0.0]
    b = Backoff(free=2, cap=8, clock=lambda: now[0])
    assert [b.failed("127.0.0.1") for _ in range(6)] == [0, 0, 1, 2, 4, 8]
    assert b.check("127.0.0.1").wait == 8 and b.check("10.0.0.9").wait == 0
    b.succeeded("127.0.0.1")
    assert b.check("127.0.0.1").wait == 0


def test_logout_ends_the_session(browser: Browser) -> None:
    browser.login()
    res = browser.post("/changes", "/logout", {})
    assert res.status_code == 303
    assert browser.get("/changes").status_code == 303


def test_a_passphrase_change_ends_existing_sessions(browser: Browser, home: Path) -> None:
    browser.login()
    with open_node(home) as node:
        users.passwd(node, "admin", "admin", "a brand new one")
        settings.commit(node, "admin", "rotate")
    assert browser.get("/changes").headers["location"].startswith("/login")


# ---------------------------------------------------------------------- CSRF and roles


def test_a_post_without_the_csrf_token_is_refused(browser: Browser, home: Path) -> None:
    browser.login()
    res = browser.post("/cluster/dns", "/cluster/dns/set",
                       {"assignments": 'servers=["203.0.113.1"]'}, csrf=False)
    assert res.status_code == 403 and "security token" in res.text
    res = browser.client.post("/cluster/dns/set", data={"csrf": "forged",
                                                        "assignments": "servers=[]"})
    assert res.status_code == 403
    assert staged(home) == []


def test_the_login_form_needs_its_csrf_token_too(browser: Browser) -> None:
    res = browser.client.post("/login", data={"username": "admin", "passphrase": PASS})
    assert res.status_code == 403


def test_readonly_user_sees_but_cannot_stage_or_commit(browser: Browser, home: Path) -> None:
    assert browser.login("reader", READER_PASS).status_code == 303
    page = browser.get("/group/Paris/dns")
    assert page.status_code == 200 and "192.0.2.53" in page.text
    assert "override-form" not in page.text and "may view these settings" in page.text
    res = browser.post("/group/Paris/dns", "/group/Paris/dns/override", {"start": "default"})
    assert res.status_code == 403 and "readonly" in res.text
    assert browser.post("/changes", "/changes/commit", {"comment": "x"}).status_code == 403
    assert staged(home, "reader") == []


# ---------------------------------------------------------------------- modes in URLs


def test_mode_urls_round_trip() -> None:
    assert mode_url("cluster", "dns") == "/cluster/dns"
    assert mode_url("group:Paris") == "/group/Paris/"
    assert mode_url("machine:lab1.example.com", "ldap", "edit") == "/machine/lab1.example.com/ldap/edit"
    assert mode_of_path({"name": "Paris", "section": "dns"}) == "group:Paris"
    assert mode_of_path({"host": "S1"}) == "machine:S1"
    assert mode_of_path({"section": "dns"}) == "cluster"


def test_a_serial_number_works_in_place_of_the_hostname(browser: Browser) -> None:
    browser.login()
    page = browser.get("/machine/S1/dns")
    assert page.status_code == 200 and "Mode — <strong>Machine: lab1</strong>" in page.text


def test_unknown_modes_and_sections_are_not_found(browser: Browser) -> None:
    browser.login()
    assert browser.get("/no/such/page").status_code == 404
    assert browser.get("/group/Nowhere/dns").status_code == 404
    res = browser.get("/cluster/nosuch")
    assert res.status_code == 404 and "known sections" in res.text


def test_change_mode_keeps_the_section(browser: Browser) -> None:
    browser.login()
    res = browser.get("/go?mode=group:Paris&section=dns")
    assert res.status_code == 303 and res.headers["location"] == "/group/Paris/dns"
    menu = browser.get("/group/Paris/dns").text
    for option in ("cluster", "group:Main_Group", "group:Paris", "machine:lab1"):
        assert f'value="{option}"' in menu


def test_a_section_the_mode_may_not_hold_links_to_modes_that_may(browser: Browser) -> None:
    browser.login()
    page = browser.get("/cluster/interfaces").text
    assert "interfaces can only be set in machine mode" in page
    assert 'href="/machine/lab1/interfaces"' in page
    assert 'href="/cluster/users"' in browser.get("/machine/lab1/users").text


def test_standalone_machine_has_only_its_machine_mode(standalone: Path, make_browser: Any) -> None:
    b = make_browser(standalone)
    assert b.login().headers["location"] == "/machine/solo/"
    assert b.get("/cluster/dns").status_code == 404
    assert 'value="cluster"' not in b.get("/machine/solo/dns").text


# ---------------------------------------------------------------------- settings and commit


def test_override_from_a_copy_edit_preview_commit(browser: Browser, home: Path) -> None:
    browser.login()
    page = browser.get("/group/Paris/dns").text
    assert "Inheriting settings from <strong>Cluster: Co</strong>" in page
    assert 'class="inherited"' in page and "Copy from: Cluster: Co" in page
    res = browser.post("/group/Paris/dns", "/group/Paris/dns/override", {"start": "cluster"})
    assert res.status_code == 303 and res.headers["location"] == "/group/Paris/dns"
    page = browser.get("/group/Paris/dns").text
    assert "Settings are defined at" in page and "192.0.2.53" in page
    assert "also defined at" in page and 'href="/cluster/dns"' in page
    res = browser.post("/group/Paris/dns", "/group/Paris/dns/set",
                       {"assignments": 'servers=["198.51.100.7"]\n'})
    assert res.status_code == 303
    assert [(r.section, r.value) for r in staged(home)] == [("dns", {"servers": ["198.51.100.7"]})]
    with open_node(home) as node:
        from evstore.ops import cluster

        cluster.setgroup(node, "admin", "lab1", "Paris")
    preview = browser.get("/changes/preview").text
    assert "lab1" in preview and "198.51.100.7" in preview
    res = browser.post("/changes", "/changes/commit", {"comment": "Paris DNS"})
    assert res.status_code == 303
    assert "committed" in browser.get("/changes").text
    with open_node(home) as node:
        value, source, _ = node.store.effective_of(node.mid)["dns"]
    assert value == {"servers": ["198.51.100.7"]} and source.startswith("group:")


def test_json_edit_errors_keep_what_was_typed(browser: Browser, home: Path) -> None:
    browser.login()
    res = browser.post("/cluster/dns", "/cluster/dns/edit", {"value": '{"servers": [1.5]}'})
    assert res.status_code == 400 and "floating-point" in res.text
    assert "[1.5]" in res.text
    assert staged(home) == []


def test_the_not_affected_notice_names_lower_overrides(browser: Browser, home: Path) -> None:
    browser.login()
    browser.post("/group/Paris/dns", "/group/Paris/dns/override", {"start": "default"})
    browser.post("/changes", "/changes/commit", {"comment": ""})
    page = browser.get("/cluster/dns").text
    assert "will not affect group:Paris" in page


def test_manage_move_to_cluster_and_delete(browser: Browser, home: Path) -> None:
    browser.login()
    browser.post("/group/Paris/dns", "/group/Paris/dns/edit", {"value": '{"servers": ["10.1.1.1"]}'})
    browser.post("/changes", "/changes/commit", {"comment": "group"})
    res = browser.post("/group/Paris/dns", "/group/Paris/dns/manage", {"op": "move", "to": "cluster"})
    assert res.status_code == 303
    browser.post("/changes", "/changes/commit", {"comment": "move up"})
    assert "Inheriting settings from" in browser.get("/group/Paris/dns").text
    assert "10.1.1.1" in browser.get("/cluster/dns").text
    browser.post("/cluster/dns", "/cluster/dns/manage", {"op": "delete"})
    browser.post("/changes", "/changes/commit", {"comment": "delete"})
    assert "Inheriting settings from <strong>Factory defaults" in browser.get("/cluster/dns").text


def test_copy_to_all_groups(browser: Browser, home: Path) -> None:
    browser.login()
    res = browser.post("/cluster/dns", "/cluster/dns/manage", {"op": "copy", "to": "all-groups"})
    assert res.status_code == 303
    assert sorted(r.mode.startswith("group:") for r in staged(home)) == [True, True]


def test_clear_discards_staged_changes(browser: Browser, home: Path) -> None:
    browser.login()
    browser.post("/cluster/dns", "/cluster/dns/set", {"assignments": "servers=[]"})
    assert len(staged(home)) == 1
    browser.post("/changes", "/changes/clear", {})
    assert staged(home) == []


def test_a_conflict_shows_both_versions_and_discard_commits_the_rest(
    browser: Browser, home: Path
) -> None:
    with open_node(home) as node:  # another operator (an event needs a user who exists)
        users.new_user(node, "admin", "other", "operator", "pw-other")
        settings.commit(node, "admin", "add other")
    browser.login()
    browser.post("/cluster/dns", "/cluster/dns/set", {"assignments": 'servers=["10.0.0.1"]'})
    browser.post("/cluster/ntp", "/cluster/ntp/set", {"assignments": 'servers=["ntp.example"]'})
    with open_node(home) as node:
        settings.stage_set(node, "other", "cluster", "dns", ['servers=["10.9.9.9"]'])
        settings.commit(node, "other", "meanwhile")
    res = browser.post("/changes", "/changes/commit", {"comment": "mine"})
    assert res.status_code == 409
    assert "10.0.0.1" in res.text and "10.9.9.9" in res.text and "discard-form" in res.text
    res = browser.client.post("/changes/commit", data={"csrf": csrf_of(res.text),
                                                       "how": "discard", "comment": "mine"})
    assert res.status_code == 303
    with open_node(home) as node:
        assert node.store.section_value("cluster", "dns") == {"servers": ["10.9.9.9"]}
        assert node.store.section_value("cluster", "ntp") == {"servers": ["ntp.example"]}


def test_users_are_shown_without_their_hashes_and_not_editable(browser: Browser) -> None:
    browser.login()
    page = browser.get("/cluster/users").text
    assert "reader" in page and "(hidden)" in page and "$argon2" not in page
    res = browser.post("/cluster/users", "/cluster/users/edit", {"value": '{"users": []}'})
    assert res.status_code == 400 and "userconfig" in res.text


# ---------------------------------------------------------------------- cluster pages


def test_members_show_groups_serials_and_this_machine(browser: Browser) -> None:
    browser.login()
    page = browser.get("/members").text
    assert "Cluster Co" in page and "Group <a" in page and "S1" in page
    assert "this machine" in page


def test_status_page_shows_alerts(browser: Browser) -> None:
    browser.login(passphrase="wrong")
    browser.login()
    page = browser.get("/status").text
    assert "login_failed" in page and "<time datetime=" in page


def test_audit_says_not_available_without_forensics(browser: Browser,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "evstore.ops.forensics", None)
    browser.login()
    assert 'id="not-available"' in browser.get("/audit").text
    assert 'id="not-available"' in browser.get("/blame").text


def test_audit_and_blame_when_forensics_is_available(browser: Browser) -> None:
    pytest.importorskip("evstore.ops.forensics")
    browser.login()
    page = browser.get("/audit?section=dns").text
    assert 'id="audit-table"' in page and "dns" in page
    page = browser.get("/blame?section=dns&machine=lab1").text
    assert 'id="blame-table"' in page and "192.0.2.53" in page


# ---------------------------------------------------------------------- commits and the check


@pytest.fixture
def superseded(home: Path, tmp_path: Path) -> dict[str, Any]:
    """lab2 joins lab1's cluster by hand (and is unreachable afterwards: nothing serves it);
    both change the time zone at cluster level without seeing each other, then exchange
    events: one of the two changes is superseded. Returns the superseded row."""
    rows = superseded_time_zone(home, tmp_path / "lab2", PASS)
    assert len(rows) == 1 and rows[0]["section"] == "timezone"
    return rows[0]


def test_clustercheck_of_one_machine_is_consistent(browser: Browser) -> None:
    browser.login()
    page = browser.get("/clustercheck").text
    assert 'id="consistent"' in page and 'id="inconsistent"' not in page
    assert "<td>lab1</td>" in page and 'id="no-superseded"' in page


def test_clustercheck_without_the_network_layer_checks_this_machine(
    browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "evstore.net.client", None)
    browser.login()
    page = browser.get("/clustercheck").text
    assert 'id="consistent"' in page and "no network layer" in page


def test_the_check_waits_on_other_machines_without_holding_up_other_pages(
    browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The network part runs in a worker thread of its own: while it waits for the other
    machines, the pages' database limiter and the trio loop serve other pages."""
    started, release = threading.Event(), threading.Event()

    def slow_reports(node: Any) -> tuple[list[dict[str, Any]], list[str]]:
        started.set()
        assert release.wait(30), "the other page was not served while the check waited"
        return [check.digests_at(node)], []

    fake = types.ModuleType("evstore.net.client")
    fake.clustercheck_reports = slow_reports  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "evstore.net.client", fake)
    browser.login()
    done: dict[str, Any] = {}
    waiting = threading.Thread(target=lambda: done.update(page=browser.get("/clustercheck")))
    waiting.start()
    try:
        assert started.wait(30)
        assert browser.get("/status").status_code == 200
    finally:
        release.set()
        waiting.join(30)
    assert 'id="consistent"' in done["page"].text


def test_clustercheck_shows_both_versions_and_unreachable_machines(
    browser: Browser, superseded: dict[str, Any]
) -> None:
    browser.login()
    page = browser.get("/clustercheck").text
    assert 'id="inconsistent"' in page and "unreachable" in page  # lab2: nothing serves it
    assert "<td>lab2</td>" in page
    kept, lost = superseded["winner"], superseded["loser"]
    assert "Europe/Paris" in page and "Asia/Tokyo" in page
    for side in (kept, lost):
        assert f"by admin on {side['machine']}" in page and f'datetime="{side["time"]}"' in page
    assert f"Resolve: use {lost['machine']}'s version" in page
    assert f"Ignore: keep {kept['machine']}'s version" in page


def test_resolve_makes_the_lost_version_apply_as_the_logged_in_user(
    browser: Browser, home: Path, superseded: dict[str, Any]
) -> None:
    lost = superseded["loser"]
    with open_node(home) as node:
        users.new_user(node, "admin", "alice", "admin", "alice's own passphrase")
        settings.commit(node, "admin", "a second admin")
    assert browser.login("alice", "alice's own passphrase").status_code == 303
    res = browser.post("/clustercheck", "/clustercheck/resolve",
                       {"section": "timezone", "mode": "cluster", "host": lost["machine"]})
    assert res.status_code == 303 and res.headers["location"] == "/clustercheck"
    page = browser.get("/clustercheck").text
    assert f"resolved timezone@cluster: {lost['machine']}" in page
    assert 'id="no-superseded"' in page
    with open_node(home) as node:
        assert node.store.section_value("cluster", "timezone") == {"zone": lost["value"]}
        assert check.superseded(node) == []
        last = forensics.audit(node, kind="clustercheck.resolve")[-1]
    assert last["user"] == "alice"


def test_ignore_keeps_the_result_and_stops_reporting_it(
    browser: Browser, home: Path, superseded: dict[str, Any]
) -> None:
    browser.login()
    res = browser.post("/clustercheck", "/clustercheck/ignore",
                       {"section": "timezone", "mode": "cluster"})
    assert res.status_code == 303
    assert "ignored 1 superseded change(s) of timezone@cluster" in browser.get(
        "/clustercheck").text
    with open_node(home) as node:
        kept = superseded["winner"]["value"]
        assert node.store.section_value("cluster", "timezone") == {"zone": kept}
        assert check.superseded(node) == []


def test_only_an_admin_may_resolve_or_ignore(browser: Browser, home: Path,
                                             superseded: dict[str, Any]) -> None:
    browser.login("reader", READER_PASS)
    page = browser.get("/clustercheck").text
    assert "Asia/Tokyo" in page and 'id="cannot-act"' in page
    assert "resolve-form" not in page and "ignore-form" not in page
    form = {"section": "timezone", "mode": "cluster", "host": superseded["loser"]["machine"]}
    res = browser.post("/clustercheck", "/clustercheck/resolve", form)
    assert res.status_code == 403 and "readonly" in res.text
    assert browser.post("/clustercheck", "/clustercheck/ignore", form).status_code == 403
    with open_node(home) as node:
        assert len(check.superseded(node)) == 1


def test_resolve_needs_its_csrf_token_and_a_machine(browser: Browser, home: Path,
                                                    superseded: dict[str, Any]) -> None:
    browser.login()
    form = {"section": "timezone", "mode": "cluster", "host": superseded["loser"]["machine"]}
    assert browser.post("/clustercheck", "/clustercheck/resolve", form,
                        csrf=False).status_code == 403
    res = browser.post("/clustercheck", "/clustercheck/resolve", {**form, "host": ""})
    assert res.status_code == 400
    assert browser.post("/clustercheck", "/clustercheck/other", form).status_code == 404
    with open_node(home) as node:
        assert len(check.superseded(node)) == 1


def test_commits_list_links_to_each_commits_detail(browser: Browser, home: Path) -> None:
    browser.login()
    with open_node(home) as node:
        setup = forensics.audit(node, kind="config.commit")[-1]["commit"]
    page = browser.get("/commits").text
    assert 'id="commits-table"' in page and f'href="/commits/{setup}"' in page
    assert "(setup)" in page  # the audit summary carries the comment
    detail = browser.get(f"/commits/{setup}").text
    assert setup in detail and "setup" in detail
    assert 'href="/cluster/dns"' in detail and "set servers" in detail
    arrival = detail[detail.index('id="arrival-table"'):]
    assert "<td>lab1</td>" in arrival and "state-up" in arrival and "<time" in arrival


def test_commit_lookup_by_prefix_and_unknown_commits(browser: Browser, home: Path) -> None:
    browser.login()
    with open_node(home) as node:
        setup = forensics.audit(node, kind="config.commit")[-1]["commit"]
    res = browser.get(f"/commits?commit={setup[:10]}")
    assert res.status_code == 303 and res.headers["location"] == f"/commits/{setup[:10]}"
    assert setup in browser.get(res.headers["location"]).text
    assert browser.get("/commits/0000000000").status_code == 404
    res = browser.get("/commits/not-hex")
    assert res.status_code == 404 and "not an event id" in res.text


def test_commit_detail_names_machines_it_could_not_reach(
    browser: Browser, home: Path, superseded: dict[str, Any]
) -> None:
    browser.login()
    commit = superseded["winner"]["event"]
    page = browser.get(f"/commits/{commit}").text
    assert 'id="unreachable"' in page and "Could not reach lab2" in page
    arrival = page[page.index('id="arrival-table"'):]
    assert "<td>lab1</td>" in arrival and "<td>lab2</td>" in arrival
    assert "(not reached)" in arrival


# ---------------------------------------------------------------------- the command


def test_gui_refuses_a_folder_that_is_not_a_home(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli_app, ["--home", str(tmp_path / "none"), "gui"])
    assert res.exit_code == 2 and "not an evstore home" in res.stderr


def test_gui_refuses_a_bad_listen_address(home: Path) -> None:
    res = CliRunner().invoke(cli_app, ["--home", str(home), "gui", "--listen", "nowhere"])
    assert res.exit_code == 2 and "HOST:PORT" in res.stderr


def test_gui_reports_a_port_in_use_in_one_line(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = CliRunner().invoke(cli_app, ["--home", str(home), "gui", "--listen",
                                           f"127.0.0.1:{port}"])
    assert res.exit_code == 1 and "cannot serve the pages" in res.stderr
    assert "Traceback" not in res.stderr
