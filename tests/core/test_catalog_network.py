"""The machine's own network settings as machine-only sections (issue 17, item 11): static
routes (routeconfig), the default gateway (setgateway) and ethernet media (etherconfig), with
references resolved per machine like a listener's interface."""

from __future__ import annotations

from typing import Any

import pytest

from evstore.core import catalog
from evstore.core.errors import InvalidInput

IFACES = {"interfaces": [{"name": "Data1", "address": "192.0.2.10", "netmask": "/24",
                          "port": "eth0"}]}


@pytest.mark.parametrize(("name", "seed"), [("routes", "routeconfig"), ("gateway", "setgateway"),
                                            ("ethernet", "etherconfig")])
def test_network_sections_are_machine_only(name: str, seed: str) -> None:
    sec = catalog.get(name)
    assert sec.levels == catalog.MACHINE_ONLY and not sec.clusterable
    assert sec.seed_command == seed
    assert catalog.validate(name, catalog.factory_default(name)) == sec.default
    with pytest.raises(catalog.WrongMode):
        catalog.check_mode_allowed(name, "cluster")


GOOD: list[tuple[str, Any]] = [
    ("routes", {"routes": [{"name": "lab", "destination": "10.20.0.0/16",
                            "gateway": "192.0.2.1", "interface": "Data1"}]}),
    ("routes", {"routes": [{"name": "v6", "destination": "2001:db8::/32",
                            "gateway": "2001:db8::1"}]}),
    ("gateway", {"ipv4": "192.0.2.1", "ipv6": "2001:db8::1"}),
    ("gateway", {}),
    ("ethernet", {"ports": [{"name": "eth0", "media": "1000baseTX full-duplex", "mtu": 9000}]}),
    ("ethernet", {"ports": [{"name": "eth1"}]}),
]


@pytest.mark.parametrize(("name", "value"), GOOD)
def test_good_network_values(name: str, value: Any) -> None:
    catalog.accept(name, value)


BAD: list[tuple[str, Any, str]] = [
    ("routes", {"routes": [{"name": "r", "destination": "10.0.0.0/33", "gateway": "192.0.2.1"}]},
     "routes.routes[0].destination: expected a network such as 10.20.0.0/16"),
    ("routes", {"routes": [{"name": "r", "destination": "10.0.0.0/8", "gateway": "gw"}]},
     "routes.routes[0].gateway: expected an IP address"),
    ("gateway", {"ipv4": "2001:db8::1"}, "gateway.ipv4: expected an IPv4 address"),
    ("gateway", {"ipv6": "192.0.2.1"}, "gateway.ipv6: expected an IPv6 address"),
    ("ethernet", {"ports": [{"name": "eth0", "media": "fast"}]}, "ethernet.ports[0].media: expected one of auto"),
    ("ethernet", {"ports": [{"name": "eth0", "mtu": 20}]}, "ethernet.ports[0].mtu: expected an integer 576..9216"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD)
def test_bad_network_values(name: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        catalog.accept(name, value)
    assert str(e.value).startswith(message)


def test_routes_and_interfaces_refer_like_listeners() -> None:
    routes = {"routes": [{"name": "lab", "destination": "10.20.0.0/16", "gateway": "192.0.2.1",
                          "interface": "Data1"}]}
    eff = {"routes": routes, "interfaces": IFACES,
           "ethernet": {"ports": [{"name": "eth0", "media": "auto"}]}}
    assert catalog.check_references(eff) == []
    no_port = {**eff, "ethernet": {"ports": []}}
    assert [(d.section, d.item) for d in catalog.check_references(no_port)] == [
        ("interfaces", "Data1")]
    no_iface = {**eff, "interfaces": {"interfaces": []}}
    assert [(d.section, d.item, d.reason) for d in catalog.check_references(no_iface)] == [
        ("routes", "lab", 'interface "Data1" is not defined on this machine')]
