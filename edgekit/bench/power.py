"""Battery samples -> the workload's own charge and energy: baseline subtraction, validity,
uncertainty. Pure functions.

The samples are read as edgekit.bench.gauge decides (sign, unit, integrals). The idle draw is
measured in baselines before and after the workload and interpolated linearly across it;
what it subtracts, its drift and the interval from its own noise (block bootstrap) are
reported. Validity is judged by the rules in edgekit.bench.validity (`analyse_segments`
applies them).
"""

from __future__ import annotations

import dataclasses
import random
import statistics
from collections.abc import Sequence

from edgekit.bench.gauge import Conventions, Integral, PowerSample, decide_conventions, integrate, window
from edgekit.bench.validity import (
    DRIFT_VOID_PCT,
    DRIFT_WARN_PCT,
    UNIT_UNDECIDED,
    ValidityFlag,
    counter_mismatch,
    gap_flags,
    missing_counters,
    missing_read_flags,
    state_flags,
    supply_flags,
    workload_flags,
)

_BOOTSTRAP_REPS = 2000


@dataclasses.dataclass(frozen=True, kw_only=True)
class PowerReport:
    """The power side of a run: conventions, baselines, the workload's own cost, flags."""

    conventions: Conventions | None
    baseline: Integral | None
    workload: Integral | None
    baseline_current_ma: float | None
    baseline_power_mw: float | None
    workload_charge_mah: float | None
    workload_energy_mwh: float | None
    counter_check_ratio: float | None
    flags: tuple[ValidityFlag, ...]
    baseline_after_current_ma: float | None = None
    baseline_drift_ma: float | None = None
    drift_bound_pct: float | None = None
    subtracted_charge_mah: float | None = None
    workload_charge_ci95_mah: tuple[float, float] | None = None
    interval_basis: str | None = None
    reads_interpolated: int = 0

    @property
    def voided(self) -> bool:
        """True when a flag voids the headline."""
        return any(f.voids for f in self.flags)


def _empty_report(flags: list[ValidityFlag]) -> PowerReport:
    return PowerReport(
        conventions=None,
        baseline=None,
        workload=None,
        baseline_current_ma=None,
        baseline_power_mw=None,
        workload_charge_mah=None,
        workload_energy_mwh=None,
        counter_check_ratio=None,
        flags=tuple(flags),
    )


def _idle_rates(bases: Sequence[tuple[float, float]], t: float) -> float:
    """Idle rate at time t from baselines (midpoint, rate): linear between the first and last, else constant."""
    if len(bases) == 1 or bases[-1][0] == bases[0][0]:
        return statistics.fmean(b[1] for b in bases)
    (m1, r1), (m2, r2) = bases[0], bases[-1]
    return r1 + (r2 - r1) * (t - m1) / (m2 - m1)


def _idle_blocks(samples: Sequence[PowerSample], conv: Conventions) -> list[tuple[float, float]]:
    """A baseline cut into non-overlapping blocks of ~n^(1/3) consecutive sample intervals,
    each as (∫I dt in µAh, duration in s), by the same trapezoid as `integrate`: together
    they are exactly the baseline's integral, so their rate is the headline's idle rate."""
    n = len(samples)
    size = max(1, round(n ** (1 / 3)))
    cuts = list(range(0, n - 1, size))
    if len(cuts) > 1 and n - 1 - cuts[-1] < size:
        cuts.pop()  # the short remainder joins the last block instead of being dropped
    blocks = []
    for k, start in enumerate(cuts):
        end = cuts[k + 1] if k + 1 < len(cuts) else n - 1
        part = samples[start : end + 1]
        blocks.append((integrate(part, conv).charge_uah, part[-1].t_s - part[0].t_s))
    return blocks


def _bootstrap(
    idle_windows: Sequence[Sequence[PowerSample]],
    conv: Conventions,
    mids: Sequence[float],
    segments: Sequence[tuple[float, float]],
    gross_uah: float,
    net_uah: float,
    sample_period_s: float,
) -> tuple[tuple[float, float] | None, str]:
    """95% interval of the net charge (µAh) from the baselines' own noise: a non-overlapping
    block bootstrap of each baseline (blocks of ~n^(1/3) samples, so slow wander stays inside
    blocks), pushed through the same subtraction. Seeded: reproducible.

    Each resample's idle rate is Σ∫I dt ÷ Σ duration of its blocks: time-weighted, the
    estimator of the headline itself. It once was the plain mean of the readings, and a
    sampler slowed by a loaded host (concurrent runs) reads less often exactly while the
    phone draws more, so that mean sat below the time-weighted rate: issue 17 #11, an
    interval [0.1116, 0.1122] that did not contain its headline 0.1103. If the headline still
    falls outside (a very skewed baseline), `basis` says so."""
    block_lists: list[list[tuple[float, float]]] = []
    size = 1
    for samples in idle_windows:
        n = len(samples)
        size = max(1, round(n ** (1 / 3)))
        blocks = _idle_blocks(samples, conv)
        if len(blocks) < 5:
            return None, f"too few idle samples for an interval ({n}; at least {5 * size + 1} needed)"
        block_lists.append(blocks)
    rng = random.Random(0)
    nets = []
    for _ in range(_BOOTSTRAP_REPS):
        rates = []
        for blocks in block_lists:
            picked = rng.choices(blocks, k=len(blocks))
            duration = sum(d for _, d in picked)
            rates.append(sum(q for q, _ in picked) * 3600 / duration if duration > 0 else 0.0)
        bases = list(zip(mids, rates, strict=True))
        sub = sum((b - a) / 3600 * _idle_rates(bases, (a + b) / 2) for a, b in segments)
        nets.append(gross_uah - sub)
    nets.sort()
    lo, hi = nets[int(0.025 * len(nets))], nets[int(0.975 * len(nets)) - 1]
    sizes = ", ".join(str(len(b)) for b in block_lists)
    basis = (
        f"block bootstrap of the idle current, time-weighted ({sizes} blocks of {size} samples at "
        f"{sample_period_s:g} s per baseline; {_BOOTSTRAP_REPS} resamples)"
    )
    if not lo <= net_uah <= hi:
        basis += (
            f"; the figure ({net_uah / 1000:.4g} mAh) lies outside its interval: the idle current's "
            "resamples are skewed, read the interval with care"
        )
    return (lo, hi), basis


def analyse_segments(
    samples: Sequence[PowerSample],
    *,
    baseline: tuple[float, float] | None = None,
    baselines: Sequence[tuple[float, float]] | None = None,
    segments: Sequence[tuple[float, float]],
    sample_period_s: float,
    low_battery_pct: int = 20,
    t0: float | None = None,
) -> PowerReport:
    """Integrate the workload's time segments (several when a run was resumed), subtract the
    idle draw measured in `baselines` (before and after the workload; interpolated linearly
    across it), and judge validity from every sample in those windows.

    The headline is VOID when, in a baseline or the workload: an external supply is online;
    empty reads exceed 10% or a hole/gap exceeds 10 sample periods (suspend); the battery
    current is within ±5 mA of zero for more than half the workload; the net charge or
    energy is ≤ 0; the charge counter moved ≥ 20 steps and disagrees with ∫I (ratio outside
    0.8–1.25); the screen or thermal state differs between windows; the current's unit
    cannot be decided; the baseline drift could move the figure by more than 10%.
    """
    bases_w = list(baselines or ([baseline] if baseline else []))
    origin = t0 if t0 is not None else (samples[0].t_s if samples else 0.0)
    spans = _named_spans(bases_w, segments or [(0.0, -1.0)])
    raw_windows = [(n, window(samples, a, b)) for a, b, n in spans]
    in_run = [s for _, w in raw_windows for s in w]
    missing = missing_counters(in_run)
    if missing is not None:
        return _empty_report([missing])

    flags, filled, interpolated = gap_flags(raw_windows, [(a, b) for a, b, _ in spans], sample_period_s, origin)
    flags += missing_read_flags(in_run, interpolated)
    flags += supply_flags(raw_windows, in_run, origin)
    flags += state_flags(raw_windows, origin)

    all_filled = [s for _, w in filled for s in w]
    conv = decide_conventions(all_filled, [w for _, w in filled])
    assert conv is not None
    if not conv.unit_decided and not any(f.code == "supply_online" for f in flags):
        flags.append(UNIT_UNDECIDED)
    work_windows = [w for n, w in filled if n == "workload"]
    work = _sum_integrals([integrate(w, conv) for w in work_windows])
    flags += workload_flags(work_windows, in_run, conv, low_battery_pct)
    net = _subtract_idle([(n, w) for n, w in filled if n != "workload"], work_windows, work, conv, sample_period_s)
    flags += net.flags
    if net.charge_uah <= 0 or net.energy_uj <= 0:
        flags.append(
            ValidityFlag(
                code="no_net_drain",
                message=f"the workload's net charge ({net.charge_uah / 1000:+.2f} mAh) or energy "
                f"({net.energy_uj / 3.6e6:+.2f} mWh) is not positive: the battery was not what powered it",
                voids=True,
                window="workload",
            )
        )
    flags += counter_mismatch([w for _, w in filled], all_filled, conv)
    ratio = work.counter_delta_uah / work.charge_uah if work.counter_delta_uah and work.charge_uah else None
    return PowerReport(
        conventions=conv,
        baseline=net.baseline,
        workload=work,
        baseline_current_ma=net.baseline_current_ma,
        baseline_power_mw=net.baseline_power_mw,
        workload_charge_mah=net.charge_uah / 1000,
        workload_energy_mwh=net.energy_uj / 3.6e6,
        counter_check_ratio=ratio,
        flags=tuple(flags),
        baseline_after_current_ma=net.after_current_ma,
        baseline_drift_ma=net.drift_ma,
        drift_bound_pct=net.drift_bound_pct,
        subtracted_charge_mah=net.subtracted_charge_mah,
        workload_charge_ci95_mah=None
        if net.interval_uah is None
        else (
            net.interval_uah[0] / 1000,
            net.interval_uah[1] / 1000,
        ),
        interval_basis=net.interval_basis,
        reads_interpolated=interpolated,
    )


def _named_spans(
    baselines: Sequence[tuple[float, float]], segments: Sequence[tuple[float, float]]
) -> list[tuple[float, float, str]]:
    """(start, end, name) of every window, in time order (so what is reported first is what
    happened first): "baseline" (or "baseline before"/"baseline after"), "workload"."""
    names = ["baseline"] if len(baselines) == 1 else ["baseline before", "baseline after"][: len(baselines)]
    if len(baselines) > 2:
        names = [f"baseline {i + 1}" for i in range(len(baselines))]
    spans = [(a, b, n) for n, (a, b) in zip(names, baselines, strict=True)]
    spans += [(a, b, "workload") for a, b in segments]
    return sorted(spans)


def _sum_integrals(parts: Sequence[Integral]) -> Integral:
    """The workload's segments as one integral (counter delta: the sum of those that have one)."""
    deltas = [p.counter_delta_uah for p in parts if p.counter_delta_uah is not None]
    return Integral(
        duration_s=sum(p.duration_s for p in parts),
        charge_uah=sum(p.charge_uah for p in parts),
        energy_uj=sum(p.energy_uj for p in parts),
        counter_delta_uah=sum(deltas) if deltas else None,
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Net:
    """The workload's charge and energy with the idle draw subtracted, and what was subtracted."""

    charge_uah: float
    energy_uj: float
    flags: list[ValidityFlag]
    baseline: Integral | None = None
    baseline_current_ma: float | None = None
    baseline_power_mw: float | None = None
    after_current_ma: float | None = None
    drift_ma: float | None = None
    drift_bound_pct: float | None = None
    subtracted_charge_mah: float | None = None
    interval_uah: tuple[float, float] | None = None
    interval_basis: str | None = None


def _subtract_idle(
    base_windows: Sequence[tuple[str, list[PowerSample]]],
    work_windows: Sequence[list[PowerSample]],
    work: Integral,
    conv: Conventions,
    sample_period_s: float,
) -> _Net:
    """Subtract the idle draw: one rate per baseline at its midpoint, linear in time across the
    workload; flag drift between the baselines, or a missing baseline; the interval from the
    baselines' noise."""
    base_ints = [(w, integrate(w, conv)) for _, w in base_windows]
    base_ints = [(w, b) for w, b in base_ints if b.duration_s > 0]
    if not base_ints:
        missing = ValidityFlag(
            code="baseline_missing",
            message="no idle baseline was measured: the figure includes the phone's idle draw",
            voids=False,
        )
        return _Net(charge_uah=work.charge_uah, energy_uj=work.energy_uj, flags=[missing])
    charge_rates = [(w[0].t_s + b.duration_s / 2, b.charge_uah / (b.duration_s / 3600)) for w, b in base_ints]
    power_rates = [(w[0].t_s + b.duration_s / 2, b.energy_uj / b.duration_s) for w, b in base_ints]
    real_segments = [(w[0].t_s, w[-1].t_s) for w in work_windows if len(w) >= 2]
    sub_uah = sum((b - a) / 3600 * _idle_rates(charge_rates, (a + b) / 2) for a, b in real_segments)
    sub_uj = sum((b - a) * _idle_rates(power_rates, (a + b) / 2) for a, b in real_segments)
    charge_uah = work.charge_uah - sub_uah
    base_ma = charge_rates[0][1] / 1000
    flags: list[ValidityFlag] = []
    after_ma = drift_ma = bound = None
    if len(charge_rates) >= 2:
        after_ma = charge_rates[-1][1] / 1000
        drift_ma = after_ma - base_ma
        # A step in idle draw anywhere inside the workload moves the figure by at most half the drift.
        if charge_uah > 0:
            bound = abs(drift_ma) * 1000 / 2 * work.duration_s / 3600 / charge_uah * 100
            if bound > DRIFT_WARN_PCT:
                flags.append(
                    ValidityFlag(
                        code="baseline_drift",
                        message=f"the idle draw moved from {base_ma:.1f} mA before to {after_ma:.1f} mA after "
                        f"the workload: it could move the figure by up to {bound:.1f}% "
                        f"(warns above {DRIFT_WARN_PCT:g}%, voids above {DRIFT_VOID_PCT:g}%)",
                        voids=bound > DRIFT_VOID_PCT,
                    )
                )
    else:
        flags.append(
            ValidityFlag(
                code="baseline_not_bracketed",
                message="only one idle baseline (no baseline after the workload): drift cannot be seen",
                voids=False,
            )
        )
    interval, basis = _bootstrap(
        [w for w, _ in base_ints],
        conv,
        [m for m, _ in charge_rates],
        real_segments,
        work.charge_uah,
        charge_uah,
        sample_period_s,
    )
    return _Net(
        charge_uah=charge_uah,
        energy_uj=work.energy_uj - sub_uj,
        flags=flags,
        baseline=base_ints[0][1],
        baseline_current_ma=base_ma,
        baseline_power_mw=power_rates[0][1] / 1000,
        after_current_ma=after_ma,
        drift_ma=drift_ma,
        drift_bound_pct=bound,
        subtracted_charge_mah=sub_uah / 1000,
        interval_uah=interval,
        interval_basis=basis,
    )
