"""A real, typed BenchResult to build test results from (dataclasses.replace its fields)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edgekit.bench.result import BenchResult
from edgekit.bench.run_folder import RunMeta

SCHEMA1 = Path(__file__).parent / "fixtures" / "schema1"


def schema1_result(name: str = "result-local") -> BenchResult:
    """A result file as edgekit wrote it before typing (tests/fixtures/schema1), loaded."""
    return BenchResult.load(SCHEMA1 / f"{name}.json")


def run_meta(**changes: Any) -> RunMeta:
    """A phone run's meta (RunMeta) with the schema-1 emulated result's records; `changes` replace fields."""
    r = schema1_result("result-emulated")
    meta = RunMeta(
        run_id=r.run_id,
        created=r.created,
        device=r.device,
        artifact=r.artifact,
        workload=r.workload,
        runner=r.runner,
        settings=r.settings,
    )
    return dataclasses.replace(meta, **changes)
