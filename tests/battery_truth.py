"""The battery tests' check against the emulated battery's truth: edgekit's figure within a
relative tolerance, plus what a sampler that a busy host made read late at the load steps can
cost, up to a fixed budget each run is checked against (test_battery_traps_e2e,
test_bench_e2e)."""

from __future__ import annotations

import itertools

from edgekit.bench import session
from edgekit.bench.result import BenchResult
from edgekit.testing.battery import BatteryController

STEP_MA = 150.0
"""A change of current this large between two samples is a load step (busy 450 mA, idle 60 mA;
the noise is a few mA)."""

LATE_BUDGET_PERIODS = 20
"""How late the sampler may read at a run's load steps, in sample periods summed over the steps
(1 s at these runs' 50 ms), beyond the two periods that can separate the two reads around a
step on an idle host. Fixed, so a sampler that reads later fails its check instead of widening
it without end. In twenty runs of these tests on a 2-core host at a load average of 2.3-2.8
(other work running), every step's reads were within two periods; a busy CI host can hold a
process back for about a second (docs), hence the budget. Within it, the run's own lateness
widens the 2% by at most 390 mA × 1 s / 2 = 0.054 mAh (`stall_allowance_mah`), on an idle
host by nothing."""

LATE_BUDGET_FLOOR_S = 1.0
"""...and never less than the second a busy CI host can hold a process back: a run sampled
every 20 ms (test_bench_e2e) would otherwise get 0.4 s. One such run on CI (2 workers) read
late enough at its steps to come out 2.07% under its truth."""

MAX_VOLTAGE_V = 4.5
"""Above any phone battery's voltage: what a late read's charge error can be at most in energy."""


def late_budget_s(config: session.BenchConfig) -> float:
    """How late, in seconds summed over the load steps, the sampler may read in a run (fixed)."""
    return max(LATE_BUDGET_PERIODS * config.sample_period_s, LATE_BUDGET_FLOOR_S)


def late_at_steps_s(result: BenchResult, config: session.BenchConfig) -> float:
    """How much longer than two sample periods the reads around each load step were apart,
    summed over the run's load steps (s): the sampler's stalls where they cost the figure."""
    conv = result.power.conventions
    unit_per_ma = 1.0 if conv is not None and conv.current_unit == "mA" else 1000.0
    read = [(s.t_s, s.current_raw) for s in result.samples if s.current_raw is not None]
    return sum(
        max(0.0, tb - ta - 2 * config.sample_period_s)
        for (ta, ia), (tb, ib) in itertools.pairwise(read)
        if abs(ib - ia) / unit_per_ma >= STEP_MA
    )


def stall_allowance_mah(late_s: float, battery: BatteryController) -> float:
    """What the sampler reading `late_s` seconds late at load steps (checked against
    late_budget_s) can cost the figure beyond what the nominal sample period costs (that
    part is inside the 2%).

    Between two reads a and b that straddle a load step of ΔI, the trapezoid edgekit integrates
    is off by at most ΔI·(t_b − t_a)/2, wherever the step fell: reads late by a total of B
    seconds across the steps add at most ΔI·B/2. ΔI is the battery's busy draw over its idle
    one, not the run's reads; B is bounded by the fixed budget."""
    step_ma = battery.busy_ma - battery.idle_ma
    return step_ma * late_s / 2 / 3600


def assert_near_truth(
    result: BenchResult,
    truth: dict[str, float],
    config: session.BenchConfig,
    battery: BatteryController,
    rel: float,
    *,
    energy: bool = False,
) -> None:
    """The sampler read on time at the load steps (within the budget), and edgekit's workload
    charge (and, with `energy`, its energy) is within `rel` of the battery's own truth, plus
    what that lateness can cost."""
    late_s = late_at_steps_s(result, config)
    budget_s = late_budget_s(config)
    assert late_s <= budget_s, (
        f"the sampler read {late_s:.2f} s late at the run's load steps, more than the {budget_s:.2f} s "
        "the figure's allowance covers"
    )
    truth_mah = truth["excess_charge_uah"] / 1000
    measured_mah = result.summary.workload_charge_mah
    assert measured_mah is not None
    allowance_mah = stall_allowance_mah(late_s, battery)
    assert abs(measured_mah - truth_mah) <= rel * truth_mah + allowance_mah, (
        f"measured {measured_mah:.5f} mAh, truth {truth_mah:.5f} mAh: off by "
        f"{abs(measured_mah - truth_mah) / truth_mah:.2%}, allowed {rel:.0%} + {allowance_mah:.5f} mAh "
        f"for the sampler reading {late_s:.2f} s late at load steps"
    )
    if energy:
        truth_mwh = truth["excess_energy_uj"] / 3.6e6
        measured_mwh = result.summary.workload_energy_mwh
        assert measured_mwh is not None
        allowance_mwh = allowance_mah * MAX_VOLTAGE_V
        assert abs(measured_mwh - truth_mwh) <= rel * truth_mwh + allowance_mwh, (
            f"measured {measured_mwh:.5f} mWh, truth {truth_mwh:.5f} mWh: off by "
            f"{abs(measured_mwh - truth_mwh) / truth_mwh:.2%}, allowed {rel:.0%} + {allowance_mwh:.5f} mWh"
        )
