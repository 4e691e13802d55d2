"""saveconfig and loadconfig: the whole configuration as an XML file, and back as staged changes.

The file (docs/forensics.md has an example)::

    <evstore-config format="1" standalone="false" saved="…Z" host="lab1" version="0.1.0">
      <cluster name="CompanyName">
        <section name="dns">{"servers":["10.0.0.53"]}</section>
      </cluster>
      <group name="Main_Group">
        <section name="ldap">{…}</section>
        <machine hostname="lab1" serial="S1">
          <section name="interfaces">{…}</section>
        </machine>
      </group>
    </evstore-config>

A standalone machine's file has ``standalone="true"`` and one ``<machine>`` directly under the
root, holding every section it defines. Section values are JSON (ASCII, sorted keys, no
floats) as the element's text: exact types, and any value the catalog accepts.

Loading follows the seed's "Loading a Configuration in Clustered Email Gateway": a standalone
machine's file is refused in a cluster; ``--cluster`` loads the cluster level and each group
(to the group of the same name, or as ``--group-map`` says); a machine's own settings are
copied only where ``--copy-machine FILEHOST=HOST`` says so ("Don't Copy" is the default);
``--machine H [--from-machine H2]`` loads one machine's settings onto H. Each level that is
loaded is made equal to the file: sections the file defines there are defined, others deleted
(inherit again), except ``users``, never deleted, and a machine's ``hostname``, never copied.

Safety: the file is parsed with defusedxml and no DTD at all, so entity expansion and external
entities are refused; every section is validated by the catalog before anything is staged; a
backup of the current configuration is written first (``HOME/backups/config-TIME.xml``); the
changes are staged in one transaction (all or nothing), to review with ``evstore changes`` or
``commit --dry-run`` and commit as one signed commit.
"""

from __future__ import annotations

import json
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import defusedxml
import defusedxml.ElementTree as SafeET

from evstore import __version__
from evstore.core import admit, catalog, encoding, state
from evstore.core.errors import EncodingError, InvalidInput
from evstore.core.modes import CLUSTER, group_mode, level_of, machine_mode
from evstore.core.timeparse import format_iso
from evstore.ops import secrets
from evstore.ops import settings as settings_ops
from evstore.ops.forensics import stage_targets
from evstore.ops.node import Node, now_ms

FORMAT = "1"
ROOT = "evstore-config"
MAX_BYTES = 32 * 1024 * 1024
NEVER_DELETED = frozenset({"users"})
NEVER_COPIED = frozenset({"hostname"})

Value = dict[str, Any]
Sections = dict[str, Value]


# --------------------------------------------------------------------------- saving


def _section_elements(parent: ET.Element, sections: Sections) -> None:
    for name in sorted(sections):
        el = ET.SubElement(parent, "section", {"name": name})
        el.text = json.dumps(sections[name], ensure_ascii=True, sort_keys=True,
                             separators=(",", ":"))


Skipped = list[dict[str, str]]
"""What could not be interpreted, skipped: {mode, section, reason} (admit.value_reason)."""


def _defined(node: Node, mode: str, skipped: Skipped | None = None) -> Sections:
    out: Sections = {}
    for m, section in node.store.defined_sections():
        value = node.store.section_value(m, section) if m == mode else None
        if value is not None:
            why = admit.value_reason(section, value)
            if why is not None:
                if skipped is not None:
                    skipped.append({"mode": node.to_display(mode), "section": section,
                                    "reason": why})
                continue
            out[section] = value
    return out


def _machine_element(parent: ET.Element, node: Node, m: state.Machine,
                     skipped: Skipped | None = None) -> None:
    el = ET.SubElement(parent, "machine", {"hostname": m.hostname, "serial": m.serial})
    _section_elements(el, _defined(node, machine_mode(m.mid), skipped))


def _cluster_tree(node: Node, root: ET.Element, only: str | None,
                  skipped: Skipped | None = None) -> None:
    st = node.structure()
    _section_elements(ET.SubElement(root, "cluster", {"name": st.name or ""}),
                      _defined(node, CLUSTER, skipped))
    for gid, gname in sorted(st.groups.items(), key=lambda kv: kv[1]):
        members = [m for m in st.members() if st.group_of(m.mid) == gid]
        if gid in st.deleted or (only and only not in {m.mid for m in members}):
            continue
        group = ET.SubElement(root, "group", {"name": gname})
        _section_elements(group, _defined(node, group_mode(gid), skipped))
        for m in members:
            if only is None or m.mid == only:
                _machine_element(group, node, m, skipped)


def render(node: Node, machine: str | None = None, skipped: Skipped | None = None) -> bytes:
    """The configuration as XML bytes (one machine's levels only, with ``machine``). What
    the catalog cannot interpret is left out, and added to ``skipped`` when given."""
    st = node.structure()
    standalone = st.name is None
    only = _member(node, machine) if machine else None
    root = ET.Element(ROOT, {
        "format": FORMAT, "standalone": "true" if standalone else "false",
        "saved": format_iso(now_ms()), "host": node.identity().hostname, "version": __version__,
    })
    if standalone:
        _machine_element(root, node, st.machines[node.mid], skipped)
    else:
        _cluster_tree(node, root, only, skipped)
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def _member(node: Node, name: str) -> str:
    st = node.structure()
    mid = st.find_machine(name)
    if mid is None or mid not in {m.mid for m in st.members()}:
        known = ", ".join(m.hostname for m in st.members())
        raise InvalidInput(f"no machine named {name!r} (machines: {known or 'none'})")
    return mid


def write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only (it holds passphrase hashes), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def saveconfig(node: Node, file: str | Path, machine: str | None = None) -> dict[str, Any]:
    """Export the whole configuration (all levels) as XML into ``file``; ``skipped`` lists
    what the catalog cannot interpret, left out of the file."""
    skipped: Skipped = []
    data = render(node, machine, skipped)
    try:
        write_private(Path(file), data)
    except OSError as e:
        raise InvalidInput(f"cannot write {file}: {e.strerror}; choose a writable path") from None
    parsed = parse(data, str(file))
    return {"file": str(file), "standalone": parsed.standalone, "cluster": parsed.cluster,
            "groups": sorted(parsed.groups), "machines": sorted(parsed.machines),
            "bytes": len(data), "skipped": skipped}


def backup(node: Node) -> Path:
    """Save the current configuration under HOME/backups before it is replaced."""
    stamp = format_iso(now_ms()).replace(":", "").replace("-", "").replace(".", "-")
    path = node.home / "backups" / f"config-{stamp}.xml"
    write_private(path, render(node))
    return path


# --------------------------------------------------------------------------- parsing


@dataclass
class FileMachine:
    hostname: str
    serial: str
    group: str | None
    sections: Sections = field(default_factory=dict)


@dataclass
class ConfigFile:
    """A parsed, validated configuration file."""

    standalone: bool
    cluster: str | None = None
    cluster_sections: Sections = field(default_factory=dict)
    groups: dict[str, Sections] = field(default_factory=dict)
    machines: dict[str, FileMachine] = field(default_factory=dict)


def _bad(where: str, why: str) -> InvalidInput:
    return InvalidInput(f"{where}: {why}; nothing was loaded (fix the file or load another)")


def _sections(el: ET.Element, level: str, where: str) -> Sections:
    out: Sections = {}
    for child in el:
        if child.tag in ("group", "machine"):
            continue
        name = child.get("name", "")
        here = f"{where}, section {name or '?'}"
        if child.tag != "section" or not name:
            raise _bad(where, f"unexpected <{child.tag}>: expected <section name=\"…\">")
        if name in out:
            raise _bad(here, "appears twice")
        out[name] = _section_value(child.text or "", name, level, here)
    return out


def _section_value(text: str, name: str, level: str, where: str) -> Value:
    if name not in catalog.SECTIONS:
        raise _bad(where, "no such section in the catalog (see `evstore sections`)")
    if level and level not in catalog.get(name).levels:
        raise _bad(where, f"{name} cannot be set at {level} level")
    try:
        value = encoding.loads_json(text.strip())
    except EncodingError as e:
        raise _bad(where, f"not a JSON value ({e})") from None
    if not isinstance(value, dict):
        raise _bad(where, "expected a JSON object")
    try:
        accepted = settings_ops.accept(name, value)
    except InvalidInput as e:
        raise _bad(where, str(e)) from None
    if name == "users":
        _strong_hashes(accepted, where)
    return accepted


def _strong_hashes(value: Value, where: str) -> None:
    """A loaded user database may not bring passphrase hashes weaker than the ones this
    project makes (an argon2id hash with 8 KiB of memory is cracked fast)."""
    for u in value.get("users", []) if isinstance(value, dict) else []:
        why = secrets.hash_weakness(str(u.get("passphrase_hash", "")))
        if why is not None:
            raise _bad(where, f"user {u.get('name')!r} has a passphrase hash weaker than "
                       f"evstore's own ({why}); set its passphrase with `evstore passwd` "
                       "instead of loading the hash")


def _machine(el: ET.Element, group: str | None, level: str, where: str) -> FileMachine:
    host = el.get("hostname", "")
    if not host:
        raise _bad(where, "a <machine> without a hostname")
    here = f"{where}, machine {host}"
    return FileMachine(host, el.get("serial", ""), group, _sections(el, level, here))


def _add_machine(cfg: ConfigFile, m: FileMachine, where: str) -> None:
    if m.hostname in cfg.machines:
        raise _bad(where, f"machine {m.hostname} appears twice")
    cfg.machines[m.hostname] = m


def _cluster_file(root: ET.Element, where: str) -> ConfigFile:
    cfg = ConfigFile(standalone=False)
    for child in root:
        if child.tag == "cluster":
            cfg.cluster = child.get("name") or None
            cfg.cluster_sections = _sections(child, "cluster", f"{where}, <cluster>")
        elif child.tag == "group":
            name = child.get("name", "")
            here = f"{where}, group {name}"
            if not name or name in cfg.groups:
                raise _bad(here, "a group without a name, or one that appears twice")
            cfg.groups[name] = _sections(child, "group", here)
            for m in child.iter("machine"):
                _add_machine(cfg, _machine(m, name, "machine", here), where)
        else:
            raise _bad(where, f"unexpected <{child.tag}> in a cluster's file")
    return cfg


def _standalone_file(root: ET.Element, where: str) -> ConfigFile:
    machines = list(root)
    if len(machines) != 1 or machines[0].tag != "machine":
        raise _bad(where, "a standalone machine's file holds exactly one <machine>")
    cfg = ConfigFile(standalone=True)
    _add_machine(cfg, _machine(machines[0], None, "", where), where)
    return cfg


def parse(data: bytes, where: str = "configuration file") -> ConfigFile:
    """Parse and validate a configuration file; refuses DTDs, entities and external refs."""
    if len(data) > MAX_BYTES:
        raise _bad(where, f"over {MAX_BYTES // (1024 * 1024)} MiB")
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except defusedxml.DefusedXmlException as e:
        raise _bad(where, f"refused unsafe XML ({type(e).__name__}: DTDs and entities are "
                   "not allowed)") from None
    except SafeET.ParseError as e:
        raise _bad(where, f"not well-formed XML ({e})") from None
    if root.tag != ROOT or root.get("format") != FORMAT:
        raise _bad(where, f"not an evstore configuration (expected <{ROOT} format=\"{FORMAT}\">)")
    standalone = root.get("standalone")
    if standalone not in ("true", "false"):
        raise _bad(where, "the root needs standalone=\"true\" or \"false\"")
    return _standalone_file(root, where) if standalone == "true" else _cluster_file(root, where)


def read(file: str | Path) -> ConfigFile:
    path = Path(file)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"cannot read {file}: {e.strerror}") from None
    return parse(data, str(file))


# --------------------------------------------------------------------------- planning a load


Target = tuple[str, str, Value | None]


def _converge(node: Node, mode: str, wanted: Sections, *, keep: Iterable[str] = ()) -> list[Target]:
    """Make ``mode`` define exactly ``wanted`` (sections in ``keep`` are never deleted)."""
    kept = set(keep) | NEVER_DELETED
    out: list[Target] = [(mode, s, v) for s, v in sorted(wanted.items())]
    for m, section in node.store.defined_sections():
        if m == mode and section not in wanted and section not in kept \
                and section in catalog.SECTIONS:  # an unknown one is skipped (reported)
            out.append((mode, section, None))
    return out


def _pairs(items: Iterable[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        left, sep, right = item.partition("=")
        if not sep or not left or not right:
            raise InvalidInput(f"{flag} {item!r}: write {flag} FILENAME=NAME")
        out[left] = right
    return out


def _group_targets(node: Node, cfg: ConfigFile, group_map: dict[str, str]) -> list[Target]:
    st = node.structure()
    unknown = sorted(set(group_map) - set(cfg.groups))
    if unknown:
        raise InvalidInput(f"--group-map names group(s) the file lacks: {', '.join(unknown)} "
                           f"(the file has: {', '.join(sorted(cfg.groups)) or 'none'})")
    out: list[Target] = []
    missing = []
    for fgroup, sections in sorted(cfg.groups.items()):
        gid = st.find_group(group_map.get(fgroup, fgroup))
        if gid is None:
            missing.append(group_map.get(fgroup, fgroup))
            continue
        out += _converge(node, group_mode(gid), sections)
    if missing:
        raise InvalidInput(f"no group named {', '.join(missing)} in this cluster: add it with "
                           "`evstore clusterconfig addgroup`, or map it with --group-map FILEGROUP=GROUP")
    return out


def _machine_sections(m: FileMachine) -> Sections:
    return {s: v for s, v in m.sections.items() if s not in NEVER_COPIED}


def _file_machine(cfg: ConfigFile, host: str, flag: str) -> FileMachine:
    if host in cfg.machines:
        return cfg.machines[host]
    raise InvalidInput(f"{flag}: the file has no machine {host!r} (it has: "
                       f"{', '.join(sorted(cfg.machines)) or 'none'})")


def _copy_targets(node: Node, cfg: ConfigFile, copies: dict[str, str]) -> list[Target]:
    out: list[Target] = []
    for fhost, host in sorted(copies.items()):
        source = _file_machine(cfg, fhost, "--copy-machine")
        out += _converge(node, machine_mode(_member(node, host)), _machine_sections(source),
                         keep=NEVER_COPIED)
    return out


def _flattened(cfg: ConfigFile, m: FileMachine) -> Sections:
    """A machine's settings from a cluster file, every level merged, most specific winning."""
    out = dict(cfg.cluster_sections)
    out.update(cfg.groups.get(m.group or "", {}))
    out.update(m.sections)
    return out


def _pick_source(cfg: ConfigFile, machine: str, from_machine: str | None) -> FileMachine:
    if from_machine is not None:
        return _file_machine(cfg, from_machine, "--from-machine")
    if machine in cfg.machines:
        return cfg.machines[machine]
    if len(cfg.machines) == 1:
        return next(iter(cfg.machines.values()))
    return _file_machine(cfg, machine, "--from-machine (not given, so the same hostname)")


def _machine_targets(node: Node, cfg: ConfigFile, machine: str,
                     from_machine: str | None) -> list[Target]:
    source = _pick_source(cfg, machine, from_machine)
    if node.in_cluster():
        return _converge(node, machine_mode(_member(node, machine)), _machine_sections(source),
                         keep=NEVER_COPIED)
    me = node.identity().hostname
    if machine not in (me, node.mid):
        raise InvalidInput(f"this standalone machine is {me}: load with --machine {me}")
    wanted = source.sections if cfg.standalone else _flattened(cfg, source)
    wanted = {s: v for s, v in wanted.items() if s not in NEVER_COPIED}
    return _converge(node, machine_mode(node.mid), wanted, keep=NEVER_COPIED)


def _check_target(node: Node, cfg: ConfigFile, cluster: bool, machine: str | None) -> None:
    if cluster == (machine is not None):
        raise InvalidInput("give --cluster or --machine HOST (one of them)")
    if node.in_cluster() and cfg.standalone:
        raise InvalidInput("this file holds a standalone machine's configuration, which cannot "
                           "be loaded into a cluster; load it on a standalone machine")
    if cluster and not node.in_cluster():
        raise InvalidInput("this machine is standalone: --cluster loads into a cluster; create "
                           "or join one first, or load one machine's settings with --machine")


def plan(node: Node, cfg: ConfigFile, *, cluster: bool, group_map: Iterable[str] = (),
         copy_machine: Iterable[str] = (), machine: str | None = None,
         from_machine: str | None = None) -> list[Target]:
    """What a load would stage: (mode, section, value or None to delete)."""
    _check_target(node, cfg, cluster, machine)
    if machine is not None:
        return _machine_targets(node, cfg, machine, from_machine)
    out = _converge(node, CLUSTER, cfg.cluster_sections)
    out += _group_targets(node, cfg, _pairs(group_map, "--group-map"))
    return out + _copy_targets(node, cfg, _pairs(copy_machine, "--copy-machine"))


# --------------------------------------------------------------------------- loading


def _seen(node: Node, user: str, mid: str, section: str) -> Value:
    """A machine's effective section as this user sees it, staged changes included."""
    st = node.structure()
    levels = catalog.get(section).levels
    for mode in st.chain(mid):
        if st.name is not None and level_of(mode) not in levels:
            continue
        value, defined = settings_ops.view(node, user, mode, section)
        if defined and value is not None:
            return value
    return state.default_of(section)


def missing_interfaces(node: Node, user: str, mids: Iterable[str]) -> list[dict[str, Any]]:
    """Per machine, the interface names its listeners use that it does not have."""
    out = []
    st = node.structure()
    for mid in mids:
        have = {i.get("name") for i in _seen(node, user, mid, "interfaces").get("interfaces", [])}
        used = {x.get("interface") for x in _seen(node, user, mid, "listeners").get("listeners", [])}
        lacking = sorted(str(n) for n in used - have if n)
        if lacking:
            out.append({"hostname": st.machines[mid].hostname, "interfaces": lacking})
    return out


def loadconfig(node: Node, user: str, file: str | Path, *, cluster: bool = False,
               group_map: Iterable[str] = (), copy_machine: Iterable[str] = (),
               machine: str | None = None, from_machine: str | None = None) -> dict[str, Any]:
    """Load a saved configuration as staged changes, after a backup of the current one."""
    return load(node, user, read(file), str(file), cluster=cluster, group_map=group_map,
                copy_machine=copy_machine, machine=machine, from_machine=from_machine)


def load(node: Node, user: str, cfg: ConfigFile, source: str, *, cluster: bool = False,
         group_map: Iterable[str] = (), copy_machine: Iterable[str] = (),
         machine: str | None = None, from_machine: str | None = None) -> dict[str, Any]:
    """``loadconfig`` of a file already parsed (the web pages' upload): the one way to load."""
    targets = plan(node, cfg, cluster=cluster, group_map=group_map, copy_machine=copy_machine,
                   machine=machine, from_machine=from_machine)
    saved = backup(node)
    staged = stage_targets(node, user, targets)
    st = node.structure()
    mids = [m.mid for m in st.members()] if machine is None else [
        _member(node, machine) if st.name is not None else node.mid]
    return {"file": source, "backup": str(saved), "staged": staged,
            "file_cluster": cfg.cluster, "cluster": st.name,
            "missing_interfaces": missing_interfaces(node, user, mids),
            "skipped": [{**s, "reason": f"{s['reason']}; left as it is (`evstore delete "
                                       f"{s['section']}` removes it)"}
                        for s in settings_ops.uninterpretable(node)
                        if s["section"] not in catalog.SECTIONS]}
