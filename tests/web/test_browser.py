"""The pages in a real browser: headless Chromium (Selenium + Debian's chromedriver) against a
real ``evstore gui`` process serving a real home made with the CLI.

The test starts the server on 127.0.0.1 with a free port (``--listen 127.0.0.1:0``; the
command prints where it listens), drives the pages as an operator would, saves screenshots of
the main pages to docs/screenshots/ (so the guide's pictures stay true), and stops the server
by its PID.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
# Screenshots for docs/gui.md are refreshed only on request (`make screenshots`),
# so an ordinary test run leaves the working tree clean.
SHOTS = ROOT / "docs" / "screenshots" if os.environ.get("EVSTORE_SCREENSHOTS") else None
PASS = "correct horse battery"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,800", "--disable-dev-shm-usage", "--lang=en-US"]


def evstore(home: Path, *args: str) -> str:
    env = {**os.environ, "EVSTORE_PASSPHRASE": PASS}
    done = subprocess.run([sys.executable, "-m", "evstore_cli.app", "--home", str(home), *args],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """lab1 in cluster CompanyName, in group Paris, with DNS servers set at cluster level."""
    where = tmp_path / "lab1"
    passfile = tmp_path / "pass.txt"
    passfile.write_text(PASS + "\n")
    evstore(where, "init", "--hostname", "lab1", "--serial", "0F1FF7B3F0-CF2SX51",
            "--admin-passphrase-file", str(passfile))
    evstore(where, "clusterconfig", "create", "CompanyName")
    evstore(where, "clusterconfig", "addgroup", "Paris")
    evstore(where, "clusterconfig", "addgroup", "Rome")
    evstore(where, "clusterconfig", "setgroup", "lab1", "Paris")
    evstore(where, "set", "dns", 'servers=["192.0.2.53"]', "--mode", "cluster")
    evstore(where, "commit", "-m", "cluster DNS")
    return where


def _read_line(proc: subprocess.Popen[str], pattern: str, deadline_s: float) -> str:
    """Wait (without sleeping blind) for a line of the server's stdout matching ``pattern``."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + deadline_s
    while (left := deadline - time.monotonic()) > 0:
        if sel.select(timeout=left):
            line = proc.stdout.readline()
            if not line:
                break
            if found := re.search(pattern, line):
                return found.group(1)
    raise AssertionError(f"evstore gui did not start within {deadline_s} s")


@pytest.fixture
def server(home: Path) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "evstore_cli.app", "--home", str(home), "gui",
         "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={k: v for k, v in os.environ.items() if k != "EVSTORE_PASSPHRASE"},
    )
    try:
        url = _read_line(proc, r"(http://127\.0\.0\.1:\d+)", 30)
        yield url
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=15)
    assert code == 0, "evstore gui did not stop cleanly on SIGTERM"


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    if not CHROMIUM or not DRIVER:
        pytest.skip("chromium not installed: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                        {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    try:
        yield drv
    finally:
        drv.quit()


class Pages:
    """Drives the pages the way a keyboard-and-mouse operator does."""

    def __init__(self, drv: Any, base: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select, WebDriverWait

        self.drv, self.base, self.by, self.select_cls = drv, base, By, Select
        self.wait = WebDriverWait(drv, 15)

    def open(self, path: str) -> None:
        self.drv.get(self.base + path)

    def find(self, css: str) -> Any:
        return self.drv.find_element(self.by.CSS_SELECTOR, css)

    def text(self) -> str:
        return str(self.find("body").text)

    def path(self) -> str:
        return str(self.drv.current_url.removeprefix(self.base))

    def submit(self, button_css: str) -> None:
        old = self.find("body")
        self.find(button_css).click()
        self._arrived(old)

    def _arrived(self, old: Any) -> None:
        """Wait until the page holding ``old`` is replaced and the new one has loaded."""
        self.wait.until(lambda d: _stale(old))
        self.wait.until(lambda d: d.execute_script("return document.readyState") == "complete")

    def type_into(self, css: str, text: str) -> None:
        field = self.find(css)
        field.clear()
        field.send_keys(text)

    def choose(self, css: str, value: str) -> None:
        self.select_cls(self.find(css)).select_by_value(value)

    def shot(self, name: str) -> None:
        if SHOTS is None:
            return
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.drv.save_screenshot(str(SHOTS / f"{name}.png"))

    def login(self, user: str, passphrase: str) -> None:
        """By keyboard alone: type the name, Tab to the passphrase, Enter to submit."""
        from selenium.webdriver.common.keys import Keys

        old = self.find("body")
        self.find("#username").clear()
        self.find("#username").send_keys(user, Keys.TAB, passphrase, Keys.ENTER)
        self._arrived(old)


def _stale(element: Any) -> bool:
    """True once the page that held ``element`` has been replaced.

    While a navigation is under way Chromium may answer about the old node
    with a stale-element error or with a generic inspector error ("Node with
    given id does not belong to the document"); both mean the old page is gone.
    """
    from selenium.common.exceptions import WebDriverException

    try:
        element.is_enabled()
    except WebDriverException:
        return True
    return False


def _forensics_available() -> bool:
    try:
        import evstore.ops.forensics  # noqa: F401
    except ImportError:
        return False
    return True


def test_an_operator_overrides_edits_commits_moves_and_deletes(server: str, driver: Any) -> None:
    p = Pages(driver, server)

    # no login: any page leads to the login page
    p.open("/group/Paris/dns")
    assert p.path().startswith("/login?next=")
    p.shot("login")

    # a wrong passphrase is refused
    p.login("admin", "not the passphrase")
    assert "wrong user or passphrase" in p.text() and p.path().startswith("/login")

    # log in: back to the page asked for; the login host's machine mode is the start
    p.login("admin", PASS)
    assert p.path() == "/group/Paris/dns"
    p.open("/")
    assert p.path() == "/machine/lab1/"
    assert "Mode — Machine: lab1" in p.text()
    p.shot("machine-mode")

    # switch mode with the Change Mode menu, staying on the DNS page
    p.open("/machine/lab1/dns")
    p.choose("#mode-select", "group:Paris")
    p.submit(".change-mode button")
    assert p.path() == "/group/Paris/dns"
    assert "Inheriting settings from Cluster: CompanyName" in p.text()
    p.shot("inheriting")

    # override from a copy of the cluster's settings, then edit one key
    p.find("input[name=start][value=cluster]").click()
    p.submit("#override-submit")
    assert "Settings are defined at Group: Paris" in p.text()
    assert "192.0.2.53" in p.find("#value").get_attribute("value")
    assert p.find("#v\\.servers").get_attribute("value") == "192.0.2.53"  # the form
    p.find("#json-view summary").click()  # the JSON view is the advanced toggle
    p.type_into("#assignments", 'servers=["198.51.100.53","198.51.100.54"]')
    p.submit("#set-submit")
    assert "staged 1 change(s) to dns at group:Paris" in p.text()
    p.shot("defined")

    # review, preview (lab1 is in Paris, so its effective DNS changes), commit
    p.open("/changes")
    assert "dns" in p.text() and "Group: Paris" in p.text()
    p.shot("changes")
    p.open("/changes/preview")
    assert "lab1" in p.find("#preview-table").text and "198.51.100.54" in p.text()
    p.shot("preview")
    p.open("/changes")
    p.type_into("#comment", "Paris gets its own resolvers")
    p.submit("#commit-submit")
    assert "committed" in p.text()

    if _forensics_available():
        p.open("/audit?section=dns")
        assert "Paris gets its own resolvers" in p.find("#audit-table").text
        p.shot("audit")
        p.open("/blame?section=dns&machine=lab1")
        assert "group:Paris" in p.find("#blame-table").text
        p.shot("blame")

        # the newest commit's detail: what it changed, and when it arrived on each machine
        p.open("/commits")
        p.submit("#commits-table tbody tr:first-child a")
        assert "Paris gets its own resolvers" in p.text()
        assert "lab1" in p.find("#arrival-table").text and "yes" in p.find("#arrival-table").text
        p.shot("commitdetail")

    # move the group's settings up to the cluster, commit, then delete them there
    p.open("/group/Paris/dns")
    p.find("#op-move").click()
    p.choose("#to", "cluster")
    p.submit("#manage-submit")
    assert "staged the move of dns from group:Paris to cluster" in p.text()
    p.open("/changes")
    p.submit("#commit-submit")
    p.open("/group/Paris/dns")
    assert "Inheriting settings from Cluster: CompanyName" in p.text()
    p.open("/cluster/dns")
    assert "198.51.100.54" in p.find("#value").get_attribute("value")
    p.find("#op-delete").click()
    p.submit("#manage-submit")
    p.open("/changes")
    p.submit("#commit-submit")
    p.open("/cluster/dns")
    assert "Inheriting settings from Factory defaults" in p.text()

    p.open("/members")
    assert "0F1FF7B3F0-CF2SX51" in p.text() and "Group Paris" in p.text()
    p.shot("members")


def test_an_operator_edits_a_table_of_entries_through_the_form(server: str, driver: Any,
                                                               home: Path) -> None:
    """Listeners as a table: add one on an interface chosen from those the machines have, see
    a refused port beside its field, fix it, stage, commit."""
    evstore(home, "set", "interfaces", 'interfaces=[{"name":"eth0","address":"192.0.2.10",'
            '"netmask":"255.255.255.0"},{"name":"eth1","address":"198.51.100.10",'
            '"netmask":"255.255.255.0"}]', "--mode", "machine:lab1")
    evstore(home, "override", "listeners", "--defaults", "--mode", "cluster")
    evstore(home, "commit", "-m", "interfaces")
    p = Pages(driver, server)
    p.open("/cluster/listeners")
    p.login("admin", PASS)
    assert p.path() == "/cluster/listeners"
    p.type_into("#v\\.listeners\\.new\\.name", "IncomingMail")
    p.choose("#v\\.listeners\\.new\\.interface", "eth1")
    p.type_into("#v\\.listeners\\.new\\.port", "70000")
    p.submit("#form-submit")
    assert "1..65535" in p.find(".field-error").text  # beside the port, in the table
    assert p.find("#v\\.listeners\\.new\\.port").get_attribute("aria-invalid") == "true"
    p.shot("form-error")
    p.type_into("#v\\.listeners\\.new\\.port", "25")
    p.submit("#form-submit")
    assert "staged listeners at cluster" in p.text()
    assert p.find("#v\\.listeners\\.0\\.name").get_attribute("value") == "IncomingMail"
    p.shot("form")
    p.open("/changes")
    p.submit("#commit-submit")
    assert "committed" in p.text()
    listeners = evstore(home, "show", "listeners", "--effective", "--machine", "lab1", "--json")
    assert '"interface": "eth1"' in listeners or '"interface":"eth1"' in listeners


def _superseded_change(home: Path, tmp_path: Path) -> None:
    """lab2 joins lab1's cluster by hand and, cut off, changes the time zone at the same time as
    lab1; the two logs are then exchanged (lab2 itself is never served: it stays unreachable)."""
    from tests.scenarios import superseded_time_zone

    superseded_time_zone(home, tmp_path / "lab2", PASS, serial="0F1FF7B3F0-CF2SX52")


def test_the_cluster_check_shows_a_superseded_change_and_resolves_it(
    server: str, driver: Any, home: Path, tmp_path: Path
) -> None:
    p = Pages(driver, server)
    p.open("/clustercheck")
    p.login("admin", PASS)
    assert "No inconsistencies found" in p.text() and "No concurrent change" in p.text()
    _superseded_change(home, tmp_path)
    p.open("/clustercheck")
    assert "Europe/Paris" in p.text() and "Asia/Tokyo" in p.text()
    assert "lab2" in p.find("#inconsistencies").text  # nothing serves lab2: unreachable
    p.shot("clustercheck")
    button = p.find(".resolve-form button")
    chosen = button.text.removeprefix("Resolve: use ").removesuffix("'s version")
    p.submit(".resolve-form button")
    assert f"resolved timezone@cluster: {chosen}'s version" in p.text()
    assert "No concurrent change" in p.text()


def test_a_forged_form_without_the_csrf_token_is_refused(server: str, driver: Any) -> None:
    p = Pages(driver, server)
    p.open("/login")
    p.login("admin", PASS)
    old = p.find("body")
    driver.execute_script(
        "const f = document.createElement('form'); f.method = 'post';"
        "f.action = '/cluster/dns/set'; const i = document.createElement('input');"
        "i.name = 'assignments'; i.value = 'servers=[\"203.0.113.66\"]'; f.appendChild(i);"
        "document.body.appendChild(f); f.submit();"
    )
    p._arrived(old)
    assert "missing its security token" in p.text()
    p.open("/changes")
    assert "You have no staged changes" in p.text()


def test_a_page_fetched_without_a_login_redirects(server: str) -> None:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(server + "/cluster/dns", timeout=10)
    assert caught.value.code == 303
    assert caught.value.headers["Location"].startswith("/login")
    with urllib.request.urlopen(server + "/login", timeout=10) as res:
        assert res.status == 200 and b'name="csrf"' in res.read()
