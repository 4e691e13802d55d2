"""The views benchmark's workload has a valid value for every section of the catalog (a
machine-only section added to the catalog, ``access``, once stopped it with a KeyError)."""

from __future__ import annotations

import sys
from pathlib import Path

from evstore.core import catalog

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_every_catalog_section_has_a_valid_workload_value() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import bench_views
    finally:
        sys.path.remove(str(BENCH))
    bench_views.check_values()  # raises for a section without a value, or an invalid one
    for section in catalog.SECTIONS:
        for v in (0, 7, 4321):
            catalog.validate(section, bench_views.define_value(section, v))
            fields = bench_views.patch_fields(section, v, 1)
            assert fields
