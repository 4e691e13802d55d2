"""The sections of the catalog, one definition each, and how to find one.

Each ``Section`` is the counterpart of one AsyncOS configuration command (its
``seed_command``); ``SECTIONS`` holds them by name, in catalog order.
"""

from __future__ import annotations

import copy
from typing import Any

from evstore.core.catalog.levels import (
    ANY_LEVEL,
    CLUSTER_ONLY,
    MACHINE_ONLY,
    WrongMode,
    level_of,
)
from evstore.core.catalog.schema import (
    Bool,
    Choice,
    Int,
    Items,
    Obj,
    Section,
    Str,
    StrList,
    opt,
    req,
)
from evstore.core.errors import InvalidInput

PORT = Int(1, 65535)
HOST_OR_IP = Str(format="ip_or_host", max_length=253)


def _ref(what: str) -> Str:
    """A string naming an entry elsewhere (a reference, resolved per machine)."""
    return Str(non_empty=True, max_length=255, hint=f"the name of {what}")


USERNAME = Str(
    non_empty=True,
    max_length=64,
    pattern=r"[A-Za-z0-9_][A-Za-z0-9_.@-]*",
    hint="a user name (letters, digits, _ . @ -)",
)
ROLES: tuple[str, ...] = ("admin", "operator", "readonly", "guest")
TEXT_KINDS: tuple[str, ...] = ("footer", "header", "disclaimer", "dictionary", "notification")
TLS_MODES: tuple[str, ...] = ("off", "preferred", "required")
MEDIA: tuple[str, ...] = (
    "auto", "10baseT/UTP half-duplex", "10baseT/UTP full-duplex", "100baseTX half-duplex",
    "100baseTX full-duplex", "1000baseTX full-duplex", "10000baseT full-duplex",
)
MAX_TEXT = 16384

_DEFAULT_BOUNCE_PROFILE: dict[str, Any] = {
    "name": "Default",
    "max_retries": 100,
    "max_queue_lifetime": 259200,
    "initial_retry": 60,
    "max_retry_timeout": 3600,
    "hard_bounce": True,
}

_SECTION_LIST: tuple[Section, ...] = (
    Section(
        name="listeners",
        title="Listeners",
        seed_command="listenerconfig",
        levels=ANY_LEVEL,
        default={"listeners": []},
        fields={
            "listeners": opt(
                Items(
                    {
                        "interface": req(_ref("an interface"), "an interface of the machine"),
                        "port": req(PORT),
                        "footer": opt(_ref("a footer"), doc="a text resource of kind footer"),
                    }
                ),
                default=[],
            )
        },
        description="Where mail is accepted: each listener names an IP interface (by name, "
        "defined per machine) and a port, and may stamp a footer (a text resource).",
    ),
    Section(
        name="destconfig",
        title="Destination controls (Good Neighbor Table)",
        seed_command="destconfig",
        levels=ANY_LEVEL,
        default={
            "default": {"max_connections": 50, "max_messages_per_connection": 50, "tls": "off"},
            "domains": [],
        },
        fields={
            "default": opt(
                Obj(
                    {
                        "max_connections": opt(Int(1, 50000), 50),
                        "max_messages_per_connection": opt(Int(1, 1000), 50),
                        "tls": opt(Choice(TLS_MODES), "off"),
                    }
                ),
                default={},
                doc="limits for every destination domain not listed",
            ),
            "domains": opt(
                Items(
                    {
                        "max_connections": opt(Int(1, 50000)),
                        "max_messages_per_connection": opt(Int(1, 1000)),
                        "tls": opt(Choice(TLS_MODES)),
                        "bounce_profile": opt(_ref("a bounce profile")),
                    },
                    name=Str(format="domain", max_length=253),
                ),
                default=[],
                doc="per-domain limits; a limit left out is taken from default",
            ),
        },
        description="Limits on outgoing connections per destination domain. Limits apply per "
        "machine, even when set at cluster level.",
    ),
    Section(
        name="ldap",
        title="LDAP server profiles and queries",
        seed_command="ldapconfig",
        levels=ANY_LEVEL,
        default={"servers": [], "queries": []},
        fields={
            "servers": opt(Items({"host": req(HOST_OR_IP), "port": opt(PORT, 389)}), default=[]),
            "queries": opt(
                Items(
                    {
                        "server": req(_ref("an LDAP server"), "a server of this section"),
                        "base": req(Str(max_length=1024), "the base DN"),
                        "filter": req(Str(non_empty=True, max_length=4096)),
                    }
                ),
                default=[],
            ),
        },
        description="LDAP servers and the queries run against them.",
    ),
    Section(
        name="smtproutes",
        title="SMTP routes",
        seed_command="smtproutes",
        levels=ANY_LEVEL,
        default={"routes": []},
        fields={
            "routes": opt(
                Items(
                    {
                        "destinations": req(
                            StrList(
                                Str(
                                    non_empty=True,
                                    max_length=512,
                                    hint="a host, host:port, /dev/null or USEDNS",
                                ),
                                min_items=1,
                            )
                        )
                    },
                    name=Str(format="route", max_length=253),
                ),
                default=[],
            )
        },
        description="Where mail for a domain is sent instead of its MX hosts. Starts as a "
        "blank table: there is no factory route.",
    ),
    Section(
        name="dns",
        title="DNS servers",
        seed_command="dnsconfig",
        levels=ANY_LEVEL,
        default={"servers": []},
        fields={"servers": opt(StrList(HOST_OR_IP), default=[])},
        description="The DNS servers to ask; none means the Internet root servers.",
    ),
    Section(
        name="textresources",
        title="Text resources",
        seed_command="textconfig",
        levels=ANY_LEVEL,
        default={"resources": []},
        fields={
            "resources": opt(
                Items(
                    {
                        "kind": req(
                            Str(
                                non_empty=True,
                                max_length=64,
                                pattern=r"[a-z][a-z0-9_-]*",
                                hint="a kind in lower case such as " + ", ".join(TEXT_KINDS),
                            )
                        ),
                        "text": req(Str(max_length=MAX_TEXT)),
                    }
                ),
                default=[],
            )
        },
        description="Named texts: footers and disclaimers stamped on mail, dictionaries, "
        "notification templates.",
    ),
    Section(
        name="bounceprofiles",
        title="Bounce profiles",
        seed_command="bounceconfig",
        levels=ANY_LEVEL,
        default={"profiles": [dict(_DEFAULT_BOUNCE_PROFILE)]},
        fields={
            "profiles": opt(
                Items(
                    {
                        "max_retries": opt(Int(0, 10000), 100),
                        "max_queue_lifetime": opt(Int(0, 3_000_000), 259200, "seconds"),
                        "initial_retry": opt(Int(1, 86400), 60, "seconds"),
                        "max_retry_timeout": opt(Int(1, 86400), 3600, "seconds"),
                        "hard_bounce": opt(Bool(), True),
                    }
                ),
                default=[],
            )
        },
        description="How undeliverable mail is retried and bounced.",
    ),
    Section(
        name="unsubscribe",
        title="Global unsubscribe",
        seed_command="unsubscribe",
        levels=ANY_LEVEL,
        default={"enabled": True, "entries": []},
        fields={
            "enabled": opt(Bool(), True),
            "entries": opt(
                Items(
                    {"comment": opt(Str(max_length=255))},
                    name=Str(
                        non_empty=True,
                        max_length=255,
                        pattern=r"\S+",
                        hint="an address, @domain, domain or IP address",
                    ),
                ),
                default=[],
            ),
        },
        description="Recipients mail is never delivered to.",
    ),
    Section(
        name="timezone",
        title="Time zone",
        seed_command="settz",
        levels=ANY_LEVEL,
        default={"zone": "UTC"},
        fields={"zone": opt(Str(format="zone"), "UTC")},
        description="The time zone used to show local times.",
    ),
    Section(
        name="ntp",
        title="NTP servers",
        seed_command="ntpconfig",
        levels=ANY_LEVEL,
        default={"servers": []},
        fields={"servers": opt(StrList(HOST_OR_IP), default=[])},
        description="The time servers the machine's clock follows.",
    ),
    Section(
        name="interfaces",
        title="IP interfaces",
        seed_command="interfaceconfig",
        levels=MACHINE_ONLY,
        default={"interfaces": []},
        fields={
            "interfaces": opt(
                Items(
                    {
                        "address": req(Str(format="ip")),
                        "netmask": req(Str(format="netmask")),
                        "hostname": opt(Str(format="host")),
                        "port": opt(_ref("an ethernet port"),
                                    doc="the ethernet port it is on (see the ethernet section)"),
                    }
                ),
                default=[],
            )
        },
        clusterable=False,
        description="The machine's IP interfaces. Listeners name them, so give the same "
        "interface the same name on every machine.",
    ),
    Section(
        name="hostname",
        title="Hostname",
        seed_command="sethostname",
        levels=MACHINE_ONLY,
        default=None,
        fields={"hostname": req(Str(format="host"))},
        clusterable=False,
        description="The machine's fully qualified name; no factory default (set at init).",
    ),
    Section(
        name="featurekeys",
        title="Feature keys",
        seed_command="featurekey",
        levels=MACHINE_ONLY,
        default={"keys": []},
        fields={
            "keys": opt(
                Items(
                    {
                        "expires": opt(Str(format="datetime")),
                        "key": opt(Str(non_empty=True, max_length=1024)),
                    }
                ),
                default=[],
            )
        },
        clusterable=False,
        description="Licensed features of this machine and when they expire.",
    ),
    Section(
        name="time",
        title="System time",
        seed_command="settime",
        levels=MACHINE_ONLY,
        default={"ntp_sync": True},
        fields={"ntp_sync": opt(Bool(), True)},
        clusterable=False,
        description="Whether the machine's clock follows NTP or is set by hand.",
    ),
    Section(
        name="access",
        title="Administration access",
        seed_command="adminaccessconfig",
        levels=MACHINE_ONLY,
        default={"admin": True, "gui": True},
        fields={"admin": opt(Bool(), True), "gui": opt(Bool(), True)},
        clusterable=False,
        description="Whether this machine may be administered over the network (admin: "
        "logins, and joins through it) and serve the web pages (gui). Turned off, it stays a "
        "member that only the cluster configures: the seed's secondary box.",
    ),
    Section(
        name="routes",
        title="Static routes",
        seed_command="routeconfig",
        levels=MACHINE_ONLY,
        default={"routes": []},
        fields={
            "routes": opt(
                Items(
                    {
                        "destination": req(Str(format="network", max_length=64)),
                        "gateway": req(Str(format="ip")),
                        "interface": opt(_ref("an interface"),
                                         doc="the interface the gateway is reached through"),
                    }
                ),
                default=[],
            )
        },
        clusterable=False,
        description="The machine's static IP routes: traffic for a destination network goes "
        "through a gateway, optionally through one of the machine's interfaces.",
    ),
    Section(
        name="gateway",
        title="Default gateway",
        seed_command="setgateway",
        levels=MACHINE_ONLY,
        default={},
        fields={"ipv4": opt(Str(format="ipv4")), "ipv6": opt(Str(format="ipv6"))},
        clusterable=False,
        description="The machine's default router, for IPv4 and for IPv6.",
    ),
    Section(
        name="ethernet",
        title="Ethernet media settings",
        seed_command="etherconfig",
        levels=MACHINE_ONLY,
        default={"ports": []},
        fields={
            "ports": opt(
                Items(
                    {
                        "media": opt(Choice(MEDIA), "auto"),
                        "mtu": opt(Int(576, 9216), 1500),
                    }
                ),
                default=[],
                doc="the machine's ethernet ports; interfaces name them",
            )
        },
        clusterable=False,
        description="Speed and duplex (media) and MTU of each of the machine's ethernet ports.",
    ),
    Section(
        name="users",
        title="Users",
        seed_command="userconfig",
        levels=CLUSTER_ONLY,
        default={"users": []},
        fields={
            "users": opt(
                Items(
                    {
                        "role": req(Choice(ROLES)),
                        "passphrase_hash": req(Str(non_empty=True, max_length=1024)),
                    },
                    name=USERNAME,
                ),
                default=[],
            )
        },
        description="The one user database of the cluster, managed by userconfig and passwd; "
        "the admin user is added when a node is made.",
    ),
    Section(
        name="ssh",
        title="SSH authorized keys",
        seed_command="sshconfig",
        levels=CLUSTER_ONLY,
        default={"authorized_keys": []},
        fields={
            "authorized_keys": opt(
                Items(
                    {
                        "key": req(
                            Str(
                                max_length=16384,
                                pattern=r"(?:ssh-|ecdsa-|sk-)\S+ [A-Za-z0-9+/]+=*(?: .*)?",
                                hint="an OpenSSH public key line such as "
                                "'ssh-ed25519 AAAA... comment'",
                            )
                        ),
                        "user": opt(USERNAME, doc="the user this key logs in as"),
                    }
                ),
                default=[],
            )
        },
        description="Public keys allowed to log in over SSH, cluster-wide.",
    ),
    Section(
        name="prepjoin",
        title="Pending pre-shared-key joins",
        seed_command="clusterconfig prepjoin",
        levels=CLUSTER_ONLY,
        default={"hosts": []},
        fields={
            "hosts": opt(
                Items(
                    {
                        "serial": req(Str(non_empty=True, max_length=128)),
                        "key": req(
                            Str(pattern=r"[0-9a-f]{64}", hint="64 lower-case hex digits")
                        ),
                    }
                ),
                default=[],
            )
        },
        description="Machines allowed to join with their host key instead of the admin "
        "passphrase (managed by `clusterconfig prepjoin`); a join uses its entry up.",
    ),
)

SECTIONS: dict[str, Section] = {s.name: s for s in _SECTION_LIST}
_BY_SEED_COMMAND = {s.seed_command: s.name for s in _SECTION_LIST}


def get(name: str | Section) -> Section:
    """The section called ``name``; InvalidInput naming the known sections otherwise."""
    if isinstance(name, Section):
        return name
    section = SECTIONS.get(name)
    if section is not None:
        return section
    hint = ""
    if name in _BY_SEED_COMMAND:
        hint = f" (the seed's {name} is the section {_BY_SEED_COMMAND[name]!r})"
    known = ", ".join(sorted(SECTIONS))
    raise InvalidInput(f"unknown section {name!r}{hint}: known sections are {known}")


def factory_default(section: str | Section) -> dict[str, Any] | None:
    """A copy of the section's factory default (None when it has none)."""
    return copy.deepcopy(get(section).default)


def item_fields(section: str | Section) -> frozenset[str]:
    """The top-level keys that are items lists (one merge register per named item)."""
    return frozenset(k for k, f in get(section).fields.items() if isinstance(f.kind, Items))


def check_mode_allowed(section: str | Section, mode: str) -> None:
    """Raise WrongMode unless ``section`` may be defined at ``mode``."""
    sec = get(section)
    if level_of(mode) not in sec.levels:
        raise WrongMode(sec.name, mode, sec.levels)
