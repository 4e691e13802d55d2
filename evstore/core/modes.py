"""Modes: where a setting lives (``cluster``, ``group:ID``, ``machine:ID``).

Internally a group is named by its id (the id of the event that created it, shortened) so that
its identity survives renames, and a machine by its machine id (the hex public key it was first
admitted with) so that it survives a rekey. People write modes with names
(``group:Paris``, ``machine:lab1.example.com``); the node layer translates.
"""

from __future__ import annotations

from evstore.core.errors import InvalidInput

LEVELS = ("cluster", "group", "machine")
CLUSTER = "cluster"


def group_id_of(event_id: str) -> str:
    return "g" + event_id[:16]


def group_mode(gid: str) -> str:
    return f"group:{gid}"


def machine_mode(mid: str) -> str:
    return f"machine:{mid}"


def split(mode: str) -> tuple[str, str]:
    """``("cluster", "")``, ``("group", NAME)`` or ``("machine", NAME)``; refuses anything else."""
    if mode == CLUSTER:
        return CLUSTER, ""
    level, sep, name = mode.partition(":")
    if sep and level in ("group", "machine") and name:
        return level, name
    raise InvalidInput(
        f"{mode!r} is not a mode: write cluster, group:NAME or machine:HOSTNAME"
    )


def level_of(mode: str) -> str:
    return split(mode)[0]
