"""Issue 3: effective-settings reads, incremental view updates, full rebuild of a 1M-event log.

The cluster: 200 machines in 20 groups, 30 section definitions per machine. The catalog has 17
sections, so "30 sections" is read as 30 *definitions* on every machine's inheritance chain
(the places ``state.resolve`` may look): the cluster defines its 13 clusterable sections
(the 10 any-level ones plus users, ssh and prepjoin), each group defines the 10 any-level
ones, and each machine defines its 4 machine-only sections (interfaces, hostname,
featurekeys, time) and overrides 3 any-level ones (a different three per machine): 13 + 10 + 7
= 30. Every machine resolves 17 effective sections, 3,400 in all, from 1,613 definitions.
Values are real catalog values (validated with ``catalog.validate``) with several named
items per list, as operators write them.

Measured (each a median over several runs):

* **effective-settings read**: one section of one machine, the select ``SqliteStore`` would
  run plus JSON decoding (target under 1 ms), and ``SqliteStore.effective_of`` (a whole machine,
  17 sections, reported per section).
* **remote ingest into the views**: member commits ingested into the genesis database, with
  the views hook only and as ``ops.node.Node`` wires its log (``admit=views.admit`` too).
* **incremental view update per event**: a ``config.commit`` of one patch appended with
  ``EventLog.append`` and the views hook (``views.on_apply``), at machine, group and cluster
  level. Reported: the time in the hook (the view update) and the whole durable append. Run on
  the genesis-only database, then again on the database rebuilt from the 1M-event log, where
  every register has a long history.
* **full rebuild from a 1,000,000-event log**, without signature checks (target at least
  100,000 events/s): the log is the genesis above plus ~1M one-change ``config.commit`` events
  by the 200 machines round-robin (70% at their own machine level, 20% at their group, 10% at
  cluster level; 85% patches of one key or named item, 12% defines, 3% deletes; 2% with a
  stale base, so some end up superseded). Two paths, each reading raw rows from
  ``events``: *bulk* (``rebuild.rebuild_stored``: fold in memory, write the views once; see
  evstore/storage/rebuild.py), timed by phase, with its CPU time; and *incremental*
  (``state.apply`` into ``SqliteStore`` over the events decoded with ``encoding.decode``,
  how ``cluster.rebuild_views`` rebuilt before it used ``rebuild.rebuild``), on a prefix of
  the log because it is far slower.

How the log is made (a cheaper path than ``events.create``, same bytes): envelopes are
encoded with ``json.dumps(sort_keys, no spaces)``, which equals the canonical encoding for
these pure-ASCII payloads (each text is checked to hold no escape, and a sample is checked
with ``encoding.decode`` and ``events.parse``), then signed for real with each machine's key in
worker processes, and inserted straight into ``events`` with ``anchors`` and the clock
high-water mark filled in, as ingest would leave them. Keys and clocks are fixed, so the log
is the same bytes on every run.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import nacl.signing

from bench.common import Result, log, median, seconds, workdir
from evstore.core import catalog, encoding, events, state
from evstore.core.modes import group_id_of, group_mode, machine_mode
from evstore.storage import rebuild as bulk
from evstore.storage.connect import open_db, transaction
from evstore.storage.log import EventLog
from evstore.storage.views import SqliteStore, admit, on_apply

TITLE = "Configuration views: reads, incremental updates, full rebuild (issue 3)"

MACHINES, GROUPS = 200, 20
LOG_EVENTS = 1_000_000
READ_TARGET_MS = 1.0
REBUILD_TARGET = 100_000  # events/s
T0 = 1_700_000_000_000  # wall ms of the first event: fixed, so the log is the same every run

ANY = sorted(s for s, sec in catalog.SECTIONS.items() if sec.levels == catalog.ANY_LEVEL)
MACHINE_ONLY = sorted(s for s, sec in catalog.SECTIONS.items() if not sec.clusterable)
CLUSTERABLE = sorted(s for s, sec in catalog.SECTIONS.items() if sec.clusterable)
# definitions on each machine's chain: the cluster's clusterable sections, its group's
# any-level ones, its own machine-only ones and 3 overrides (30 when the catalog had 17
# sections; the catalog has grown since)
CHAIN_DEFS = len(CLUSTERABLE) + len(ANY) + len(MACHINE_ONLY) + 3

# ---------------------------------------------------------------------- section values

_TLS = ("off", "preferred", "required")
_ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
_ROLES = ("admin", "operator", "readonly", "guest")

# For each section with an items list: the list's key and one item, from (item no., variant).
ITEMS: dict[str, tuple[str, Callable[[int, int], dict[str, Any]]]] = {
    "listeners": ("listeners", lambda j, v: {
        "name": f"listener{j}", "interface": f"eth{j % 2}", "port": 25 + (v % 1000),
        "footer": f"footer{j % 3}"}),
    "destconfig": ("domains", lambda j, v: {
        "name": f"partner{j}.example.com", "max_connections": 1 + v % 500,
        "tls": _TLS[v % 3], "bounce_profile": "Default"}),
    "ldap": ("queries", lambda j, v: {
        "name": f"query{j}", "server": "corp", "base": f"ou=unit{v % 97},dc=example,dc=com",
        "filter": f"(&(objectClass=person)(proxyAddresses=smtp:{{a}})(rev={v}))"}),
    "smtproutes": ("routes", lambda j, v: {
        "name": f"route{j}.example.com",
        "destinations": [f"relay{v % 50}.example.com:25", f"relay{(v + 1) % 50}.example.com"]}),
    "textresources": ("resources", lambda j, v: {
        "name": f"footer{j}", "kind": "footer",
        "text": f"This message was sent by Example Corp. Footer revision {v}."}),
    "bounceprofiles": ("profiles", lambda j, v: {
        "name": "Default" if j == 0 else f"profile{j}", "max_retries": v % 1000,
        "max_queue_lifetime": 259200, "initial_retry": 60, "max_retry_timeout": 3600,
        "hard_bounce": v % 2 == 0}),
    "unsubscribe": ("entries", lambda j, v: {
        "name": f"user{j}@example.com", "comment": f"ticket {v}"}),
    "interfaces": ("interfaces", lambda j, v: {
        "name": f"eth{j}", "address": f"10.{j}.{v // 256 % 256}.{v % 256}",
        "netmask": "255.255.255.0", "hostname": f"if{j}.m{v % 1000}.example.com"}),
    "featurekeys": ("keys", lambda j, v: {
        "name": f"feature{j}", "expires": f"{2027 + v % 3}-01-01",
        "key": f"K{v:012d}-{j}"}),
    "users": ("users", lambda j, v: {
        "name": "admin" if j == 0 else f"user{j}", "role": _ROLES[j % 4],  # events act as admin
        "passphrase_hash": f"$argon2id$v=19$m=65536,t=2,p=1${v:022d}${j:043d}"}),
    "ssh": ("authorized_keys", lambda j, v: {
        "name": f"key{j}", "user": "admin",
        "key": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{v:040d} admin{j}@example.com"}),
    "prepjoin": ("hosts", lambda j, v: {
        "name": f"pending{j}.example.com", "serial": f"S{v:010d}", "key": f"{v + j:064x}"}),
    "routes": ("routes", lambda j, v: {
        "name": f"route{j}", "destination": f"10.{j}.{v % 256}.0/24",
        "gateway": f"192.168.{j}.{1 + v % 250}"}),
    "ethernet": ("ports", lambda j, v: {
        "name": f"eth{j}", "media": "auto", "mtu": 576 + v % 8000}),
}
# For the others: one plain key and its value from the variant.
SCALARS: dict[str, tuple[str, Callable[[int], Any]]] = {
    "dns": ("servers", lambda v: [f"10.53.{v % 256}.1", f"10.53.{v % 256}.2"]),
    "ntp": ("servers", lambda v: [f"ntp{v % 4}.example.com", f"ntp{(v + 1) % 4}.example.com"]),
    "timezone": ("zone", lambda v: _ZONES[v % len(_ZONES)]),
    "hostname": ("hostname", lambda v: f"mail{v % 1000}.example.com"),
    "time": ("ntp_sync", lambda v: v % 2 == 0),
    "access": ("gui", lambda v: v % 2 == 0),
    "gateway": ("ipv4", lambda v: f"192.168.{v // 250 % 256}.{1 + v % 250}"),
}
_EXTRA: dict[str, dict[str, Any]] = {
    "ldap": {"servers": [{"name": "corp", "host": "ldap.example.com", "port": 389}]},
    "destconfig": {"default": {"max_connections": 100, "max_messages_per_connection": 50,
                               "tls": "preferred"}},
    "unsubscribe": {"enabled": True},
}


def define_value(section: str, v: int) -> dict[str, Any]:
    """A whole section value: three named items, or the plain key."""
    if section in SCALARS:
        key, make = SCALARS[section]
        return {key: make(v)}
    key, item = ITEMS[section]
    return {**_EXTRA.get(section, {}), key: [item(j, v) for j in range(3)]}


def patch_fields(section: str, v: int, j: int) -> dict[str, Any]:
    """The registers one patch sets: one named item (new or changed), or the plain key."""
    if section in SCALARS:
        key, make = SCALARS[section]
        return {key: make(v)}
    key, item = ITEMS[section]
    value = item(j, v)
    return {f"{key}/{value['name']}": value}


def check_values() -> None:
    """Every value this workload writes is valid for the catalog, and every section of the
    catalog has one (a section added to the catalog needs its line in ITEMS or SCALARS)."""
    missing = sorted(set(catalog.SECTIONS) - set(ITEMS) - set(SCALARS))
    if missing:
        raise SystemExit(f"bench_views: no workload value for section(s) {', '.join(missing)}")
    for section in catalog.SECTIONS:
        for v in (0, 1, 999, 12345):
            catalog.validate(section, define_value(section, v))


# ---------------------------------------------------------------------- the cluster


@dataclass
class Cluster:
    """The 200 machines' keys, the groups, and who belongs where."""

    machines: int
    groups: int
    seeds: list[bytes] = field(default_factory=list)
    keys: list[nacl.signing.SigningKey] = field(default_factory=list)
    mids: list[str] = field(default_factory=list)
    gids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.seeds = [hashlib.sha256(f"evstore-bench-machine-{i}".encode()).digest()
                      for i in range(self.machines)]
        self.keys = [nacl.signing.SigningKey(s) for s in self.seeds]
        self.mids = [k.verify_key.encode().hex() for k in self.keys]

    def group_of(self, i: int) -> int:
        return i % self.groups

    def overrides(self, i: int) -> list[str]:
        """The 3 any-level sections machine ``i`` defines at its own level."""
        return [ANY[(i + k) % len(ANY)] for k in range(3)]

    def machine_sections(self, i: int) -> list[str]:
        return MACHINE_ONLY + self.overrides(i)


class Rec(NamedTuple):
    """One event before signing: who signs it, and the row ``events`` will hold."""

    author: int
    id: str
    origin: str
    seq: int
    prev: str | None
    clock: int
    wall: int
    kind: str
    raw: bytes


class Writer:
    """Makes the chained, canonical envelopes of every author, in one global clock order."""

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster
        self.n = 0
        self.seq = [0] * cluster.machines
        self.prev: list[str | None] = [None] * cluster.machines
        self.last: dict[tuple[str, str], list[Any]] = {}  # (mode, section) -> newest order

    def event(self, author: int, kind: str, payload: dict[str, Any]) -> Rec:
        self.n += 1
        self.seq[author] += 1
        wall = T0 + self.n
        env: dict[str, Any] = {"v": events.FORMAT_VERSION, "origin": self.c.mids[author],
               "seq": self.seq[author], "prev": self.prev[author], "clock": wall << 16,
               "wall": wall, "user": "admin", "kind": kind, "payload": payload}
        text = json.dumps(env, separators=(",", ":"), sort_keys=True)
        if "\\" in text:  # json.dumps escaped something: not the canonical form
            raise ValueError(f"workload text needs escaping: {text[:80]}")
        raw = text.encode()
        rec = Rec(author, events.event_id(raw), self.c.mids[author], self.seq[author],
                  self.prev[author], wall << 16, wall, kind, raw)
        self.prev[author] = rec.id
        return rec

    def commit(self, author: int, changes: list[dict[str, Any]], comment: str = "") -> Rec:
        rec = self.event(author, "config.commit", {"comment": comment, "changes": changes})
        for ch in changes:
            self.last[(ch["mode"], ch["section"])] = [rec.clock, rec.origin, rec.id]
        return rec

    def base(self, mode: str, section: str, stale: bool) -> list[Any] | None:
        b = self.last.get((mode, section))
        if b is not None and stale:
            return [b[0] - (3 << 16), b[1], b[2]]  # as if staged before the newest change
        return b


def genesis(w: Writer) -> list[Rec]:
    """create, 19 groups, 199 admits, the groups' 10 sections each, 199 joins."""
    c = w.c
    out = [w.event(0, "cluster.create", {
        "name": "bench", "group_name": "Main_Group", "machine": _announce(c, 0),
        "cluster_settings": {s: define_value(s, 0) for s in CLUSTERABLE},
        "machine_settings": {s: define_value(s, 0) for s in c.machine_sections(0)},
    })]
    c.gids = [group_id_of(out[0].id)]
    for g in range(1, c.groups):
        out.append(w.event(0, "group.add", {"name": f"Group{g:02d}"}))
        c.gids.append(group_id_of(out[-1].id))
    for i in range(1, c.machines):
        out.append(w.event(0, "cluster.admit", {
            "machine_id": c.mids[i], "key": c.mids[i], "group": c.gids[c.group_of(i)],
            "machine": _announce(c, i)}))
    for g, gid in enumerate(c.gids):
        changes = [{"mode": group_mode(gid), "section": s, "op": "define", "base": None,
                    "value": define_value(s, g + 1)} for s in ANY]
        out.append(w.commit(0, changes, f"group {g} settings"))
    for i in range(1, c.machines):
        out.append(w.event(i, "cluster.join", {
            "cluster": out[0].id, "machine": _announce(c, i),
            "machine_settings": {s: define_value(s, i) for s in c.machine_sections(i)}}))
    return out


def _announce(c: Cluster, i: int) -> dict[str, Any]:
    return {"hostname": f"m{i:03d}.example.com", "serial": f"SN{i:08d}",
            "listen": f"10.0.{i // 250}.{i % 250 + 1}:2200", "version": "0.1.0",
            "transport_key": hashlib.sha256(c.seeds[i]).hexdigest()}


def one_change(w: Writer, rng: random.Random, author: int) -> dict[str, Any]:
    """A random one-change commit by ``author``, with the mix the module docstring gives."""
    c = w.c
    r = rng.random()
    if r < 0.70:
        mode, section = machine_mode(c.mids[author]), rng.choice(c.machine_sections(author))
    elif r < 0.90:
        mode, section = group_mode(c.gids[c.group_of(author)]), rng.choice(ANY)
    else:
        mode, section = "cluster", rng.choice(CLUSTERABLE)
    base = w.base(mode, section, stale=rng.random() < 0.02)
    ch: dict[str, Any] = {"mode": mode, "section": section, "base": base}
    op = rng.random()
    v = rng.randrange(1_000_000)
    if op < 0.85:
        ch.update(op="patch", set=patch_fields(section, v, rng.randrange(5)), unset=[])
    elif op < 0.97 or mode != machine_mode(c.mids[author]):
        ch.update(op="define", value=define_value(section, v))
    else:
        ch.update(op="delete")
    return ch


def stream(w: Writer, n: int, seed: int = 1) -> Iterator[Rec]:
    """``n`` one-change commits by the machines, round-robin."""
    rng = random.Random(seed)
    for k in range(n):
        author = k % w.c.machines
        yield w.commit(author, [one_change(w, rng, author)])


# ---------------------------------------------------------------------- signing and storing

_SIGNERS: list[nacl.signing.SigningKey] = []


def _init_signer(seeds: list[bytes]) -> None:
    _SIGNERS[:] = [nacl.signing.SigningKey(s) for s in seeds]


def _sign(batch: list[tuple[int, bytes]]) -> list[bytes]:
    return [_SIGNERS[a].sign(events.SIGNING_CONTEXT + raw).signature for a, raw in batch]


class Signer:
    """Signs records with the real keys, in worker processes when there is more than one core."""

    def __init__(self, cluster: Cluster, workers: int) -> None:
        self.pool = None
        if workers > 1:
            ctx = multiprocessing.get_context("fork")
            self.pool = ctx.Pool(workers, _init_signer, (cluster.seeds,))
        else:
            _init_signer(cluster.seeds)
        self.workers = workers

    def sign(self, recs: list[Rec]) -> list[bytes]:
        items = [(r.author, r.raw) for r in recs]
        if self.pool is None:
            return _sign(items)
        size = max(1, len(items) // (self.workers * 4))
        parts = [items[i : i + size] for i in range(0, len(items), size)]
        return [sig for part in self.pool.map(_sign, parts) for sig in part]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()


def _check_sample(recs: list[Rec], sigs: list[bytes]) -> None:
    """The cheap encoding gave canonical bytes, and the signatures verify."""
    for rec, sig in list(zip(recs, sigs, strict=True))[:: max(1, len(recs) // 20)]:
        ev = events.parse(rec.raw, sig)
        if encoding.encode(encoding.decode(rec.raw)) != rec.raw or ev.id != rec.id:
            raise AssertionError(f"workload event {rec.id} is not canonical")


def insert(conn: sqlite3.Connection, recs: list[Rec], sigs: list[bytes]) -> None:
    conn.executemany(
        "INSERT INTO events (id, origin, seq, prev, clock, wall, user, kind, raw, sig, "
        "received_at) VALUES (?,?,?,?,?,?,'admin',?,?,?,?)",
        [(r.id, r.origin, r.seq, r.prev, r.clock, r.wall, r.kind, r.raw, s, r.wall)
         for r, s in zip(recs, sigs, strict=True)],
    )


def finish_log(conn: sqlite3.Connection) -> None:
    """``anchors`` and the clock high-water mark, as ingesting these events leaves them."""
    conn.execute("DELETE FROM anchors")
    conn.execute(
        "INSERT INTO anchors (origin, first_seq, first_id, last_seq, last_id) "
        "SELECT f.origin, f.seq, f.id, l.seq, l.id FROM events AS f JOIN events AS l "
        "ON l.origin = f.origin AND f.seq = 1 "
        "AND l.seq = (SELECT MAX(seq) FROM events WHERE origin = f.origin)"
    )
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('hlc_hwm', "
                 "(SELECT MAX(clock) FROM events))")


def build_log(path: Path, cluster: Cluster, n_events: int, chunk: int = 50_000) -> int:
    """Write the genesis plus commits up to ``n_events`` events into ``path``; returns count."""
    w = Writer(cluster)
    signer = Signer(cluster, os.cpu_count() or 1)  # fork the workers before opening SQLite
    conn = open_db(path)
    try:
        recs = genesis(w)
        commits = stream(w, n_events - len(recs))
        total, report = 0, 200_000
        while recs:
            sigs = signer.sign(recs)
            _check_sample(recs, sigs)
            with transaction(conn):
                insert(conn, recs, sigs)
            total += len(recs)
            recs = [r for _, r in zip(range(chunk), commits, strict=False)]
            if total >= report:
                log(f"  log: {total:,} events written")
                report += 200_000
        with transaction(conn):
            finish_log(conn)
    finally:
        signer.close()
        conn.close()
    return total


# ---------------------------------------------------------------------- small-history cluster


def genesis_db(path: Path, cluster: Cluster) -> sqlite3.Connection:
    """A database holding just the genesis, ingested through the log with the views hook."""
    recs = genesis(Writer(cluster))
    _init_signer(cluster.seeds)
    sigs = _sign([(r.author, r.raw) for r in recs])
    conn = open_db(path)
    res = EventLog(conn, on_apply=on_apply).ingest(
        list(zip([r.raw for r in recs], sigs, strict=True)), now_ms=_now_ms())
    if len(res.applied) != len(recs):
        raise RuntimeError(f"genesis ingest: {res.counts()}")
    return conn


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def check_shape(conn: sqlite3.Connection, cluster: Cluster, chain_defs: int | None) -> None:
    """The views hold the cluster this module says it measures."""
    store = SqliteStore(conn)
    st = state.structure_from(store.structure_winners())
    groups = {st.group_of(m.mid) for m in st.members()}
    n_eff = conn.execute("SELECT COUNT(*) FROM effective").fetchone()[0]
    chain = st.chain(cluster.mids[1])
    defs = sum(1 for mode, _ in store.defined_sections() if mode in chain)
    got = (len(st.members()), len(groups), n_eff, defs if chain_defs is not None else None)
    want = (cluster.machines, cluster.groups, cluster.machines * len(catalog.SECTIONS), chain_defs)
    if got != want:
        raise AssertionError(
            f"cluster shape (machines, groups, effective rows, definitions on a chain): "
            f"{got}, expected {want}"
        )


# ---------------------------------------------------------------------- reads


def read_one(conn: sqlite3.Connection, mid: str, section: str) -> tuple[Any, str, str | None]:
    """One effective section of one machine, decoded: what a `show` needs."""
    value, source, event = conn.execute(
        "SELECT value, source, event FROM effective WHERE machine=? AND section=?",
        (mid, section),
    ).fetchone()
    return encoding.loads_json(value), source, event


def bench_reads(conn: sqlite3.Connection, cluster: Cluster, n: int, reps: int) -> list[Result]:
    rng = random.Random(7)
    sections = sorted(catalog.SECTIONS)
    picks = [(rng.choice(cluster.mids), rng.choice(sections)) for _ in range(n)]
    store = SqliteStore(conn)
    mids = [rng.choice(cluster.mids) for _ in range(max(1, n // len(sections)))]

    def one() -> float:
        return seconds(lambda: [read_one(conn, m, s) for m, s in picks]) / n * 1000

    def whole() -> float:
        dt = seconds(lambda: [store.effective_of(m) for m in mids])
        return dt / (len(mids) * len(sections)) * 1000

    singles = [one() for _ in range(reps)]
    wholes = [whole() for _ in range(reps)]
    single = median(singles)
    return [
        Result("effective-settings read, one section (select + decode)", single, "ms",
               singles, target=f"< {READ_TARGET_MS:g} ms per section",
               passed=single < READ_TARGET_MS,
               note=f"{n} random (machine, section) reads per run; "
               f"{1 / single * 1000:,.0f} reads/s"),
        Result("effective-settings read, SqliteStore.effective_of (per section)",
               median(wholes), "ms", wholes, target=f"< {READ_TARGET_MS:g} ms per section",
               passed=median(wholes) < READ_TARGET_MS,
               note=f"whole machine: {len(sections)} sections, "
               f"{median(wholes) * len(sections):.2f} ms"),
    ]


# ---------------------------------------------------------------------- incremental updates


class TimedHook:
    """``views.on_apply``, timed: the view-update share of an append."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, conn: sqlite3.Connection, evs: list[events.Event]) -> None:
        t0 = time.perf_counter()
        on_apply(conn, evs)
        self.last = time.perf_counter() - t0


LEVELS = ("machine", "group", "cluster")


def _level_change(cluster: Cluster, level: str, i: int) -> dict[str, Any]:
    k = 1 + i % (cluster.machines - 1)
    if level == "machine":
        mode, section = machine_mode(cluster.mids[k]), cluster.overrides(k)[0]
    elif level == "group":
        mode, section = group_mode(cluster.gids[cluster.group_of(k)]), "ldap"
    else:
        mode, section = "cluster", "ldap"
    return {"mode": mode, "section": section, "op": "patch", "base": None,
            "set": patch_fields(section, 500_000 + i, i % 5), "unset": []}


def _timed_ingest(evlog: EventLog, items: list[tuple[bytes, bytes]]) -> float:
    t0 = time.perf_counter()
    res = evlog.ingest(items, now_ms=_now_ms())
    dt = time.perf_counter() - t0
    if len(res.applied) != len(items):
        raise RuntimeError(f"member commits not applied: {res.counts()}")
    return dt


def bench_node_ingest(conn: sqlite3.Connection, cluster: Cluster, n: int) -> list[Result]:
    """Commits by the members, ingested into the genesis database in one call per half.

    The first half with the views hook only, the second as ``ops.node.Node`` wires the log:
    ``admit=views.admit`` too, which reads the cluster structure for every event and makes
    the log hand the views each event before admitting the next.
    """
    log(f"remote ingest of {n} member commits with the views hook, then as a node does")
    w = Writer(cluster)
    genesis(w)
    recs = list(stream(w, n, seed=2))
    _init_signer(cluster.seeds)
    items = list(zip([r.raw for r in recs], _sign([(r.author, r.raw) for r in recs]),
                     strict=True))
    half = n // 2
    out = []
    for name, evlog, part in (
        ("views hook only", EventLog(conn, on_apply=on_apply), items[:half]),
        ("as a node does: admit + views hooks",
         EventLog(conn, admit=admit, on_apply=on_apply), items[half:]),
    ):
        dt = _timed_ingest(evlog, part)
        out.append(Result(f"remote ingest with verification, {name}, one call of {len(part)}",
                          dt / len(part) * 1000, "ms/event", [dt / len(part) * 1000],
                          target="none set (report)",
                          note=f"{len(part) / dt:,.0f} events/s; one-change config.commit "
                          "events by the members, 200-machine cluster"))
    return out


def bench_updates(conn: sqlite3.Connection, cluster: Cluster, n: int, reps: int,
                  where: str) -> list[Result]:
    hook = TimedHook()
    evlog = EventLog(conn, on_apply=hook)
    out = []
    for level in LEVELS:
        view_ms: list[float] = []
        total_ms: list[float] = []
        for rep in range(reps):
            views, totals = [], []
            for i in range(n):
                payload = {"comment": "bench", "changes": [_level_change(cluster, level,
                                                                         rep * n + i)]}
                t0 = time.perf_counter()
                evlog.append(cluster.keys[0], user="admin", kind="config.commit",
                             payload=payload, now_ms=_now_ms())
                totals.append((time.perf_counter() - t0) * 1000)
                views.append(hook.last * 1000)
            view_ms.append(median(views))
            total_ms.append(median(totals))
        reach = {"machine": "1 machine", "group": f"{cluster.machines // cluster.groups} "
                 "machines", "cluster": f"{cluster.machines} machines"}[level]
        out.append(Result(f"incremental view update, {level}-level patch ({where})",
                          median(view_ms), "ms", view_ms, target="none set (report)",
                          note=f"reaches {reach}; whole durable append with the hook "
                          f"{median(total_ms):.2f} ms (median of per-run medians, "
                          f"{n} commits per run)"))
    return out


# ---------------------------------------------------------------------- rebuilds


@dataclass
class BulkRun:
    """One bulk rebuild (``rebuild.rebuild_stored``): wall seconds by phase, and CPU seconds."""

    phases: dict[str, float]
    events: int
    cpu: float  # this process's CPU seconds

    @property
    def total(self) -> float:
        return sum(self.phases.values())


def bulk_rebuild(conn: sqlite3.Connection) -> BulkRun:
    """One bulk rebuild from the log, timed by phase, from the call to its return: "start"
    is what comes before the first phase, "done" what comes after the commit."""
    cpu0 = time.process_time()
    marks: list[tuple[str, float]] = [("start", time.perf_counter())]
    v = bulk.rebuild_stored(conn, phase=lambda name: marks.append((name, time.perf_counter())))
    marks.append(("end", time.perf_counter()))
    cpu = time.process_time() - cpu0
    phases: dict[str, float] = {}
    for (name, t0), (_, t1) in zip(marks, marks[1:], strict=False):
        phases[name] = phases.get(name, 0.0) + t1 - t0
    return BulkRun(phases, v.events, cpu)


def read_only(conn: sqlite3.Connection) -> float:
    """Seconds to read and parse every stored event and nothing else: the fold's floor."""
    def run() -> int:
        loads = bulk.views.fast_loads
        return sum(1 for _, raw in conn.execute("SELECT id, raw FROM events") if loads(raw))
    return seconds(run)


def incremental_rebuild(conn: sqlite3.Connection, n: int) -> tuple[float, float]:
    """``state.apply`` over the first ``n`` events, decoded as the log decodes them (how
    ``cluster.rebuild_views`` rebuilt before it used the bulk path): wall and CPU seconds."""
    def run() -> None:
        rows = conn.execute("SELECT id, raw, sig FROM events ORDER BY rowid LIMIT ?", (n,))
        evs = [_decoded(i, raw, sig) for i, raw, sig in rows]
        with transaction(conn):
            store = SqliteStore(conn)
            store.reset()
            state.apply(store, evs)

    cpu0 = time.process_time()
    wall = seconds(run)
    return wall, time.process_time() - cpu0


def _decoded(event_id: str, raw: bytes, sig: bytes) -> events.Event:
    """As storage/log.py reads a stored event: ``encoding.decode``, no signature check."""
    env = encoding.decode(raw)
    return events.Event(raw, sig, event_id, env["origin"], env["seq"], env["prev"],
                        env["clock"], env["wall"], env["user"], env["kind"], env["payload"])


def bench_rebuild(path: Path, reps: int, prefix: int) -> list[Result]:
    """The incremental path on a prefix, then the bulk path (each leaves the views whole)."""
    conn = open_db(path)
    log(f"  incremental-path rebuild of the first {prefix:,} events")
    inc_wall, inc_cpu = incremental_rebuild(conn, prefix)
    inc = [prefix / inc_wall]
    read = read_only(conn)
    runs: list[BulkRun] = []
    for rep in range(reps):
        runs.append(bulk_rebuild(conn))
        log(f"  bulk rebuild {rep + 1}/{reps}: {runs[-1].events:,} events in "
            f"{runs[-1].total:.1f} s")
    n = runs[0].events
    writes = conn.execute("SELECT COUNT(*) FROM section_events").fetchone()[0]
    conn.close()
    return [
        _bulk_result(runs, n, writes, read),
        Result(f"full rebuild, incremental path (state.apply + SqliteStore), first "
               f"{prefix:,} events", inc[0], "events/s", inc,
               target=f">= {REBUILD_TARGET:,} events/s", passed=inc[0] >= REBUILD_TARGET,
               note="one state.apply over the events decoded with encoding.decode (the "
               "way cluster.rebuild_views went before it used the bulk path); "
               f"{prefix / inc_cpu:,.0f} events per CPU-second; "
               "on a prefix, because the whole log would take "
               f"about {n / inc[0] / 60:.0f} min at this rate"),
    ]


def _bulk_result(runs: list[BulkRun], n: int, rows: int, read: float) -> Result:
    rates = [r.events / r.total for r in runs]
    names = list(runs[0].phases)
    per_event = ", ".join(
        f"{name} {median([r.phases.get(name, 0.0) for r in runs]) / n * 1e6:.1f}"
        for name in names
    )
    cpu = median([r.cpu / r.events * 1e6 for r in runs])
    return Result(
        f"full rebuild, bulk path (storage/rebuild.py), {n:,} events", median(rates),
        "events/s", rates, target=f">= {REBUILD_TARGET:,} events/s",
        passed=median(rates) >= REBUILD_TARGET,
        note=f"{rows:,} section_events rows; {median([r.total for r in runs]):.1f} s per "
        f"rebuild; us per event by phase (wall): {per_event}; CPU {cpu:.1f} us per event in "
        f"all; reading and parsing the rows alone: {read / n * 1e6:.1f} us per event; "
        f"load average at the end {os.getloadavg()[0]:.2f}",
    )


# ---------------------------------------------------------------------- run


def run(quick: bool) -> list[Result]:
    check_values()
    cluster = Cluster(MACHINES, GROUPS)
    reps = 3 if quick else 5
    out: list[Result] = []
    with workdir("views") as d:
        log(f"genesis: 200 machines, 20 groups, {CHAIN_DEFS} definitions per machine chain")
        conn = genesis_db(d / "genesis.db", cluster)
        check_shape(conn, cluster, CHAIN_DEFS)
        out += bench_reads(conn, cluster, 300 if quick else 3000, reps)
        out += bench_node_ingest(conn, cluster, 40 if quick else 200)
        out += bench_updates(conn, cluster, 3 if quick else 20, 2 if quick else reps,
                             "genesis only")
        conn.close()
        n_log = 10_000 if quick else LOG_EVENTS
        log(f"building a {n_log:,}-event log (real signatures, {os.cpu_count()} processes)")
        build_s = seconds(lambda: build_log(d / "log.db", cluster, n_log))
        log(f"  built in {build_s:.0f} s")
        out += bench_rebuild(d / "log.db", 1 if quick else 3, 2_000 if quick else 50_000)
        conn = open_db(d / "log.db")
        check_shape(conn, cluster, None)
        out += bench_updates(conn, cluster, 3 if quick else 10, 2 if quick else 3,
                             f"after {n_log:,}-event history")
        conn.close()
    return out
