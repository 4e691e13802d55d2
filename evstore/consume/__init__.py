"""The consumer API: programs read and follow a machine's effective settings.

    import evstore

    with evstore.open_config("/var/lib/evstore") as cfg:
        servers = cfg.get("dns")["servers"]
        for change in cfg.watch(["dns"]):
            reload_resolver(change.settings)

See docs/api.md. Importing this package loads only the standard library and the parts of
evstore that read a home (no trio, no web stack, no network code), so a short-lived program
that reads one value starts fast: what only a watch needs (``Change``, the follower, the
event-loop drivers) is loaded when first used.
"""

from __future__ import annotations

from evstore.consume.config import Config, open_config

TYPE_CHECKING = False
if TYPE_CHECKING:
    from evstore.consume.watching import Change

__all__ = ["Change", "Config", "open_config"]


def __getattr__(name: str) -> object:
    if name == "Change":
        from evstore.consume.watching import Change

        return Change
    raise AttributeError(f"module 'evstore.consume' has no attribute {name!r}")
