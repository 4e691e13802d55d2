"""Commands shown in the README and the docs work when pasted into bash (issue 17, item 19).

The shell blocks preceded by the line ``<!-- runnable -->`` are extracted, those of one file
joined in order (a walk-through is one session), and run by bash from the repository's root (where ``make venv`` put ``.venv``), with HOME a fresh temporary folder and
no evstore variables inherited: as a newcomer would paste it into a new terminal. The default
admin port 127.0.0.1:2200 is swapped for a free one, so the test never meets another node.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARK = "<!-- runnable -->"
_BLOCK = re.compile(re.escape(MARK) + r"\n```(?:sh|bash|console)\n(.*?)\n```", re.S)


def runnable_blocks() -> list[tuple[str, int, str]]:
    """(file, how many blocks, their script) for each of README.md and docs/*.md with some."""
    out = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        blocks = [m.group(1) for m in _BLOCK.finditer(path.read_text(encoding="utf-8"))]
        if blocks:
            out.append((str(path.relative_to(ROOT)), len(blocks), "\n".join(blocks)))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_readme_quick_start_is_marked_runnable() -> None:
    files = {f for f, _, _ in runnable_blocks()}
    assert {"README.md", "docs/index.md"} <= files
    quick = next(s for f, _, s in runnable_blocks() if f == "README.md")
    assert ". .venv/bin/activate" in quick and "evstore run" in quick


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "evstore").exists(), reason="no .venv")
@pytest.mark.parametrize(("file", "number", "script"), runnable_blocks(),
                         ids=[f for f, _, _ in runnable_blocks()])
def test_runnable_block_works_when_pasted(file: str, number: int, script: str,
                                          tmp_path: Path) -> None:
    script = script.replace("127.0.0.1:2200", f"127.0.0.1:{_free_port()}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVSTORE_")
           and k not in ("VIRTUAL_ENV",)}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    env["HOME"] = str(tmp_path)
    done = subprocess.run(["bash", "-e", "-c", script + "\nwait\n"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{file} ({number} blocks) failed:\n{done.stdout}\n{done.stderr}"
