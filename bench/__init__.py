"""evstore's benchmarks: ``python -m bench`` (or ``make bench``) runs them all.

Each ``bench/bench_*.py`` module exposes ``run(quick: bool) -> list[Result]`` (see
bench/common.py) and an optional ``TITLE``; ``bench/__main__.py`` finds and runs them, prints a
table and, with ``--write``, records the results in docs/benchmarks.md. No test asserts
wall-clock speed: the figures are reported, with their targets, never enforced.
"""
