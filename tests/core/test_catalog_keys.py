"""Unknown keys are refused where a value enters (issue 17, item 15): one rule, in the catalog."""

from __future__ import annotations

from typing import Any

import pytest

from evstore.core import catalog
from evstore.core.errors import InvalidInput

REFUSED: list[tuple[str, Any, str]] = [
    ("dns", {"server": ["1.1.1.1"]}, "dns.server: unknown key; did you mean servers?"),
    ("ldap", {"servers": [{"name": "a", "host": "h", "prot": 1}]},
     "ldap.servers[a].prot: unknown key; did you mean port?"),
    ("destconfig", {"default": {"max_conections": 5}},
     "destconfig.default.max_conections: unknown key; did you mean max_connections?"),
    ("timezone", {"zone": "UTC", "colour": "red"},
     "timezone.colour: unknown key (the keys are zone)"),
]


@pytest.mark.parametrize(("section", "value", "message"), REFUSED)
def test_unknown_keys_are_refused_naming_path_and_nearest(section: str, value: Any,
                                                          message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        catalog.accept(section, value)
    assert str(e.value) == message


def test_accept_validates_and_normalizes() -> None:
    assert catalog.accept("ldap", {"servers": [{"name": "a", "host": "h"}]}) == {
        "servers": [{"name": "a", "host": "h", "port": 389}], "queries": []}
    with pytest.raises(InvalidInput, match="ldap.servers\\[0\\].host: missing"):
        catalog.accept("ldap", {"servers": [{"name": "a"}]})


def test_keys_already_there_stay_acceptable() -> None:
    """A value stored before this rule keeps its extra key through later edits."""
    before = {"servers": [], "note": "kept"}
    assert catalog.accept("dns", {"servers": ["h"], "note": "x"}, before=before)["note"] == "x"
    with pytest.raises(InvalidInput, match="dns.nots: unknown key"):
        catalog.accept("dns", {"servers": [], "note": "x", "nots": 1}, before=before)


def test_set_names_the_nearest_key() -> None:
    with pytest.raises(InvalidInput) as e:
        catalog.apply_assignments("dns", {}, ['server=["h"]'])
    assert str(e.value) == "dns.server: unknown key; did you mean servers?"
    with pytest.raises(InvalidInput) as e:
        catalog.apply_assignments("ldap", {}, ['servers.x.hots=h'])
    assert str(e.value) == "ldap.servers[x].hots: unknown key; did you mean host?"
    with pytest.raises(InvalidInput, match=r"ldap.servers\[a\].prot: unknown key; did you mean port"):
        catalog.apply_assignments("ldap", {}, ['servers=[{"name": "a", "host": "h", "prot": 1}]'])


def test_one_change_commits_refuse_unknown_keys_too(tmp_path: Any) -> None:
    from evstore.ops import settings
    from evstore.ops.node import init_home, open_node

    init_home(tmp_path / "h", hostname="lab1", passphrase="pw", serial="S1")
    with open_node(tmp_path / "h") as node:
        me = node.mode_of("admin")
        with pytest.raises(InvalidInput, match="dns.server: unknown key; did you mean servers"):
            settings.commit_change(node, "admin", me, "dns", {"server": ["10.0.0.1"]})
        with pytest.raises(InvalidInput, match="not a time zone"):
            settings.commit_set(node, "admin", me, "timezone", ["zone=Not/AZone"])
        assert settings.commit_set(node, "admin", me, "timezone", ["zone=Europe/Paris"])[
            "committed"]
