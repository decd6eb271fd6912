"""Battery samples -> charge, energy, baseline subtraction, % of battery. Pure functions.

Fuel gauges disagree on conventions, so they are decided from the data and recorded:

* sign: BatteryManager documents `current_now` positive = into the battery; several vendors
  report the opposite. We decide which way is "discharge" from the direction
  `charge_counter` moves over the run, else from `status`, never from the sign alone;
* unit: `current_now` is µA by the sysfs ABI, but some vendors report mA; values too small
  to be µA for a running phone, or an integral that only matches Δcharge_counter as mA,
  decide it.

Charge is integrated from I (trapezoid), energy from V·I, and cross-checked against
Δ`charge_counter` (which real gauges update in coarse steps, so it is a check, not the
figure).
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
from collections.abc import Callable, Sequence

from edgekit.device.parsers import STATUS_CHARGING, STATUS_FULL

_CHARGING = {STATUS_CHARGING, STATUS_FULL}


@dataclasses.dataclass(frozen=True, kw_only=True)
class PowerSample:
    """One reading, as sampled on the device. `current_raw` is as the device reports it."""

    t_s: float
    charge_counter_uah: int | None
    current_raw: int | None
    voltage_uv: int | None
    level_pct: int | None
    temperature_c: float | None
    status: int | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Conventions:
    """How `current_raw` maps to discharge current in µA, and why."""

    discharge_sign: int  # +1: positive raw = discharge; -1: negative raw = discharge
    current_unit: str  # "uA" or "mA"
    basis: str

    def discharge_ua(self, raw: int) -> float:
        """Discharge current in µA (negative = flowing into the battery)."""
        return raw * self.discharge_sign * (1000.0 if self.current_unit == "mA" else 1.0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Integral:
    """Charge and energy drawn over a window (discharge positive)."""

    duration_s: float
    charge_uah: float
    energy_uj: float
    counter_delta_uah: float | None  # drop of charge_counter over the window (positive = drained)


def decide_conventions(samples: Sequence[PowerSample], counter_step_hint_uah: int = 0) -> Conventions | None:
    """Decide sign and unit of `current_raw` from the samples; None if there is no current."""
    raw = [s.current_raw for s in samples if s.current_raw is not None]
    if not raw:
        return None
    mean_raw = statistics.fmean(raw)
    counters = [s.charge_counter_uah for s in samples if s.charge_counter_uah is not None]
    counter_moved = len(counters) >= 2 and counters[-1] != counters[0]
    if counter_moved:
        draining = counters[-1] < counters[0]
        basis = f"charge_counter {'fell' if draining else 'rose'} by {abs(counters[-1] - counters[0])} µAh"
    else:
        statuses = [s.status for s in samples if s.status is not None]
        charging_votes = sum(1 for st in statuses if st in _CHARGING)
        draining = charging_votes * 2 < len(statuses) if statuses else True
        basis = (
            f"status ({'discharging' if draining else 'charging'} in most samples); charge_counter did not move"
            if statuses
            else "no status or counter movement: assumed discharging"
        )
    sign = (1 if mean_raw > 0 else -1) if draining else (-1 if mean_raw > 0 else 1)
    median_abs = statistics.median(abs(r) for r in raw)
    unit = "mA" if 0 < median_abs < 10_000 else "uA"
    unit_basis = "values too small for µA on a running phone" if unit == "mA" else "sysfs µA"
    if counter_moved and len(samples) >= 2:
        # Where the counter moved well, the unit whose integral matches it wins.
        span = abs(counters[-1] - counters[0])
        integ_ua = _trapezoid(samples, lambda s: None if s.current_raw is None else abs(s.current_raw))
        if span > 0 and integ_ua > 0:
            as_ua, as_ma = integ_ua, integ_ua * 1000
            unit = "uA" if abs(as_ua / span - 1) <= abs(as_ma / span - 1) else "mA"
            unit_basis = f"integral matches Δcharge_counter as {'µA' if unit == 'uA' else 'mA'}"
    return Conventions(
        discharge_sign=sign,
        current_unit=unit,
        basis=f"{basis}; mean current_now {mean_raw:+.0f} → {'positive' if sign > 0 else 'negative'} = discharge; "
        f"unit {unit} ({unit_basis})",
    )


def _trapezoid(samples: Sequence[PowerSample], value: Callable[[PowerSample], float | None]) -> float:
    """∫ value dt over consecutive samples, in value·hours (so µA -> µAh)."""
    total = 0.0
    for a, b in itertools.pairwise(samples):
        va, vb = value(a), value(b)
        if va is None or vb is None:
            continue
        total += 0.5 * (va + vb) * (b.t_s - a.t_s) / 3600.0
    return total


def window(samples: Sequence[PowerSample], t0: float, t1: float) -> list[PowerSample]:
    """The samples with t0 <= t <= t1."""
    return [s for s in samples if t0 <= s.t_s <= t1]


def integrate(samples: Sequence[PowerSample], conv: Conventions) -> Integral:
    """Charge (µAh) and energy (µJ) drawn over `samples`, discharge positive."""

    def current(s: PowerSample) -> float | None:
        return None if s.current_raw is None else conv.discharge_ua(s.current_raw)

    def power_w(s: PowerSample) -> float | None:
        if s.current_raw is None or s.voltage_uv is None:
            return None
        return conv.discharge_ua(s.current_raw) * 1e-6 * s.voltage_uv * 1e-6

    counters = [s.charge_counter_uah for s in samples if s.charge_counter_uah is not None]
    return Integral(
        duration_s=(samples[-1].t_s - samples[0].t_s) if len(samples) >= 2 else 0.0,
        charge_uah=_trapezoid(samples, current),
        energy_uj=_trapezoid(samples, power_w) * 3600.0 * 1e6,
        counter_delta_uah=float(counters[0] - counters[-1]) if len(counters) >= 2 else None,
    )


def max_gap_s(samples: Sequence[PowerSample]) -> float:
    """The longest interval between consecutive samples."""
    return max((b.t_s - a.t_s for a, b in itertools.pairwise(samples)), default=0.0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Flag:
    """A validity flag: never hidden; `voids` = no headline figure while it stands."""

    code: str
    message: str
    voids: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class PowerReport:
    """The power side of a run: conventions, baseline, the workload's own cost, flags."""

    conventions: Conventions | None
    baseline: Integral | None
    workload: Integral | None
    baseline_current_ma: float | None
    baseline_power_mw: float | None
    workload_charge_mah: float | None
    workload_energy_mwh: float | None
    counter_check_ratio: float | None
    flags: tuple[Flag, ...]

    @property
    def voided(self) -> bool:
        """True when a flag voids the headline."""
        return any(f.voids for f in self.flags)


def analyse_segments(
    samples: Sequence[PowerSample],
    *,
    baseline: tuple[float, float] | None,
    segments: Sequence[tuple[float, float]],
    sample_period_s: float,
    low_battery_pct: int = 20,
) -> PowerReport:
    """Integrate the workload's time segments (several when a run was resumed), subtract the
    idle baseline's mean draw over the same time, and raise validity flags."""
    flags: list[Flag] = []
    if not segments:
        segments = [(0.0, -1.0)]
    first_t = baseline[0] if baseline else segments[0][0]
    in_run = [s for s in samples if first_t <= s.t_s <= segments[-1][1]]
    has_current = any(s.current_raw is not None for s in in_run)
    has_voltage = any(s.voltage_uv is not None for s in in_run)
    if not in_run or not has_current or not has_voltage:
        missing = [n for n, ok in (("current_now", has_current), ("voltage_now", has_voltage)) if not ok]
        flags.append(
            Flag(
                code="counters_missing",
                message=f"the device exposes no {' or '.join(missing) or 'samples'}: energy cannot be measured",
                voids=True,
            )
        )
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
    conv = decide_conventions(in_run)
    assert conv is not None
    statuses = {s.status for s in in_run}
    parts = [integrate(window(samples, a, b), conv) for a, b in segments]
    deltas = [p.counter_delta_uah for p in parts if p.counter_delta_uah is not None]
    work = Integral(
        duration_s=sum(p.duration_s for p in parts),
        charge_uah=sum(p.charge_uah for p in parts),
        energy_uj=sum(p.energy_uj for p in parts),
        counter_delta_uah=sum(deltas) if deltas else None,
    )
    base = integrate(window(samples, *baseline), conv) if baseline else None
    if statuses & _CHARGING or work.charge_uah < 0 or (base is not None and base.charge_uah < 0):
        flags.append(
            Flag(
                code="charging",
                message="the battery was charging or powered during the run (current flowing in): "
                "unplug USB power (dumpsys battery unplug only fakes it) and run again",
                voids=True,
            )
        )
    gap = max_gap_s(in_run)
    if gap > max(4 * sample_period_s, 1.0):
        flags.append(
            Flag(code="sampler_gaps", message=f"the sampler missed readings (gap of {gap:.1f} s)", voids=False)
        )
    first_level = next((s.level_pct for s in in_run if s.level_pct is not None), None)
    if first_level is not None and first_level < low_battery_pct:
        flags.append(
            Flag(
                code="low_battery",
                message=f"battery at {first_level}% (< {low_battery_pct}%): gauges and throttling behave differently",
                voids=False,
            )
        )
    base_ma = base_mw = None
    charge_uah, energy_uj = work.charge_uah, work.energy_uj
    if base is not None and base.duration_s > 0:
        base_ma = base.charge_uah / (base.duration_s / 3600) / 1000
        base_mw = base.energy_uj / base.duration_s / 1000
        charge_uah -= base.charge_uah / base.duration_s * work.duration_s
        energy_uj -= base.energy_uj / base.duration_s * work.duration_s
    ratio = None
    if work.counter_delta_uah and work.charge_uah:
        ratio = work.counter_delta_uah / work.charge_uah
    return PowerReport(
        conventions=conv,
        baseline=base,
        workload=work,
        baseline_current_ma=base_ma,
        baseline_power_mw=base_mw,
        workload_charge_mah=charge_uah / 1000,
        workload_energy_mwh=energy_uj / 3.6e6,
        counter_check_ratio=ratio,
        flags=tuple(flags),
    )
