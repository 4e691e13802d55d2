"""The consumer API: programs read and follow a machine's effective settings.

    import evstore

    with evstore.open_config("/var/lib/evstore") as cfg:
        servers = cfg.get("dns")["servers"]
        for change in cfg.watch(["dns"]):
            reload_resolver(change.settings)

See docs/api.md. Importing this package loads only the standard library and the parts of
evstore that read a home (no trio, no web stack, no network code), so a short-lived program
that reads one value starts fast; ``watch_async`` loads its event-loop driver when called.
"""

from __future__ import annotations

from evstore.consume.config import Change, Config, open_config

__all__ = ["Change", "Config", "open_config"]
