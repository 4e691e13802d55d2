"""The node's commands: ``run``, ``ccsconfig``, ``commitdetail``, ``demo``, and the
``clusterconfig`` operations that reach other machines (``join``, ``disconnect``,
``reconnect``, ``rekey``)."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from evstore.core.errors import InvalidInput, OperationalError
from evstore.ops import node as node_ops
from evstore_cli import output
from evstore_cli.cluster_group import clusterconfig
from evstore_cli.common import (
    HomeOpt,
    JsonOpt,
    PassOpt,
    UserOpt,
    YesOpt,
    authenticated,
    cluster_level,
    need,
    node_for,
)
from evstore_cli.global_options import GLOBAL
from evstore_cli.output import handled


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app and to ``clusterconfig``."""
    app.command(name="run")(run)
    app.command(name="ccsconfig")(ccsconfig)
    app.command(name="commitdetail")(commitdetail)
    app.command(name="demo")(demo)
    # extra arguments: the cluster-only address that may follow --enable-ccs
    clusterconfig.command(name="join", context_settings={"allow_extra_args": True})(join)
    clusterconfig.command(name="disconnect")(disconnect)
    clusterconfig.command(name="reconnect")(reconnect)
    clusterconfig.command(name="rekey")(rekey)


def _fingerprint_ok(text: str) -> bool:
    """16 pairs of hex digits, colons (or dashes, spaces) between them optional."""
    digits = "".join(c for c in text.lower() if c not in ":- ")
    return len(digits) == 32 and all(c in "0123456789abcdef" for c in digits)


def _hostport(text: str, what: str) -> tuple[str, int]:
    try:
        return node_ops.parse_hostport(text)
    except InvalidInput:
        raise InvalidInput(f"{what} {text!r} is not HOST:PORT (for example 127.0.0.1:8080)") from None


# ---------------------------------------------------------------------- run


@handled
def run(
    ping_interval: Annotated[float, typer.Option("--ping-interval", min=0.1,
                                                 help="Seconds between pings of each peer.")] = 60.0,
    gui: Annotated[str | None, typer.Option("--gui", help="Also serve the web pages on HOST:PORT.",
                                            show_default=False)] = None,
    fanout: Annotated[int | None, typer.Option("--fanout", min=1, help="Dial only K members "
                                               "(big clusters); default: every member.",
                                               show_default=False)] = None,
    sync_interval: Annotated[float | None, typer.Option(
        "--sync-interval", min=0.5, help="Seconds between anti-entropy rounds on each link "
        "(default: the ping interval, at most 10 s); raise it for big idle clusters.",
        show_default=False)] = None,
    metrics: Annotated[str | None, typer.Option(
        "--metrics", help="Also serve /metrics (Prometheus text format) on HOST:PORT.",
        show_default=False)] = None,
    log_format: Annotated[str, typer.Option(
        "--log-format", help="text, or json: one JSON object per log line.")] = "text",
    home: HomeOpt = None,
) -> None:
    """Serve this node: admin and cluster-only ports, pings, anti-entropy (Ctrl-C stops)."""
    from evstore.net.node import NodeConfig, NodeHandle, run_node
    from evstore.ops import logs

    where = node_ops.resolve_home(home or GLOBAL.home)
    with node_ops.open_node(where) as node:  # refuse a folder that is not a home first
        if gui:
            from evstore.ops import access

            access.require(node, "gui")  # the seed's secondary box serves no pages
        from evstore.ops import membership

        membership.announce_version(node)  # started on a new version: the cluster learns it
    gui_at = _hostport(gui, "--gui") if gui else None
    metrics_at = _metrics_at(metrics) if metrics else None
    if log_format not in logs.FORMATS:
        raise InvalidInput(f"--log-format {log_format!r}: say text or json")
    logs.setup(log_format, logging.INFO, sys.stderr)

    def ready(handle: NodeHandle) -> None:
        ports = ", ".join(f"{kind} {h}:{p}" for kind, socks in handle.addresses.items()
                          for h, p in socks)
        extra = f"; web pages at {', '.join(handle.gui)}" if handle.gui else ""
        extra += f"; metrics at {', '.join(handle.metrics)}" if handle.metrics else ""
        output.say(f"serving {where} on {ports} (PID {os.getpid()}){extra}")
        sys.stdout.flush()

    config = NodeConfig(ping_interval=ping_interval, fanout=fanout, sync_interval=sync_interval)
    run_node(where, config=config, beside=_pages(where, gui_at),
             on_ready=ready, metrics=metrics_at)
    output.say("stopped")


def _pages(home: Path, at: tuple[str, int] | None) -> Any:
    """The web pages served beside the node (``run --gui``): composed here, in the CLI, so
    that evstore.net never imports evstore.web."""
    if at is None:
        return None
    need("gui", "run --gui")
    from functools import partial

    from evstore.web import serve_gui

    return partial(serve_gui, home, *at)


def _metrics_at(text: str) -> tuple[str, int]:
    """HOST:PORT for --metrics; HOST:0 takes any free port (printed once bound)."""
    need("metrics", "--metrics")
    if text.endswith(":0"):
        return _hostport(text[:-2] + ":1", "--metrics")[0], 0
    return _hostport(text, "--metrics")


# ---------------------------------------------------------------------- ccsconfig


@handled
def ccsconfig(
    action: Annotated[str | None, typer.Argument(help="enable or disable (nothing: show).",
                                                 show_default=False)] = None,
    address: Annotated[str | None, typer.Argument(help="HOST:PORT for enable (port 2222, "
                                                  "host of --listen by default).",
                                                  show_default=False)] = None,
    home: HomeOpt = None, user: UserOpt = None, passphrase_file: PassOpt = None,
    yes: YesOpt = False, json_out: JsonOpt = False,
) -> None:
    """Show, enable or disable the cluster-only port (the seed's CCS)."""
    if action not in (None, "enable", "disable"):
        raise InvalidInput(f"{action!r}: say enable [HOST:PORT], disable, or nothing to show")
    if address and action != "enable":
        raise InvalidInput("an address goes only with enable")
    with node_for(home) as node:
        if action is not None:
            who = authenticated(node, user, passphrase_file, "cluster")
            _set_ccs(node, who, _ccs_address(node, address) if action == "enable" else None)
        ident = node.identity()
        data = {"enabled": ident.ccs is not None, "ccs": ident.ccs, "listen": ident.listen}
    output.emit(data, json_out, lambda d: output.say(
        f"cluster-only port: {d['ccs'] or 'disabled'} (admin port {d['listen']})"
        + ("; `evstore run` rebinds at once if it serves" if action else "")))


def _ccs_address(node: node_ops.Node, address: str | None) -> str:
    if address is None:
        return f"{node_ops.parse_hostport(node.identity().listen)[0]}:{node_ops.DEFAULT_CCS_PORT}"
    if ":" not in address:
        address = f"{address}:{node_ops.DEFAULT_CCS_PORT}"
    host, port = _hostport(address, "the cluster-only address")
    if f"{host}:{port}" == node.identity().listen:
        raise InvalidInput("the cluster-only port must differ from the admin port (--listen)")
    return f"{host}:{port}"


def _set_ccs(node: node_ops.Node, user: str, address: str | None) -> None:
    node.set_node_value("ccs", address or "")
    if node.in_cluster():  # announce it: peers dial the cluster-only port first
        node.append(user, "machine.announce", {
            "machine_id": node.mid, "machine": node.identity().announce(node.transport_pub)})


# ---------------------------------------------------------------------- join


@contextmanager
def join_ccs(node: Any, enable: bool | None, extra: list[str]) -> Iterator[None]:
    """The seed's question as a machine joins: enable its own cluster-only port? Asked on a
    terminal (default no) unless ``--enable-ccs [HOST:PORT]`` or ``--no-enable-ccs`` answers
    it; a port already enabled stays so. The join then announces the port; a join that fails
    leaves the setting as it was."""
    if len(extra) > 1 or (extra and enable is not True):
        raise InvalidInput(f"unexpected argument {extra[-1]!r}: only --enable-ccs takes an "
                           "address (HOST:PORT) after the member's")
    before = node.identity().ccs
    if enable is None and before is None:
        enable = output.confirm(f"Do you want to enable the cluster-only port (the seed's CCS) "
                                f"on {node.identity().hostname}?", default=False)
    if enable:
        node.set_node_value("ccs", _ccs_address(node, extra[0] if extra else None))
    try:
        yield
    except BaseException:
        if enable:
            node.set_node_value("ccs", before or "")
        raise


def _cluster_passphrase(file: Path | None) -> str | None:
    phrase = output.passphrase(file, env="EVSTORE_CLUSTER_PASSPHRASE",
                               prompt="Admin passphrase of the cluster")
    return phrase if phrase is not None else output.passphrase(GLOBAL.passphrase_file)


def _join_questions(yes: bool, home: Path, saved: list[Path]) -> Any:
    from evstore.net.client import JoinQuestions

    def trust_key(fp: str, address: str) -> bool:
        return output.confirm(f"Public host key fingerprint of {address}: {fp}\n"
                              "Is this a valid key for this host?", default=False)

    def confirm(info: dict[str, Any]) -> bool:
        text = (f"Joining cluster {info.get('name')} through {info.get('hostname')}. This "
                "machine's clusterable settings (users too) will be replaced by the cluster's "
                "and its group's; only machine-only settings (interfaces, hostname...) are kept")
        if yes:
            output.warn(text)
            return True
        if not output.interactive():
            raise InvalidInput(text + ": pass --yes to confirm")
        return output.confirm(text + ". Join?", default=False)

    def before_change(info: dict[str, Any]) -> None:
        saved.append(_backup(home, info))

    return JoinQuestions(trust_key, confirm, before_change)


def _backup(home: Path, info: dict[str, Any]) -> Path:
    """The machine's whole configuration as saveconfig XML (``loadconfig --machine`` can
    bring it back), saved before the join replaces it."""
    from evstore.ops.xmlconfig import saveconfig

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = home / "backups" / f"before-join-{stamp}.xml"
    with node_ops.open_node(home) as node:
        saveconfig(node, path)
    return path


@handled
def join(
    address: Annotated[str, typer.Argument(help="HOST:PORT of a member (its admin port, or its "
                                           "cluster-only port with --ccs).")],
    ccs: Annotated[bool, typer.Option("--ccs", help="Join over the member's cluster-only port "
                                      "(a pre-shared join: no passphrase there).")] = False,
    fingerprint: Annotated[str | None, typer.Option("--fingerprint", help="The member's host-key "
                                                    "fingerprint, checked before anything is sent.",
                                                    show_default=False)] = None,
    trust: Annotated[bool, typer.Option("--trust", help="Accept the member's host key "
                                        "unchecked.")] = False,
    preshared: Annotated[bool, typer.Option("--preshared", help="Use the key entered on a "
                                            "member with `prepjoin new` (no passphrase).")] = False,
    cluster_passphrase_file: Annotated[Path | None, typer.Option(
        "--cluster-passphrase-file", help="File whose first line is the cluster's admin "
        "passphrase.", show_default=False)] = None,
    group: Annotated[str | None, typer.Option("--group", help="Group to land in "
                                              "(default Main_Group).", show_default=False)] = None,
    enable_ccs: Annotated[bool | None, typer.Option(
        "--enable-ccs/--no-enable-ccs", help="Enable this machine's own cluster-only port "
        "(the seed's CCS) as it joins, at the HOST:PORT given after the member's address "
        "(default: the host of --listen, port 2222); asked on a terminal (default no).",
        show_default=False)] = None,
    yes: YesOpt = False,
    home: HomeOpt = None, user: UserOpt = None, passphrase_file: PassOpt = None,
    json_out: JsonOpt = False, ctx: typer.Context = None,  # type: ignore[assignment]
) -> None:
    """Join the cluster of a member (takes effect at once: nothing to commit)."""
    from evstore.net import client

    if fingerprint and trust:
        raise InvalidInput("give --fingerprint FP or --trust, not both")
    if fingerprint is not None and not _fingerprint_ok(fingerprint):
        raise InvalidInput(f"--fingerprint {fingerprint!r} is not a host-key fingerprint: give "
                           "the 16 colon-separated hex pairs `evstore clusterconfig fingerprint` "
                           "prints on the member")
    if not (fingerprint or trust or output.interactive()):
        raise InvalidInput("cannot verify the member's host key without a terminal: pass "
                           "--fingerprint FP (see `evstore clusterconfig fingerprint` on the "
                           "member) or --trust")
    _hostport(address, "the member's address")
    preshared = preshared or ccs
    where = node_ops.resolve_home(home or GLOBAL.home)
    with node_for(where) as node:
        who = authenticated(node, user, passphrase_file, "cluster")
        secret = None if preshared else _cluster_passphrase(cluster_passphrase_file)
        if not preshared and secret is None:
            raise InvalidInput("no cluster passphrase: pass --cluster-passphrase-file F or set "
                               "EVSTORE_CLUSTER_PASSPHRASE (or join with --preshared)")
        opts = client.JoinOptions(address=address, passphrase=secret, preshared=preshared,
                                  fingerprint=fingerprint, trust=trust, group=group)
        saved: list[Path] = []
        with join_ccs(node, enable_ccs, list(ctx.args) if ctx is not None else []):
            data = client.join(node, who, opts, _join_questions(yes, where, saved))
        data["ccs"] = node.identity().ccs
    data["backup"] = str(saved[0]) if saved else None
    output.emit(data, json_out, lambda d: output.say(
        f"saved this machine's configuration to {d['backup']}\n"
        f"Joined cluster {d['cluster']} in group {d['group']} through {d['member']} "
        f"({d['events']} events). Joining a cluster takes effect at once: there is nothing "
        "to commit."))


# ---------------------------------------------------------------------- disconnect, reconnect


def _detach(machine: str, detached: bool, home: Path | None, user: str | None,
            passphrase_file: Path | None, json_out: bool) -> None:
    from evstore.net import client

    with node_for(home) as node:
        who = authenticated(node, user, passphrase_file, "cluster")
        cluster_level(node, who)
        data = client.set_detached(node, who, machine, detached)
    verb = "disconnected" if detached else "reconnected"
    output.emit(data, json_out, lambda d: output.say(
        f"{d['machine']} {verb}; told: {', '.join(d['reached']) or 'no other machine'}"
        + (". It keeps accepting changes locally; the others get them on reconnect."
           if detached else ". Anti-entropy has started.")))
    if data["unreachable"]:
        missed = "; ".join(f"{u['hostname']}: {u['error']}" for u in data["unreachable"])
        raise OperationalError(f"{data['machine']} is {verb} here, but these machines could not "
                               f"be told and learn it at their next contact: {missed}")


@handled
def disconnect(machine: str, home: HomeOpt = None, user: UserOpt = None,
               passphrase_file: PassOpt = None, yes: YesOpt = False,
               json_out: JsonOpt = False) -> None:
    """Detach a machine: no member exchanges events with it until `reconnect`."""
    _detach(machine, True, home, user, passphrase_file, json_out)


@handled
def reconnect(machine: str, home: HomeOpt = None, user: UserOpt = None,
              passphrase_file: PassOpt = None, yes: YesOpt = False,
              json_out: JsonOpt = False) -> None:
    """Re-attach a detached machine; anti-entropy starts at once."""
    _detach(machine, False, home, user, passphrase_file, json_out)


@handled
def rekey(home: HomeOpt = None, user: UserOpt = None, passphrase_file: PassOpt = None,
          yes: YesOpt = False, json_out: JsonOpt = False) -> None:
    """A fresh host key for this machine, announced through a member (after a fork)."""
    from evstore.net import client

    with node_for(home) as node:
        who = authenticated(node, user, passphrase_file, "cluster")
        data = client.rekey(node, who)
    output.emit(data, json_out, lambda d: output.say(
        f"new host key {d['fingerprint']} (was {d['old_fingerprint']}), announced through "
        f"{d['via']}; {d['reissued']} change(s) of the losing branch issued again"))


# ---------------------------------------------------------------------- commitdetail


@handled
def commitdetail(
    commit: Annotated[str | None, typer.Argument(help="Commit id (prefix); default: the newest.",
                                                 show_default=False)] = None,
    home: HomeOpt = None, json_out: JsonOpt = False,
) -> None:
    """What a commit changed and, per machine, whether and when it arrived."""
    from evstore.net import client

    with node_for(home) as node:
        data, unreachable = client.commit_detail(node, commit)
    output.emit(data, json_out, _render_commit)
    if unreachable:
        raise OperationalError("could not reach " + "; ".join(
            f"{h} ({e})" for h, e in sorted(unreachable.items())) + ": their arrival is as "
            "their links last reported")


def _render_commit(d: dict[str, Any]) -> None:
    output.say(f"commit {d['commit']} by {d['user']} on {d['origin']} at {d['time']}"
               + (f": {d['comment']}" if d["comment"] else ""))
    for c in d["changes"]:
        output.say(f"  {c['op']} {c['section']} at {c['mode']}")
    output.table("arrival", ["hostname", "arrived", "at"],
                 [[m["hostname"], {True: "yes", False: "no", None: "unknown"}[m["arrived"]],
                   m["at"]] for m in d["machines"]])


# ---------------------------------------------------------------------- demo


@handled
def demo() -> None:
    """A real 3-node cluster on loopback in a temporary folder, walked through, then stopped."""
    from evstore_cli.node_demo import Demo

    Demo().run()
