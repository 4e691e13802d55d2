"""docs/api.md's Python examples run, in order and in one namespace, on a fresh home."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from tests.consume.consume_helpers import commit, make_home

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
_BLOCK = re.compile(r"```python\n(.*?)\n```", re.S)


def test_the_doc_has_examples() -> None:
    assert len(_BLOCK.findall(DOC.read_text(encoding="utf-8"))) >= 5


def test_the_examples_of_docs_api_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = make_home(tmp_path, "alpha")
    monkeypatch.setenv("EVSTORE_HOME", str(home))
    stop = threading.Event()

    def keep_changing() -> None:  # what the examples wait for
        n = 0
        while not stop.wait(0.2):
            n += 1
            commit(home, "dns", f'servers=["10.0.0.{n % 250}"]')

    changer = threading.Thread(target=keep_changing, daemon=True)
    changer.start()
    namespace: dict[str, object] = {"__name__": "docs_api"}
    try:
        for i, block in enumerate(_BLOCK.findall(DOC.read_text(encoding="utf-8"))):
            code = compile(block, f"docs/api.md example {i + 1}", "exec")
            exec(code, namespace)  # noqa: S102 (the point of the test)
    finally:
        stop.set()
        changer.join(30)
