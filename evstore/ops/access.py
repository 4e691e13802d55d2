"""A machine's own administration access: the seed's "secondary box".

The seed cannot make a machine a true secondary, but it can turn off a machine's CLI and web
access at machine level, so that only cluster operations from other members configure it.
Here the machine-only section ``access`` says so:

* ``gui``: false, and ``evstore gui`` / ``evstore run --gui`` refuse to serve this home's web
  pages (and pages already served refuse logins);
* ``admin``: false, and the machine takes no administration over the network: no login to it
  (a join authenticates as its admin, so no join through it, by passphrase or pre-shared key).

It stays a member in every other way: its links, gossip and the cluster operations other
members run against it (disconnect, reconnect, clustercheck, commitdetail, rekey) go on. The
setting is turned on again from another member (``evstore set access gui=true --mode
machine:HOST`` and ``commit``), or locally on its own home: local commands are not network
administration.
"""

from __future__ import annotations

from typing import Any

from evstore.core import state
from evstore.core.errors import OperationalError
from evstore.ops.node import Node

__all__ = ["allows", "refusal", "require"]

WHAT = {"gui": "the web pages", "admin": "administration over the network (logins, joins)"}


def settings(node: Node) -> dict[str, Any]:
    """This machine's effective ``access`` settings."""
    value, _, _ = state.resolve(node.store, node.structure(), node.mid, "access")
    return value or {}


def allows(node: Node, what: str) -> bool:
    return settings(node).get(what, True) is not False


def refusal(node: Node, what: str) -> str | None:
    """Why this machine refuses ``what`` (``gui`` or ``admin``), or None when it allows it."""
    if allows(node, what):
        return None
    host = node.identity().hostname
    command = f"evstore set access {what}=true" + (
        f" --mode machine:{host}" if node.in_cluster() else "")
    return (f"{host} has {WHAT[what]} turned off (its machine-only setting access.{what}): "
            f"it is administered only through the other members of its cluster; to turn it "
            f"on, `{command}` and commit")


def require(node: Node, what: str) -> None:
    """Refuse ``what`` on this machine when its ``access`` setting turns it off."""
    why = refusal(node, what)
    if why is not None:
        raise OperationalError(why)
