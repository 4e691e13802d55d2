"""Weak passphrase hashes (issue 15, item 8).

Before: a loaded configuration's user database was taken as it was, so an argon2id hash made
with 8 KiB of memory (cracked in no time) became a login. Now a loaded hash weaker than the
project's own parameters is refused, and a weak hash already stored is replaced by a fresh one
at the user's next successful web login.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import nacl.pwhash
import pytest

with warnings.catch_warnings():  # starlette suggests httpx2; httpx serves these tests alike
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from evstore.core.errors import InvalidInput
from evstore.ops import cluster, secrets, settings, xmlconfig
from evstore.ops.node import init_home, open_node
from evstore.web import create_app

PASS = "a passphrase of some length"


def _weak(passphrase: str) -> str:
    return nacl.pwhash.argon2id.str(passphrase.encode(), opslimit=1, memlimit=8192).decode()


def _file(users: list[dict[str, str]]) -> bytes:
    value = json.dumps({"users": users})
    root, fmt = xmlconfig.ROOT, xmlconfig.FORMAT
    return (f'<{root} format="{fmt}" standalone="false"><cluster name="Co">'
            f'<section name="users">{value}</section></cluster></{root}>').encode()


def test_the_project_parameters_are_strong_and_weaker_ones_are_named() -> None:
    assert secrets.hash_weakness(secrets.hash_passphrase(PASS)) is None
    assert "8 KiB" in (secrets.hash_weakness(_weak(PASS)) or "")
    argon2i = nacl.pwhash.argon2i.str(PASS.encode(), opslimit=4, memlimit=2 ** 26).decode()
    assert "argon2i," in (secrets.hash_weakness(argon2i) or "")
    assert secrets.hash_weakness("x") is not None
    assert secrets.hash_parameters("$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA") == (
        "argon2id", 65536, 2, 1)


def test_a_loaded_configuration_with_a_weak_hash_is_refused() -> None:
    strong = secrets.hash_passphrase(PASS)
    good = _file([{"name": "admin", "role": "admin", "passphrase_hash": strong}])
    bad = _file([{"name": "admin", "role": "admin", "passphrase_hash": strong},
                 {"name": "mallory", "role": "admin", "passphrase_hash": _weak("123")}])
    assert xmlconfig.parse(good).cluster_sections["users"]["users"][0]["name"] == "admin"
    with pytest.raises(InvalidInput, match="'mallory' has a passphrase hash weaker"):
        xmlconfig.parse(bad)


def test_a_weak_stored_hash_is_replaced_at_the_next_login(tmp_path: Path) -> None:
    home = tmp_path / "lab1"
    init_home(home, hostname="lab1", passphrase=PASS, serial="S1")
    with open_node(home) as node:
        cluster.create(node, "admin", "Co")
        value = node.store.section_value("cluster", "users")
        listed = [{**u, "passphrase_hash": _weak(PASS)} for u in value["users"]]
        settings.stage(node, "admin", "cluster", "users", {**value, "users": listed})
        settings.commit(node, "admin", "an old, weak hash")
        assert secrets.needs_rehash(node.users()[0]["passphrase_hash"])
    with TestClient(create_app(home), backend="trio", follow_redirects=False) as client:
        page = client.get("/login").text
        token = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        res = client.post("/login", data={"csrf": token, "username": "admin",
                                          "passphrase": PASS, "next": ""})
        assert res.status_code == 303
        assert client.get("/changes").status_code == 200  # the session survives the rehash
    with open_node(home) as node:
        stored = node.users()[0]["passphrase_hash"]
        assert secrets.hash_weakness(stored) is None
        assert secrets.check_passphrase(stored, PASS)
