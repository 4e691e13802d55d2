"""Issue 5: clustercheck time on real clusters of 20 and 50 nodes (loopback).

``evstore clustercheck --json`` run on the first node of a real cluster (each node its own
``evstore run`` process, full mesh), as an operator runs it: its own process, from start to
exit. Every reachable machine reports its version vector, then per-section digests at the
common point, so the figure is one round of rpc sessions with every other node plus the
digest work on each. A command that opens the same home without reaching anyone
(``clusterconfig fingerprint --json``) is timed before each run, back to back, as the
baseline: the part of the figure that is process start-up, imports and the passphrase check.

The clusters are the ones bench_net measures commit latency on (built once per ``python -m
bench`` run, whichever module asks first; see netbench_support). No target is set (report).
"""

from __future__ import annotations

from bench import netbench_support as nb
from bench.common import Result, median

TITLE = "clustercheck on real clusters (issue 5)"


def run(quick: bool) -> list[Result]:
    out: list[Result] = []
    for size in nb.check_sizes(quick):
        out += check_results(nb.cluster_run(size, quick, nb.plan_for(size, quick)))
    return out


def check_results(f: nb.ClusterFigures) -> list[Result]:
    n = f.size
    if f.error or not f.check_s:
        return [Result(f"clustercheck --json, {n} nodes", float("nan"), "s",
                       note=f"FAILED: {f.error or 'not measured'}")]
    base = median(f.check_baseline_s)
    ratios = [c / b for c, b in zip(f.check_s, f.check_baseline_s, strict=True)]
    return [
        Result(f"clustercheck --json, {n} nodes", median(f.check_s), "s", f.check_s,
               target="report", baseline=f"same CLI without the network {base:.2f} s",
               ratio=median(ratios), ratio_unit="x time",
               note=f"{f.check_note}; {len(f.check_s)} runs on an idle full mesh of {n} "
               f"`evstore run` processes; the check itself (minus the baseline) "
               f"{median(f.check_s) - base:.2f} s"),
    ]
