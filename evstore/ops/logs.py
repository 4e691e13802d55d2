"""How long-running commands (``evstore run``) log: plain text, or one JSON object a line.

``--log-format json`` gives, per record, one line holding ``time`` (UTC, ISO 8601 with
milliseconds), ``level``, ``logger`` and ``message``, then the record's extra fields (those a
caller passed with ``extra=``), and ``exception`` when there is one. A field whose name looks
like a secret (passphrase, password, secret, token, private key, signing key) is never
written: its value is replaced by ``"[redacted]"``. Values JSON cannot hold are written as
their ``str``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

__all__ = ["FORMATS", "JsonFormatter", "setup"]

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"

# attributes every LogRecord has: not "extra" fields
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}
_SECRET_WORDS = ("passphrase", "password", "secret", "token", "private", "signing", "seed_key",
                 "psk")


def _secret(name: str) -> bool:
    low = name.lower()
    return any(w in low for w in _SECRET_WORDS)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name in _STANDARD or name.startswith("_") or name in out:
                continue
            out[name] = "[redacted]" if _secret(name) else value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, default=str, ensure_ascii=False, separators=(",", ":"))


def _iso(created: float) -> str:
    ms = int(created * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def setup(fmt: str = "text", level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Send the root logger's records to ``stream`` (stderr) in ``fmt`` (text or json)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: say text or json")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
