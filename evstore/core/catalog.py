"""The catalog of configuration sections: what can be set, where, and what a valid value is.

Theory of operation
-------------------
A *section* is one table of settings, the counterpart of one AsyncOS configuration command
(``ldap`` models ``ldapconfig``, ``listeners`` models ``listenerconfig``...). A section is
defined, whole, at a mode: ``cluster``, ``group:NAME`` or ``machine:HOSTNAME``; a machine uses
the most specific definition that applies to it, else the factory default. Where a section may
be defined is fixed by its *levels*: most sections may be defined at any level; those that only
make sense for one box (its interfaces, hostname, feature keys, clock) are *machine only* and are
never clustered: they stay with the machine when it creates or joins a cluster; the user
database and SSH keys are *cluster only*, so one login works everywhere.

A section's value is a JSON object without floats. Its schema is written in the small
declarative language below (``Str``, ``Int``, ``Bool``, ``Choice``, ``StrList``, ``Obj``,
``Items``, each key wrapped in a ``Field``). Every top-level key is either a plain value (a
string, integer, boolean, list of strings or small object) or an *items list*: a list of objects
identified by a unique ``name``. The merge engine relies on that split: it keeps one
last-writer-wins register per plain top-level key and one per named item, so two people who
change different keys, or different items of one list, both keep their change.

``validate`` accepts keys the schema does not name: they are kept as given, checked only to be
float-free JSON, so an event signed with one keeps its meaning. A value a person enters goes
through ``accept`` instead, which refuses a key the value did not have already, naming the
nearest known key (a typo must not empty a list for the whole cluster). ``validate`` returns the *normalized* value: fields that
have a default and were left out (or given as null) get their default, optional fields given as
null are dropped, list order is kept. Validating a normalized value changes nothing.

Sections may refer to items of other sections (a listener names an interface and a footer, an
LDAP query names an LDAP server). Those are resolved per machine, against that machine's
effective settings, which may come from different modes: a reference that does not resolve
there does not make the value invalid, it *disables* the referring item on that machine (the
seed's "interdependent settings"). ``check_references`` lists them; ``broken_references``
tells what a change newly breaks, for ``commit --dry-run``.

This module is pure: stdlib only, no files, clock or randomness.
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from evstore.core.encoding import INT_MAX, INT_MIN, loads_json
from evstore.core.errors import EncodingError, InvalidInput

__all__ = [
    "ANY_LEVEL",
    "CLUSTER",
    "FORMATS",
    "CLUSTER_ONLY",
    "GROUP",
    "LEVELS",
    "MACHINE",
    "MACHINE_ONLY",
    "MISSING",
    "REFERENCES",
    "SECTIONS",
    "Bool",
    "BrokenReference",
    "Choice",
    "Disabled",
    "Field",
    "Int",
    "Items",
    "Kind",
    "Obj",
    "Reference",
    "Section",
    "Str",
    "StrList",
    "WrongMode",
    "accept",
    "apply_assignments",
    "broken_references",
    "check_mode_allowed",
    "check_references",
    "dependents",
    "describe",
    "factory_default",
    "find_broken",
    "get",
    "item_fields",
    "level_of",
    "parse_mode",
    "parse_value",
    "set_path",
    "unknown_keys",
    "validate",
]

CLUSTER = "cluster"
GROUP = "group"
MACHINE = "machine"
LEVELS: tuple[str, ...] = (CLUSTER, GROUP, MACHINE)
ANY_LEVEL: frozenset[str] = frozenset(LEVELS)
MACHINE_ONLY: frozenset[str] = frozenset({MACHINE})
CLUSTER_ONLY: frozenset[str] = frozenset({CLUSTER})

_EXTRA_DEPTH = 32  # how deep extra (unschema'd) values may nest


class _Missing:
    """Marks a field without a default (None is a value, so it cannot be the marker)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


# --------------------------------------------------------------------------------------------
# Rendering values in error messages
# --------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A short rendering of a bad value for an error message."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad(path: str, expected: str, value: Any) -> InvalidInput:
    return InvalidInput(f"{path}: expected {expected}, got {_show(value)}")


def _has_surrogate(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _plain(value: Any, path: str, depth: int = 0) -> Any:
    """Check an extra (unschema'd) value: float-free JSON. Returns a deep copy."""
    if depth > _EXTRA_DEPTH:
        raise InvalidInput(f"{path}: nested deeper than {_EXTRA_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise _bad(path, "an integer in the signed 64-bit range", value)
        return value
    if isinstance(value, str):
        if _has_surrogate(value):
            raise InvalidInput(f"{path}: string holds a lone surrogate; use valid Unicode text")
        return value
    if isinstance(value, float):
        raise InvalidInput(
            f"{path}: floating-point numbers are not allowed; use an integer or a string"
        )
    if isinstance(value, list):
        return [_plain(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return _plain_dict(value, path, depth)
    raise InvalidInput(f"{path}: expected a JSON value, got a {type(value).__name__}")


def _plain_dict(value: dict[Any, Any], path: str, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise InvalidInput(f"{path}: object key {_show(k)} is not a string")
        out[k] = _plain(v, f"{path}.{k}", depth + 1)
    return out


# --------------------------------------------------------------------------------------------
# String formats: named checks a Str may refer to (the core cannot ask DNS or the tz database)
# --------------------------------------------------------------------------------------------

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_ZONE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_][A-Za-z0-9_+-]*){0,2}")
_DATETIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:T[0-9]{2}:[0-9]{2}(?::[0-9]{2})?(?:Z|[+-][0-9]{2}:[0-9]{2})?)?"
)


def _is_host(s: str) -> bool:
    return len(s) <= 253 and _HOST_RE.fullmatch(s) is not None


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def _is_domain(s: str) -> bool:
    """A domain, or a partial domain written with a leading dot (``.example.com``)."""
    return _is_host(s[1:] if s.startswith(".") else s)


def _is_netmask(s: str) -> bool:
    """``255.255.255.0``, ``/24``, ``24`` or ``0xffffff00``."""
    if re.fullmatch(r"/?[0-9]{1,3}", s):
        return int(s.lstrip("/")) <= 128
    if re.fullmatch(r"0x[0-9A-Fa-f]{8}", s):
        bits = int(s, 16)
    else:
        try:
            bits = int(ipaddress.IPv4Address(s))
        except ValueError:
            return False
    host = ~bits & 0xFFFFFFFF
    return (host + 1) & host == 0


def _is_ip_of(version: int) -> Callable[[str], bool]:
    def check(s: str) -> bool:
        try:
            return ipaddress.ip_address(s).version == version
        except ValueError:
            return False

    return check


def _is_network(s: str) -> bool:
    """``10.20.0.0/16``, ``2001:db8::/32`` or ``default`` (host bits may be set: a route)."""
    if s == "default":
        return True
    try:
        ipaddress.ip_network(s, strict=False)
    except ValueError:
        return False
    return "/" in s


def _is_zone(s: str) -> bool:
    return len(s) <= 64 and _ZONE_RE.fullmatch(s) is not None


FORMATS: dict[str, tuple[Callable[[str], bool], str]] = {
    "host": (_is_host, "a hostname"),
    "ip": (_is_ip, "an IP address"),
    "ip_or_host": (lambda s: _is_ip(s) or _is_host(s), "a hostname or IP address"),
    "domain": (_is_domain, "a domain such as example.com or .example.com"),
    "route": (
        lambda s: s == "ALL" or _is_domain(s),
        "a domain such as example.com or .example.com, or ALL",
    ),
    "netmask": (_is_netmask, "a netmask such as 255.255.255.0, /24 or 0xffffff00"),
    "ipv4": (_is_ip_of(4), "an IPv4 address"),
    "ipv6": (_is_ip_of(6), "an IPv6 address"),
    "network": (_is_network, "a network such as 10.20.0.0/16 or 2001:db8::/32, or default"),
    "zone": (_is_zone, "an IANA time zone name such as UTC or Europe/Paris"),
    "datetime": (
        lambda s: _DATETIME_RE.fullmatch(s) is not None,
        "an ISO 8601 date or time such as 2026-12-31",
    ),
}


# --------------------------------------------------------------------------------------------
# The schema language
# --------------------------------------------------------------------------------------------


class Kind:
    """The type of one value. ``check`` returns the normalized value or raises InvalidInput."""

    def check(self, value: Any, path: str) -> Any:
        raise NotImplementedError

    def expected(self) -> str:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class Str(Kind):
    """A string; optionally non-empty, bounded, matching ``pattern`` or a named ``format``.

    ``hint`` says in words what ``pattern`` means; it is what error messages show.
    """

    non_empty: bool = False
    max_length: int | None = None
    pattern: str | None = None
    hint: str = ""
    format: str | None = None

    def expected(self) -> str:
        if self.format is not None:
            text = FORMATS[self.format][1]
        elif self.hint:
            text = self.hint
        else:
            text = "a non-empty string" if self.non_empty else "a string"
            if self.max_length is not None:
                text += f" of at most {self.max_length} characters"
        return text

    def _fits(self, value: str) -> bool:
        if (self.non_empty or self.format) and not value:
            return False
        if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            return False
        return self.format is None or bool(FORMATS[self.format][0](value))

    def check(self, value: Any, path: str) -> Any:
        if not isinstance(value, str) or not self._fits(value):
            raise _bad(path, self.expected(), value)
        if self.max_length is not None and len(value) > self.max_length:
            raise InvalidInput(
                f"{path}: expected at most {self.max_length} characters, got {len(value)}"
            )
        if _has_surrogate(value):
            raise InvalidInput(f"{path}: string holds a lone surrogate; use valid Unicode text")
        return value

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string", "expected": self.expected()}
        if self.non_empty:
            out["non_empty"] = True
        for key, val in (
            ("max_length", self.max_length),
            ("pattern", self.pattern),
            ("format", self.format),
        ):
            if val is not None:
                out[key] = val
        return out


@dataclass(frozen=True)
class Int(Kind):
    """An integer in ``low..high`` (booleans are not integers here)."""

    low: int
    high: int

    def expected(self) -> str:
        return f"an integer {self.low}..{self.high}"

    def check(self, value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(path, self.expected(), value)
        if not self.low <= value <= self.high:
            raise _bad(path, self.expected(), value)
        return value

    def to_json(self) -> dict[str, Any]:
        return {"type": "integer", "min": self.low, "max": self.high, "expected": self.expected()}


@dataclass(frozen=True)
class Bool(Kind):
    """true or false."""

    def expected(self) -> str:
        return "true or false"

    def check(self, value: Any, path: str) -> Any:
        if not isinstance(value, bool):
            raise _bad(path, self.expected(), value)
        return value

    def to_json(self) -> dict[str, Any]:
        return {"type": "boolean", "expected": self.expected()}


@dataclass(frozen=True)
class Choice(Kind):
    """One string out of a fixed set."""

    options: tuple[str, ...]

    def expected(self) -> str:
        head, last = self.options[:-1], self.options[-1]
        return f"one of {', '.join(head)} or {last}" if head else f"{last!r}"

    def check(self, value: Any, path: str) -> Any:
        if not isinstance(value, str) or value not in self.options:
            raise _bad(path, self.expected(), value)
        return value

    def to_json(self) -> dict[str, Any]:
        return {"type": "string", "choices": list(self.options), "expected": self.expected()}


@dataclass(frozen=True)
class StrList(Kind):
    """A list of strings, each checked by ``item``; duplicates refused when ``unique``."""

    item: Str
    unique: bool = True
    min_items: int = 0

    def expected(self) -> str:
        least = f"at least {self.min_items} " if self.min_items else ""
        return f"a list of {least}strings, each {self.item.expected()}"

    def check(self, value: Any, path: str) -> Any:
        if not isinstance(value, list) or len(value) < self.min_items:
            raise _bad(path, self.expected(), value)
        out = [self.item.check(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if self.unique:
            _refuse_duplicates(out, path)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "list",
            "of": self.item.to_json(),
            "unique": self.unique,
            "min_items": self.min_items,
            "expected": self.expected(),
        }


def _refuse_duplicates(names: list[str], path: str) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise InvalidInput(
                f"{path}[{i}]: {name!r} appears twice (also at [{seen[name]}]); "
                "each entry must be unique"
            )
        seen[name] = i


@dataclass(frozen=True)
class Field:
    """One key of an object: its kind, whether it must be given, and its default."""

    kind: Kind
    required: bool = False
    default: Any = MISSING
    doc: str = ""

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING

    def to_json(self) -> dict[str, Any]:
        out = self.kind.to_json()
        out["required"] = self.required
        if self.has_default:
            out["default"] = copy.deepcopy(self.default)
        if self.doc:
            out["doc"] = self.doc
        return out


def req(kind: Kind, doc: str = "") -> Field:
    """A key that must be given."""
    return Field(kind, required=True, doc=doc)


def opt(kind: Kind, default: Any = MISSING, doc: str = "") -> Field:
    """A key that may be left out; left out (or null) it takes ``default`` if there is one."""
    return Field(kind, default=default, doc=doc)


def _check_fields(fields: Mapping[str, Field], value: Any, path: str, what: str) -> dict[str, Any]:
    """Check an object against its fields; extra keys are kept after a float-free check."""
    if not isinstance(value, dict):
        raise _bad(path, what, value)
    out: dict[str, Any] = {}
    for key, spec in fields.items():
        given = value.get(key)
        if given is not None:
            out[key] = spec.kind.check(given, f"{path}.{key}")
        elif spec.has_default:
            out[key] = spec.kind.check(copy.deepcopy(spec.default), f"{path}.{key}")
        elif spec.required:
            raise InvalidInput(f"{path}.{key}: missing; expected {spec.kind.expected()}")
    for key, given in value.items():
        if not isinstance(key, str):
            raise InvalidInput(f"{path}: object key {_show(key)} is not a string")
        if key not in fields:
            out[key] = _plain(given, f"{path}.{key}", 1)
    return out


@dataclass(frozen=True)
class Obj(Kind):
    """A small object with named fields (extra keys welcome)."""

    fields: Mapping[str, Field]

    def expected(self) -> str:
        return "an object"

    def check(self, value: Any, path: str) -> Any:
        return _check_fields(self.fields, value, path, self.expected())

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "object",
            "fields": {k: f.to_json() for k, f in self.fields.items()},
            "expected": self.expected(),
        }


NAME = Str(
    non_empty=True,
    max_length=255,
    pattern=r"[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?",
    hint="a name (no control characters, no spaces at either end)",
)


@dataclass(frozen=True)
class Items(Kind):
    """A list of objects identified by a unique ``name`` (checked by ``name``), order kept."""

    fields: Mapping[str, Field]
    name: Str = NAME

    @property
    def all_fields(self) -> dict[str, Field]:
        return {"name": req(self.name, "identifies the entry"), **self.fields}

    def expected(self) -> str:
        return "a list of objects, each with a unique name"

    def check(self, value: Any, path: str) -> Any:
        if not isinstance(value, list):
            raise _bad(path, self.expected(), value)
        fields = self.all_fields
        what = "an object with a name"
        out = [_check_fields(fields, v, f"{path}[{i}]", what) for i, v in enumerate(value)]
        _refuse_duplicate_names([item["name"] for item in out], path)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "items",
            "fields": {k: f.to_json() for k, f in self.all_fields.items()},
            "expected": self.expected(),
        }


def _refuse_duplicate_names(names: list[str], path: str) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise InvalidInput(
                f"{path}[{i}].name: {name!r} appears twice (also at [{seen[name]}]); "
                "names must be unique"
            )
        seen[name] = i


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One configuration table. ``default`` is the factory default (None: there is none).

    Treat ``default`` as read-only; ``factory_default`` gives a copy to change.
    """

    name: str
    title: str
    seed_command: str
    levels: frozenset[str]
    default: dict[str, Any] | None
    fields: Mapping[str, Field]
    clusterable: bool = True
    description: str = ""

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.fields)


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


def validate(section: str | Section, value: Any) -> dict[str, Any]:
    """Check ``value`` against the section's schema; return it normalized (see module doc)."""
    sec = get(section)
    out: dict[str, Any] = _check_fields(sec.fields, value, sec.name, "an object")
    return out


# --------------------------------------------------------------------------------------------
# Values entering from people: keys the schema does not know are typos until proven otherwise
# --------------------------------------------------------------------------------------------


def _nearest(key: str, known: Iterable[str]) -> str:
    """"; did you mean servers?" when a known key is close, else the list of known keys."""
    names = list(known)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]}?"
    return f" (the keys are {', '.join(names) or 'none'})"


def _unknown_in(fields: Mapping[str, Field], value: Any, path: str) -> Iterable[tuple[str, str]]:
    if not isinstance(value, dict):
        return
    for key, given in value.items():
        spec = fields.get(key) if isinstance(key, str) else None
        where = f"{path}.{key}"
        if spec is None:
            yield where, _nearest(str(key), fields)
        elif isinstance(spec.kind, Obj):
            yield from _unknown_in(spec.kind.fields, given, where)
        elif isinstance(spec.kind, Items) and isinstance(given, list):
            for i, item in enumerate(given):
                name = item.get("name") if isinstance(item, dict) else None
                label = name if isinstance(name, str) else str(i)
                yield from _unknown_in(spec.kind.all_fields, item, f"{where}[{label}]")


def unknown_keys(section: str | Section, value: Any) -> dict[str, str]:
    """{path: hint} for every key of ``value`` its schema does not name (entries by name)."""
    sec = get(section)
    return dict(_unknown_in(sec.fields, value, sec.name))


def _check_zones(sec: Section, value: Any, before: Any, zones: Collection[str]) -> None:
    """A zone must be one the caller's time zone database knows (the core holds none)."""
    for key, spec in sec.fields.items():
        if not (isinstance(spec.kind, Str) and spec.kind.format == "zone"):
            continue
        zone = value.get(key) if isinstance(value, dict) else None
        old = before.get(key) if isinstance(before, dict) else None
        if isinstance(zone, str) and zone != old and zone != "UTC" and zone not in zones:
            raise InvalidInput(f"{sec.name}.{key}: {zone!r} is not a time zone this machine "
                               "knows; use an IANA name such as UTC or Europe/Paris")


def accept(section: str | Section, value: Any, before: Any = None,
           zones: Collection[str] | None = None) -> dict[str, Any]:
    """A value entering from a person (edit, set, a web form, a loaded file), normalized.

    ``validate`` keeps keys the schema does not name, because events already signed must keep
    meaning what they meant; a person's input may not add one: ``{"server": [...]}`` is a typo
    of ``servers`` that would otherwise empty the list for every machine. Keys the value had
    already (``before``, stored when this was allowed) stay acceptable. ``zones``, when the
    caller has a time zone database, are the zone names it knows.
    """
    sec = get(section)
    old = unknown_keys(sec, before) if isinstance(before, dict) else {}
    for path, hint in unknown_keys(sec, value).items():
        if path not in old:
            raise InvalidInput(f"{path}: unknown key{hint}")
    out = validate(sec, value)
    if zones:
        _check_zones(sec, out, before, zones)
    return out


# --------------------------------------------------------------------------------------------
# Modes and levels
# --------------------------------------------------------------------------------------------

_MODE_HELP = "write cluster, group:NAME or machine:HOSTNAME"
_LEVEL_HINTS = {
    CLUSTER: "--mode cluster or `evstore clustermode cluster`",
    GROUP: "--mode group:NAME or `evstore clustermode group NAME`",
    MACHINE: "--mode machine:HOST or `evstore clustermode machine HOST`",
}


def parse_mode(mode: str) -> tuple[str, str]:
    """``(level, target)``: ``("cluster", "")``, ``("group", NAME)`` or ``("machine", HOST)``."""
    if mode == CLUSTER:
        return CLUSTER, ""
    level, sep, target = mode.partition(":")
    if sep and level in (GROUP, MACHINE) and target.strip():
        return level, target
    raise InvalidInput(f"mode {mode!r} is not valid: {_MODE_HELP}")


def level_of(mode: str) -> str:
    """The level (cluster, group or machine) of a mode."""
    return parse_mode(mode)[0]


def _ordered(levels: Iterable[str]) -> list[str]:
    return [lvl for lvl in LEVELS if lvl in set(levels)]


def _or_join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


class WrongMode(InvalidInput):
    """A section used at a mode its levels do not allow; names the levels that are."""

    def __init__(self, section: str, mode: str, allowed_levels: frozenset[str]) -> None:
        self.section = section
        self.mode = mode
        self.allowed_levels = allowed_levels
        levels = _ordered(allowed_levels)
        hints = _or_join([_LEVEL_HINTS[lvl] for lvl in levels])
        super().__init__(f"{section} can only be set in {_or_join(levels)} mode: use {hints}")


def check_mode_allowed(section: str | Section, mode: str) -> None:
    """Raise WrongMode unless ``section`` may be defined at ``mode``."""
    sec = get(section)
    if level_of(mode) not in sec.levels:
        raise WrongMode(sec.name, mode, sec.levels)


# --------------------------------------------------------------------------------------------
# References between sections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """Items of ``section.items`` name, in ``field``, an item of ``target_section.target_items``
    (of kind ``target_kind`` when given). ``label`` is what the target is called in messages."""

    section: str
    items: str
    field: str
    target_section: str
    target_items: str
    label: str
    target_kind: str | None = None


REFERENCES: tuple[Reference, ...] = (
    Reference("listeners", "listeners", "interface", "interfaces", "interfaces", "interface"),
    Reference("listeners", "listeners", "footer", "textresources", "resources", "footer", "footer"),
    Reference("ldap", "queries", "server", "ldap", "servers", "LDAP server"),
    Reference(
        "destconfig", "domains", "bounce_profile", "bounceprofiles", "profiles", "bounce profile"
    ),
    Reference("ssh", "authorized_keys", "user", "users", "users", "user"),
    Reference("routes", "routes", "interface", "interfaces", "interfaces", "interface"),
    Reference("interfaces", "interfaces", "port", "ethernet", "ports", "ethernet port"),
)


@dataclass(frozen=True)
class BrokenReference:
    """One reference that does not resolve on a machine."""

    section: str
    item: str
    field: str
    target: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {
            "section": self.section,
            "item": self.item,
            "field": self.field,
            "target": self.target,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Disabled:
    """An item that a machine cannot use because of broken references, and why."""

    section: str
    item: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"section": self.section, "item": self.item, "reason": self.reason}


def _entries(effective: Mapping[str, Any], section: str, key: str) -> list[dict[str, Any]]:
    """The well-formed named entries of ``effective[section][key]`` (anything else skipped).

    A section missing from ``effective`` counts as its factory default.
    """
    value = effective[section] if section in effective else SECTIONS[section].default
    items = value.get(key) if isinstance(value, dict) else None
    if not isinstance(items, list):
        return []
    return [i for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)]


def _why_broken(ref: Reference, target: str, found: dict[str, Any] | None) -> str | None:
    if found is None:
        return f"{ref.label} {json.dumps(target)} is not defined on this machine"
    kind = found.get("kind")
    if ref.target_kind is not None and kind != ref.target_kind:
        return (
            f"{ref.label} {json.dumps(target)} is not defined on this machine "
            f"({json.dumps(target)} is a {kind}, not a {ref.target_kind})"
        )
    return None


def _broken(effective: Mapping[str, Any], ref: Reference) -> list[BrokenReference]:
    targets = {t["name"]: t for t in _entries(effective, ref.target_section, ref.target_items)}
    out = []
    for item in _entries(effective, ref.section, ref.items):
        target = item.get(ref.field)
        if not isinstance(target, str):
            continue
        reason = _why_broken(ref, target, targets.get(target))
        if reason is not None:
            out.append(BrokenReference(ref.section, item["name"], ref.field, target, reason))
    return out


def find_broken(effective: Mapping[str, Any]) -> list[BrokenReference]:
    """Every reference that does not resolve in one machine's effective settings."""
    return [b for ref in REFERENCES for b in _broken(effective, ref)]


def check_references(effective: Mapping[str, Any]) -> list[Disabled]:
    """The items one machine must disable, given its effective settings ({section: value}).

    One entry per item, its reasons joined with "; ", in REFERENCES order then list order.
    """
    reasons: dict[tuple[str, str], list[str]] = {}
    for b in find_broken(effective):
        reasons.setdefault((b.section, b.item), []).append(b.reason)
    return [Disabled(sec, item, "; ".join(why)) for (sec, item), why in reasons.items()]


def broken_references(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[BrokenReference]:
    """The references broken in ``after`` that were not broken in ``before`` (one machine)."""

    def key(b: BrokenReference) -> tuple[str, str, str, str]:
        return (b.section, b.item, b.field, b.target)

    old = {key(b) for b in find_broken(before)}
    return [b for b in find_broken(after) if key(b) not in old]


def dependents(section: str) -> list[Reference]:
    """The references that point into ``section`` (what a change to it may disable)."""
    return [r for r in REFERENCES if r.target_section == section]


# --------------------------------------------------------------------------------------------
# describe, for `evstore sections --json`
# --------------------------------------------------------------------------------------------


def describe() -> list[dict[str, Any]]:
    """The catalog as JSON-ready dicts, in catalog order."""
    return [
        {
            "name": s.name,
            "title": s.title,
            "seed_command": s.seed_command,
            "levels": _ordered(s.levels),
            "clusterable": s.clusterable,
            "default": copy.deepcopy(s.default),
            "keys": list(s.keys),
            "item_keys": sorted(item_fields(s)),
            "schema": {k: f.to_json() for k, f in s.fields.items()},
            "references": [
                {"items": r.items, "field": r.field, "to": f"{r.target_section}.{r.target_items}"}
                for r in REFERENCES
                if r.section == s.name
            ],
            "description": s.description,
        }
        for s in _SECTION_LIST
    ]


# --------------------------------------------------------------------------------------------
# set_path, for `evstore set SECTION KEY=VALUE ...`
# --------------------------------------------------------------------------------------------


def parse_value(raw: str, key: str = "") -> Any:
    """VALUE of KEY=VALUE: JSON if it parses as JSON, else the text itself as a string.

    Text that parses but is not a valid evstore value (a float, a duplicate key) is refused
    rather than silently taken as a string.
    """
    try:
        json.loads(raw)
    except ValueError:
        return raw
    try:
        return loads_json(raw)
    except EncodingError as e:
        where = f"{key}={raw}" if key else repr(raw)
        raise InvalidInput(f"{where}: {e} (to store text, write it as a JSON string)") from None


def _split_key(key: str) -> tuple[str, str | None, bool]:
    """``(top, rest, bracketed)``: ``a`` -> (a, None), ``a.b.c`` -> (a, "b.c"),
    ``a[NAME]`` -> (a, NAME), ``a[NAME].f`` -> (a, "NAME\\0f")."""
    bracket, dot = key.find("["), key.find(".")
    if bracket > 0 and (dot < 0 or bracket < dot):
        close = key.rfind("]")
        tail = key[close + 1 :]
        name = key[bracket + 1 : close]
        if close > bracket + 1 and (tail == "" or (tail.startswith(".") and len(tail) > 1)):
            rest = name if not tail else name + "\0" + tail[1:]
            return key[:bracket], rest, True
        raise InvalidInput(f"key {key!r}: write LIST[NAME] or LIST[NAME].FIELD")
    if dot == 0 or key.endswith(".") or not key:
        raise InvalidInput(f"key {key!r} is not valid: write KEY, LIST.NAME or LIST.NAME.FIELD")
    top, _, rest = key.partition(".")
    return top, (rest if dot > 0 else None), False


def _known_keys(fields: Mapping[str, Field] | None, key: str, where: str) -> None:
    """set only writes keys the schema names: a typo fails loudly, naming the nearest key."""
    if fields is not None and key not in fields:
        raise InvalidInput(f"{where}.{key}: unknown key{_nearest(key, fields)}")


def _assign(obj: dict[str, Any], key: str, value: Any) -> None:
    """null removes the key (it takes its default again on validation)."""
    if value is None:
        obj.pop(key, None)
    else:
        obj[key] = value


def _find(items: list[Any], name: str) -> int:
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == name:
            return i
    return -1


def _set_item(items: list[Any], where: str, name: str, value: Any) -> None:
    """LIST.NAME=OBJECT replaces or adds the entry; LIST.NAME=null removes it."""
    i = _find(items, name)
    if value is None:
        if i < 0:
            known = ", ".join(str(x.get("name")) for x in items if isinstance(x, dict)) or "none"
            raise InvalidInput(f"{where} has no entry named {name!r} (entries: {known})")
        del items[i]
        return
    if not isinstance(value, dict):
        raise _bad(f"{where}[{name}]", "an object (or null to remove the entry)", value)
    if value.get("name", name) != name:
        raise InvalidInput(f"{where}[{name}]: the object's name {value['name']!r} differs")
    entry = {"name": name, **value}
    if i < 0:
        items.append(entry)
    else:
        items[i] = entry


def _set_item_field(items: list[Any], where: str, name: str, fld: str, value: Any) -> None:
    """LIST.NAME.FIELD=VALUE sets one field, adding the entry if missing; name= renames."""
    i = _find(items, name)
    if i < 0:
        items.append({"name": name})
        i = len(items) - 1
    entry = dict(items[i])
    if fld == "name":
        if not isinstance(value, str):
            raise _bad(f"{where}[{name}].name", "a name (an entry cannot lose its name)", value)
        if value != name and _find(items, value) >= 0:
            raise InvalidInput(f"{where}: an entry named {value!r} exists already")
    _assign(entry, fld, value)
    items[i] = entry


def _items_path(items: list[Any], rest: str, bracketed: bool) -> tuple[str, str | None]:
    """Split REST of LIST.REST into (item name, field or None).

    Bracketed: NAME\\0FIELD or NAME. Dotted: REST naming an existing entry is that entry;
    else the last dot splits NAME from FIELD, one segment is a whole entry.
    """
    if bracketed:
        name, _, fld = rest.partition("\0")
        return name, (fld or None)
    if _find(items, rest) >= 0 or "." not in rest:
        return rest, None
    name, _, fld = rest.rpartition(".")
    return name, fld


def _top_kind(sec: Section | None, value: Mapping[str, Any], top: str) -> str:
    if sec is not None:
        kind = sec.fields[top].kind
        return "items" if isinstance(kind, Items) else "object" if isinstance(kind, Obj) else ""
    current = value.get(top)
    if isinstance(current, dict):
        return "object"
    return "items" if current is None or isinstance(current, list) else ""


def _sub_fields(sec: Section | None, top: str) -> Mapping[str, Field] | None:
    if sec is None:
        return None
    kind = sec.fields[top].kind
    if isinstance(kind, Items):
        return kind.all_fields
    return kind.fields if isinstance(kind, Obj) else None


def _set_nested(
    sec: Section | None, out: dict[str, Any], top: str, rest: str, bracketed: bool, value: Any
) -> None:
    where = f"{sec.name if sec else 'section'}.{top}"
    kind = _top_kind(sec, out, top)
    if kind == "object" and not bracketed and "." not in rest:
        _known_keys(_sub_fields(sec, top), rest, where)
        obj = dict(out.get(top) or {})
        _assign(obj, rest, value)
        out[top] = obj
        return
    if kind != "items":
        raise InvalidInput(f"{where} is not a list of named entries: set it whole with {top}=...")
    items = list(out.get(top) or [])
    name, fld = _items_path(items, rest, bracketed)
    if fld is None:
        _set_item(items, where, name, value)
    else:
        _known_keys(_sub_fields(sec, top), fld, f"{where}[{name}]")
        _set_item_field(items, where, name, fld, value)
    out[top] = items


def set_path(
    value: Mapping[str, Any] | None,
    key: str,
    raw: str,
    section: str | Section | None = None,
) -> dict[str, Any]:
    """Apply one ``KEY=VALUE`` of ``evstore set`` to a section value; return the new value.

    VALUE is parsed by ``parse_value`` (JSON if it parses, else a string); null means "take it
    away". KEY is one of:

    * ``KEY`` -- a top-level key, set whole (null: back to its default);
    * ``OBJ.FIELD`` -- a field of a top-level object (``default.max_connections=60``);
    * ``LIST.NAME`` -- the entry NAME of an items list: an object replaces or adds it (its
      ``name`` is NAME), null removes it;
    * ``LIST.NAME.FIELD`` -- one field of entry NAME, adding ``{"name": NAME}`` if there is
      none; null removes the field; ``LIST.NAME.name=NEW`` renames the entry;
    * ``LIST[NAME]`` and ``LIST[NAME].FIELD`` -- the same, for names that hold dots. In the
      dotted form a name with dots is found when such an entry exists; otherwise the last
      dot separates the field (``routes.example.com.destinations=[...]``).

    With ``section`` given, only keys its schema names can be set (typos fail loudly; extra
    keys go through ``evstore edit``). The result is not validated: apply every assignment
    of a command, then ``validate`` (``apply_assignments`` does both). ``value`` is not changed.
    """
    sec = get(section) if section is not None else None
    out: dict[str, Any] = copy.deepcopy(dict(value or {}))
    top, rest, bracketed = _split_key(key)
    if sec is not None:
        _known_keys(sec.fields, top, sec.name)
    parsed = parse_value(raw, key)
    if rest is None:
        _assign(out, top, parsed)
    else:
        _set_nested(sec, out, top, rest, bracketed, parsed)
    return out


def apply_assignments(
    section: str | Section, value: Mapping[str, Any] | None, assignments: Iterable[str]
) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` strings in order, then validate the result as a whole."""
    sec = get(section)
    out: dict[str, Any] = dict(value or {})
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{assignment!r}: write KEY=VALUE")
        out = set_path(out, key, raw, sec)
    return accept(sec, out, before=value)

