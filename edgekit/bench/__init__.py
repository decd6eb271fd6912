"""battery-bench: workloads, the on-device run, power math, results."""

from edgekit.bench.result import BenchResult
from edgekit.bench.session import BenchConfig, battery_bench

__all__ = ["BenchConfig", "BenchResult", "battery_bench"]
