"""Repeated runs: mean, standard deviation and a Student-t 95% interval of every summary figure."""

from __future__ import annotations

import math
import statistics

from edgekit.bench.result import SUMMARY_KEYS, AggregateFigure, BenchResult
from edgekit.bench.stats import t_quantile


def aggregate(results: list[BenchResult]) -> dict[str, AggregateFigure]:
    """Mean, standard deviation and 95% interval (Student t, any df) of every numeric summary
    figure over the runs where it is valid (a void run's battery figures are null: left out).
    `n` = runs that count, `runs` = all runs; with n < 2 there is no interval (None), never ± 0."""
    out: dict[str, AggregateFigure] = {}
    for key in SUMMARY_KEYS:
        values = [v for r in results if (v := r.summary.number(key)) is not None]
        mean = statistics.fmean(values) if values else None
        sd = low = high = None
        if mean is not None and len(values) > 1:
            sd = statistics.stdev(values)
            half = t_quantile(0.95, len(values) - 1) * sd / math.sqrt(len(values))
            low, high = mean - half, mean + half
        out[key] = AggregateFigure(mean=mean, stddev=sd, ci95_low=low, ci95_high=high, n=len(values), runs=len(results))
    return out
