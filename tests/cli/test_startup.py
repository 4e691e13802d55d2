"""Start-up: each call imports only what its command needs, and the command-line parser's
errors are one line on stderr with exit code 2.

Whole-process times are measured in bench/ and docs/benchmarks.md, never asserted here; these
tests pin what makes them small (which modules a call imports).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from evstore_cli import app as app_module
from evstore_cli.app import COMMAND_MODULES, command_of

CLI = Path(app_module.__file__).parent
HEAVY = ("trio", "evstore.net", "evstore.web", "starlette", "hypercorn", "jinja2", "pydantic")


def _loaded_after(args: list[str], home: Path | None = None,
                  missing: tuple[str, ...] = ()) -> tuple[int, list[str], str, str]:
    """Run ``main(args)`` in a fresh interpreter (where the modules ``missing`` cannot be
    imported); its exit code, the modules it loaded, and what it printed."""
    probe = (
        "import json, sys\n"
        f"sys.modules.update(dict.fromkeys({list(missing)!r}))\n"
        "from evstore_cli.app import main\n"
        "code = 0\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as e:\n"
        "    code = e.code or 0\n"
        "sys.stdout.flush()\n"
        "sys.stderr.write('\\nMODULES ' + json.dumps([code, sorted(sys.modules)]) + '\\n')\n"
    )
    env = {**os.environ, "COLUMNS": "100"}
    if home is not None:
        env["EVSTORE_HOME"] = str(home)
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=env, timeout=120)
    err, _, tail = res.stderr.rpartition("\nMODULES ")
    code, modules = json.loads(tail)
    return code, modules, res.stdout, err


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY)]


def test_command_modules_lists_what_each_module_registers() -> None:
    listed = set(COMMAND_MODULES)
    modules = {p.stem for p in CLI.glob("*.py")
               if "\ndef register(" in p.read_text(encoding="utf-8")}
    assert modules == listed, "add each command module to COMMAND_MODULES in app.py"
    for name, commands in COMMAND_MODULES.items():
        probe = app_module._probe(name)
        found = {app_module._name_of(c) for c in probe.registered_commands}
        found |= {str(g.name) for g in probe.registered_groups}
        assert found == set(commands), f"{name} registers {sorted(found)}"


def test_the_whole_app_has_every_command_once() -> None:
    whole = app_module.app
    names = [app_module._name_of(c) for c in whole.registered_commands]
    names += [str(g.name) for g in whole.registered_groups]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(n for ns in COMMAND_MODULES.values() for n in ns)


@pytest.mark.parametrize("args, expected", [
    ([], None), (["--help"], None), (["status"], "status"),
    (["--home", "/x", "show", "dns"], "show"), (["--user=bob", "set", "dns"], "set"),
    (["--passphrase-file", "f", "--home", "h", "clusterconfig", "join"], "clusterconfig"),
    (["--", "status"], None),
])
def test_the_command_is_found_past_the_global_options(args: list[str],
                                                        expected: str | None) -> None:
    assert command_of(args) == expected


def test_a_command_is_built_alone() -> None:
    built = app_module.build("status")
    assert [app_module._name_of(c) for c in built.registered_commands] == ["status"]
    assert not built.registered_groups
    assert isinstance(app_module.build("clusterconfig"), typer.Typer)


def test_version_imports_neither_typer_nor_the_store() -> None:
    code, modules, out, _ = _loaded_after(["--version"])
    assert code == 0 and out.startswith("evstore ")
    assert "typer" not in modules and "evstore.ops.node" not in modules
    assert "evstore.core.catalog" not in modules


def test_help_imports_no_network_web_or_trio() -> None:
    code, modules, out, _ = _loaded_after(["--help"])
    assert code == 0 and "status" in out and "clusterconfig" in out
    assert not _heavy(modules)


def test_help_imports_no_command_module_and_no_store() -> None:
    code, modules, out, _ = _loaded_after(["--help"])
    assert code == 0 and "userconfig" in out
    assert not [m for m in modules if m.startswith(("evstore_cli.", "evstore."))
                and m.endswith("_cmds") or m.startswith(("evstore.ops", "evstore.storage",
                                                         "evstore.core.catalog", "nacl"))]


@pytest.mark.parametrize("columns", ["60", "100", "200"])
def test_the_help_index_prints_what_the_whole_app_prints(columns: str) -> None:
    """HELP_INDEX cannot drift: a command added, removed, renamed or re-described changes the
    whole app's help, and this test names the difference."""
    whole = CliRunner().invoke(app_module._whole(), ["--help"], env={"COLUMNS": columns})
    index = CliRunner().invoke(app_module._index(), ["--help"], env={"COLUMNS": columns})
    assert whole.exit_code == index.exit_code == 0
    assert index.output == whole.output, "regenerate HELP_INDEX in app.py from the whole app"


def test_only_a_call_that_names_no_command_gets_the_help_index(
        monkeypatch: pytest.MonkeyPatch) -> None:
    index_names = [app_module._name_of(c) for c in app_module.build(None, ["--help"])
                   .registered_commands]
    assert index_names == [name for name, _ in app_module.HELP_INDEX]
    assert app_module.build(None, ["--", "status"]) is app_module._whole()
    assert app_module.build("nosuchcommand", ["nosuchcommand"]) is app_module._whole()
    monkeypatch.setenv("_EVSTORE_COMPLETE", "complete_bash")  # completion reads COMP_WORDS
    assert app_module.build(None, []) is app_module._whole()


# What reading a home must not load (each was measured at import: PyNaCl's bindings ~20 ms,
# the thread pool, logging, the migration steps, the rebuild, the other command modules;
# shutil is not here: typer imports it).
def _new_home(tmp_path: Path) -> Path:
    """A standalone home ``h1`` made by ``evstore init`` in a fresh interpreter."""
    home = tmp_path / "h"
    secret = tmp_path / "pw"
    secret.write_text("pw\n")
    code, _, _, err = _loaded_after(["init", "--hostname", "h1", "--admin-passphrase-file",
                                     str(secret)], home)
    assert code == 0, err
    return home


NOT_FOR_READING = ("nacl", "concurrent.futures", "logging", "evstore_migrations.m",
                   "evstore.storage.rebuild", "evstore.ops.cluster", "evstore.ops.settings",
                   "evstore_cli.settings_cmds", "evstore_cli.cluster_cmds", "tempfile", "rich")


def test_status_imports_only_what_reading_a_home_needs(tmp_path: Path) -> None:
    home = _new_home(tmp_path)
    for args in (["status", "--json"], ["status"], ["show", "dns", "--json"], ["show", "dns"]):
        code, modules, out, err = _loaded_after(args, home)  # piped: no rich for the table
        assert code == 0, err
        unwanted = NOT_FOR_READING if args[0] == "status" else (  # show reads settings
            NOT_FOR_READING[:5] + NOT_FOR_READING[-2:])
        grown = [m for m in modules if m.startswith(unwanted)]
        assert not grown, (args, grown)


def test_the_argon2id_parameters_written_out_are_pynacls() -> None:
    import nacl.pwhash

    from evstore.ops import secrets

    assert secrets.OPSLIMIT == nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
    assert secrets.MEMLIMIT == nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE


def test_status_and_show_import_no_network_web_or_trio(tmp_path: Path) -> None:
    home = _new_home(tmp_path)
    for args in (["status", "--json"], ["show", "dns", "--json"], ["status"], ["show", "dns"],
                 ["status", "--help"]):
        code, modules, out, err = _loaded_after(args, home)
        assert code == 0, err
        assert not _heavy(modules), (args, _heavy(modules))
        if "--json" in args:
            json.loads(out)
        # plain status and show lines are parsed without typer (fast_reads); --help by typer
        assert ("typer" in modules) == ("--help" in args), args


@pytest.mark.parametrize("args, needle, command", [
    (["status", "--bogus"], "No such option: --bogus", "status"),
    (["show"], "missing argument 'section'", "show"),
    (["run", "--ping-interval", "abc"], "Invalid value for '--ping-interval'", "run"),
    (["clusterconfig", "create", "--nope", "x"], "No such option: --nope",
     "clusterconfig create"),
    (["nosuchcommand"], "No such command 'nosuchcommand'", ""),
])
def test_usage_errors_are_one_line_with_exit_2(args: list[str], needle: str,
                                               command: str) -> None:
    code, _, out, err = _loaded_after(args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle.lower() in lines[0].lower()
    assert lines[0].endswith(f"(try 'evstore {command} --help')".replace("  ", " "))
    assert not out


def test_usage_errors_are_one_line_under_the_test_runner_too() -> None:
    res = CliRunner().invoke(app_module.app, ["show", "dns", "--bogus"])
    assert res.exit_code == 2
    line = res.stderr.strip()
    assert line.startswith("error: No such option: --bogus") and "\n" not in line
    assert line.endswith("(try 'evstore show --help')")


def test_a_bare_group_still_prints_its_help() -> None:
    code, _, out, _ = _loaded_after(["userconfig"])
    assert code == 2 and "Usage:" in out + _


@pytest.mark.parametrize("args, extra", [
    (["gui", "--listen", "127.0.0.1:0"], "gui"),
    (["run", "--gui", "127.0.0.1:8080"], "gui"),
    (["run", "--metrics", "127.0.0.1:0"], "metrics"),
])
def test_a_command_needing_a_missing_extra_names_it(tmp_path: Path, args: list[str],
                                                    extra: str) -> None:
    home = _new_home(tmp_path)
    module = {"gui": "hypercorn", "metrics": "prometheus_client"}[extra]
    code, _, out, err = _loaded_after(args, home, missing=(module,))
    assert code == 1, err
    what = {"gui": "evstore gui", "--gui": "run --gui", "--metrics": "--metrics"}
    assert err.strip().splitlines() == [
        f"error: {what[args[0] if args[0] == 'gui' else args[1]]} needs the {extra} extra "
        f"({module} missing): pip install 'evstore[{extra}]'"]


def test_the_asyncio_api_without_its_extra_names_it() -> None:
    probe = ("import sys\n"
             "sys.modules['aiosqlite'] = None\n"
             "try:\n"
             "    import evstore.aio\n"
             "except ImportError as e:\n"
             "    print(e)\n")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60)
    assert "pip install 'evstore[asyncio]'" in res.stdout


def _line(args: list[str]) -> tuple[str, str | None, str, list[str], list[str]] | None:
    from evstore_cli import fast_reads

    p = fast_reads.parse(args)
    return None if p is None else (p.command, p.home, p.user, p.words, sorted(p.flags))


@pytest.mark.parametrize("args, expected", [
    (["status", "--json"], (None, "admin")),
    (["--home", "/h", "status", "--json"], ("/h", "admin")),
    (["--home=/a", "status", "--home", "/b", "--json"], ("/b", "admin")),
    (["status", "--json", "--home="], (".", "admin")),
    (["--user", "bob", "--passphrase-file", "f", "status", "--json"], (None, "bob")),
    (["--user", "bob", "status", "--user=carol", "--json", "--json"], (None, "carol")),
    (["status", "--user", "", "--json"], (None, "admin")),
    (["status"], (None, "admin")), (["status", "--json", "--help"], None), (["--help"], None),
    (["status", "--json", "--passphrase-file", "f"], None), (["status", "--json=1"], None),
    (["status", "--json", "x"], None), (["--", "status", "--json"], None),
    (["status", "--json", "--home"], None), (["status", "--home", "--json"], None),
    (["--version", "status", "--json"], None), (["show", "--json"], None),
    (["status", "--json", "--mode", "cluster"], None), (["--mode", "x", "status", "--json"], None),
])
def test_the_fast_path_takes_only_plain_status_lines(args: list[str],
                                                     expected: tuple[str | None, str] | None
                                                     ) -> None:
    line = _line(args)
    assert (line if line is None else line[1:3]) == expected
    assert line is None or line[0] == "status"


@pytest.mark.parametrize("args, expected", [
    (["show", "dns", "--json"], ("show", None, "admin", ["dns"], ["--json"])),
    (["--home", "/h", "show", "--json", "--mode", "cluster", "dns"],
     ("show", "/h", "admin", ["dns"], ["--json"])),
    (["show", "dns", "--effective", "--machine=m2", "--json", "--user", "bob"],
     ("show", None, "bob", ["dns"], ["--effective", "--json"])),
    (["show", "dns"], ("show", None, "admin", ["dns"], [])), (["show", "--json"], None),
    (["show", "dns", "ntp", "--json"], None),
    (["show", "dns", "--json", "--switch"], None), (["show", "dns", "--json", "--mode"], None),
    (["show", "dns", "--json", "--help"], None), (["show", "--", "dns", "--json"], None),
])
def test_the_fast_path_takes_only_plain_show_lines(args: list[str], expected: object) -> None:
    assert _line(args) == expected


def test_status_and_show_print_what_the_typer_commands_print(tmp_path: Path) -> None:
    """JSON and text (tables drawn without rich on a pipe, plain.py), and errors."""
    home = _new_home(tmp_path)
    nothing = str(tmp_path / "nothing")
    for args in (["status", "--json"], ["show", "dns", "--json"], ["show", "users", "--json"],
                 ["show", "dns", "--json", "--effective"], ["show", "ntp", "--json", "--mode",
                                                           "machine:h1"],
                 ["show", "dns", "--json", "--machine", "h1"], ["status"], ["show", "dns"],
                 ["show", "dns", "--effective"], ["show", "users"], ["show", "dns", "--mode",
                                                                    "machine:h1"]):
        code, modules, fast_out, err = _loaded_after(["--home", str(home), *args])
        assert code == 0 and "typer" not in modules, (args, err)
        typed = CliRunner().invoke(app_module._whole(), ["--home", str(home), *args])
        assert typed.exit_code == 0
        assert fast_out == typed.stdout, args
        assert "passphrase_hash" not in fast_out or "(hidden)" in fast_out
    # errors: the same one line and exit code as the typer path
    for args in (["--home", nothing, "status", "--json"], ["--home", nothing, "show", "dns",
                                                           "--json"],
                 ["--home", str(home), "show", "nosuch", "--json"],
                 ["--home", str(home), "show", "dns", "--json", "--mode", "group:g"],
                 ["--home", str(home), "show", "dns", "--json", "--machine", "h9"]):
        code, _, out, err = _loaded_after(args)
        typed = CliRunner().invoke(app_module._whole(), args)
        assert (code, err.strip()) == (typed.exit_code, typed.stderr.strip()), args
        assert code == 2 and err.count("\n") == 1 and not out, args
