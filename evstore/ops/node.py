"""A node's home folder: its identity, database and event log, opened for one command.

A home holds ``evstore.db`` (SQLite: the event log and the materialized views), ``host.key``
(Ed25519 signing key, 0600) with ``host.pub``, and ``transport.key`` (X25519 key for peer
links, 0600) with ``transport.pub``. The node's own settings (hostname, serial, addresses)
live in the ``node`` table of the database, and in the signed events that announce them.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evstore._version import __version__
from evstore.core import catalog, encoding, names, state
from evstore.core.errors import InvalidInput, OperationalError
from evstore.core.events import Event, fingerprint
from evstore.core.modes import CLUSTER, machine_mode, split
from evstore.ops import secrets
from evstore.ops.scope import rebuild_views
from evstore.storage import alerts as alert_table
from evstore.storage import linktable, nodetable, space
from evstore.storage.connect import is_read_only, open_db, transaction
from evstore.storage.log import EventLog
from evstore.storage.views import (
    SqliteStore,
    admit,
    invalid_count,
    newest_invalid_wall,
    on_apply,
    rejudge_done,
    rejudge_marked,
)

if TYPE_CHECKING:  # PyNaCl is loaded where a key is read or used (ops/secrets.py, core/events.py)
    import nacl.signing

DB_NAME = "evstore.db"
DEFAULT_LISTEN = "127.0.0.1:2200"
DEFAULT_CCS_PORT = 2222


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_hostport(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[v6]:PORT``); refuses anything else with a usable message."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(default_port) if default_port else ""
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"{text!r} is not HOST:PORT (for example 127.0.0.1:2200)")
    return host, int(port)


@dataclass
class Identity:
    hostname: str
    serial: str
    listen: str
    ccs: str | None
    version: str

    def announce(self, transport_key: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "hostname": self.hostname, "serial": self.serial, "listen": self.listen,
            "version": self.version, "transport_key": transport_key,
        }
        if self.ccs:
            out["ccs"] = self.ccs
        return out


SELFSYNC_KEY = "needs_selfsync"


def settings_only(event: Event) -> bool:
    """Does ``event`` change settings only, never the structure that admission reads?"""
    if event.kind not in state.SETTINGS_KINDS:
        return False
    changes = event.payload.get("changes", [])
    return isinstance(changes, list) and all(
        isinstance(ch, dict) and not str(ch.get("section", "@")).startswith("@")
        for ch in changes
    )


class HomeLog(EventLog):
    """The log of a home. Local writes are refused while ``evstore run`` has found that this
    home was restored from an older copy (the ``needs_selfsync`` mark in the ``node`` table):
    writing then would reuse sequence numbers this machine already sent (PITFALLS 5).

    The mark names the key it applies to, so writes under a fresh key (``rekey``) go through.
    """

    def append(self, signing_key: nacl.signing.SigningKey, **kwargs: Any) -> Event:
        self._check_selfsync(signing_key.verify_key.encode().hex())
        return super().append(signing_key, **kwargs)

    def _check_selfsync(self, origin: str) -> None:
        mark = nodetable.get(self.conn, SELFSYNC_KEY)
        if mark is None:
            return
        state, _, marked = str(mark).partition(" ")
        if marked and marked != origin:
            return
        if state == "fork":
            raise OperationalError(
                "refusing to write: this machine wrote while restored from an older copy and "
                "its log forked; run `evstore clusterconfig rekey` to recover")
        raise OperationalError(
            "refusing to write: this home was restored from an older copy and has not caught "
            "up with its own events yet; keep `evstore run` serving until it reaches a peer "
            "(`evstore status` shows selfsync), or run `evstore clusterconfig rekey`")


class Node:
    """One open home: the database connection, log, keys and identity."""

    def __init__(self, home: Path, conn: sqlite3.Connection) -> None:
        self.home = home
        self.conn = conn
        self.log: EventLog = HomeLog(conn, admit=admit, on_apply=on_apply,
                                     settle_forks=self._settles, on_rewind=self._rewound,
                                     cannot_affect_admission=settings_only)
        self.store = SqliteStore(conn)
        self._key: nacl.signing.SigningKey | None = None
        self.rejudge_after_upgrade()  # here: every opener (commands, `evstore run`, metrics)

    # ------------------------------------------------------------------ forks

    def _settles(self, origin: str) -> bool:
        """Forks of other machines are settled by the log's rule (the earlier branch stays,
        on every node alike); this machine's own are left to ``clusterconfig rekey``, which
        issues its losing branch again from this log."""
        return origin not in (self.origin, self.mid)

    def _rewound(self, conn: sqlite3.Connection) -> None:
        """A settled fork took a branch out of the log: recompute the views from the rest."""
        rebuild_views(self)

    def rejudge_after_upgrade(self) -> None:
        """Schema 9 (admissibility) marks a home whose views were made before the rule: they
        are rebuilt once, so that what inadmissible events wrote disappears (issue 15).

        Called by the constructor, the one path every opener of a home takes (``open_node``,
        ``evstore run``'s runtime, the metrics of a home served elsewhere), so a served home
        is cleaned too. A home this process cannot write keeps its mark for the next writer."""
        try:
            if not rejudge_marked(self.conn):
                return
        except sqlite3.OperationalError:  # no meta table: a database not made by migrate
            return
        try:
            with transaction(self.conn):
                if rejudge_marked(self.conn):
                    rebuild_views(self)
                    rejudge_done(self.conn)
        except sqlite3.OperationalError as e:
            if "readonly" not in str(e).replace("-", "").replace(" ", "").lower():
                raise

    # ------------------------------------------------------------------ identity

    @property
    def signing_key(self) -> nacl.signing.SigningKey:
        if self._key is None:
            self._key = secrets.load_signing_key(self.home)
        return self._key

    @property
    def origin(self) -> str:
        return (self.home / "host.pub").read_text().strip()

    @property
    def transport_pub(self) -> str:
        return (self.home / "transport.pub").read_text().strip()

    def identity(self) -> Identity:
        rows = nodetable.values(self.conn)
        return Identity(
            hostname=rows["hostname"], serial=rows["serial"], listen=rows["listen"],
            ccs=rows.get("ccs") or None, version=__version__,
        )

    def set_node_value(self, key: str, value: str | None) -> None:
        with transaction(self.conn):
            if value is None:
                nodetable.delete(self.conn, key)
            else:
                nodetable.put(self.conn, key, value)

    @property
    def mid(self) -> str:
        """This machine's id: the key it was first admitted with (survives a rekey)."""
        mid = nodetable.get(self.conn, "machine_id")
        return self.origin if mid is None else mid

    def fingerprint(self) -> str:
        return fingerprint(self.origin)

    # ------------------------------------------------------------------ events

    def append(self, user: str, kind: str, payload: dict[str, Any]) -> Event:
        """Sign and store one event; returns after its transaction has committed."""
        return self.log.append(self.signing_key, user=user, kind=kind, payload=payload, now_ms=now_ms())

    # ------------------------------------------------------------------ structure and modes

    def structure(self) -> state.Structure:
        return self.store.structure()

    def in_cluster(self) -> bool:
        return self.structure().name is not None

    def to_internal(self, mode: str) -> str:
        """A mode as people write it (names) to the internal one (ids)."""
        level, name = split(mode)
        st = self.structure()
        if level == CLUSTER:
            if st.name is None:
                raise InvalidInput("this machine is standalone: there is no cluster mode; "
                                   "use machine mode, or create or join a cluster first")
            return CLUSTER
        if level == "group":
            gid = st.find_group(name)
            if gid is None:
                known = ", ".join(sorted(st.groups[g] for g in st.groups if g not in st.deleted))
                raise InvalidInput(f"no group named {name!r} (groups: {known or 'none'})")
            return f"group:{gid}"
        mid = st.find_machine(name)
        if mid is None or (st.name is not None and mid not in {m.mid for m in st.members()}):
            raise InvalidInput(f"no machine named {name!r} in this cluster "
                               "(see `evstore clusterconfig list`)")
        return machine_mode(mid)

    def to_display(self, mode: str) -> str:
        return self.structure().display_mode(mode)

    def mode_of(self, user: str) -> str:
        mode = nodetable.user_mode(self.conn, user)
        default = machine_mode(self.mid)
        if mode is None:
            return default
        try:
            self.to_internal(self.to_display(mode))
        except InvalidInput:
            return default
        return str(mode)

    def set_mode(self, user: str, mode: str) -> str:
        internal = self.to_internal(mode)
        with transaction(self.conn):
            nodetable.set_user_mode(self.conn, user, internal)
        return internal

    # ------------------------------------------------------------------ users

    def users(self) -> list[dict[str, Any]]:
        st = self.structure()
        mode = CLUSTER if st.name is not None else machine_mode(self.mid)
        value = self.store.section_value(mode, "users") or {"users": []}
        return list(value.get("users", []))

    def authenticate(self, user: str, passphrase: str | None) -> dict[str, Any]:
        """Check a user's passphrase against its argon2id hash; returns the user entry."""
        entry = next((u for u in self.users() if u.get("name") == user), None)
        if entry is not None and passphrase is None:
            raise InvalidInput(f"user {user!r} needs a passphrase: pass --passphrase-file"
                               " FILE or set EVSTORE_PASSPHRASE")
        # an unknown user costs one hash too, so timing does not tell which names exist
        stored = entry.get("passphrase_hash", "") if entry else _DUMMY_HASH()
        if secrets.check_passphrase(stored, passphrase or "") and entry is not None:
            return entry
        self._record_failure(user)
        raise InvalidInput(f"wrong user or passphrase for {user!r}: check the passphrase and retry")

    def _record_failure(self, user: str) -> None:
        with transaction(self.conn):  # bounded (storage/alerts.py)
            alert_table.add(self.conn, now_ms(), "login_failed", f"wrong passphrase for user {user!r}")

    # ------------------------------------------------------------------ status

    def state_digest(self) -> str:
        return digest_of(self.store, self.structure())

    def status(self, user: str = "admin") -> dict[str, Any]:
        ident = self.identity()
        st = self.structure()
        me = st.machines.get(self.mid)
        vv = self.log.version_vector()
        origins = {fingerprint(o): self._host_of_origin(st, o) for o in vv}
        alerts = [
            {"at": iso(at), "kind": kind, "detail": detail}
            for at, kind, detail in alert_table.newest(self.conn, 20)
        ]
        invalid = invalid_count(self.conn)
        if invalid:  # issue 15: kept in the log, applied nowhere; `verify` names them
            newest = newest_invalid_wall(self.conn)
            alerts.insert(0, {"at": iso(newest or 0), "kind": "invalid",
                              "detail": f"{invalid} inadmissible event(s) signed by members, "
                                        "kept in the log and applied nowhere (run `evstore "
                                        "verify` to see each one and why)"})
        gid = st.group_of(self.mid) if (me and st.name is not None) else None
        return {
            "hostname": ident.hostname,
            "serial": ident.serial,
            "version": ident.version,
            "cluster": st.name,
            "group": st.groups.get(gid) if gid else None,
            "mode": self.to_display(self.mode_of(user)),
            "events": self.log.count(),
            "version_vector": {fingerprint(o): s for o, s in sorted(vv.items())},
            "origins": origins,
            "state_digest": self.state_digest(),
            "fingerprint": self.fingerprint(),
            "listen": ident.listen,
            "ccs": ident.ccs,
            "pending": self.log.pending_count(),
            "held": len(self.log.held()),
            "forks": len(self.log.forks()),
            "invalid": invalid,
            "selfsync": self._selfsync(),
            "peers": self.peers(st),
            "alerts": alerts,
            "disabled": self.disabled(st),
        }

    def _selfsync(self) -> str | None:
        """``behind`` or ``fork`` while this restored home must catch up with itself."""
        mark = nodetable.get(self.conn, SELFSYNC_KEY)
        return None if mark is None else str(mark).partition(" ")[0]

    def disabled(self, st: state.Structure | None = None) -> list[dict[str, Any]]:
        """Items that reference something a machine lacks, per machine (the seed's
        interdependent settings: such an item is disabled on that machine)."""
        st = st or self.structure()
        machines = st.members() if st.name is not None else [
            m for m in st.machines.values() if m.mid == self.mid
        ]
        out = []
        for m in machines:
            effective = {s: v[0] for s, v in self.store.effective_of(m.mid).items()}
            for d in catalog.check_references(effective):
                out.append({"hostname": m.hostname, "section": d.section, "item": d.item,
                            "reason": d.reason})
        return out

    def _host_of_origin(self, st: state.Structure, origin: str) -> str:
        for m in st.machines.values():
            if origin in (m.key, m.mid):
                return m.hostname
        return self.identity().hostname if origin == self.origin else origin[:16]

    def peers(self, st: state.Structure | None = None) -> list[dict[str, Any]]:
        st = st or self.structure()
        links = linktable.links(self.conn)
        out = []
        me = st.machines.get(self.mid)
        cut_off = bool(me and me.detached)  # a detached machine exchanges with no one
        for m in st.members():
            if m.mid == self.mid:
                continue
            link = links.get(m.mid)
            link_state = "disconnected" if m.detached or cut_off else (link[1] if link else "down")
            out.append({
                "hostname": m.hostname,
                "address": link[4] if link and link[4] else m.listen,
                "state": link_state,
                "last_seen": iso(link[2]) if link and link[2] else None,
                "clock_offset_ms": link[3] if link else None,
            })
        return out


@functools.cache
def _DUMMY_HASH() -> str:  # noqa: N802
    return secrets.hash_passphrase("evstore: no such user")


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    t = time.gmtime(ms / 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{ms % 1000:03d}Z"


def digest_of(store: SqliteStore | state.MemoryStore, st: state.Structure) -> str:
    """``state_digest``: cluster name, groups and members, every defined section and value."""
    groups = []
    members = st.members()
    if st.name is not None:
        for gid, name in sorted(st.groups.items(), key=lambda kv: kv[1]):
            if gid in st.deleted:
                continue
            hosts = sorted(m.hostname for m in members if st.group_of(m.mid) == gid)
            groups.append({"name": name, "machines": hosts})
    settings: dict[str, dict[str, Any]] = {}
    for mode, section in store.defined_sections():
        level = mode.partition(":")[0]
        if level == "machine" and st.name is not None and mode.partition(":")[2] not in {
            m.mid for m in members
        }:
            continue
        if level == "group" and mode.partition(":")[2] in st.deleted:
            continue
        settings.setdefault(st.display_mode(mode), {})[section] = store.section_value(mode, section)
    doc = {"cluster": st.name, "groups": groups, "settings": settings}
    return hashlib.sha256(encoding.encode(doc)).hexdigest()


# ---------------------------------------------------------------------- init and open


def resolve_home(home: str | os.PathLike[str] | None) -> Path:
    raw = home if home is not None else os.environ.get("EVSTORE_HOME")
    if not raw:
        raise InvalidInput("no home folder: pass --home DIR or set EVSTORE_HOME")
    return Path(raw)


@contextmanager
def open_node(home: Path) -> Iterator[Node]:
    """Open an existing home for one command."""
    db = home / DB_NAME
    if not db.exists():
        raise InvalidInput(f"{home} is not an evstore home (no {DB_NAME}): run `evstore init` first")
    conn = open_db(db)
    try:
        node = Node(home, conn)
        if not is_read_only(conn):  # a read-only home still serves every read
            node.log.release_held(now_ms())
        yield node
    finally:
        conn.close()


def init_home(
    home: Path,
    *,
    hostname: str,
    passphrase: str,
    serial: str | None = None,
    listen: str | None = None,
    ccs: str | None = None,
) -> dict[str, Any]:
    """Make a standalone machine: keys, database, identity and its first, anchoring event."""
    if (home / DB_NAME).exists() or (home / "host.key").exists():
        raise InvalidInput(f"{home} already holds an evstore home: refusing to overwrite it")
    names.check(hostname, "host")  # shown everywhere: the user-name rule
    listen = listen or DEFAULT_LISTEN
    parse_hostport(listen)
    if ccs:
        parse_hostport(ccs, DEFAULT_CCS_PORT)
        if ":" not in ccs:
            ccs = f"{ccs}:{DEFAULT_CCS_PORT}"
    phash = secrets.hash_passphrase(passphrase)
    # all or nothing: the home is made in a folder beside it and put in place at the end; a
    # failure (a full disk, say) leaves nothing behind, so `init` can simply be run again
    home.parent.mkdir(parents=True, exist_ok=True)
    try:
        import tempfile  # (these four: only `init` makes a home; opening one needs none)

        work = Path(tempfile.mkdtemp(prefix=f".{home.name}.init-", dir=home.parent))
    except OSError as e:
        raise space.explain(e, home.parent) or OperationalError(
            f"cannot make the home {home}: {e.strerror or e}") from None
    try:
        _make_home(work, hostname, phash, serial, listen, ccs)
        _put_in_place(work, home)
    except BaseException as e:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        full = space.explain(e, home.parent)
        if full is not None:
            raise full from None
        raise
    with open_node(home) as node:
        return node.status()


def _put_in_place(work: Path, home: Path) -> None:
    """Move the finished home from ``work`` to ``home`` (an empty folder there is replaced;
    one holding other files keeps them, and receives the home's)."""
    try:
        os.rename(work, home)
    except OSError:
        home.mkdir(parents=True, exist_ok=True)
        for entry in sorted(work.iterdir(), key=lambda p: p.name == DB_NAME):  # the db last
            os.rename(entry, home / entry.name)
        work.rmdir()
    os.chmod(home, 0o700)


def _make_home(home: Path, hostname: str, phash: str, serial: str | None, listen: str,
               ccs: str | None) -> None:
    os.chmod(home, 0o700)
    key = secrets.new_signing_key(home)
    secrets.new_transport_key(home)
    import secrets as pyrandom

    serial = serial or pyrandom.token_hex(8).upper()
    with open_node(_create_db(home)) as node:
        values = {"hostname": hostname, "serial": serial, "listen": listen, "ccs": ccs or ""}
        with transaction(node.conn):
            nodetable.insert_all(node.conn, values.items())
        node._key = key
        ident = node.identity()
        settings = {
            "users": {"users": [{"name": "admin", "role": "admin", "passphrase_hash": phash}]},
            "hostname": {"hostname": hostname},
        }
        for name, value in settings.items():
            catalog.validate(name, value)
        node.append("admin", "node.init", {
            "machine": ident.announce(node.transport_pub), "settings": settings,
        })


def _create_db(home: Path) -> Path:
    open_db(home / DB_NAME).close()
    return home


def default_hostname() -> str:
    import socket

    return socket.gethostname()
