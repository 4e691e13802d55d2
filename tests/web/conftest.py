"""Homes and logged-in clients for the web page tests (Starlette's TestClient under trio)."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # starlette suggests httpx2; httpx serves these tests alike
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient
from web_helpers import PASS, READER_PASS, Browser

from evstore.ops import cluster, settings, users
from evstore.ops.node import init_home, open_node
from evstore.web import create_app
from evstore.web.session import Backoff


@pytest.fixture(scope="session")
def _home_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Made once per test process (two argon2id hashes and a commit); each test gets a copy."""
    where = tmp_path_factory.mktemp("template") / "lab1"
    init_home(where, hostname="lab1", passphrase=PASS, serial="S1")
    with open_node(where) as node:
        cluster.create(node, "admin", "Co")
        cluster.addgroup(node, "admin", "Paris")
        settings.stage_set(node, "admin", "cluster", "dns", ['servers=["192.0.2.53"]'])
        users.new_user(node, "admin", "reader", "readonly", READER_PASS)
        settings.commit(node, "admin", "setup")
    return where


@pytest.fixture
def home(_home_template: Path, tmp_path: Path) -> Path:
    """lab1 (serial S1) in cluster Co, groups Main_Group and Paris, dns set at cluster, and a
    readonly user ``reader``: a copy of the closed template home, its own files."""
    return Path(shutil.copytree(_home_template, tmp_path / "lab1", symlinks=True))


@pytest.fixture
def standalone(tmp_path: Path) -> Path:
    where = tmp_path / "solo"
    init_home(where, hostname="solo", passphrase=PASS, serial="S9")
    return where


@pytest.fixture
def backoff() -> Backoff:
    return Backoff()


@pytest.fixture
def make_browser(backoff: Backoff) -> Iterator[Any]:
    clients: list[TestClient] = []

    def make(where: Path) -> Browser:
        client = TestClient(create_app(where, backoff=backoff), backend="trio",
                            follow_redirects=False)
        client.__enter__()
        clients.append(client)
        return Browser(client)

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def browser(home: Path, make_browser: Any) -> Browser:
    return make_browser(home)  # type: ignore[no-any-return]
