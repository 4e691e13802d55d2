"""Reaching other machines from a command: join, disconnect, reconnect, rekey, commitdetail,
clustercheck.

A command acts as its home's machine: it dials with the home's host key and transport key, so
a member recognises it exactly as it recognises that machine's node, and opens an ``rpc``
session (service.py) or, for a join, asks as a stranger. It works the same whether or not
``evstore run`` serves the home; what it writes locally reaches a serving node through SQLite.

The join verifies the member's Ed25519 host-key fingerprint (``--fingerprint``, ``--trust``
or a question) inside the handshake's ``authorize``, before it has sent anything but its own
handshake messages; the passphrase goes out only afterwards (PITFALLS 17).

Every function here is synchronous for the CLI (one ``trio.run`` each). An unreachable
machine is an ``OperationalError`` that names it; where a command reaches several machines
it reaches those it can and reports the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nacl.public
import nacl.signing
import trio

from evstore.core.errors import EvstoreError, InvalidInput, OperationalError
from evstore.core.events import Event, fingerprint
from evstore.core.state import SETTINGS_KINDS, Machine
from evstore.core.sync import MAX_ITEMS, Item, batches
from evstore.net import restore, wire
from evstore.net.transport import (
    HANDSHAKE_TIMEOUT,
    LinkError,
    PeerRefused,
    ProtocolError,
    SecureChannel,
    handshake,
)
from evstore.ops import check, membership, secrets
from evstore.ops.node import Node, iso, parse_hostport
from evstore.ops.settings import describe_changes
from evstore.storage import lookups, nodetable
from evstore.storage.connect import transaction

__all__ = [
    "JoinOptions",
    "JoinQuestions",
    "clustercheck_reports",
    "commit_detail",
    "join",
    "normalize_fingerprint",
    "rekey",
    "set_detached",
]

T = TypeVar("T")
log = logging.getLogger("evstore.join")
DIAL_TIMEOUT = 5.0
REPLY_TIMEOUT = 60.0
UNREACHABLE = (EvstoreError, OSError, trio.TooSlowError, trio.BrokenResourceError,
               trio.ClosedResourceError)


class Caller:
    """This home's machine, reaching out: its keys, and its database behind one thread."""

    def __init__(self, node: Node, version: str | None = None) -> None:
        import evstore

        self.node = node
        self.signing: nacl.signing.SigningKey = node.signing_key
        self.transport: nacl.public.PrivateKey = secrets.load_transport_key(node.home)
        self.version = version or evstore.__version__
        self.limiter = trio.CapacityLimiter(1)

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def dial(self, address: str, *, expect: Machine | None = None,
                   authorize: Callable[[str, str], bool] | None = None) -> SecureChannel:
        """TCP, then the Noise handshake as initiator; unreachable names the address."""
        host, port = parse_hostport(address)
        try:
            with trio.fail_after(DIAL_TIMEOUT):
                stream = await trio.open_tcp_stream(host, port)
        except (OSError, trio.TooSlowError) as e:
            raise OperationalError(f"cannot reach {address}: {_why(e)}; check the address "
                                   "and that `evstore run` serves there") from None
        if expect is not None:
            key = expect.key
            return await handshake(
                stream, initiator=True, static_x25519=self.transport, signing_key=self.signing,
                expected_peer_x25519=bytes.fromhex(expect.transport_key),
                authorize=lambda ed, _x: ed == key, max_message_size=wire.MAX_WIRE_MESSAGE,
                timeout=HANDSHAKE_TIMEOUT)
        return await handshake(
            stream, initiator=True, static_x25519=self.transport, signing_key=self.signing,
            authorize=authorize, max_message_size=wire.MAX_WIRE_MESSAGE,
            timeout=HANDSHAKE_TIMEOUT)


def _why(e: BaseException) -> str:
    if isinstance(e, trio.TooSlowError):
        return "no answer in time"
    if isinstance(e, OSError):
        return e.strerror or str(e) or type(e).__name__
    return str(e) or type(e).__name__


class Rpc:
    """An rpc session with one member."""

    def __init__(self, channel: SecureChannel, machine: Machine) -> None:
        self.channel = channel
        self.machine = machine

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        await wire.send(self.channel, {"t": "req", "op": op, **args})
        return await wire.receive(self.channel, "res", timeout=REPLY_TIMEOUT)

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            await self.channel.aclose()


async def open_rpc(caller: Caller, m: Machine) -> Rpc:
    """An rpc session with member ``m`` at its announced address (cluster-only port first,
    then the admin port); an unreachable member is an OperationalError naming it."""
    addresses = [a for a in (m.ccs, m.listen) if a]
    errors = []
    for address in addresses:
        try:
            return Rpc(await _rpc_channel(caller, m, address), m)
        except _Unreachable as e:
            errors.append(str(e))
    raise OperationalError(f"{m.hostname} is unreachable: {'; '.join(errors)}")


class _Unreachable(OperationalError):
    """Nobody answered at that address (try the next one)."""


class Refused(OperationalError):
    """The machine answered and refused the session (another software version, say)."""


async def _rpc_channel(caller: Caller, m: Machine, address: str) -> SecureChannel:
    try:
        channel = await caller.dial(address, expect=m)
    except OperationalError as e:
        if str(e).startswith("cannot reach"):
            raise _Unreachable(str(e)) from None
        raise OperationalError(f"{m.hostname} at {address}: {e}") from None
    except UNREACHABLE as e:
        raise OperationalError(f"{m.hostname} at {address}: {_why(e)}") from None
    try:
        await wire.send(channel, {"t": "open", "want": "rpc", "version": caller.version})
        await wire.receive(channel, "ready", timeout=REPLY_TIMEOUT)
    except wire.RemoteRefused as e:
        await channel.aclose()
        raise Refused(f"{m.hostname} ({address}) refused: {e}") from None
    except UNREACHABLE as e:
        await channel.aclose()
        raise OperationalError(f"{m.hostname} at {address}: {_why(e)}") from None
    return channel


def _others(node: Node) -> list[Machine]:
    st = node.structure()
    if st.name is None:
        return []
    return [m for m in st.members() if m.mid != node.mid and m.key]


# ---------------------------------------------------------------------- join


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
        raise _Passing(f"{opts.address} cut the join off: {_why(e)}") from None
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
        raise _Passing(f"{opts.address} cut the join off: {_why(e)}") from None
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
                    "from its links once `evstore run` serves here", opts.address, _why(e))
    st = await caller.db(caller.node.structure)
    group = st.groups.get(st.group_of(caller.node.mid) or "", None)
    return {"cluster": st.name, "group": group, "member": info.get("hostname"),
            "member_fingerprint": fingerprint(member_key), "events": len(items),
            "take_up_ms": int((time.monotonic() - started) * 1000), "join_event": ev.id}


# ---------------------------------------------------------------------- delivering events


@dataclass
class Reach:
    """Which machines a command reached, and why the others were not."""

    reached: list[str] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"reached": sorted(self.reached),
                "unreachable": [{"hostname": h, "error": e}
                                for h, e in sorted(self.unreachable.items())]}


async def _deliver(caller: Caller, m: Machine, upto: Event, reach: Reach) -> None:
    """Bring ``m`` our own events up to ``upto``; it acts on them before it answers."""
    try:
        rpc = await open_rpc(caller, m)
    except OperationalError as e:
        reach.unreachable[m.hostname] = str(e)
        return
    try:
        theirs = wire.vv_in((await rpc.call("vv")).get("vv"))
        floor = await caller.db(_floor_of, caller.node, upto.origin)
        first = max(theirs.get(upto.origin, 0) + 1, floor)
        for start in range(first, upto.seq + 1, MAX_ITEMS):
            events = await caller.db(caller.node.log.read_range, upto.origin, start,
                                     min(upto.seq, start + MAX_ITEMS - 1))
            for batch in batches([(e.raw, e.sig) for e in events]):
                await rpc.call("deliver", items=wire.items_out(batch))
        reach.reached.append(m.hostname)
    except UNREACHABLE as e:
        reach.unreachable[m.hostname] = _why(e)
    finally:
        await rpc.aclose()


def _floor_of(node: Node, origin: str) -> int:
    """Our first event that may leave: the anchor of our chain in the cluster."""
    return node.log.latest_anchor(origin) or 1


async def _deliver_all(caller: Caller, phases: Sequence[Sequence[Machine]], upto: Event) -> Reach:
    """Deliver to each phase's machines in parallel, one phase after the other."""
    reach = Reach()
    for targets in phases:
        async with trio.open_nursery() as nursery:
            for m in targets:
                nursery.start_soon(_deliver, caller, m, upto, reach)
    return reach


def set_detached(node: Node, user: str, machine: str, detached: bool) -> dict[str, Any]:
    """``disconnect`` / ``reconnect``: record it, then tell every member directly.

    Each member (the detached machine too) ingests the event and cuts or re-opens its links
    before it answers, so when this returns every reached machine acts on it.
    """
    st = node.structure()
    if st.name is None:
        raise InvalidInput("this machine is standalone: there is no cluster to disconnect from")
    mid = st.find_machine(machine)
    if mid is None or mid not in {m.mid for m in st.members()}:
        raise InvalidInput(f"no machine named {machine!r} in this cluster "
                           "(see `evstore clusterconfig list`)")
    target = st.machines[mid]
    if target.detached == detached:
        state = "disconnected" if detached else "connected"
        raise InvalidInput(f"{target.hostname} is already {state}")
    if not detached and mid != node.mid:
        trio.run(_may_reconnect, Caller(node), target)
    ev = node.append(user, "machine.detach", {"machine": mid, "detached": detached})
    others = [m for m in _others(node) if m.mid != mid]
    told = [[target]] if mid != node.mid else []
    # disconnect: the machine itself first, so it stops at once; reconnect: it last, so the
    # members already accept it when it dials them
    phases = [*told, others] if detached else [others, *told]
    reach = trio.run(_deliver_all, Caller(node), phases, ev)
    return {"machine": target.hostname, "detached": detached, "event": ev.id,
            **reach.as_dict()}


async def _may_reconnect(caller: Caller, target: Machine) -> None:
    """Before a reconnect changes anything: will the machine take it? One that answers and
    refuses (another software version) leaves both sides as they were; one that does not
    answer is re-attached here and learns it at its next contact."""
    try:
        rpc = await open_rpc(caller, target)
    except Refused as e:
        raise OperationalError(f"cannot reconnect {target.hostname}: {e}; nothing was changed "
                               "on either side (run the same version on both, then reconnect)"
                               ) from None
    except OperationalError:
        return
    await rpc.aclose()


# ---------------------------------------------------------------------- commitdetail


def find_commit(node: Node, ref: str | None) -> Event:
    """A commit by id (prefix), or the newest one this node holds."""
    from evstore.ops.history import find_event

    if ref:
        ev = find_event(node.log, ref)
        if ev.kind not in SETTINGS_KINDS:
            raise InvalidInput(f"event {ev.id[:12]} is a {ev.kind}, not a commit")
        return ev
    newest = lookups.newest_of_kinds(node.conn, sorted(SETTINGS_KINDS))
    if newest is None:
        raise InvalidInput("no commit yet: nothing to detail")
    found = node.log.get(newest)
    assert found is not None
    return found


def commit_detail(node: Node, ref: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """What a commit changed and, per machine, whether and when it arrived."""
    ev = find_commit(node, ref)
    own = lookups.received_at(node.conn, ev.id)
    machines = [{"hostname": node.identity().hostname, "arrived": True, "at": iso(own)}]
    reach = Reach()
    targets = _others(node)  # once: a machine joining meanwhile is not asked, nor listed
    others = trio.run(_arrivals, Caller(node), targets, ev, reach)
    machines.extend(others[m.hostname] if m.hostname in others
                    else _arrival_fallback(node, m, ev) for m in targets)
    doc = {
        "commit": ev.id, "user": ev.user, "time": iso(ev.wall),
        "comment": ev.payload.get("comment", ""), "origin": _host_of(node, ev.origin),
        "changes": describe_changes(node, list(ev.payload.get("changes", []))),
        "machines": sorted(machines, key=lambda x: str(x["hostname"])),
    }
    return doc, reach.unreachable


async def _arrivals(caller: Caller, targets: Sequence[Machine], ev: Event,
                    reach: Reach) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    async def one(m: Machine) -> None:
        try:
            rpc = await open_rpc(caller, m)
        except OperationalError as e:
            reach.unreachable[m.hostname] = str(e)
            return
        try:
            res = await rpc.call("arrival", id=ev.id)
            at = res.get("at")
            out[m.hostname] = {"hostname": m.hostname, "arrived": res.get("arrived") is True,
                               "at": iso(at) if isinstance(at, int) else None}
        except UNREACHABLE as e:
            reach.unreachable[m.hostname] = _why(e)
        finally:
            await rpc.aclose()

    async with trio.open_nursery() as nursery:
        for m in targets:
            nursery.start_soon(one, m)
    return out


def _arrival_fallback(node: Node, m: Machine, ev: Event) -> dict[str, Any]:
    """An unreachable machine: what its links last reported (its version vector)."""
    from evstore.net.linkbook import peer_vv_of

    vv = peer_vv_of(node, m.mid)
    arrived = None if vv is None else vv.get(ev.origin, 0) >= ev.seq
    return {"hostname": m.hostname, "arrived": arrived, "at": None, "reachable": False}


def _host_of(node: Node, origin: str) -> str:
    st = node.structure()
    for m in st.machines.values():
        if origin in (m.key, m.mid):
            return m.hostname
    return origin[:16]


# ---------------------------------------------------------------------- clustercheck


def clustercheck_reports(node: Node) -> tuple[list[dict[str, Any]], list[str]]:
    """Every reachable member's report at one point of the log, and who did not answer."""
    return trio.run(_reports, Caller(node), _others(node))


async def _reports(caller: Caller,
                   targets: Sequence[Machine]) -> tuple[list[dict[str, Any]], list[str]]:
    rpcs: dict[str, Rpc] = {}
    vvs: dict[str, dict[str, int]] = {}
    reach = Reach()
    try:
        async with trio.open_nursery() as nursery:
            for m in targets:
                nursery.start_soon(_open_and_vv, caller, m, rpcs, vvs, reach)
        mine = await caller.db(caller.node.log.version_vector)
        point = check.common_point([mine, *vvs.values()])
        reports = [await caller.db(check.digests_at, caller.node, point)]
        async with trio.open_nursery() as nursery:
            for m in targets:
                if m.hostname in vvs:
                    nursery.start_soon(_digests, rpcs[m.hostname], point, reports, reach)
    finally:
        for rpc in rpcs.values():
            await rpc.aclose()
    return reports, sorted(reach.unreachable)


async def _open_and_vv(caller: Caller, m: Machine, rpcs: dict[str, Rpc],
                       vvs: dict[str, dict[str, int]], reach: Reach) -> None:
    try:
        rpc = await open_rpc(caller, m)
        rpcs[m.hostname] = rpc
        vvs[m.hostname] = wire.vv_in((await rpc.call("vv")).get("vv"))
    except UNREACHABLE as e:
        reach.unreachable[m.hostname] = _why(e)


async def _digests(rpc: Rpc, point: dict[str, int], reports: list[dict[str, Any]],
                   reach: Reach) -> None:
    try:
        res = await rpc.call("digests", point=point)
    except UNREACHABLE as e:
        reach.unreachable[rpc.machine.hostname] = _why(e)
        return
    report = res.get("report")
    if isinstance(report, dict):
        reports.append(report)


# ---------------------------------------------------------------------- rekey


def rekey(node: Node, user: str) -> dict[str, Any]:
    """A fresh host key, announced through a member; the losing branch issued again."""
    if not node.in_cluster():
        raise InvalidInput("this machine is standalone: a rekey is announced through a member "
                           "of its cluster; there is none")
    candidates = [m for m in _others(node) if not m.detached]
    if not candidates:
        raise OperationalError("no other member to announce the new key through")
    return trio.run(_rekey, Caller(node), user, candidates)


class _NotThrough(OperationalError):
    """This member cannot take the rekey (``restore.unfit_member``): try another."""


async def _rekey(caller: Caller, user: str, candidates: Sequence[Machine]) -> dict[str, Any]:
    failures: dict[str, str] = {}
    unfit = False
    for m in candidates:
        try:
            rpc = await open_rpc(caller, m)
        except OperationalError as e:
            failures[m.hostname] = str(e)
            continue
        try:
            return await _rekey_through(caller, rpc, user)
        except _NotThrough as e:
            failures[m.hostname], unfit = str(e), True
        finally:
            await rpc.aclose()
    what = "; ".join(f"{h}: {e}" for h, e in sorted(failures.items()))
    if unfit:
        raise OperationalError(
            f"no member reached can take the rekey ({what}); nothing was changed: run it again "
            "once a member that holds this machine's original branch is reachable (status "
            "shows the fork's alert), or once the original has reached the others")
    raise OperationalError(f"could not reach a member to announce the new key: {what}")


async def _rekey_through(caller: Caller, rpc: Rpc, user: str) -> dict[str, Any]:
    node = caller.node
    old = node.origin
    prefix, originals = await _cluster_branch(caller, rpc, old)
    head = (await caller.db(restore.head_of, node.log, old))[0]
    fork = await caller.db(restore.own_fork, node, old, originals)
    other: list[Event] = []
    if fork is not None and fork[0] == restore.WINS and fork[1] is not None:
        # This home's branch is the one every node keeps: keep it, and issue the other
        # branch's changes again instead (it has this home's evidence, the member's, and
        # the member's own events if it still applies that branch).
        other = await _other_branch(caller, rpc, fork[1], originals)
        prefix, originals = head, []
    elif not originals and prefix >= head:
        why = restore.unfit_member(fork)
        if why is not None:  # nothing changed yet: only reads so far
            raise _NotThrough(why)
    new_key = nacl.signing.SigningKey.generate()
    new_pub = new_key.verify_key.encode().hex()
    proof = new_key.sign(restore.rekey_proof_message(rpc.channel.handshake_hash, old,
                                                     new_pub)).signature
    res = await rpc.call("rekey", key=new_pub, proof=proof.hex(), user=user)
    admit = await _read_through(caller, rpc, wire.hex_id(res.get("origin"), "origin"),
                                wire.integer(res, "seq"))
    done = await caller.db(_switch_key, node, user, new_key, prefix, originals, admit, other)
    await _push_new_chain(caller, rpc, new_pub)
    return {"fingerprint": fingerprint(new_pub), "old_fingerprint": fingerprint(old),
            "reissued": done, "adopted": len(originals), "via": rpc.machine.hostname}


async def _cluster_branch(caller: Caller, rpc: Rpc, origin: str) -> tuple[int, list[Item]]:
    """The longest prefix of our own chain the member agrees with, and its events after it."""
    node = caller.node
    mine = await caller.db(restore.head_of, node.log, origin)
    theirs = wire.head_in((await rpc.call("head", origin=origin)).get("head"), "head")
    lo = await caller.db(_floor_of, node, origin) - 1
    hi = min(mine[0], theirs[0])
    while lo < hi:  # largest s in [lo, hi] on which we agree (lo: before our chain, agreed)
        mid = (lo + hi + 1) // 2
        same = await _same_at(caller, rpc, origin, mid)
        lo, hi = (mid, hi) if same else (lo, mid - 1)
    originals = await _read_through(caller, rpc, origin, theirs[0], start=lo + 1)
    return lo, originals


async def _other_branch(caller: Caller, rpc: Rpc, start: Event,
                        applied_there: list[Item]) -> list[Event]:
    """The other branch of this home's fork, from ``start`` on: from this home's evidence, the
    member's evidence and the member's applied events (``restore.other_branch``)."""
    mine = await caller.db(caller.node.log.set_aside, start.origin, start.seq, MAX_ITEMS)
    got = wire.items_in((await rpc.call("set_aside", origin=start.origin,
                                        first=start.seq)).get("items"), MAX_ITEMS)
    return restore.other_branch(start, [*mine, *got, *applied_there])


async def _same_at(caller: Caller, rpc: Rpc, origin: str, seq: int) -> bool:
    ids = (await rpc.call("ids", origin=origin, seqs=[seq])).get("ids")
    ours = await caller.db(restore.id_at, caller.node.log, origin, seq)
    return isinstance(ids, list) and len(ids) == 1 and ids[0] == ours


async def _read_through(caller: Caller, rpc: Rpc, origin: str, last: int,
                        start: int | None = None) -> list[Item]:
    """The member's events of ``origin`` from ``start`` (default: after our head) to ``last``."""
    if start is None:
        start = (await caller.db(restore.head_of, caller.node.log, origin))[0] + 1
    out: list[Item] = []
    while start <= last:
        got = wire.items_in((await rpc.call("read", origin=origin, first=start,
                                            last=last)).get("items"), MAX_ITEMS)
        if not got:
            raise OperationalError(f"{rpc.machine.hostname} did not send events {start}..{last}")
        out.extend(got)
        start += len(got)
    return out


def _switch_key(node: Node, user: str, new_key: nacl.signing.SigningKey, prefix: int,
                originals: list[Item], admit: list[Item], other: Sequence[Event] = ()) -> int:
    """Adopt the cluster's branch, take the new key, anchor it, issue the losing changes again
    (this home's after ``prefix``, or ``other``: the branch its own one wins over)."""
    old = node.origin
    mid = node.mid
    with transaction(node.conn):
        nodetable.insert_new(node.conn, "machine_id", mid)
    losing = restore.adopt_branch(node, old, prefix, originals)
    if other:  # kept as evidence here too, so that every link carries the fork (gossip)
        with transaction(node.conn):
            restore.keep_as_evidence(node, other)
    result = node.log.ingest(admit, now_ms=_now())
    if result.rejected:
        raise OperationalError(f"the member's admission does not apply: "
                               f"{result.rejected[0].reason}")
    membership.swap_key_files(node.home, old, new_key)
    node._key = new_key
    node.log.append(new_key, user=user, kind="node.rekey", payload={
        "cluster": nodetable.get(node.conn, nodetable.CLUSTER_CREATE), "machine_id": mid,
        "replaces": old,
        "machine": node.identity().announce(node.transport_pub)}, now_ms=_now())
    reissued = restore.reissue(node, new_key, [*losing, *other])
    restore.clear_mark(node)
    return len(reissued)


def _now() -> int:
    return time.time_ns() // 1_000_000


async def _push_new_chain(caller: Caller, rpc: Rpc, origin: str) -> None:
    head = await caller.db(restore.head_of, caller.node.log, origin)
    events = await caller.db(caller.node.log.read_range, origin, 1, head[0])
    for batch in batches([(e.raw, e.sig) for e in events]):
        await rpc.call("deliver", items=wire.items_out(batch))
