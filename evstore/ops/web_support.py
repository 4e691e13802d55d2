"""Small reads the web pages need that the CLI does not: every mode of this node, the modes a
section may be defined at, and values made safe to show in a browser.

They only combine what ``ops.cluster``, ``ops.settings`` and the catalog already decide, so the
pages never hold a rule of their own.
"""

from __future__ import annotations

from typing import Any

from evstore.core.errors import InvalidInput
from evstore.ops import cluster as cluster_ops
from evstore.ops import settings as settings_ops
from evstore.ops.node import Node

# sections that have their own commands (and rules: roles, hashing) rather than a settings page
MANAGED_ELSEWHERE = {
    "users": "evstore userconfig and evstore passwd",
    "prepjoin": "evstore clusterconfig prepjoin",
}
_SECRET_KEYS = frozenset({"passphrase_hash", "key"})


def all_modes(node: Node) -> list[str]:
    """Every mode of this node as people write it: cluster, each group, each machine."""
    listing = cluster_ops.list_cluster(node)
    if listing["cluster"] is None:
        return [login_mode(node)]
    groups = [g["name"] for g in listing["groups"]]
    machines = sorted(m["hostname"] for g in listing["groups"] for m in g["machines"])
    return ["cluster", *(f"group:{g}" for g in groups), *(f"machine:{m}" for m in machines)]


def login_mode(node: Node) -> str:
    """The mode a login starts in: the login host's machine mode."""
    return f"machine:{node.identity().hostname}"


def allowed_modes(node: Node, section: str) -> list[str]:
    """The modes (as people write them) at which ``section`` may be defined."""
    out = []
    for mode in all_modes(node):
        try:
            settings_ops.check_allowed(node, section, node.to_internal(mode))
        except InvalidInput:
            continue
        out.append(mode)
    return out


def defined_modes(node: Node, user: str, section: str) -> list[str]:
    """The modes where ``section`` is defined as this user sees it (staged changes included)."""
    out = []
    for mode in allowed_modes(node, section):
        _, defined = settings_ops.view(node, user, node.to_internal(mode), section)
        if defined:
            out.append(mode)
    return out


def redact(value: Any) -> Any:
    """A copy of a value with secrets (passphrase hashes, keys) replaced by a marker."""
    if isinstance(value, dict):
        return {k: ("(hidden)" if k in _SECRET_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
