"""``python -m bench``: run every benchmark module, print the results, optionally record them.

    python -m bench                 # everything, full sizes (several minutes)
    python -m bench --quick         # small sizes: a smoke run, figures not comparable to targets
    python -m bench --only log      # one module (bench_log.py); repeat --only for more
    python -m bench --write         # also rewrite the results in docs/benchmarks.md
    EVSTORE_BENCH_ARGS="--quick" make bench    # options through make

Modules are found, not listed: any ``bench/bench_NAME.py`` that defines ``run(quick: bool) ->
list[Result]`` is run, in name order. ``--write`` replaces, in docs/benchmarks.md, the machine
block and the block of each module that ran (between ``<!-- bench:begin NAME -->`` and
``<!-- bench:end NAME -->``); a module seen for the first time gets a new block before the
``<!-- bench:results-end -->`` marker, and the rest of the file is left as it is. Every run
also writes bench/results/last.json (git-ignored). A failing module is reported and the others
still run; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import bench
from bench.common import Result, fmt, load_average, log, machine_info, spread

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "bench" / "results"
RESULTS_END = "<!-- bench:results-end -->"


@dataclass
class Outcome:
    """What one module produced: its results, or the error that stopped it."""

    name: str
    title: str
    results: list[Result]
    seconds: float
    error: str = ""


def discover() -> list[str]:
    """The benchmark modules present, by short name (``bench_log.py`` -> ``log``)."""
    names = [m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")]
    return sorted(n.removeprefix("bench_") for n in names)


def select(available: list[str], only: list[str] | None) -> list[str]:
    if not only:
        return available
    wanted = [o.removeprefix("bench_").removesuffix(".py") for o in only]
    unknown = [w for w in wanted if w not in available]
    if unknown:
        raise SystemExit(f"no benchmark module named {', '.join(unknown)}; "
                         f"available: {', '.join(available)}")
    return [a for a in available if a in wanted]


def run_one(name: str, quick: bool) -> Outcome:
    module: ModuleType = importlib.import_module(f"bench.bench_{name}")
    title = str(getattr(module, "TITLE", name))
    runner: Callable[[bool], list[Result]] = module.run
    log(f"== {name}: {title}")
    t0 = time.perf_counter()
    try:
        results = runner(quick)
    except Exception:
        return Outcome(name, title, [], time.perf_counter() - t0, traceback.format_exc())
    return Outcome(name, title, results, time.perf_counter() - t0)


# ---------------------------------------------------------------------- rendering


def _ratio(r: Result) -> str:
    if r.ratio is None:
        return ""
    if r.ratio_unit == "of rate":
        return f"{r.ratio:.0%} of rate"
    return f"{r.ratio:.2f} {r.ratio_unit}"


def table(results: list[Result]) -> list[str]:
    """A Markdown table: it reads well in a terminal and in docs/benchmarks.md alike."""
    lines = [
        "| benchmark | median | unit | runs (min-max) | vs baseline | target | met |",
        "| --- | ---: | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        base = f"{_ratio(r)} ({r.baseline})" if r.baseline else _ratio(r)
        lines.append(f"| {r.name} | {fmt(r.value)} | {r.unit} | {spread(r.runs)} "
                     f"({len(r.runs)}) | {base} | {r.target} | {r.verdict} |")
    return lines


def notes(results: list[Result]) -> list[str]:
    return [f"- *{r.name}*: {r.note}" for r in results if r.note]


def block(o: Outcome, quick: bool, stamp: str) -> list[str]:
    kind = "QUICK smoke run (small sizes; not comparable to the targets)" if quick else "full run"
    out = [f"### {o.title}", "", f"Measured {stamp}, {kind}, in {o.seconds:.0f} s.", ""]
    if o.error:
        return out + ["This module failed:", "", "```", o.error.rstrip(), "```"]
    out += table(o.results)
    extra = notes(o.results)
    return out + ([""] + extra if extra else [])


def machine_block(info: dict[str, str], stamp: str) -> list[str]:
    out = [f"Last recorded {stamp} on:", ""]
    return out + [f"- **{k}**: {v}" for k, v in info.items()]


# ---------------------------------------------------------------------- docs/benchmarks.md


def replace_block(text: str, name: str, lines: list[str]) -> str:
    """Put ``lines`` between the begin/end markers of ``name`` (appending the block if new)."""
    begin, end = f"<!-- bench:begin {name} -->", f"<!-- bench:end {name} -->"
    body = "\n".join([begin, *lines, end])
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + body + rest.split(end, 1)[1]
    if RESULTS_END in text:
        head, tail = text.split(RESULTS_END, 1)
        return head + body + "\n\n" + RESULTS_END + tail
    return text.rstrip("\n") + "\n\n" + body + "\n\n" + RESULTS_END + "\n"


def write_doc(outcomes: list[Outcome], info: dict[str, str], quick: bool, stamp: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\n## Results\n\n"
    text = replace_block(text, "machine", machine_block(info, stamp))
    for o in outcomes:
        text = replace_block(text, o.name, block(o, quick, stamp))
    DOC.write_text(text)
    log(f"wrote {DOC.relative_to(ROOT)}")


def write_json(outcomes: list[Outcome], info: dict[str, str], quick: bool, stamp: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    doc = {
        "stamp": stamp, "quick": quick, "machine": info,
        "modules": {o.name: {"title": o.title, "seconds": o.seconds, "error": o.error,
                             "results": [r.as_dict() for r in o.results]} for o in outcomes},
    }
    (RESULTS / "last.json").write_text(json.dumps(doc, indent=2) + "\n")


# ---------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a fast smoke run")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only this module (log, views, ...); may be repeated")
    p.add_argument("--write", action="store_true",
                   help="rewrite this run's blocks of the results in docs/benchmarks.md")
    p.add_argument("--list", action="store_true", help="list the benchmark modules and exit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # `EVSTORE_BENCH_ARGS="--quick" make bench`: options through make
        argv = shlex.split(os.environ.get("EVSTORE_BENCH_ARGS", "")) + sys.argv[1:]
    args = parse_args(argv)
    available = discover()
    if args.list:
        print("\n".join(available))
        return 0
    info = machine_info()
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    outcomes = [run_one(name, args.quick) for name in select(available, args.only)]
    info["load average at end (1, 5, 15 min)"] = load_average()
    print("\n".join(machine_block(info, stamp)) + "\n")
    for o in outcomes:
        print("\n".join(block(o, args.quick, stamp)) + "\n")
    write_json(outcomes, info, args.quick, stamp)
    if args.write:
        write_doc(outcomes, info, args.quick, stamp)
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
