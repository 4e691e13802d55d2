"""Section pages are forms built from the catalog (issue 17 item 14): one input per key, tables
of named entries with add, edit and remove, references as choices of what exists, and the
catalog's messages beside the field they concern. The JSON view stays, behind a toggle."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from web_helpers import Browser

from evstore.core import catalog
from evstore.ops import settings
from evstore.ops.node import open_node
from evstore.web import forms


def staged(home: Path) -> dict[tuple[str, str], Any]:
    with open_node(home) as node:
        return {(r.mode, r.section): r.value for r in settings.staged_rows(node, "admin")}


def committed(home: Path, mode: str, section: str) -> Any:
    with open_node(home) as node:
        return settings.current(node, node.to_internal(mode), section)[0]


def with_interfaces(home: Path) -> None:
    with open_node(home) as node:
        mode = f"machine:{node.mid}"
        settings.stage(node, "admin", mode, "interfaces", {"interfaces": [
            {"name": "eth0", "address": "192.0.2.10", "netmask": "255.255.255.0"},
            {"name": "eth1", "address": "198.51.100.10", "netmask": "255.255.255.0"}]})
        settings.stage(node, "admin", "cluster", "listeners", {"listeners": [
            {"name": "IncomingMail", "interface": "eth0", "port": 25}]})
        settings.commit(node, "admin", "interfaces and a listener")


# ---------------------------------------------------------------------- the pure part


@pytest.mark.parametrize("section", sorted(catalog.SECTIONS))
def test_every_section_round_trips_through_its_own_form(section: str) -> None:
    """Drawing a section's factory default and submitting the form unchanged gives it back."""
    value = catalog.factory_default(section) or {}
    form = forms.build(section, value)
    posted: dict[str, str] = {}
    for part in form.parts:
        inputs = (part.inputs if isinstance(part, forms.Group) else
                  [c for r in part.rows for c in r.cells] if isinstance(part, forms.Table)
                  else [part])
        if isinstance(part, forms.Table):
            posted.update({f"shown.{c.name}": "1" for c in part.add.cells
                           if c.widget == "checkbox"})
            posted.update({c.name: "" for c in part.add.cells if c.widget != "checkbox"})
        for i in inputs:
            if i.widget == "checkbox":
                posted[f"shown.{i.name}"] = "1"
                if i.checked:
                    posted[i.name] = "on"
            else:
                posted[i.name] = i.value
    assert forms.value_of(section, value, posted) == value


def test_a_list_of_entries_is_edited_removed_and_added_in_place() -> None:
    before = {"servers": [{"name": "a", "host": "ldap1", "port": 389, "keep": 1},
                          {"name": "b", "host": "ldap2", "port": 636}], "queries": []}
    posted = {"v.servers.0.name": "a", "v.servers.0.host": "ldap9", "v.servers.0.port": "389",
              "v.servers.1.name": "b", "v.servers.1.host": "ldap2", "v.servers.1.port": "636",
              "v.servers.1.__remove": "on",
              "v.servers.new.name": "c", "v.servers.new.host": "ldap3", "v.servers.new.port": "",
              "v.queries.new.name": "", "v.queries.new.server": "", "v.queries.new.base": "",
              "v.queries.new.filter": ""}
    after = forms.value_of("ldap", before, posted)
    assert after == {"servers": [{"name": "a", "host": "ldap9", "port": 389, "keep": 1},
                                 {"name": "c", "host": "ldap3"}], "queries": []}
    assert catalog.validate("ldap", after)["servers"][1]["port"] == 389  # the default


def test_an_error_path_names_the_input_it_concerns() -> None:
    assert forms.field_of_error("listeners", "listeners.listeners[1].port: expected an integer "
                                "1..65535, got 0") == "v.listeners.1.port"
    assert forms.field_of_error("dns", "dns.servers[2]: expected an address") == "v.servers"
    assert forms.field_of_error("destconfig", "destconfig.default.tls: expected one of") == \
        "v.default.tls"
    assert forms.field_of_error("dns", "something else went wrong") is None
    posted = {"v.listeners.0.name": "a", "v.listeners.0.__remove": "on",
              "v.listeners.1.name": "b", "v.listeners.new.name": "c"}
    assert forms.field_of_error("listeners", "listeners.listeners[1].port: bad",
                                posted) == "v.listeners.new.port"


def test_a_number_that_is_not_one_is_refused_at_its_path() -> None:
    with pytest.raises(catalog.InvalidInput, match=r"^ldap.servers\[0\].port: expected an "):
        forms.value_of("ldap", {"servers": [{"name": "a", "host": "h"}]},
                       {"v.servers.0.name": "a", "v.servers.0.host": "h",
                        "v.servers.0.port": "three"})


# ---------------------------------------------------------------------- the pages


def test_a_section_page_is_a_form_with_the_json_view_behind_a_toggle(browser: Browser) -> None:
    browser.login()
    page = browser.get("/cluster/dns").text
    assert 'id="settings-form"' in page and 'name="v.servers"' in page
    assert '<details class="advanced" id="json-view">' in page  # closed by default
    assert 'id="edit-form"' in page  # still there, inside the toggle


def test_the_form_stages_a_change_and_defaults_show(browser: Browser, home: Path) -> None:
    browser.login()
    page = browser.get("/cluster/bounceprofiles").text
    assert "default 100" in page  # max_retries' factory default, in its column
    res = browser.post("/cluster/dns", "/cluster/dns/form",
                       {"v.servers": "192.0.2.53\n198.51.100.53\n"})
    assert res.status_code == 303
    assert staged(home)[("cluster", "dns")] == {"servers": ["192.0.2.53", "198.51.100.53"]}


def test_entries_are_added_edited_and_removed_through_the_table(browser: Browser,
                                                                 home: Path) -> None:
    with_interfaces(home)
    browser.login()
    page = browser.get("/cluster/listeners").text
    assert 'name="v.listeners.0.port" value="25"' in page
    assert re.search(r'<select id="v.listeners.0.interface"[^>]*>', page)
    assert '<option value="eth1">eth1</option>' in page  # a choice of what exists
    res = browser.post("/cluster/listeners", "/cluster/listeners/form", {
        "v.listeners.0.name": "IncomingMail", "v.listeners.0.interface": "eth1",
        "v.listeners.0.port": "2525", "v.listeners.0.footer": "",
        "v.listeners.new.name": "Outgoing", "v.listeners.new.interface": "eth0",
        "v.listeners.new.port": "587", "v.listeners.new.footer": ""})
    assert res.status_code == 303, res.text
    assert staged(home)[("cluster", "listeners")] == {"listeners": [
        {"name": "IncomingMail", "interface": "eth1", "port": 2525},
        {"name": "Outgoing", "interface": "eth0", "port": 587}]}
    res = browser.post("/cluster/listeners", "/cluster/listeners/form", {
        "v.listeners.0.name": "IncomingMail", "v.listeners.0.interface": "eth1",
        "v.listeners.0.port": "2525", "v.listeners.0.__remove": "on"})
    assert res.status_code == 303
    assert staged(home)[("cluster", "listeners")] == {"listeners": []}


def test_a_refused_value_is_shown_beside_its_field_and_nothing_is_staged(
        browser: Browser, home: Path) -> None:
    with_interfaces(home)
    browser.login()
    res = browser.post("/cluster/listeners", "/cluster/listeners/form", {
        "v.listeners.0.name": "IncomingMail", "v.listeners.0.interface": "eth0",
        "v.listeners.0.port": "70000", "v.listeners.0.footer": ""})
    assert res.status_code == 400
    assert 'id="err-v.listeners.0.port"' in res.text and "1..65535" in res.text
    assert 'name="v.listeners.0.port" value="70000"' in res.text  # what was typed stays
    assert ("cluster", "listeners") not in staged(home)


def test_a_reference_to_a_name_some_machines_lack_is_marked(browser: Browser,
                                                           home: Path) -> None:
    with_interfaces(home)
    with open_node(home) as node:
        settings.stage(node, "admin", "cluster", "listeners", {"listeners": [
            {"name": "IncomingMail", "interface": "bond0", "port": 25}]})
        settings.commit(node, "admin", "a listener on an interface nobody has")
    browser.login()
    page = browser.get("/cluster/listeners").text
    assert "bond0 (missing on some machines)" in page
