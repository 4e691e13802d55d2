"""The catalog of sections: schemas, defaults, levels, references and `set` assignments."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evstore.core import catalog, encoding
from evstore.core.catalog import (
    Bool,
    BrokenReference,
    Choice,
    Disabled,
    Int,
    InvalidInput,
    Items,
    Kind,
    Obj,
    Str,
    StrList,
    WrongMode,
)

ANY = {"cluster", "group", "machine"}

# --------------------------------------------------------------------------- the catalog itself

CONTRACT_LEVELS = [
    ("ldap", ANY),
    ("dns", ANY),
    ("ntp", ANY),
    ("timezone", ANY),
    ("listeners", ANY),
    ("textresources", ANY),
    ("destconfig", ANY),
    ("smtproutes", ANY),
    ("bounceprofiles", ANY),
    ("unsubscribe", ANY),
    ("interfaces", {"machine"}),
    ("hostname", {"machine"}),
    ("featurekeys", {"machine"}),
    ("time", {"machine"}),
    ("access", {"machine"}),
    ("routes", {"machine"}),
    ("gateway", {"machine"}),
    ("ethernet", {"machine"}),
    ("users", {"cluster"}),
    ("ssh", {"cluster"}),
    ("prepjoin", {"cluster"}),
]


@pytest.mark.parametrize(("name", "levels"), CONTRACT_LEVELS)
def test_levels(name: str, levels: set[str]) -> None:
    sec = catalog.get(name)
    assert sec.levels == levels
    assert sec.name == name
    assert sec.clusterable == (levels != {"machine"})


def test_catalog_holds_exactly_the_listed_sections() -> None:
    assert set(catalog.SECTIONS) == {name for name, _ in CONTRACT_LEVELS}


CONTRACT_DEFAULTS = [
    ("ldap", {"servers": [], "queries": []}),
    ("dns", {"servers": []}),
    ("ntp", {"servers": []}),
    ("timezone", {"zone": "UTC"}),
    ("interfaces", {"interfaces": []}),
    ("listeners", {"listeners": []}),
    ("textresources", {"resources": []}),
    ("smtproutes", {"routes": []}),
    ("users", {"users": []}),
    ("ssh", {"authorized_keys": []}),
    ("featurekeys", {"keys": []}),
    ("time", {"ntp_sync": True}),
    ("hostname", None),
]


@pytest.mark.parametrize(("name", "default"), CONTRACT_DEFAULTS)
def test_contract_defaults(name: str, default: dict[str, Any] | None) -> None:
    assert catalog.get(name).default == default


@pytest.mark.parametrize("name", sorted(catalog.SECTIONS))
def test_defaults_validate_to_themselves(name: str) -> None:
    default = catalog.factory_default(name)
    if default is None:
        return
    assert catalog.validate(name, default) == default
    encoding.encode(default)  # float-free, canonical-encodable


def test_factory_default_is_a_copy() -> None:
    d = catalog.factory_default("bounceprofiles")
    assert d is not None
    d["profiles"].clear()
    assert catalog.get("bounceprofiles").default == {
        "profiles": [
            {
                "name": "Default",
                "max_retries": 100,
                "max_queue_lifetime": 259200,
                "initial_retry": 60,
                "max_retry_timeout": 3600,
                "hard_bounce": True,
            }
        ]
    }


@pytest.mark.parametrize(
    ("name", "seed"),
    [
        ("listeners", "listenerconfig"),
        ("destconfig", "destconfig"),
        ("ldap", "ldapconfig"),
        ("smtproutes", "smtproutes"),
        ("dns", "dnsconfig"),
        ("textresources", "textconfig"),
        ("bounceprofiles", "bounceconfig"),
        ("unsubscribe", "unsubscribe"),
        ("timezone", "settz"),
        ("ntp", "ntpconfig"),
        ("interfaces", "interfaceconfig"),
        ("hostname", "sethostname"),
        ("featurekeys", "featurekey"),
        ("time", "settime"),
        ("users", "userconfig"),
        ("ssh", "sshconfig"),
    ],
)
def test_seed_commands(name: str, seed: str) -> None:
    assert catalog.get(name).seed_command == seed


def test_get_unknown_names_the_known_sections() -> None:
    with pytest.raises(InvalidInput) as e:
        catalog.get("nope")
    msg = str(e.value)
    assert msg.startswith("unknown section 'nope': known sections are ")
    assert "ldap" in msg and "interfaces" in msg


def test_get_seed_command_suggests_the_section() -> None:
    with pytest.raises(InvalidInput, match=r"the seed's ldapconfig is the section 'ldap'"):
        catalog.get("ldapconfig")


@pytest.mark.parametrize(
    ("name", "items"),
    [
        ("ldap", {"servers", "queries"}),
        ("listeners", {"listeners"}),
        ("destconfig", {"domains"}),
        ("dns", set()),
        ("timezone", set()),
        ("unsubscribe", {"entries"}),
        ("users", {"users"}),
        ("hostname", set()),
    ],
)
def test_item_fields(name: str, items: set[str]) -> None:
    assert catalog.item_fields(name) == items


@pytest.mark.parametrize("name", sorted(catalog.SECTIONS))
def test_every_top_level_key_is_a_register_or_an_items_list(name: str) -> None:
    for f in catalog.get(name).fields.values():
        assert isinstance(f.kind, (Str, Int, Bool, Choice, StrList, Obj, Items))
        if isinstance(f.kind, Obj):  # small objects hold plain values only
            assert all(not isinstance(g.kind, (Items, Obj)) for g in f.kind.fields.values())


def test_describe_is_json_and_complete() -> None:
    data = catalog.describe()
    json.dumps(data)
    by_name = {d["name"]: d for d in data}
    assert set(by_name) == set(catalog.SECTIONS)
    ldap = by_name["ldap"]
    assert ldap["levels"] == ["cluster", "group", "machine"]
    assert ldap["keys"] == ["servers", "queries"]
    assert ldap["item_keys"] == ["queries", "servers"]
    assert ldap["default"] == {"servers": [], "queries": []}
    assert ldap["clusterable"] is True
    assert ldap["schema"]["servers"]["fields"]["port"]["default"] == 389
    assert by_name["interfaces"]["levels"] == ["machine"]
    assert by_name["interfaces"]["clusterable"] is False
    assert by_name["users"]["levels"] == ["cluster"]
    assert by_name["listeners"]["references"] == [
        {"items": "listeners", "field": "interface", "to": "interfaces.interfaces"},
        {"items": "listeners", "field": "footer", "to": "textresources.resources"},
    ]


# --------------------------------------------------------------------------- good values

GOOD = [
    (
        "ldap",
        {"servers": [{"name": "corp", "host": "ldap.example.com"}]},
        {"servers": [{"name": "corp", "host": "ldap.example.com", "port": 389}], "queries": []},
    ),
    (
        "ldap",
        {
            "servers": [{"name": "b", "host": "10.0.0.9", "port": 636, "ssl": True}],
            "queries": [{"name": "q", "server": "b", "base": "", "filter": "(mail={a})"}],
        },
        {
            "servers": [{"name": "b", "host": "10.0.0.9", "port": 636, "ssl": True}],
            "queries": [{"name": "q", "server": "b", "base": "", "filter": "(mail={a})"}],
        },
    ),
    ("dns", {"servers": ["192.0.2.53", "2001:db8::53", "ns1.example.com"]}, None),
    ("dns", {}, {"servers": []}),
    ("ntp", {"servers": ["time.example.com"]}, None),
    ("timezone", {"zone": "America/Argentina/Buenos_Aires"}, None),
    ("timezone", {"zone": "Etc/GMT+5"}, None),
    ("timezone", {}, {"zone": "UTC"}),
    ("timezone", {"zone": None}, {"zone": "UTC"}),
    (
        "interfaces",
        {"interfaces": [{"name": "Data 2", "address": "192.0.2.10", "netmask": "255.255.255.0"}]},
        None,
    ),
    (
        "interfaces",
        {
            "interfaces": [
                {"name": "a", "address": "192.0.2.10", "netmask": "/24"},
                {"name": "b", "address": "2001:db8::1", "netmask": "64"},
                {"name": "c", "address": "192.0.2.11", "netmask": "0xffffff00"},
            ]
        },
        None,
    ),
    (
        "listeners",
        {
            "listeners": [
                {"name": "IncomingMail", "interface": "Data 2", "port": 25},
                {"name": "Out", "interface": "Data 1", "port": 587, "footer": "disclaimer"},
            ]
        },
        None,
    ),
    (  # null for an optional field without default: dropped
        "listeners",
        {"listeners": [{"name": "L", "interface": "Data 1", "port": 25, "footer": None}]},
        {"listeners": [{"name": "L", "interface": "Data 1", "port": 25}]},
    ),
    (
        "textresources",
        {"resources": [{"name": "disclaimer", "kind": "footer", "text": "Confidential."}]},
        None,
    ),
    ("textresources", {"resources": [{"name": "d", "kind": "dictionary", "text": ""}]}, None),
    (
        "destconfig",
        {"domains": [{"name": ".example.com", "max_connections": 10}]},
        {
            "default": {"max_connections": 50, "max_messages_per_connection": 50, "tls": "off"},
            "domains": [{"name": ".example.com", "max_connections": 10}],
        },
    ),
    (
        "destconfig",
        {"default": {"max_connections": 5}},
        {
            "default": {"max_connections": 5, "max_messages_per_connection": 50, "tls": "off"},
            "domains": [],
        },
    ),
    (
        "smtproutes",
        {"routes": [{"name": "example.com", "destinations": ["mx1.example.com:2525"]}]},
        None,
    ),
    ("smtproutes", {"routes": [{"name": "ALL", "destinations": ["USEDNS"]}]}, None),
    (
        "bounceprofiles",
        {"profiles": [{"name": "fast", "max_retries": 3}]},
        {
            "profiles": [
                {
                    "name": "fast",
                    "max_retries": 3,
                    "max_queue_lifetime": 259200,
                    "initial_retry": 60,
                    "max_retry_timeout": 3600,
                    "hard_bounce": True,
                }
            ]
        },
    ),
    (
        "unsubscribe",
        {"entries": [{"name": "@spam.example"}, {"name": "bob@example.com"}]},
        {"enabled": True, "entries": [{"name": "@spam.example"}, {"name": "bob@example.com"}]},
    ),
    ("hostname", {"hostname": "mail1.example.com"}, None),
    ("featurekeys", {"keys": [{"name": "antispam", "expires": "2027-01-31"}]}, None),
    ("featurekeys", {"keys": [{"name": "av", "expires": "2027-01-31T00:00:00Z"}]}, None),
    ("time", {"ntp_sync": False}, None),
    (
        "users",
        {"users": [{"name": "admin", "role": "admin", "passphrase_hash": "$argon2id$x"}]},
        None,
    ),
    (
        "ssh",
        {"authorized_keys": [{"name": "ops", "key": "ssh-ed25519 AAAAC3Nza ops@laptop"}]},
        None,
    ),
    ("dns", {"servers": [], "note": {"deep": [1, "x", None, True]}}, None),  # extra keys kept
]


@pytest.mark.parametrize(("name", "value", "normalized"), GOOD)
def test_good_values(name: str, value: Any, normalized: Any) -> None:
    out = catalog.validate(name, value)
    assert out == (value if normalized is None else normalized)
    assert catalog.validate(name, out) == out


def test_validate_does_not_change_its_input() -> None:
    value = {"servers": [{"name": "a", "host": "h.example"}]}
    before = json.dumps(value)
    catalog.validate("ldap", value)
    assert json.dumps(value) == before


def test_list_order_is_kept() -> None:
    names = ["zeta", "alpha", "mid"]
    value = {"resources": [{"name": n, "kind": "footer", "text": n} for n in names]}
    out = catalog.validate("textresources", value)
    assert [r["name"] for r in out["resources"]] == names


# --------------------------------------------------------------------------- bad values

LONG = "x" * 256
BAD = [
    ("ldap", [], "ldap: expected an object, got []"),
    ("ldap", "x", "ldap: expected an object, got 'x'"),
    (
        "ldap",
        {"servers": [{"name": "a", "host": "h"}, {"name": "b", "host": "h", "port": "abc"}]},
        "ldap.servers[1].port: expected an integer 1..65535, got 'abc'",
    ),
    (
        "ldap",
        {"servers": [{"name": "a", "host": "h", "port": 0}]},
        "ldap.servers[0].port: expected an integer 1..65535, got 0",
    ),
    (
        "ldap",
        {"servers": [{"name": "a", "host": "h", "port": True}]},
        "ldap.servers[0].port: expected an integer 1..65535, got true",
    ),
    (
        "ldap",
        {"servers": [{"name": "a", "host": "h", "port": 389.0}]},
        "ldap.servers[0].port: expected an integer 1..65535, got 389.0",
    ),
    (
        "ldap",
        {"servers": [{"name": "a", "host": "h"}, {"name": "a", "host": "g"}]},
        "ldap.servers[1].name: 'a' appears twice (also at [0]); names must be unique",
    ),
    (
        "ldap",
        {"servers": [{"host": "h"}]},
        "ldap.servers[0].name: missing; expected a name "
        "(no control characters, no spaces at either end)",
    ),
    (
        "ldap",
        {"servers": [{"name": " a", "host": "h"}]},
        "ldap.servers[0].name: expected a name "
        "(no control characters, no spaces at either end), got ' a'",
    ),
    (
        "ldap",
        {"servers": [{"name": LONG, "host": "h"}]},
        "ldap.servers[0].name: expected at most 255 characters, got 256",
    ),
    (
        "ldap",
        {"servers": ["corp"]},
        "ldap.servers[0]: expected an object with a name, got 'corp'",
    ),
    (
        "ldap",
        {"servers": {"corp": {}}},
        "ldap.servers: expected a list of objects, each with a unique name, got {\"corp\": {}}",
    ),
    (
        "ldap",
        {"queries": [{"name": "q", "server": "s", "base": "", "filter": ""}]},
        "ldap.queries[0].filter: expected a non-empty string of at most 4096 characters, got ''",
    ),
    (
        "ldap",
        {"servers": [{"name": "a", "host": "bad host"}]},
        "ldap.servers[0].host: expected a hostname or IP address, got 'bad host'",
    ),
    (
        "dns",
        {"servers": "192.0.2.53"},
        "dns.servers: expected a list of strings, each a hostname or IP address, got '192.0.2.53'",
    ),
    (
        "dns",
        {"servers": ["a.example", "a.example"]},
        "dns.servers[1]: 'a.example' appears twice (also at [0]); each entry must be unique",
    ),
    ("dns", {"servers": [53]}, "dns.servers[0]: expected a hostname or IP address, got 53"),
    (
        "dns",
        {"servers": [], "extra": 1.5},
        "dns.extra: floating-point numbers are not allowed; use an integer or a string",
    ),
    (
        "dns",
        {"servers": [], "extra": {"a": [0.5]}},
        "dns.extra.a[0]: floating-point numbers are not allowed; use an integer or a string",
    ),
    (
        "dns",
        {"servers": [], "extra": 2**64},
        "dns.extra: expected an integer in the signed 64-bit range, got 18446744073709551616",
    ),
    (
        "timezone",
        {"zone": "Mars/Olympus Mons"},
        "timezone.zone: expected an IANA time zone name such as UTC or Europe/Paris, "
        "got 'Mars/Olympus Mons'",
    ),
    (
        "timezone",
        {"zone": "../etc/passwd"},
        "timezone.zone: expected an IANA time zone name such as UTC or Europe/Paris, "
        "got '../etc/passwd'",
    ),
    (
        "interfaces",
        {"interfaces": [{"name": "Data 1", "address": "192.0.2.300", "netmask": "24"}]},
        "interfaces.interfaces[0].address: expected an IP address, got '192.0.2.300'",
    ),
    (
        "interfaces",
        {"interfaces": [{"name": "Data 1", "address": "192.0.2.3", "netmask": "255.0.255.0"}]},
        "interfaces.interfaces[0].netmask: expected a netmask such as 255.255.255.0, /24 or "
        "0xffffff00, got '255.0.255.0'",
    ),
    (
        "interfaces",
        {"interfaces": [{"name": "Data 1", "address": "192.0.2.3"}]},
        "interfaces.interfaces[0].netmask: missing; expected a netmask such as 255.255.255.0, "
        "/24 or 0xffffff00",
    ),
    (
        "listeners",
        {"listeners": [{"name": "L", "port": 25}]},
        "listeners.listeners[0].interface: missing; expected the name of an interface",
    ),
    (
        "listeners",
        {"listeners": [{"name": "L", "interface": "Data 1", "port": 70000}]},
        "listeners.listeners[0].port: expected an integer 1..65535, got 70000",
    ),
    (
        "textresources",
        {"resources": [{"name": "f", "kind": "Footer", "text": "x"}]},
        "textresources.resources[0].kind: expected a kind in lower case such as footer, header, "
        "disclaimer, dictionary, notification, got 'Footer'",
    ),
    (
        "textresources",
        {"resources": [{"name": "f", "kind": "footer"}]},
        "textresources.resources[0].text: missing; expected a string of at most 16384 characters",
    ),
    (
        "smtproutes",
        {"routes": [{"name": "example.com", "destinations": []}]},
        "smtproutes.routes[0].destinations: expected a list of at least 1 strings, each a host, "
        "host:port, /dev/null or USEDNS, got []",
    ),
    (
        "smtproutes",
        {"routes": [{"name": "not a domain", "destinations": ["x"]}]},
        "smtproutes.routes[0].name: expected a domain such as example.com or .example.com, or "
        "ALL, got 'not a domain'",
    ),
    (
        "destconfig",
        {"default": {"tls": "maybe"}},
        "destconfig.default.tls: expected one of off, preferred or required, got 'maybe'",
    ),
    (
        "destconfig",
        {"default": []},
        "destconfig.default: expected an object, got []",
    ),
    (
        "bounceprofiles",
        {"profiles": [{"name": "p", "hard_bounce": "yes"}]},
        "bounceprofiles.profiles[0].hard_bounce: expected true or false, got 'yes'",
    ),
    (
        "users",
        {"users": [{"name": "bob", "role": "root", "passphrase_hash": "h"}]},
        "users.users[0].role: expected one of admin, operator, readonly or guest, got 'root'",
    ),
    (
        "users",
        {"users": [{"name": "bob", "role": "admin"}]},
        "users.users[0].passphrase_hash: missing; expected a non-empty string of at most 1024 "
        "characters",
    ),
    (
        "hostname",
        {},
        "hostname.hostname: missing; expected a hostname",
    ),
    (
        "hostname",
        {"hostname": "-bad-.example"},
        "hostname.hostname: expected a hostname, got '-bad-.example'",
    ),
    (
        "featurekeys",
        {"keys": [{"name": "av", "expires": "next year"}]},
        "featurekeys.keys[0].expires: expected an ISO 8601 date or time such as 2026-12-31, "
        "got 'next year'",
    ),
    (
        "ssh",
        {"authorized_keys": [{"name": "k", "key": "not a key"}]},
        "ssh.authorized_keys[0].key: expected an OpenSSH public key line such as "
        "'ssh-ed25519 AAAA... comment', got 'not a key'",
    ),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD)
def test_bad_values(name: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        catalog.validate(name, value)
    assert str(e.value) == message
    assert e.value.exit_code == 2


def test_validate_unknown_section() -> None:
    with pytest.raises(InvalidInput, match="unknown section 'nope'"):
        catalog.validate("nope", {})


def test_lone_surrogate_refused() -> None:
    with pytest.raises(InvalidInput, match="lone surrogate"):
        catalog.validate("dns", {"servers": [], "x": "\ud800"})


# --------------------------------------------------------------------------- modes and levels

MODES = [
    ("cluster", "cluster", ""),
    ("group:Main_Group", "group", "Main_Group"),
    ("machine:mail1.example.com", "machine", "mail1.example.com"),
]


@pytest.mark.parametrize(("mode", "level", "target"), MODES)
def test_level_of(mode: str, level: str, target: str) -> None:
    assert catalog.level_of(mode) == level
    assert catalog.parse_mode(mode) == (level, target)


@pytest.mark.parametrize(
    "mode", ["", "Cluster", "group", "group:", "machine:", "machine: ", "site:x", "cluster:x"]
)
def test_bad_modes(mode: str) -> None:
    with pytest.raises(InvalidInput) as e:
        catalog.level_of(mode)
    assert str(e.value) == (
        f"mode {mode!r} is not valid: write cluster, group:NAME or machine:HOSTNAME"
    )


ALLOWED = [
    ("ldap", "cluster", True),
    ("ldap", "group:G", True),
    ("ldap", "machine:m", True),
    ("interfaces", "machine:m", True),
    ("interfaces", "cluster", False),
    ("interfaces", "group:G", False),
    ("hostname", "cluster", False),
    ("featurekeys", "group:G", False),
    ("time", "cluster", False),
    ("users", "cluster", True),
    ("users", "group:G", False),
    ("users", "machine:m", False),
    ("ssh", "machine:m", False),
]


@pytest.mark.parametrize(("name", "mode", "ok"), ALLOWED)
def test_check_mode_allowed(name: str, mode: str, ok: bool) -> None:
    if ok:
        catalog.check_mode_allowed(name, mode)
        return
    with pytest.raises(WrongMode) as e:
        catalog.check_mode_allowed(name, mode)
    assert e.value.allowed_levels == catalog.get(name).levels
    assert e.value.section == name
    assert e.value.mode == mode
    assert isinstance(e.value, InvalidInput)
    assert e.value.exit_code == 2


def test_wrong_mode_messages() -> None:
    with pytest.raises(WrongMode) as e:
        catalog.check_mode_allowed("interfaces", "cluster")
    assert str(e.value) == (
        "interfaces can only be set in machine mode: "
        "use --mode machine:HOST or `evstore clustermode machine HOST`"
    )
    with pytest.raises(WrongMode) as e:
        catalog.check_mode_allowed("users", "machine:m")
    assert str(e.value) == (
        "users can only be set in cluster mode: use --mode cluster or `evstore clustermode cluster`"
    )


def test_wrong_mode_names_two_levels() -> None:
    err = WrongMode("x", "machine:m", frozenset({"group", "cluster"}))
    assert str(err) == (
        "x can only be set in cluster or group mode: use --mode cluster or "
        "`evstore clustermode cluster` or --mode group:NAME or `evstore clustermode group NAME`"
    )


def test_check_mode_allowed_bad_mode() -> None:
    with pytest.raises(InvalidInput, match="is not valid"):
        catalog.check_mode_allowed("ldap", "everywhere")


# --------------------------------------------------------------------------- references

IFACES = {
    "interfaces": [
        {"name": "Data 1", "address": "192.0.2.1", "netmask": "24"},
    ]
}
LISTENER = {"name": "IncomingMail", "interface": "Data 1", "port": 25}

REFERENCE_CASES: list[tuple[str, dict[str, Any], list[Disabled]]] = [
    ("nothing set", {}, []),
    ("all resolve", {"interfaces": IFACES, "listeners": {"listeners": [LISTENER]}}, []),
    (
        "interface missing",
        {
            "interfaces": IFACES,
            "listeners": {"listeners": [{**LISTENER, "interface": "Data 2"}]},
        },
        [
            Disabled(
                "listeners", "IncomingMail", 'interface "Data 2" is not defined on this machine'
            )
        ],
    ),
    (
        "interfaces section absent counts as its empty default",
        {"listeners": {"listeners": [LISTENER]}},
        [
            Disabled(
                "listeners", "IncomingMail", 'interface "Data 1" is not defined on this machine'
            )
        ],
    ),
    (
        "footer missing",
        {"interfaces": IFACES, "listeners": {"listeners": [{**LISTENER, "footer": "disclaimer"}]}},
        [
            Disabled(
                "listeners", "IncomingMail", 'footer "disclaimer" is not defined on this machine'
            )
        ],
    ),
    (
        "footer of the wrong kind",
        {
            "interfaces": IFACES,
            "textresources": {
                "resources": [{"name": "disclaimer", "kind": "dictionary", "text": "x"}]
            },
            "listeners": {"listeners": [{**LISTENER, "footer": "disclaimer"}]},
        },
        [
            Disabled(
                "listeners",
                "IncomingMail",
                'footer "disclaimer" is not defined on this machine '
                '("disclaimer" is a dictionary, not a footer)',
            )
        ],
    ),
    (
        "footer present",
        {
            "interfaces": IFACES,
            "textresources": {
                "resources": [{"name": "disclaimer", "kind": "footer", "text": "x"}]
            },
            "listeners": {"listeners": [{**LISTENER, "footer": "disclaimer"}]},
        },
        [],
    ),
    (
        "two reasons on one listener",
        {"listeners": {"listeners": [{**LISTENER, "footer": "f"}]}},
        [
            Disabled(
                "listeners",
                "IncomingMail",
                'interface "Data 1" is not defined on this machine; '
                'footer "f" is not defined on this machine',
            )
        ],
    ),
    (
        "ldap query without its server",
        {
            "ldap": {
                "servers": [{"name": "corp", "host": "h", "port": 389}],
                "queries": [
                    {"name": "ok", "server": "corp", "base": "", "filter": "f"},
                    {"name": "lost", "server": "old", "base": "", "filter": "f"},
                ],
            }
        },
        [Disabled("ldap", "lost", 'LDAP server "old" is not defined on this machine')],
    ),
    (
        "bounce profile: the factory Default counts when the section is absent",
        {"destconfig": {"domains": [{"name": "a.example", "bounce_profile": "Default"}]}},
        [],
    ),
    (
        "bounce profile missing",
        {
            "bounceprofiles": {"profiles": []},
            "destconfig": {"domains": [{"name": "a.example", "bounce_profile": "Default"}]},
        },
        [
            Disabled(
                "destconfig", "a.example", 'bounce profile "Default" is not defined on this machine'
            )
        ],
    ),
    (
        "ssh key of an unknown user",
        {"ssh": {"authorized_keys": [{"name": "k", "key": "ssh-ed25519 AAAA", "user": "bob"}]}},
        [Disabled("ssh", "k", 'user "bob" is not defined on this machine')],
    ),
    (
        "malformed values are skipped, not crashed on",
        {"listeners": {"listeners": ["x", {"interface": "y"}, {"name": 3}]}, "interfaces": None},
        [],
    ),
]


@pytest.mark.parametrize(
    ("effective", "disabled"),
    [(eff, dis) for _, eff, dis in REFERENCE_CASES],
    ids=[case for case, _, _ in REFERENCE_CASES],
)
def test_check_references(effective: dict[str, Any], disabled: list[Disabled]) -> None:
    assert catalog.check_references(effective) == disabled


def test_disabled_as_dict() -> None:
    d = Disabled("listeners", "L", "why")
    assert d.as_dict() == {"section": "listeners", "item": "L", "reason": "why"}


def test_broken_references_names_only_new_breaks() -> None:
    before = {
        "interfaces": IFACES,
        "listeners": {
            "listeners": [LISTENER, {"name": "Old", "interface": "gone", "port": 26}]
        },
    }
    after = {**before, "interfaces": {"interfaces": []}}
    broken = catalog.broken_references(before, after)
    assert broken == [
        BrokenReference(
            "listeners",
            "IncomingMail",
            "interface",
            "Data 1",
            'interface "Data 1" is not defined on this machine',
        )
    ]
    assert broken[0].as_dict()["target"] == "Data 1"
    assert catalog.broken_references(after, before) == []
    assert catalog.broken_references(before, before) == []


def test_dependents() -> None:
    assert [(r.section, r.field) for r in catalog.dependents("interfaces")] == [
        ("listeners", "interface"), ("routes", "interface")
    ]
    assert {r.section for r in catalog.dependents("textresources")} == {"listeners"}


def test_references_point_at_items_lists() -> None:
    for ref in catalog.REFERENCES:
        assert ref.items in catalog.item_fields(ref.section)
        assert ref.target_items in catalog.item_fields(ref.target_section)
        assert ref.field in catalog.get(ref.section).fields[ref.items].kind.fields  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- set_path

SETS: list[tuple[str, Any, str, str, Any]] = [
    ("timezone", {"zone": "UTC"}, "zone", "Europe/Paris", {"zone": "Europe/Paris"}),
    ("timezone", {"zone": "Europe/Paris"}, "zone", "null", {}),
    ("time", {"ntp_sync": True}, "ntp_sync", "false", {"ntp_sync": False}),
    ("dns", {"servers": []}, "servers", '["192.0.2.53","ns.example"]',
     {"servers": ["192.0.2.53", "ns.example"]}),
    (
        "ldap",
        {"servers": [], "queries": []},
        "servers.corp.host",
        "ldap.example.com",
        {"servers": [{"name": "corp", "host": "ldap.example.com"}], "queries": []},
    ),
    (
        "ldap",
        {"servers": [{"name": "corp", "host": "h", "port": 389}], "queries": []},
        "servers.corp.port",
        "636",
        {"servers": [{"name": "corp", "host": "h", "port": 636}], "queries": []},
    ),
    (
        "ldap",
        {"servers": [{"name": "corp", "host": "h", "port": 636}], "queries": []},
        "servers.corp.port",
        "null",
        {"servers": [{"name": "corp", "host": "h"}], "queries": []},
    ),
    (
        "ldap",
        {"servers": [{"name": "a", "host": "h"}, {"name": "b", "host": "g"}]},
        "servers.a",
        "null",
        {"servers": [{"name": "b", "host": "g"}]},
    ),
    (
        "ldap",
        {"servers": [{"name": "a", "host": "h"}, {"name": "b", "host": "g"}]},
        "servers.a",
        '{"host": "new"}',
        {"servers": [{"name": "a", "host": "new"}, {"name": "b", "host": "g"}]},
    ),
    (
        "ldap",
        {"servers": [{"name": "a", "host": "h"}]},
        "servers.a.name",
        "z",
        {"servers": [{"name": "z", "host": "h"}]},
    ),
    (
        "listeners",
        {},
        "listeners.IncomingMail",
        '{"interface": "Data 1", "port": 25}',
        {"listeners": [{"name": "IncomingMail", "interface": "Data 1", "port": 25}]},
    ),
    (
        "listeners",
        {"listeners": [{"name": "Data In", "interface": "Data 1", "port": 25}]},
        "listeners.Data In.footer",
        "disclaimer",
        {
            "listeners": [
                {"name": "Data In", "interface": "Data 1", "port": 25, "footer": "disclaimer"}
            ]
        },
    ),
    (
        "smtproutes",
        {"routes": []},
        "routes.example.com.destinations",
        '["mx1.example.com"]',
        {"routes": [{"name": "example.com", "destinations": ["mx1.example.com"]}]},
    ),
    (  # a dotted name that exists is the whole entry
        "smtproutes",
        {"routes": [{"name": "example.com", "destinations": ["mx"]}]},
        "routes.example.com",
        "null",
        {"routes": []},
    ),
    (
        "smtproutes",
        {"routes": []},
        "routes[a.example]",
        '{"destinations": ["mx"]}',
        {"routes": [{"name": "a.example", "destinations": ["mx"]}]},
    ),
    (
        "smtproutes",
        {"routes": [{"name": "a.example", "destinations": ["mx"]}]},
        "routes[a.example].destinations",
        '["mx2"]',
        {"routes": [{"name": "a.example", "destinations": ["mx2"]}]},
    ),
    (
        "destconfig",
        {"default": {"max_connections": 50}, "domains": []},
        "default.max_connections",
        "60",
        {"default": {"max_connections": 60}, "domains": []},
    ),
    (  # JSON string: the quotes make it text
        "textresources",
        {},
        "resources.f.text",
        '"1.5"',
        {"resources": [{"name": "f", "text": "1.5"}]},
    ),
    (  # not JSON: taken as text
        "interfaces",
        {},
        "interfaces.Data 1.netmask",
        "255.255.255.0",
        {"interfaces": [{"name": "Data 1", "netmask": "255.255.255.0"}]},
    ),
    (None, None, "zone", "UTC", {"zone": "UTC"}),  # no section: structure inferred
    (None, {"default": {}}, "default.tls", "off", {"default": {"tls": "off"}}),
    (None, {}, "servers.a.host", "h", {"servers": [{"name": "a", "host": "h"}]}),
]


@pytest.mark.parametrize(("name", "start", "key", "raw", "expected"), SETS)
def test_set_path(name: str | None, start: Any, key: str, raw: str, expected: Any) -> None:
    before = json.dumps(start)
    assert catalog.set_path(start, key, raw, name) == expected
    assert json.dumps(start) == before  # input untouched


KEY_HELP = "write KEY, LIST.NAME or LIST.NAME.FIELD"
SET_ERRORS: list[tuple[str | None, Any, str, str, str]] = [
    (
        "timezone",
        {},
        "zon",
        "UTC",
        "timezone.zon: unknown key; did you mean zone?",
    ),
    (
        "ldap",
        {},
        "servers.x.hots",
        "h",
        "ldap.servers[x].hots: unknown key; did you mean host?",
    ),
    (
        "ldap",
        {"servers": [{"name": "a", "host": "h"}]},
        "servers.x",
        "null",
        "ldap.servers has no entry named 'x' (entries: a)",
    ),
    (
        "ldap",
        {},
        "servers.x",
        "5",
        "ldap.servers[x]: expected an object (or null to remove the entry), got 5",
    ),
    (
        "ldap",
        {},
        "servers.x",
        '{"name": "y"}',
        "ldap.servers[x]: the object's name 'y' differs",
    ),
    (
        "ldap",
        {"servers": [{"name": "a", "host": "h"}, {"name": "b", "host": "h"}]},
        "servers.a.name",
        "b",
        "ldap.servers: an entry named 'b' exists already",
    ),
    (
        "ldap",
        {"servers": [{"name": "a", "host": "h"}]},
        "servers.a.name",
        "null",
        "ldap.servers[a].name: expected a name (an entry cannot lose its name), got null",
    ),
    (
        "ldap",
        {},
        "servers.x.port",
        "1.5",
        "servers.x.port=1.5: floating-point numbers are not allowed; use an integer or a string "
        "(to store text, write it as a JSON string)",
    ),
    (
        "dns",
        {},
        "servers.x",
        "1",
        "dns.servers is not a list of named entries: set it whole with servers=...",
    ),
    (
        "destconfig",
        {},
        "default.max_connections.x",
        "1",
        "destconfig.default is not a list of named entries: set it whole with default=...",
    ),
    ("dns", {}, ".servers", "1", f"key '.servers' is not valid: {KEY_HELP}"),
    ("dns", {}, "servers.", "1", f"key 'servers.' is not valid: {KEY_HELP}"),
    ("smtproutes", {}, "routes[a", "1", "key 'routes[a': write LIST[NAME] or LIST[NAME].FIELD"),
    ("smtproutes", {}, "routes[]", "1", "key 'routes[]': write LIST[NAME] or LIST[NAME].FIELD"),
    ("nope", {}, "a", "1", None),
]


@pytest.mark.parametrize(("name", "start", "key", "raw", "message"), SET_ERRORS)
def test_set_path_errors(
    name: str | None, start: Any, key: str, raw: str, message: str | None
) -> None:
    with pytest.raises(InvalidInput) as e:
        catalog.set_path(start, key, raw, name)
    if message is not None:
        assert str(e.value) == message


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("abc", "abc"),
        ("", ""),
        ('"abc"', "abc"),
        ("42", 42),
        ("-1", -1),
        ("true", True),
        ("null", None),
        ("[1, 2]", [1, 2]),
        ('{"a": 1}', {"a": 1}),
        ("192.0.2.1", "192.0.2.1"),
        ("dc=example,dc=com", "dc=example,dc=com"),
    ],
)
def test_parse_value(raw: str, value: Any) -> None:
    assert catalog.parse_value(raw) == value


@pytest.mark.parametrize("raw", ["1.5", "1e3", '{"a": 1, "a": 2}', "NaN"])
def test_parse_value_refuses(raw: str) -> None:
    with pytest.raises(InvalidInput):
        catalog.parse_value(raw)


def test_apply_assignments_validates_the_whole() -> None:
    out = catalog.apply_assignments(
        "ldap",
        None,
        [
            "queries.q.server=corp",
            "queries.q.base=dc=example,dc=com",
            "queries.q.filter=(mail={a})",
            "servers.corp.host=ldap.example.com",
        ],
    )
    assert out == {
        "servers": [{"name": "corp", "host": "ldap.example.com", "port": 389}],
        "queries": [
            {"name": "q", "server": "corp", "base": "dc=example,dc=com", "filter": "(mail={a})"}
        ],
    }


def test_apply_assignments_refuses_bad_results_and_syntax() -> None:
    with pytest.raises(InvalidInput, match=r"^ldap.servers\[0\].port: expected an integer"):
        catalog.apply_assignments("ldap", None, ["servers.a.host=h", "servers.a.port=abc"])
    with pytest.raises(InvalidInput, match="write KEY=VALUE"):
        catalog.apply_assignments("ldap", None, ["servers"])


# --------------------------------------------------------------------------- property: idempotence

FORMAT_EXAMPLES: dict[str, list[str]] = {
    "host": ["mail1.example.com", "localhost", "a-b.c_d.example."],
    "ip": ["192.0.2.1", "2001:db8::1", "10.0.0.255"],
    "ip_or_host": ["ns1.example.com", "192.0.2.53", "::1"],
    "domain": ["example.com", ".example.org", "a.b.c"],
    "route": ["ALL", "example.com", ".example.net"],
    "netmask": ["255.255.255.0", "/24", "16", "0xffff0000", "255.255.255.255"],
    "zone": ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT-3"],
    "datetime": ["2026-12-31", "2026-12-31T23:59:59Z", "2026-01-01T00:00"],
    "ipv4": ["192.0.2.1", "10.0.0.254"],
    "ipv6": ["2001:db8::1", "fe80::1"],
    "network": ["10.20.0.0/16", "2001:db8::/32", "default", "192.0.2.7/32"],
}

SAFE_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="\x7f"),
    max_size=12,
)
PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | SAFE_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SAFE_TEXT, inner, max_size=3),
    max_leaves=6,
)


def _fits(kind: Kind, value: Any) -> bool:
    try:
        kind.check(value, "x")
    except InvalidInput:
        return False
    return True


def strategy(kind: Kind) -> st.SearchStrategy[Any]:
    """Values the schema accepts, built from the schema itself."""
    if isinstance(kind, Str):
        if kind.format is not None:
            return st.sampled_from(FORMAT_EXAMPLES[kind.format])
        if kind.pattern is not None:
            base = st.from_regex(kind.pattern, fullmatch=True)
        else:
            base = SAFE_TEXT
        return base.filter(lambda s: _fits(kind, s))
    if isinstance(kind, Int):
        return st.integers(kind.low, kind.high)
    if isinstance(kind, Bool):
        return st.booleans()
    if isinstance(kind, Choice):
        return st.sampled_from(kind.options)
    if isinstance(kind, StrList):
        return st.lists(
            strategy(kind.item), min_size=kind.min_items, max_size=4, unique=kind.unique
        )
    if isinstance(kind, Obj):
        return _object(kind.fields)
    if isinstance(kind, Items):
        return st.lists(
            _object(kind.all_fields), max_size=4, unique_by=lambda item: item["name"]
        )
    raise AssertionError(kind)


def _object(fields: Any) -> st.SearchStrategy[dict[str, Any]]:
    required = {k: strategy(f.kind) for k, f in fields.items() if f.required}
    optional = {k: st.none() | strategy(f.kind) for k, f in fields.items() if not f.required}
    extras = st.dictionaries(st.sampled_from(["x_note", "x_tag", "x_n"]), PLAIN, max_size=2)
    return st.builds(
        lambda a, b: {**a, **b},
        st.fixed_dictionaries(required, optional=optional),
        extras,
    )


SECTION_VALUES = st.sampled_from(sorted(catalog.SECTIONS)).flatmap(
    lambda name: st.tuples(st.just(name), _object(catalog.get(name).fields))
)


@settings(max_examples=300, deadline=None)
@given(SECTION_VALUES)
def test_validate_is_idempotent(case: tuple[str, dict[str, Any]]) -> None:
    name, value = case
    once = catalog.validate(name, value)
    assert catalog.validate(name, once) == once
    assert set(once) >= set(catalog.get(name).fields) - {
        k for k, f in catalog.get(name).fields.items() if not (f.required or f.has_default)
    }
    encoding.encode(once)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(catalog.SECTIONS)), PLAIN, max_size=6))
def test_check_references_never_crashes(effective: dict[str, Any]) -> None:
    for d in catalog.check_references(effective):
        assert isinstance(d.reason, str)
