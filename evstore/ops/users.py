"""The cluster's one user database (section ``users``, cluster level) and pre-shared join
entries (section ``prepjoin``). Changes are staged like any setting and committed."""

from __future__ import annotations

from typing import Any

from evstore.core import admit, names
from evstore.core.errors import InvalidInput
from evstore.core.modes import CLUSTER, machine_mode
from evstore.ops import secrets
from evstore.ops import settings as st_ops
from evstore.ops.node import Node

ROLES = ("admin", "operator", "readonly", "guest")
# what each role may do (settings, users, the cluster, its own passphrase): the one table,
# evstore/core/admit.py's, which also judges every event on every node
CAN = admit.CAN


def _mode(node: Node) -> str:
    return CLUSTER if node.in_cluster() else machine_mode(node.mid)


def role_of(node: Node, user: str) -> str:
    for u in node.users():
        if u["name"] == user:
            return str(u.get("role", "readonly"))
    return "readonly"


def require(node: Node, user: str, what: str) -> None:
    """Refuse an action the user's role does not allow."""
    role = role_of(node, user)
    if what not in CAN.get(role, frozenset()):
        raise InvalidInput(f"user {user!r} has role {role}, which may not do this ({what}); "
                           "ask an admin")


def _users_value(node: Node, user: str) -> dict[str, Any]:
    value, defined = st_ops.view(node, user, _mode(node), "users")
    return dict(value) if defined and value else {"users": []}


def new_user(node: Node, actor: str, name: str, role: str, passphrase: str) -> dict[str, Any]:
    require(node, actor, "users")
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}")
    value = _users_value(node, actor)
    if any(u["name"] == name for u in value["users"]):
        raise InvalidInput(f"user {name!r} already exists")
    value["users"] = [*value["users"], {"name": name, "role": role,
                                        "passphrase_hash": secrets.hash_passphrase(passphrase)}]
    st_ops.stage(node, actor, _mode(node), "users", value)
    return {"user": name, "role": role, "staged": True}


def delete_user(node: Node, actor: str, name: str) -> dict[str, Any]:
    require(node, actor, "users")
    value = _users_value(node, actor)
    rest = [u for u in value["users"] if u["name"] != name]
    if len(rest) == len(value["users"]):
        raise InvalidInput(f"no user named {name!r}")
    if not any(u.get("role") == "admin" for u in rest):
        raise InvalidInput("refusing to delete the last admin user")
    st_ops.stage(node, actor, _mode(node), "users", {**value, "users": rest})
    return {"user": name, "staged": True}


def passwd(node: Node, actor: str, name: str, passphrase: str) -> dict[str, Any]:
    require(node, actor, "users" if name != actor else "own_passphrase")
    value = _users_value(node, actor)
    found = False
    users = []
    for u in value["users"]:
        if u["name"] == name:
            u = {**u, "passphrase_hash": secrets.hash_passphrase(passphrase)}
            found = True
        users.append(u)
    if not found:
        raise InvalidInput(f"no user named {name!r}")
    st_ops.stage(node, actor, _mode(node), "users", {**value, "users": users})
    return {"user": name, "staged": True}


def commit_needs(node: Node, user: str) -> str:
    """What committing this user's staged changes needs of its role: ``settings``, or only
    ``own_passphrase`` when all it staged is its own passphrase (a guest's ``passwd``: the
    commit then changes that user entry's passphrase hash and nothing else)."""
    rows = st_ops.staged_rows(node, user)
    if rows and all(_own_passphrase_only(user, r.section, r.orig, r.value) for r in rows):
        return "own_passphrase"
    return "settings"


def _own_passphrase_only(user: str, section: str, orig: Any, value: Any) -> bool:
    if section != "users" or not isinstance(orig, dict) or not isinstance(value, dict):
        return False
    if {k: v for k, v in orig.items() if k != "users"} != \
            {k: v for k, v in value.items() if k != "users"}:
        return False
    before = {u.get("name"): u for u in orig.get("users", [])}
    after = {u.get("name"): u for u in value.get("users", [])}
    if before.keys() != after.keys() or [n for n in after if after[n] != before[n]] != [user]:
        return False
    return ({k: v for k, v in before[user].items() if k != "passphrase_hash"} ==
            {k: v for k, v in after[user].items() if k != "passphrase_hash"})


def _prep_value(node: Node, user: str) -> dict[str, Any]:
    value, defined = st_ops.view(node, user, CLUSTER, "prepjoin")
    return dict(value) if defined and value else {"hosts": []}


def prepjoin_new(node: Node, actor: str, host: str, serial: str, key: str) -> dict[str, Any]:
    require(node, actor, "cluster")
    names.check(host, "host")  # an entry's name is shown (prepjoin list): the user-name rule
    if not node.in_cluster():
        raise InvalidInput("prepjoin new runs on a cluster member: create or join a cluster first")
    try:
        ok = len(bytes.fromhex(key)) == 32
    except ValueError:
        ok = False
    if not ok:
        raise InvalidInput("KEY must be the 64 hex digits that `clusterconfig prepjoin print` "
                           "shows on the joining machine")
    value = _prep_value(node, actor)
    hosts = [h for h in value["hosts"] if h["name"] != host]
    hosts.append({"name": host, "serial": serial, "key": key})
    st_ops.stage(node, actor, CLUSTER, "prepjoin", {**value, "hosts": hosts})
    return {"host": host, "serial": serial, "staged": True}


def prepjoin_delete(node: Node, actor: str, host: str) -> dict[str, Any]:
    require(node, actor, "cluster")
    value = _prep_value(node, actor)
    hosts = [h for h in value["hosts"] if h["name"] != host]
    if len(hosts) == len(value["hosts"]):
        raise InvalidInput(f"no join entry for {host!r}")
    st_ops.stage(node, actor, CLUSTER, "prepjoin", {**value, "hosts": hosts})
    return {"host": host, "staged": True}


def prepjoin_list(node: Node, user: str) -> list[dict[str, Any]]:
    if not node.in_cluster():
        return []
    return list(_prep_value(node, user)["hosts"])
