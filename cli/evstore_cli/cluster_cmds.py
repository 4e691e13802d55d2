"""``evstore clusterconfig …``, ``userconfig`` and ``passwd``: cluster-mode commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from evstore.core.errors import InvalidInput
from evstore.ops import cluster as ops
from evstore.ops import users as user_ops
from evstore_cli import output
from evstore_cli.cluster_group import clusterconfig, render_list
from evstore_cli.common import (
    HomeOpt,
    JsonOpt,
    PassOpt,
    UserOpt,
    YesOpt,
    authenticated,
    cluster_level,
    node_for,
    user_of,
)
from evstore_cli.output import handled

userconfig = typer.Typer(help="The cluster's one user database (cluster level).",
                         no_args_is_help=True)
prepjoin = typer.Typer(help="Pre-shared key joining (the seed's PREPJOIN).", no_args_is_help=True)
clusterconfig.add_typer(prepjoin, name="prepjoin")

NewPassOpt = Annotated[Path | None, typer.Option("--new-passphrase-file",
                                                 help="File whose first line is the new passphrase.")]


@clusterconfig.callback()
def _bare(ctx: typer.Context, home: HomeOpt = None, user: UserOpt = None,
          passphrase_file: PassOpt = None) -> None:
    """Bare on a terminal: the seed's menus (evstore_cli/cluster_menu.py); else the help."""
    from evstore_cli.cluster_menu import bare

    bare(ctx, home, user, passphrase_file)


def _admin(node: Any, user: str | None, passphrase_file: Path | None) -> str:
    """Authenticate an admin for a cluster operation (offering the switch to cluster mode)."""
    who = authenticated(node, user, passphrase_file, "cluster")
    cluster_level(node, who)
    return who


def register(app: typer.Typer) -> None:
    app.add_typer(clusterconfig, name="clusterconfig")
    app.add_typer(userconfig, name="userconfig")
    app.command(name="passwd")(passwd)


def _warn_detached(node: Any) -> None:
    """A change to the structure made while links are cut reaches the others on reconnect."""
    away = [p["hostname"] for p in node.peers() if p["state"] == "disconnected"]
    if away:
        output.warn("these machines are disconnected and get this change only on reconnect: "
                    + ", ".join(away))


def _done(data: dict[str, Any], json_out: bool, text: str) -> None:
    output.emit(data, json_out, lambda d: output.say(text))


@clusterconfig.command()
@handled
def create(name: str, home: HomeOpt = None, user: UserOpt = None, passphrase_file: PassOpt = None,
           yes: YesOpt = False, json_out: JsonOpt = False) -> None:
    """Turn this standalone machine into a new cluster (group Main_Group is created)."""
    with node_for(home) as node:
        who = _admin(node, user, passphrase_file)
        data = ops.create(node, who, name)
    _done(data, json_out, f"new cluster {name} created; this machine is in Main_Group. "
                          "Creating a cluster takes effect at once: there is nothing to commit.")


@clusterconfig.command()
@handled
def fingerprint(home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """This node's host-key fingerprint, to verify on the joining side."""
    with node_for(home) as node:
        data = {"fingerprint": node.fingerprint(), "hostname": node.identity().hostname}
    output.emit(data, json_out, lambda d: output.say(d["fingerprint"]))


@clusterconfig.command()
@handled
def addgroup(group: str, home: HomeOpt = None, user: UserOpt = None,
             passphrase_file: PassOpt = None, yes: YesOpt = False, json_out: JsonOpt = False) -> None:
    """Add a group."""
    with node_for(home) as node:
        data = ops.addgroup(node, _admin(node, user, passphrase_file), group)
        _warn_detached(node)
    _done(data, json_out, f"group {group} added")


@clusterconfig.command()
@handled
def renamegroup(old: str, new: str, home: HomeOpt = None, user: UserOpt = None,
                passphrase_file: PassOpt = None, yes: YesOpt = False,
                json_out: JsonOpt = False) -> None:
    """Rename a group (its identity, settings and machines stay)."""
    with node_for(home) as node:
        data = ops.renamegroup(node, _admin(node, user, passphrase_file), old, new)
        _warn_detached(node)
    _done(data, json_out, f"group {old} renamed to {new}")


@clusterconfig.command()
@handled
def deletegroup(
    group: str,
    move_to: Annotated[str | None, typer.Option("--move-to", help="Group its machines move to (default Main_Group).")] = None,
    home: HomeOpt = None, user: UserOpt = None, passphrase_file: PassOpt = None,
    yes: YesOpt = False, json_out: JsonOpt = False,
) -> None:
    """Delete a group: its machines move, keeping the group's settings as their own."""
    with node_for(home) as node:
        who = _admin(node, user, passphrase_file)
        data = ops.deletegroup(node, who, group, move_to)
        _warn_detached(node)
    if data["dropped_sections"]:
        output.warn(f"group {group} had no machines; its settings of "
                    f"{', '.join(data['dropped_sections'])} are kept only in the log (audit)")
    _done(data, json_out, f"group {group} deleted; machines moved to {data['moved_to']}: "
                          f"{', '.join(data['machines']) or 'none'}")


@clusterconfig.command()
@handled
def setgroup(machine: str, group: str, home: HomeOpt = None, user: UserOpt = None,
             passphrase_file: PassOpt = None, yes: YesOpt = False,
             json_out: JsonOpt = False) -> None:
    """Put a machine in a group."""
    with node_for(home) as node:
        data = ops.setgroup(node, _admin(node, user, passphrase_file), machine, group)
        _warn_detached(node)
    _done(data, json_out, f"{data['machine']} is now in group {group}")


@clusterconfig.command()
@handled
def setname(name: str, home: HomeOpt = None, user: UserOpt = None,
            passphrase_file: PassOpt = None, yes: YesOpt = False, json_out: JsonOpt = False) -> None:
    """Set the cluster name."""
    with node_for(home) as node:
        data = ops.setname(node, _admin(node, user, passphrase_file), name)
        _warn_detached(node)
    _done(data, json_out, f"cluster renamed to {name}")


@clusterconfig.command()
@handled
def removemachine(machine: str, home: HomeOpt = None, user: UserOpt = None,
                  passphrase_file: PassOpt = None, yes: YesOpt = False,
                  json_out: JsonOpt = False) -> None:
    """Remove a machine permanently; it keeps its settings, flattened, as a standalone."""
    with node_for(home) as node:
        data = ops.removemachine(node, _admin(node, user, passphrase_file), machine)
    _done(data, json_out, f"{data['machine']} removed from the cluster")


@clusterconfig.command(name="list")
@handled
def list_(home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """Members by group."""
    with node_for(home) as node:
        data = ops.list_cluster(node)
    output.emit(data, json_out, render_list)


@clusterconfig.command()
@handled
def listdetail(home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """Members by group, with addresses, ports, version, joined and fingerprints."""
    with node_for(home) as node:
        data = ops.list_cluster(node, detail=True)
        peers = {p["hostname"]: p for p in node.peers()}
    for g in data["groups"]:
        for m in g["machines"]:
            m["last_seen"] = peers.get(m["hostname"], {}).get("last_seen")
    output.emit(data, json_out, render_list)


@clusterconfig.command()
@handled
def connstatus(home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """Links to the other members as seen from this machine: does each announced host
    resolve here (and to what), the link's state and for how long, when last seen."""
    with node_for(home) as node:
        data = {"links": ops.connstatus(node)}
    output.emit(data, json_out, lambda d: output.table(
        "links", ["hostname", "address", "resolves to", "state", "since", "last seen"],
        [[p["hostname"], p["address"], _resolved(p["resolution"]), p["state"], _since(p),
          p["last_seen"] or "never"] for p in d["links"]]))


def _resolved(r: dict[str, Any]) -> str:
    return ", ".join(r["addresses"]) if r["resolves"] else f"{r['host']}: does not resolve"


def _since(p: dict[str, Any]) -> str:
    """How long the link has been in its state, as a person reads it (3d 4h, 5m 2s)."""
    secs = p.get("for_seconds")
    if secs is None:
        return "unknown"
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size or (unit == "s" and not parts):
            parts.append(f"{secs // size}{unit}")
            secs %= size
    return " ".join(parts[:2]) + f" (since {p['since']})"


# ---------------------------------------------------------------------- prepjoin


@prepjoin.command(name="print")
@handled
def prepjoin_print(home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """On the joining machine: its host, serial and key, to enter on a member (a machine
    removed from a cluster takes a fresh key first: it joins again as a new membership)."""
    from evstore.ops import membership

    with node_for(home) as node:
        if membership.prepare_rejoin(node, user_of(None)):
            output.warn("this machine was removed from a cluster: it took a fresh host key, "
                        "to join again as a new membership")
        ident = node.identity()
        data = {"host": ident.hostname, "serial": ident.serial, "key": node.origin}
    output.emit(data, json_out, lambda d: output.say(
        f"Host: {d['host']}\nSerial Number: {d['serial']}\nKey: {d['key']}"))


@prepjoin.command(name="new")
@handled
def prepjoin_new(host: str, serial: str, key: str, home: HomeOpt = None, user: UserOpt = None,
                 passphrase_file: PassOpt = None, yes: YesOpt = False,
                 json_out: JsonOpt = False) -> None:
    """On a member: stage an entry for a machine that will join with a pre-shared key."""
    with node_for(home) as node:
        who = _admin(node, user, passphrase_file)
        data = user_ops.prepjoin_new(node, who, host, serial, key)
    _done(data, json_out, f"host {host} staged for joining; commit to make it known to every member")


@prepjoin.command(name="delete")
@handled
def prepjoin_delete(host: str, home: HomeOpt = None, user: UserOpt = None,
                    passphrase_file: PassOpt = None, yes: YesOpt = False,
                    json_out: JsonOpt = False) -> None:
    """Remove a host from the pending join list (staged)."""
    with node_for(home) as node:
        who = _admin(node, user, passphrase_file)
        data = user_ops.prepjoin_delete(node, who, host)
    _done(data, json_out, f"host {host} removed from the join list (staged)")


@prepjoin.command(name="list")
@handled
def prepjoin_list(home: HomeOpt = None, user: UserOpt = None, json_out: JsonOpt = False) -> None:
    """Hosts waiting to be added to the cluster."""
    with node_for(home) as node:
        data = {"hosts": user_ops.prepjoin_list(node, user_of(user))}
    output.emit(data, json_out, lambda d: output.say(
        "\n".join(f"{h['name']} ({h['serial']})" for h in d["hosts"]) or
        "no host entries waiting to be added to the cluster"))


# ---------------------------------------------------------------------- users


@userconfig.command(name="new")
@handled
def user_new(
    name: str,
    role: Annotated[str, typer.Option("--role", help="admin, operator, readonly or guest.")],
    new_passphrase_file: NewPassOpt = None,
    home: HomeOpt = None, user: UserOpt = None, passphrase_file: PassOpt = None,
    yes: YesOpt = False, json_out: JsonOpt = False,
) -> None:
    """Add a user (staged until commit)."""
    secret = output.passphrase(new_passphrase_file, env="EVSTORE_NEW_PASSPHRASE",
                               prompt=f"New passphrase for {name}", twice=True)
    if secret is None:
        raise InvalidInput("no new passphrase: pass --new-passphrase-file F or set "
                           "EVSTORE_NEW_PASSPHRASE")
    with node_for(home) as node:
        who = authenticated(node, user, passphrase_file, "")
        data = user_ops.new_user(node, who, name, role, secret)
    _done(data, json_out, f"user {name} ({role}) staged; commit to apply")


@userconfig.command(name="delete")
@handled
def user_delete(name: str, home: HomeOpt = None, user: UserOpt = None,
                passphrase_file: PassOpt = None, yes: YesOpt = False,
                json_out: JsonOpt = False) -> None:
    """Delete a user (staged until commit)."""
    with node_for(home) as node:
        who = authenticated(node, user, passphrase_file, "")
        data = user_ops.delete_user(node, who, name)
    _done(data, json_out, f"user {name} deleted (staged); commit to apply")


@userconfig.command(name="list")
@handled
def user_list(home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """The cluster's users and roles."""
    with node_for(home) as node:
        if not json_out:
            cluster_level(node, None)
        data = {"users": [{"name": u["name"], "role": u["role"]} for u in node.users()]}
    output.emit(data, json_out, lambda d: output.table(
        "users", ["name", "role"], [[u["name"], u["role"]] for u in d["users"]]))


@handled
def passwd(
    name: Annotated[str | None, typer.Argument(help="User (default: the acting user).")] = None,
    new_passphrase_file: NewPassOpt = None,
    home: HomeOpt = None, user: UserOpt = None, passphrase_file: PassOpt = None,
    yes: YesOpt = False, json_out: JsonOpt = False,
) -> None:
    """Change a passphrase (staged until commit)."""
    secret = output.passphrase(new_passphrase_file, env="EVSTORE_NEW_PASSPHRASE",
                               prompt="New passphrase", twice=True)
    if secret is None:
        raise InvalidInput("no new passphrase: pass --new-passphrase-file F or set "
                           "EVSTORE_NEW_PASSPHRASE")
    with node_for(home) as node:
        who = authenticated(node, user, passphrase_file, "")
        data = user_ops.passwd(node, who, name or who, secret)
    _done(data, json_out, f"passphrase of {data['user']} changed (staged); commit to apply")


__all__ = ["clusterconfig", "register", "user_of"]
