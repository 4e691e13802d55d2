"""The seed's menus for a bare ``evstore clusterconfig`` on a terminal.

On a standalone machine: stay standalone, create a cluster, or join one over the member's
admin port or its cluster-only port. In a cluster: the seed's operations (ADDGROUP, SETGROUP,
RENAMEGROUP, DELETEGROUP, REMOVEMACHINE, SETNAME, LIST, LISTDETAIL, DISCONNECT, RECONNECT,
PREPJOIN), until a blank answer leaves.

The menus only ask; each operation is the library function its subcommand calls
(``evstore.ops.cluster``, ``evstore.ops.users``, ``evstore.net.client``), with the acting user
authenticated once, on the first operation that changes something. A join is the ``join``
subcommand itself (``node_cmds.join``), run with the answers given here, so it asks the same
questions (the member's host key, the confirmation) and saves the same backup. A failed
operation prints its one-line error and the menu goes on; end of input leaves, exit code 0.

Without a terminal a bare ``evstore clusterconfig`` prints its help and exits 0.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from evstore.core.errors import EvstoreError
from evstore.ops import cluster as ops
from evstore.ops import users as user_ops
from evstore.ops.node import DEFAULT_CCS_PORT, DEFAULT_LISTEN, Node, open_node, resolve_home
from evstore_cli import node_cmds, output
from evstore_cli.cluster_group import render_list
from evstore_cli.common import authenticated, cluster_level
from evstore_cli.global_options import GLOBAL

STANDALONE_CHOICES = (
    "No, configure as standalone.",
    "Create a new cluster.",
    "Join an existing cluster over the admin port.",
    "Join an existing cluster over the cluster-only port.",
)
OPERATIONS = (
    ("ADDGROUP", "Add a cluster group."),
    ("SETGROUP", "Set the group that machines are a member of."),
    ("RENAMEGROUP", "Rename a cluster group."),
    ("DELETEGROUP", "Remove a cluster group."),
    ("REMOVEMACHINE", "Remove a machine from the cluster."),
    ("SETNAME", "Set the cluster name."),
    ("LIST", "List the machines in the cluster."),
    ("LISTDETAIL", "List the machines in the cluster with detail."),
    ("DISCONNECT", "Temporarily detach machines from the cluster."),
    ("RECONNECT", "Restore connections with machines that were previously detached."),
    ("PREPJOIN", "Prepare the addition of a new machine over the cluster-only port."),
)


class Leave(Exception):
    """End of input: leave the menus."""


def bare(ctx: typer.Context, home: Path | None, user: str | None,
         passphrase_file: Path | None) -> None:
    """The ``clusterconfig`` group's callback: options given to the group count for its
    subcommands too; bare, the menus on a terminal and the help without one."""
    if home is not None:
        GLOBAL.home = home
    if user is not None:
        GLOBAL.user = user
    if passphrase_file is not None:
        GLOBAL.passphrase_file = passphrase_file
    if ctx.invoked_subcommand is not None:
        return
    if not output.interactive():
        text = ctx.get_help()  # typer's rich help prints itself and returns ""
        if text:
            typer.echo(text)
        raise typer.Exit(0)
    try:
        Menu(resolve_home(GLOBAL.home)).run()
    except EvstoreError as e:  # the home itself cannot be opened
        raise output.fail(str(e), e.exit_code) from None
    except KeyboardInterrupt:
        raise output.fail("interrupted", 130) from None


# ---------------------------------------------------------------------- terminal questions


def ask(question: str, default: str = "") -> str:
    """One answer, after the question and the seed's ``[default]>`` prompt; end of input
    leaves the menus."""
    if question:
        output.say(question)
    sys.stdout.write(f"[{default}]> " if default else "[]> ")
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        sys.stdout.write("\n")
        raise Leave()
    return line.strip() or default


def yes_no(question: str, default: bool) -> bool:
    while True:
        answer = ask(question, "Y" if default else "N").lower()
        if answer in ("y", "yes"):
            return True
        if answer in ("n", "no"):
            return False
        output.say("Answer Y or N.")


def choose(question: str, options: list[str], default: str = "",
           notes: dict[str, str] | None = None) -> str | None:
    """One of ``options``, by number or by name (any case); blank: none (None)."""
    if not options:
        return None
    output.say(question)
    for i, name in enumerate(options, 1):
        note = (notes or {}).get(name)
        output.say(f"{i}. {name}" + (f" ({note})" if note else ""))
    while True:
        answer = ask("", default)
        if not answer:
            return None
        if answer.isdigit() and 1 <= int(answer) <= len(options):
            return options[int(answer) - 1]
        exact = [o for o in options if o == answer] or [
            o for o in options if o.lower() == answer.lower()]
        if len(exact) == 1:
            return exact[0]
        output.say(f"{answer!r} is not one of the choices: give its number or its name, "
                   "or a blank line to go back.")


def error(text: str) -> None:
    output.err_console.print(f"error: {text}", markup=False)


# ---------------------------------------------------------------------- the menus


class Menu:
    """One session of the menus on one home, as one acting user."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.who: str | None = None  # the acting user, once authenticated
        self.level_asked = False  # the switch to cluster mode, offered once in a cluster

    def run(self) -> None:
        with open_node(self.where) as node:  # the seed asks first, as for every
            if node.in_cluster():             # cluster-mode command
                self.level_asked = True
                cluster_level(node, self.who)
        try:
            while True:
                with open_node(self.where) as node:
                    name = node.structure().name if node.in_cluster() else None
                if not (self.cluster(name) if name else self.standalone()):
                    return
        except Leave:
            return

    def admin(self, node: Node) -> str:
        """The acting user, authenticated (once) as one whose role may administer the
        cluster; in a cluster, offered (once) the switch to cluster mode, as the subcommands
        do."""
        if self.who is None:
            self.who = authenticated(node, None, None, "cluster")
        if node.in_cluster() and not self.level_asked:
            self.level_asked = True
            cluster_level(node, self.who)
        return self.who

    def act(self, fn: Callable[[Node], None]) -> None:
        """Run one operation on the home; a library error is one line, then the menu."""
        try:
            with open_node(self.where) as node:
                fn(node)
        except EvstoreError as e:
            error(str(e))

    # -------------------------------------------------------------- standalone

    def standalone(self) -> bool:
        """The standalone machine's menu; False to leave."""
        output.say("Do you want to join or create a cluster?")
        for i, text in enumerate(STANDALONE_CHOICES, 1):
            output.say(f"{i}. {text}")
        answer = ask("", "1")
        if answer == "1":
            output.say("This machine stays standalone.")
            return False
        if answer == "2":
            self.create()
        elif answer in ("3", "4"):
            self.join(ccs=answer == "4")
        else:
            output.say(f"{answer!r}: choose 1, 2, 3 or 4.")
        return True

    def create(self) -> None:
        name = ask("Enter the name of the new cluster.")
        if not name:
            return

        def create(node: Node) -> None:
            ops.create(node, self.admin(node), name)
            output.say(f"New cluster {name} created; this machine is in Main_Group. Creating a "
                       "cluster takes effect at once: there is nothing to commit.")

        self.act(create)

    def join(self, *, ccs: bool) -> None:
        output.say("While joining, you check the member's host key: to see it, run `evstore "
                   "clusterconfig fingerprint` on the member.")
        output.warn("all of this machine's clusterable settings (users too) will be replaced "
                    "by the cluster's and its group's; only machine-only settings (interfaces, "
                    "hostname...) are kept. A backup of its configuration is saved first.")
        with open_node(self.where) as node:
            ident = node.identity()
        enable = None if ident.ccs else yes_no(
            f"Do you want to enable the cluster-only port (the seed's CCS) on {ident.hostname}?",
            False)
        host = ask("Enter the host name or IP address of a machine in the cluster.")
        if not host:
            return
        if ccs:
            port = ask("Enter the member's cluster-only port.", str(DEFAULT_CCS_PORT))
        else:
            port = ask("Enter the remote port to connect to. This must be the member's admin "
                       "port (its --listen), not its cluster-only port.",
                       DEFAULT_LISTEN.rsplit(":", 1)[1])
        preshared = ccs or yes_no("Join with a pre-shared key (entered on a member with "
                                  "`clusterconfig prepjoin new`) rather than the cluster's admin "
                                  "passphrase?", False)
        if preshared and not self.preshared_ready():
            return
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            node_cmds.join(address=address, ccs=ccs, fingerprint=None, trust=False,
                           preshared=preshared, cluster_passphrase_file=None, group=None,
                           enable_ccs=enable, yes=False, home=self.where, user=None,
                           passphrase_file=None, json_out=False)
        except typer.Exit as e:  # the join said what went wrong, on stderr
            if e.exit_code == 130:
                raise
            return

    def preshared_ready(self) -> bool:
        from evstore.ops import membership

        with open_node(self.where) as node:
            membership.prepare_rejoin(node)  # a removed machine joins with a fresh key
            ident = node.identity()
            details = f"Host: {ident.hostname}\nSerial Number: {ident.serial}\nKey: {node.origin}"
        output.say("To join with a pre-shared key, enter these details on a machine of the "
                   "cluster (`evstore clusterconfig prepjoin new HOST SERIAL KEY`, or PREPJOIN "
                   "in its menu) and commit there:")
        output.say(details)
        return yes_no("Would you like to continue?", True)

    # -------------------------------------------------------------- in a cluster

    def cluster(self, name: str) -> bool:
        """The cluster's menu; False to leave (a blank answer)."""
        output.say(f"\nCluster {name}\n\nChoose the operation you want to perform:")
        for op, text in OPERATIONS:
            output.say(f"- {op} - {text}")
        answer = ask("").upper()
        if not answer:
            return False
        handler = getattr(self, "op_" + answer.lower(), None)
        if answer not in dict(OPERATIONS) or handler is None:
            output.say(f"{answer!r} is not an operation of this menu.")
            return True
        handler()
        return True

    def listing(self) -> dict[str, Any]:
        with open_node(self.where) as node:
            return ops.list_cluster(node, detail=True)

    def machines(self, *, detached: bool | None = None) -> tuple[list[str], dict[str, str]]:
        """The members' hostnames (only those detached or not, if asked), with their groups."""
        names, notes = [], {}
        for g in self.listing()["groups"]:
            for m in g["machines"]:
                if detached is None or m["detached"] == detached:
                    names.append(m["hostname"])
                    notes[m["hostname"]] = f"group {g['name']}"
        return sorted(names), notes

    def groups(self) -> list[str]:
        return [g["name"] for g in self.listing()["groups"]]

    def op_addgroup(self) -> None:
        group = ask("Enter the name of the new cluster group.")
        if group:
            self.act(lambda node: self.done(ops.addgroup(node, self.admin(node), group),
                                            f"Group {group} added."))

    def op_setgroup(self) -> None:
        machines, notes = self.machines()
        machine = choose("Choose the machine to move to another group.", machines, notes=notes)
        if machine is None:
            return
        group = choose(f"Choose the group for {machine}.", self.groups())
        if group is not None:
            self.act(lambda node: self.done(ops.setgroup(node, self.admin(node), machine, group),
                                            f"{machine} is now in group {group}."))

    def op_renamegroup(self) -> None:
        old = choose("Choose the group to rename.", self.groups())
        if old is None:
            return
        new = ask(f"Enter the new name of the group {old}.")
        if new:
            self.act(lambda node: self.done(ops.renamegroup(node, self.admin(node), old, new),
                                            f"Group {old} renamed to {new}."))

    def op_deletegroup(self) -> None:
        listing = self.listing()["groups"]
        group = choose("Choose the group to remove.", [g["name"] for g in listing])
        if group is None:
            return
        others = [g["name"] for g in listing if g["name"] != group]
        move_to = None
        if any(g["machines"] for g in listing if g["name"] == group):
            move_to = choose(f"Choose the group that {group}'s machines move to (they keep its "
                             "settings as their own).", others,
                             "Main_Group" if "Main_Group" in others else "")
            if move_to is None:
                return

        def delete(node: Node) -> None:
            data = ops.deletegroup(node, self.admin(node), group, move_to)
            if data["dropped_sections"]:
                output.warn(f"group {group} had no machines; its settings of "
                            f"{', '.join(data['dropped_sections'])} are kept only in the log "
                            "(audit)")
            output.say(f"Group {group} removed; machines moved to {data['moved_to']}: "
                       f"{', '.join(data['machines']) or 'none'}.")

        self.act(delete)

    def op_removemachine(self) -> None:
        machines, notes = self.machines()
        machine = choose("Choose the machine to remove from the cluster.", machines, notes=notes)
        if machine is None or not yes_no(
                f"Remove {machine} from the cluster for good? It keeps what it inherited, "
                "flattened, as its own settings, and becomes standalone.", False):
            return
        self.act(lambda node: self.done(ops.removemachine(node, self.admin(node), machine),
                                        f"{machine} removed from the cluster."))

    def op_setname(self) -> None:
        with open_node(self.where) as node:
            current = node.structure().name or ""
        name = ask("Enter the new name of the cluster.", current)
        if name and name != current:
            self.act(lambda node: self.done(ops.setname(node, self.admin(node), name),
                                            f"Cluster renamed to {name}."))

    def op_list(self) -> None:
        self.act(lambda node: render_list(ops.list_cluster(node)))

    def op_listdetail(self) -> None:
        def show(node: Node) -> None:
            data = ops.list_cluster(node, detail=True)
            peers = {p["hostname"]: p for p in node.peers()}
            for g in data["groups"]:
                for m in g["machines"]:
                    m["last_seen"] = peers.get(m["hostname"], {}).get("last_seen")
            render_list(data)

        self.act(show)

    def op_disconnect(self) -> None:
        machines, notes = self.machines(detached=False)
        machine = choose("Choose the machine to detach from the cluster.", machines, notes=notes)
        if machine is not None:
            self.act(lambda node: self.detach(node, machine, True))

    def op_reconnect(self) -> None:
        machines, notes = self.machines(detached=True)
        if not machines:
            output.say("No machine is detached.")
            return
        machine = choose("Choose the machine to reconnect.", machines, notes=notes)
        if machine is not None:
            self.act(lambda node: self.detach(node, machine, False))

    def detach(self, node: Node, machine: str, detached: bool) -> None:
        """``disconnect`` / ``reconnect``: ``evstore.net.client.set_detached``, as the
        subcommands call it."""
        from evstore.net import client

        data = client.set_detached(node, self.admin(node), machine, detached)
        verb = "disconnected" if detached else "reconnected"
        told = ", ".join(data["reached"]) or "no other machine"
        output.say(f"{data['machine']} {verb}; told: {told}" + (
            ". It keeps accepting changes locally; the others get them on reconnect."
            if detached else ". Anti-entropy has started."))
        for u in data["unreachable"]:
            error(f"{u['hostname']} could not be told and learns it at its next contact: "
                  f"{u['error']}")

    def op_prepjoin(self) -> None:
        while True:
            with open_node(self.where) as node:
                hosts = user_ops.prepjoin_list(node, self.who or GLOBAL.user)
            output.say("\nPrepare Cluster Join Over the cluster-only port\n")
            if not hosts:
                output.say("No host entries waiting to be added to the cluster.")
            for i, h in enumerate(hosts, 1):
                output.say(f"{i}. {h['name']} ({h['serial']})")
            output.say("\nChoose the operation you want to perform:")
            output.say("- NEW - Add a new host that will join the cluster.")
            if hosts:
                output.say("- DELETE - Remove a host from the pending join list.")
            answer = ask("").upper()
            if not answer:
                return
            if answer == "NEW":
                self.prepjoin_new()
            elif answer == "DELETE" and hosts:
                self.prepjoin_delete([h["name"] for h in hosts])
            else:
                output.say(f"{answer!r} is not an operation of this menu.")

    def prepjoin_new(self) -> None:
        host = ask("Enter the hostname of the system you want to add.")
        if not host:
            return
        serial = ask(f"Enter the serial number of the host {host}.")
        key = ask(f"Enter the key of the host {host}. It is shown by `evstore clusterconfig "
                  f"prepjoin print` on {host}.")
        if not (serial and key):
            error("a host entry needs the serial number and the key")
            return
        self.act(lambda node: self.done(
            user_ops.prepjoin_new(node, self.admin(node), host, serial, key),
            f"Host {host} added (staged): commit (`evstore commit`) to make it known to every "
            "member."))

    def prepjoin_delete(self, hosts: list[str]) -> None:
        host = choose("Choose the host to remove.", hosts)
        if host is not None:
            self.act(lambda node: self.done(
                user_ops.prepjoin_delete(node, self.admin(node), host),
                f"Host {host} removed from the join list (staged): commit to apply."))

    @staticmethod
    def done(_result: dict[str, Any], text: str) -> None:
        output.say(text)


__all__ = ["Menu", "bare"]
