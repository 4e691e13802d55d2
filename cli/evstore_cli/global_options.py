"""The global options (``--home``, ``--user``, ``--passphrase-file`` before the command), as
the root's callback (shell.py) parsed them.

A leaf below common.py, whose helpers default each command's own options to these, and
output.py, which names the home when it explains a failed write: so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Globals:
    home: Path | None = None
    user: str = "admin"
    passphrase_file: Path | None = None


GLOBAL = Globals()

__all__ = ["GLOBAL", "Globals"]
