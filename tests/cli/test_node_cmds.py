"""The node commands' argument handling and local effects (no network needed)."""

from __future__ import annotations

from tests.cli.conftest import Cli


def test_ccsconfig_shows_enables_and_disables(cli: Cli) -> None:
    home = cli.init("lab1", "--listen", "127.0.0.1:2200")
    assert cli(home, "ccsconfig", "--json") == {"enabled": False, "ccs": None,
                                                "listen": "127.0.0.1:2200"}
    assert cli(home, "ccsconfig", "enable", "--json")["ccs"] == "127.0.0.1:2222"
    assert cli(home, "ccsconfig", "enable", "127.0.0.1:2300", "--json")["ccs"] == "127.0.0.1:2300"
    assert cli(home, "ccsconfig", "disable", "--json")["enabled"] is False
    cli(home, "ccsconfig", "enable", "127.0.0.1:2200", code=2)  # the admin port itself
    cli(home, "ccsconfig", "open", code=2)


def test_join_refuses_bad_usage_before_touching_the_network(cli: Cli) -> None:
    home = cli.init("lab2")
    both = cli(home, "clusterconfig", "join", "127.0.0.1:9", "--fingerprint", "aa", "--trust",
               code=2)
    assert "not both" in both.stderr
    blind = cli(home, "clusterconfig", "join", "127.0.0.1:9", "--yes", code=2)
    assert "--fingerprint" in blind.stderr
    cli(home, "clusterconfig", "join", "nowhere", "--trust", code=2)


def test_join_names_an_unreachable_member(cli: Cli) -> None:
    home = cli.init("lab3")
    res = cli(home, "clusterconfig", "join", "127.0.0.1:9", "--trust", "--yes", code=1)
    assert "127.0.0.1:9" in res.stderr and "cannot reach" in res.stderr


def test_commitdetail_and_detach_on_a_standalone_machine(cli: Cli) -> None:
    home = cli.init("lab4")
    cli(home, "set", "ntp", 'servers=["ntp1"]')
    cli(home, "commit", "-m", "ntp")
    detail = cli(home, "commitdetail", "--json")
    assert detail["comment"] == "ntp" and detail["machines"][0]["hostname"] == "lab4"
    assert detail["machines"][0]["arrived"] is True
    cli(home, "clusterconfig", "disconnect", "lab4", code=2)
    cli(home, "clusterconfig", "rekey", code=2)
