"""``clusterconfig join``: this machine joins the cluster of a member it dials.

It asks as a stranger (service.py, joins.py), with the home's own keys. It verifies the
member's Ed25519 host-key fingerprint (``--fingerprint``, ``--trust`` or a question) inside the
handshake's ``authorize``, before it has sent anything but its own handshake messages; the
passphrase goes out only afterwards (PITFALLS 17). A join cut off for a passing reason before
this machine changed anything is tried again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from evstore.core.errors import OperationalError
from evstore.core.events import fingerprint
from evstore.core.sync import MAX_ITEMS, Item
from evstore.net import wire
from evstore.net.reaching import REPLY_TIMEOUT, Caller, why
from evstore.net.transport import LinkError, PeerRefused, ProtocolError, SecureChannel
from evstore.ops import membership
from evstore.ops.node import Node

__all__ = ["JOIN_ATTEMPTS", "JoinOptions", "JoinQuestions", "join", "normalize_fingerprint"]

log = logging.getLogger("evstore.join")


@dataclass
class JoinOptions:
    address: str
    passphrase: str | None = None
    preshared: bool = False
    fingerprint: str | None = None
    trust: bool = False
    group: str | None = None
    version: str | None = None  # tests: pretend another software version


@dataclass
class JoinQuestions:
    """What the joining side asks a person (the CLI answers from flags where given)."""

    trust_key: Callable[[str, str], bool]
    confirm: Callable[[dict[str, Any]], bool]
    before_change: Callable[[dict[str, Any]], None]


def normalize_fingerprint(text: str) -> str:
    digits = "".join(c for c in text.lower() if c in "0123456789abcdef")
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


JOIN_ATTEMPTS = 3
PASSING = (LinkError, trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError,
           OSError)


class _Passing(OperationalError):
    """A join cut off for a passing reason before this machine changed anything."""


class _Once:
    """The questions of a join asked once over its attempts; later attempts insist on the
    member key the first one accepted."""

    def __init__(self, questions: JoinQuestions) -> None:
        self.questions = questions
        self.fingerprint: str | None = None
        self.answers: dict[str, bool] = {}
        self.saved = False

    def confirm(self, info: dict[str, Any]) -> bool:
        key = str(info.get("create"))
        if key not in self.answers:
            self.answers[key] = self.questions.confirm(info)
        return self.answers[key]

    def before_change(self, info: dict[str, Any]) -> None:
        if not self.saved:
            self.questions.before_change(info)
            self.saved = True

    def as_questions(self) -> JoinQuestions:
        return JoinQuestions(self.questions.trust_key, self.confirm, self.before_change)


def join(node: Node, user: str, opts: JoinOptions, questions: JoinQuestions) -> dict[str, Any]:
    """Join the cluster of the member at ``opts.address`` (see the module docstring).

    A join cut off for a passing reason (the member busy, or the link lost before this
    machine changed anything) is tried again, up to ``JOIN_ATTEMPTS`` times, checking the
    same member key; the member takes up an admission it gave already.
    """
    membership.join_request(node, opts.group)  # refuses a machine already in a cluster
    once = _Once(questions)
    for attempt in range(1, JOIN_ATTEMPTS + 1):
        try:
            out = trio.run(_join, Caller(node, opts.version), user, opts, once.as_questions(),
                           once)
            return {**out, "attempts": attempt}
        except _Passing as e:
            if attempt == JOIN_ATTEMPTS or node.in_cluster():
                raise OperationalError(f"{e} (tried {attempt} times); nothing was changed here: "
                                       "try again in a moment") from None
            log.warning("join through %s cut off (%s): trying again", opts.address, e)
            time.sleep(0.25 * attempt)
    raise AssertionError("unreachable")


async def _join(caller: Caller, user: str, opts: JoinOptions, questions: JoinQuestions,
                once: _Once | None = None) -> dict[str, Any]:
    if once is not None and once.fingerprint is not None:
        opts = JoinOptions(**{**opts.__dict__, "fingerprint": once.fingerprint})
    try:
        channel, member_key = await _join_dial(caller, opts, questions)
    except PASSING as e:
        raise _Passing(f"{opts.address} cut the join off: {why(e)}") from None
    if once is not None:
        once.fingerprint = fingerprint(member_key)
    try:
        await wire.send(channel, {"t": "open", "want": "join", "version": caller.version})
        ident = await caller.db(caller.node.identity)
        await wire.send(channel, {"t": "credentials", "hostname": ident.hostname,
                                  "preshared": opts.preshared,
                                  "passphrase": None if opts.preshared else opts.passphrase})
        info = await wire.receive(channel, "cluster", timeout=REPLY_TIMEOUT)
        if not questions.confirm(info):
            await wire.send(channel, {"t": "cancel"})
            raise OperationalError("join cancelled: nothing was changed")
        questions.before_change(info)
        return await _join_exchange(caller, channel, user, opts, info, member_key)
    except wire.RemoteRefused as e:
        if "busy" in str(e):  # not a lockout after wrong passphrases
            raise _Passing(f"{opts.address} refused the join for now: {e}") from None
        raise OperationalError(f"{opts.address} refused the join: {e}") from None
    except PASSING as e:
        if await caller.db(caller.node.in_cluster):
            raise
        raise _Passing(f"{opts.address} cut the join off: {why(e)}") from None
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            await channel.aclose()


async def _join_dial(caller: Caller, opts: JoinOptions,
                     questions: JoinQuestions) -> tuple[SecureChannel, str]:
    seen: dict[str, str] = {}
    wanted = normalize_fingerprint(opts.fingerprint) if opts.fingerprint else None

    def authorize(ed25519: str, _x25519: str) -> bool:
        seen["key"] = ed25519
        return wanted is None or fingerprint(ed25519) == wanted

    try:
        channel = await caller.dial(opts.address, authorize=authorize)
    except PeerRefused:
        got = fingerprint(seen["key"]) if "key" in seen else "unknown"
        raise OperationalError(
            f"the machine at {opts.address} has host-key fingerprint {got}, not {wanted}: do "
            "not join it (it may be an impostor); compare with `evstore clusterconfig "
            "fingerprint` on the member") from None
    except (ProtocolError, LinkError) as e:
        if "key" not in seen:
            # the port dialled may be the admin port or the cluster-only one: name it, and
            # say what each would mean, rather than guess
            how = "a pre-shared join (--preshared)" if opts.preshared else "a passphrase join"
            raise OperationalError(
                f"{opts.address} closed the connection before showing its host key ({e}); "
                f"this was {how} dialled to {opts.address}: if that is the member's "
                "cluster-only port, it takes only pre-shared joins (enter this machine with "
                "`clusterconfig prepjoin new` and commit, or dial the admin port); if it is "
                "the admin port, the member may be busy: try again") from None
        raise
    key = channel.peer_ed25519_hex
    if wanted is None and not opts.trust and not questions.trust_key(fingerprint(key),
                                                                     opts.address):
        await channel.aclose()
        raise OperationalError("join cancelled: the member's host key was not accepted")
    return channel, key


async def _join_exchange(caller: Caller, channel: SecureChannel, user: str, opts: JoinOptions,
                         info: dict[str, Any], member_key: str) -> dict[str, Any]:
    request = await caller.db(membership.join_request, caller.node, opts.group)
    await wire.send(channel, {"t": "join", "request": request})
    await wire.receive(channel, "admitted", timeout=REPLY_TIMEOUT)
    items: list[Item] = []
    while True:
        msg = await wire.receive(channel, "log", "end", timeout=REPLY_TIMEOUT)
        if msg["t"] == "end":
            break
        items.extend(wire.items_in(msg.get("items"), MAX_ITEMS))
    started = time.monotonic()
    ev = await caller.db(membership.take_up, caller.node, user, items)
    try:  # joined here already: the member also gets the join event from this node's links
        await wire.send(channel, {"t": "joined", "items": wire.items_out([(ev.raw, ev.sig)])})
        await wire.receive(channel, "ok", timeout=REPLY_TIMEOUT)
    except PASSING as e:
        log.warning("joined; %s did not confirm it (%s): it gets this machine's join event "
                    "from its links once `evstore run` serves here", opts.address, why(e))
    st = await caller.db(caller.node.structure)
    group = st.groups.get(st.group_of(caller.node.mid) or "", None)
    return {"cluster": st.name, "group": group, "member": info.get("hostname"),
            "member_fingerprint": fingerprint(member_key), "events": len(items),
            "take_up_ms": int((time.monotonic() - started) * 1000), "join_event": ev.id}
