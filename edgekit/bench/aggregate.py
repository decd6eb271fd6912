"""Repeated runs: mean, standard deviation and a Student-t 95% interval of every summary figure."""

from __future__ import annotations

import math
import statistics

from edgekit.bench.result import BenchResult
from edgekit.bench.stats import t_quantile


def aggregate(results: list[BenchResult]) -> dict[str, dict[str, float | None]]:
    """Mean, standard deviation and 95% interval (Student t, any df) of every numeric summary
    figure over the runs where it is valid (a void run's battery figures are null: left out).
    `n` = runs that count, `runs` = all runs; with n < 2 there is no interval (None), never ± 0."""
    out: dict[str, dict[str, float | None]] = {}
    for key in results[0].summary:
        values = [r.summary[key] for r in results if isinstance(r.summary.get(key), (int, float))]
        entry: dict[str, float | None] = {
            "mean": None,
            "stddev": None,
            "ci95_low": None,
            "ci95_high": None,
            "n": len(values),
            "runs": len(results),
        }
        if values:
            entry["mean"] = statistics.fmean(values)
        if len(values) > 1:
            mean, sd = statistics.fmean(values), statistics.stdev(values)
            half = t_quantile(0.95, len(values) - 1) * sd / math.sqrt(len(values))
            entry.update(stddev=sd, ci95_low=mean - half, ci95_high=mean + half)
        out[key] = entry
    return out
