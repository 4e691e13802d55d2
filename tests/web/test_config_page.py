"""The configuration file page (issue 17 item 13): save as XML, load with the same mapping
choices as ``evstore loadconfig`` (groups by name unless mapped, machines' own settings copied
only where chosen, one machine's settings into a chosen machine); nothing changes until
commit, bad files change nothing, and only a role that may change users may use it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from web_helpers import READER_PASS, Browser, csrf_of

from evstore.ops import cluster, settings, xmlconfig
from evstore.ops.node import open_node


def staged(home: Path) -> dict[tuple[str, str], Any]:
    with open_node(home) as node:
        return {(node.to_display(r.mode), r.section): r.value
                for r in settings.staged_rows(node, "admin")}


def saved_file(home: Path) -> bytes:
    """A cluster file where group Paris and lab1 hold settings of their own."""
    with open_node(home) as node:
        settings.stage(node, "admin", node.to_internal("group:Paris"), "ntp",
                       {"servers": ["ntp.paris.example"]})
        settings.stage(node, "admin", f"machine:{node.mid}", "timezone", {"zone": "Europe/Paris"})
        settings.commit(node, "admin", "before saving")
        data = xmlconfig.render(node)
        settings.stage(node, "admin", node.to_internal("group:Paris"), "ntp",
                       {"servers": ["other.example"]})
        settings.stage(node, "admin", f"machine:{node.mid}", "timezone", {"zone": "UTC"})
        settings.commit(node, "admin", "after saving")
    return data


def upload(browser: Browser, data: bytes, kind: str = "cluster", name: str = "saved.xml") -> Any:
    token = csrf_of(browser.get("/config").text)
    return browser.client.post("/config/load", data={"csrf": token, "kind": kind},
                               files={"file": (name, data, "application/xml")})


def confirm(browser: Browser, page: str, choices: dict[str, str]) -> Any:
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))
    return browser.client.post("/config/confirm", data={**fields, **choices},
                               files={"none": ("", b"")})


def test_save_downloads_the_configuration_as_xml(browser: Browser) -> None:
    browser.login()
    page = browser.get("/config").text
    assert 'id="save-form"' in page and 'id="load-form"' in page
    res = browser.get("/config/save")
    assert res.status_code == 200 and "attachment" in res.headers["content-disposition"]
    assert xmlconfig.parse(res.content).cluster == "Co"


def test_a_cluster_file_loads_by_group_name_and_copies_only_what_is_chosen(
        browser: Browser, home: Path) -> None:
    data = saved_file(home)
    browser.login()
    res = upload(browser, data)
    assert res.status_code == 200, res.text
    assert 'name="group.Paris"' in res.text and ">Don't copy<" in res.text
    res = confirm(browser, res.text, {"group.Paris": "Paris", "group.Main_Group": "Main_Group"})
    assert res.status_code == 303 and res.headers["location"] == "/changes"
    got = staged(home)
    assert got[("group:Paris", "ntp")] == {"servers": ["ntp.paris.example"]}
    assert ("machine:lab1", "timezone") not in got  # "Don't copy" is the default
    assert list((home / "backups").glob("config-*.xml"))  # saved before loading
    with open_node(home) as node:
        settings.clear(node, "admin")
    res = upload(browser, data)
    confirm(browser, res.text, {"group.Paris": "Paris", "copy.lab1": "lab1"})
    assert staged(home)[("machine:lab1", "timezone")] == {"zone": "Europe/Paris"}


def test_a_group_can_be_mapped_onto_another(browser: Browser, home: Path) -> None:
    data = saved_file(home)
    with open_node(home) as node:
        cluster.addgroup(node, "admin", "Rome")
    browser.login()
    res = upload(browser, data)
    confirm(browser, res.text, {"group.Paris": "Rome"})
    assert staged(home)[("group:Rome", "ntp")] == {"servers": ["ntp.paris.example"]}


def test_one_machines_settings_load_into_a_chosen_machine(browser: Browser, home: Path) -> None:
    data = saved_file(home)
    browser.login()
    res = upload(browser, data, kind="machine")
    assert 'id="from_machine"' in res.text
    res = confirm(browser, res.text, {"from_machine": "lab1", "machine": "lab1"})
    assert res.status_code == 303
    assert staged(home)[("machine:lab1", "timezone")] == {"zone": "Europe/Paris"}


def test_a_bad_file_is_refused_and_changes_nothing(browser: Browser, home: Path) -> None:
    browser.login()
    res = upload(browser, b"<evstore-config><not closed")
    assert res.status_code == 400 and "not well-formed XML" in res.text
    with open_node(home) as node:
        standalone = b'<?xml version="1.0"?>\n' + xmlconfig.render(node).split(b"\n", 1)[1]
    standalone = standalone.replace(b'standalone="false"', b'standalone="true"', 1)
    res = upload(browser, standalone)
    assert res.status_code == 400
    assert staged(home) == {}
    assert not (home / "backups").exists()


def test_only_a_role_that_may_change_users_may_save_or_load(browser: Browser) -> None:
    browser.login("reader", READER_PASS)
    assert browser.get("/config").status_code == 403
    assert browser.get("/config/save").status_code == 403
