"""A real, typed BenchResult to build test results from (dataclasses.replace its fields)."""

from __future__ import annotations

from pathlib import Path

from edgekit.bench.result import BenchResult

SCHEMA1 = Path(__file__).parent / "fixtures" / "schema1"


def schema1_result(name: str = "result-local") -> BenchResult:
    """A result file as edgekit wrote it before typing (tests/fixtures/schema1), loaded."""
    return BenchResult.load(SCHEMA1 / f"{name}.json")
