"""Named string formats a ``Str`` may refer to: hostnames, addresses, netmasks, zones...

Syntax only: the core cannot ask DNS or a time zone database (``accept`` takes the zone
names a caller knows).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

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
