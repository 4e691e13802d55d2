"""Modes and levels: where a section may be defined (``cluster``, ``group:NAME``,
``machine:HOSTNAME``), and the error that names the levels a section allows.
"""

from __future__ import annotations

from collections.abc import Iterable

from evstore.core.errors import InvalidInput

CLUSTER = "cluster"
GROUP = "group"
MACHINE = "machine"
LEVELS: tuple[str, ...] = (CLUSTER, GROUP, MACHINE)
ANY_LEVEL: frozenset[str] = frozenset(LEVELS)
MACHINE_ONLY: frozenset[str] = frozenset({MACHINE})
CLUSTER_ONLY: frozenset[str] = frozenset({CLUSTER})


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
