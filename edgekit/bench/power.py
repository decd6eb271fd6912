"""Battery samples -> charge, energy, baseline subtraction, validity, uncertainty. Pure functions.

Fuel gauges disagree on conventions, so they are decided from the data and recorded:

* sign: BatteryManager documents `current_now` positive = into the battery; several vendors
  report the opposite. We decide which way is "discharge" from the direction
  `charge_counter` moves inside the measured windows, else from `status`, never from the
  sign alone;
* unit: `current_now` is µA by the sysfs ABI (include/linux/power_supply.h: "All voltages,
  currents, charges ... in uV, µA, µAh"), but some vendors report mA. A running phone draws
  between 1 mA and 10 A, so raw values below 1000 can only be mA and above 10000 only µA;
  in between, only a charge counter that moved can tell, and without one the run is void.

Charge is integrated from I (trapezoid), energy from V·I, and cross-checked against
Δ`charge_counter` (which real gauges update in coarse steps, so it is a check, not the
figure). The idle draw is measured in baselines before and after the workload and
interpolated linearly across it; what it subtracts, its drift and the interval from its
own noise (block bootstrap) are reported.

Validity is judged from every sample in the baseline and workload windows (rules in
`analyse_segments`). A state the phone cannot report is "unknown": it warns, never voids.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import statistics
from collections.abc import Callable, Sequence

from edgekit.device.parsers import STATUS_CHARGING, STATUS_FULL

_CHARGING = {STATUS_CHARGING, STATUS_FULL}

# The thresholds of the validity rules (docs/battery-bench.md lists them).
NEAR_ZERO_MA = 5.0
"""A battery current within this many mA of zero is "the phone runs from a supply"."""
NEAR_ZERO_MAX_FRACTION = 0.5
MISSING_MAX_FRACTION = 0.10
"""More empty `current_now`/`voltage_now` reads than this (baselines and workload together) voids."""
GAP_PERIODS = 10
"""A sampler gap (or a hole of empty reads) longer than this many sample periods = suspended."""
GAP_FLOOR_S = 2.0
"""...but never less than 2 s: a loaded host (CI's emulated phone) can stall a process that long."""
COUNTER_MIN_STEPS = 20
COUNTER_RATIO_RANGE = (0.8, 1.25)
DRIFT_WARN_PCT = 2.0
DRIFT_VOID_PCT = 10.0
"""Baseline drift: how far (in % of the net charge) a step in idle draw could move the figure."""
_MA_BELOW_RAW = 1000  # |raw| below this: mA (µA would be under 1 mA: no running phone)
_UA_ABOVE_RAW = 10000  # |raw| above this: µA (mA would be over 10 A: no phone)
_BOOTSTRAP_REPS = 2000
_EXTERNAL_NOT = {"battery"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class PowerSample:
    """One reading, as sampled on the device. `current_raw` is as the device reports it.

    `supplies`: every power supply whose `online` the sampler could read, as
    `name:type:online` joined by `+` (type empty where the supply has no `type` file;
    name `dumpsys-*` when read from `dumpsys battery`); None = none readable (unknown).
    `screen`: PowerManager's wakefulness (Awake, Asleep, Dozing, Dreaming); `thermal`:
    thermal status 0..6; None = unknown.
    """

    t_s: float
    charge_counter_uah: int | None
    current_raw: float | None
    voltage_uv: float | None
    level_pct: int | None
    temperature_c: float | None
    status: int | None
    supplies: str | None = None
    screen: str | None = None
    thermal: int | None = None


def external_online(sample: PowerSample) -> list[str] | None:
    """Names of external supplies reported online in `sample`; None if none is readable.

    Every supply but the battery itself counts (kernel Documentation/ABI/testing/sysfs-class-power:
    `online` = "the power supply is online/connected"; types Mains, USB, Wireless, ...).
    """
    if not sample.supplies:
        return None
    online = []
    for item in sample.supplies.split("+"):
        name, _, rest = item.partition(":")
        kind, _, value = rest.rpartition(":")
        if kind.lower() == "battery" or name.lower() in _EXTERNAL_NOT:
            continue
        if value.strip() not in ("", "0"):
            online.append(f"{name} ({kind})" if kind else name)
    return online


@dataclasses.dataclass(frozen=True, kw_only=True)
class Conventions:
    """How `current_raw` maps to discharge current in µA, and why."""

    discharge_sign: int  # +1: positive raw = discharge; -1: negative raw = discharge
    current_unit: str  # "uA" or "mA"
    basis: str
    unit_decided: bool = True

    def discharge_ua(self, raw: float) -> float:
        """Discharge current in µA (negative = flowing into the battery)."""
        return raw * self.discharge_sign * (1000.0 if self.current_unit == "mA" else 1.0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Integral:
    """Charge and energy drawn over a window (discharge positive)."""

    duration_s: float
    charge_uah: float
    energy_uj: float
    counter_delta_uah: float | None  # drop of charge_counter over the window (positive = drained)


def counter_step_uah(samples: Sequence[PowerSample]) -> int | None:
    """The charge counter's step: the smallest change between consecutive readings."""
    values = [s.charge_counter_uah for s in samples if s.charge_counter_uah is not None]
    steps = [abs(b - a) for a, b in itertools.pairwise(values) if b != a]
    return min(steps) if steps else None


def _counter_delta(windows: Sequence[Sequence[PowerSample]]) -> float | None:
    """Σ (first - last counter) over the windows: positive = drained."""
    total, seen = 0.0, False
    for w in windows:
        values = [s.charge_counter_uah for s in w if s.charge_counter_uah is not None]
        if len(values) >= 2:
            total += values[0] - values[-1]
            seen = True
    return total if seen else None


def decide_conventions(
    samples: Sequence[PowerSample], windows: Sequence[Sequence[PowerSample]] | None = None
) -> Conventions | None:
    """Decide sign and unit of `current_raw`; None if there is no current.

    `windows`: the measured windows (counter movement is summed inside them only, so a
    recharge between the parts of a resumed run does not flip the sign); default: all samples.
    """
    raw = [s.current_raw for s in samples if s.current_raw is not None]
    if not raw:
        return None
    parts = list(windows) if windows is not None else [samples]
    mean_raw = statistics.fmean(raw)
    delta = _counter_delta(parts)
    step = counter_step_uah(samples)
    counter_moved = delta is not None and delta != 0
    if counter_moved:
        assert delta is not None
        draining = delta > 0
        basis = f"charge_counter {'fell' if draining else 'rose'} by {abs(delta):.0f} µAh"
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
    # Unit: each window's median magnitude must be unambiguous, or a moving counter decides.
    medians = [statistics.median(abs(s.current_raw) for s in w if s.current_raw is not None) for w in parts if w]
    medians = [m for m in medians if m]
    by_value = {"mA" if m < _MA_BELOW_RAW else "uA" if m > _UA_ABOVE_RAW else "?" for m in medians} or {"?"}
    unit, decided = "uA", False
    unit_basis = "no current to judge"
    if counter_moved and step and delta is not None and abs(delta) >= 2 * step:
        integ = sum(_trapezoid(w, lambda s: None if s.current_raw is None else abs(s.current_raw)) for w in parts)
        if integ > 0:
            # µA and mA differ 1000×: the one whose integral is nearer Δcounter (in log) wins.
            as_ua = abs(math.log(integ / abs(delta)))
            as_ma = abs(math.log(integ * 1000 / abs(delta)))
            unit, decided = ("uA" if as_ua <= as_ma else "mA"), True
            unit_basis = f"integral matches Δcharge_counter as {'µA' if unit == 'uA' else 'mA'}"
    if not decided and len(by_value) == 1 and "?" not in by_value:
        unit, decided = by_value.pop(), True
        unit_basis = (
            "values below 1000: µA would be under 1 mA, no running phone"
            if unit == "mA"
            else "values above 10000: mA would be over 10 A, no phone"
        )
    elif not decided:
        unit_basis = (
            "undecided: values between 1000 and 10000 fit both µA (1-10 mA) and mA (1-10 A), "
            "and the charge counter did not move enough to tell"
        )
    return Conventions(
        discharge_sign=sign,
        current_unit=unit,
        unit_decided=decided,
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class Filled:
    """A window's samples with empty current/voltage reads interpolated, and what was done."""

    samples: list[PowerSample]
    reads: int
    empty: int
    longest_hole_s: float
    hole_at_s: float | None


def fill_missing(samples: Sequence[PowerSample]) -> Filled:
    """Interpolate empty `current_raw` / `voltage_uv` reads linearly in time from their
    neighbours (at the window's edges: the nearest read). Counts the reads that were empty.

    A field with no read at all is left as it is and not counted. The longest hole is the
    widest span of known reads around an empty one (to the nearest read at an edge), at the
    first empty read that spans it. Linear in the samples (a 2-hour run is 28,800)."""
    out = list(samples)
    empty = 0
    longest, hole_at = 0.0, None
    for field in ("current_raw", "voltage_uv"):
        known = [i for i, s in enumerate(out) if getattr(s, field) is not None]
        if not known:
            continue
        # Each run of empty reads lies between two reads (or one, at an edge): fill it from them.
        for before, after in itertools.pairwise([None, *known, None]):
            a = None if before is None else out[before]
            b = None if after is None else out[after]
            for i in range(0 if before is None else before + 1, len(out) if after is None else after):
                s = out[i]
                empty += 1
                value: float
                if a is not None and b is not None:
                    va, vb = getattr(a, field), getattr(b, field)
                    value = va + (vb - va) * (s.t_s - a.t_s) / (b.t_s - a.t_s) if b.t_s > a.t_s else va
                    span = b.t_s - a.t_s
                else:
                    edge = a if a is not None else b
                    assert edge is not None  # `known` is not empty
                    value, span = getattr(edge, field), abs(edge.t_s - s.t_s)
                if span > longest:
                    longest, hole_at = span, s.t_s
                out[i] = (
                    dataclasses.replace(s, current_raw=value)
                    if field == "current_raw"
                    else dataclasses.replace(s, voltage_uv=value)
                )
    reads = 2 * len(out)
    return Filled(samples=out, reads=reads, empty=empty, longest_hole_s=longest, hole_at_s=hole_at)


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


def _gap(samples: Sequence[PowerSample], start: float, end: float) -> tuple[float, float | None]:
    """(longest interval without a sample in the window [start, end], where it starts):
    between consecutive samples, and at the window's edges (a suspend can straddle them)."""
    times = [start, *(s.t_s for s in samples), end]
    best, at = 0.0, None
    for a, b in itertools.pairwise(times):
        if b - a > best:
            best, at = b - a, a
    return best, at


@dataclasses.dataclass(frozen=True, kw_only=True)
class ValidityFlag:
    """A validity flag: never hidden; `voids` = no headline figure while it stands.

    `window` (baseline, workload, baseline after) and `t_s` (seconds since the run's first
    event) say where the cause was seen, when it was.
    """

    code: str
    message: str
    voids: bool
    window: str | None = None
    t_s: float | None = None


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


def _state_flags(named: list[tuple[str, list[PowerSample]]], t0: float) -> list[ValidityFlag]:
    """Screen and thermal state must be the same all through the baselines and the workload."""
    flags = []
    for attr, label, how in (
        ("screen", "screen", "`dumpsys power` (mWakefulness)"),
        ("thermal", "thermal status", "`dumpsys thermalservice`"),
    ):
        first: tuple[object, str, float] | None = None
        changed: ValidityFlag | None = None
        for name, samples in named:
            for s in samples:
                value = getattr(s, attr)
                if value is None:
                    continue
                if first is None:
                    first = (value, name, s.t_s)
                elif value != first[0] and changed is None:
                    changed = ValidityFlag(
                        code=f"{attr}_changed",
                        message=f"the {label} was {first[0]} in the {first[1]} but {value} in the {name} "
                        f"at {s.t_s - t0:.1f} s: the idle baseline no longer matches the workload's conditions",
                        voids=True,
                        window=name,
                        t_s=s.t_s - t0,
                    )
        if changed is not None:
            flags.append(changed)
        elif first is None:
            flags.append(
                ValidityFlag(
                    code=f"{attr}_unknown",
                    message=f"the phone does not report its {label} ({how} unavailable): "
                    "a change during the run cannot be seen — keep it steady yourself",
                    voids=False,
                )
            )
    return flags


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


_UNIT_UNDECIDED = ValidityFlag(
    code="unit_undecided",
    message="current_now's unit cannot be decided (µA or mA): its values fit both and the "
    "charge counter did not move enough; run longer or on a phone with a charge counter",
    voids=True,
)


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
    missing = _missing_counters(in_run)
    if missing is not None:
        return _empty_report([missing])

    flags, filled, interpolated = _gap_flags(raw_windows, [(a, b) for a, b, _ in spans], sample_period_s, origin)
    flags += _missing_read_flags(in_run, interpolated)
    flags += _supply_flags(raw_windows, in_run, origin)
    flags += _state_flags(raw_windows, origin)

    all_filled = [s for _, w in filled for s in w]
    conv = decide_conventions(all_filled, [w for _, w in filled])
    assert conv is not None
    if not conv.unit_decided and not any(f.code == "supply_online" for f in flags):
        flags.append(_UNIT_UNDECIDED)
    work_windows = [w for n, w in filled if n == "workload"]
    work = _sum_integrals([integrate(w, conv) for w in work_windows])
    flags += _workload_flags(work_windows, in_run, conv, low_battery_pct)
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
    flags += _counter_mismatch([w for _, w in filled], all_filled, conv)
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


def _missing_counters(in_run: Sequence[PowerSample]) -> ValidityFlag | None:
    """`counters_missing` when no sample carries a current or no sample carries a voltage."""
    has_current = any(s.current_raw is not None for s in in_run)
    has_voltage = any(s.voltage_uv is not None for s in in_run)
    if in_run and has_current and has_voltage:
        return None
    missing = [n for n, ok in (("current_now", has_current), ("voltage_now", has_voltage)) if not ok]
    return ValidityFlag(
        code="counters_missing",
        message=f"the device exposes no {' or '.join(missing) or 'samples'}: energy cannot be measured",
        voids=True,
    )


def _gap_flags(
    raw_windows: Sequence[tuple[str, list[PowerSample]]],
    bounds: Sequence[tuple[float, float]],
    sample_period_s: float,
    origin: float,
) -> tuple[list[ValidityFlag], list[tuple[str, list[PowerSample]]], int]:
    """`suspended` flags (a gap or a hole of empty reads too long, per window), the windows with
    empty reads interpolated, and how many reads were interpolated."""
    gap_limit = max(GAP_PERIODS * sample_period_s, GAP_FLOOR_S)
    flags: list[ValidityFlag] = []
    filled: list[tuple[str, list[PowerSample]]] = []
    interpolated = 0
    for (name, w), (start, end) in zip(raw_windows, bounds, strict=True):
        f = fill_missing(w)
        interpolated += f.empty
        filled.append((name, f.samples))
        gap, gap_at = _gap(w, start, end)
        hole, hole_at = (f.longest_hole_s, f.hole_at_s)
        if max(gap, hole) > gap_limit:
            at = gap_at if gap >= hole else hole_at
            flags.append(
                ValidityFlag(
                    code="suspended",
                    message=f"no usable reading for {max(gap, hole):.1f} s in the {name} "
                    f"at {(at or origin) - origin:.1f} s (limit {gap_limit:g} s): the phone suspended "
                    "or the sampler stalled; keep the screen on (see docs) and run again",
                    voids=True,
                    window=name,
                    t_s=(at or origin) - origin,
                )
            )
    return flags, filled, interpolated


def _missing_read_flags(in_run: Sequence[PowerSample], interpolated: int) -> list[ValidityFlag]:
    """`reads_missing` (voids) or `reads_interpolated` (warns). Per field, judged over every
    measured window together: a short baseline of a few samples would cross 10% on one or two
    unlucky empty reads."""
    worst = max(
        ((sum(1 for s in in_run if getattr(s, field) is None), field) for field in ("current_raw", "voltage_uv")),
    )
    if in_run and worst[0] / len(in_run) > MISSING_MAX_FRACTION:
        name = "current_now" if worst[1] == "current_raw" else "voltage_now"
        return [
            ValidityFlag(
                code="reads_missing",
                message=f"{worst[0]} of {len(in_run)} {name} reads in the baselines and the workload were "
                f"empty (> {MISSING_MAX_FRACTION:.0%}): the gauge cannot be trusted",
                voids=True,
            )
        ]
    if interpolated:
        return [
            ValidityFlag(
                code="reads_interpolated",
                message=f"{interpolated} empty current/voltage reads were interpolated from their neighbours",
                voids=False,
            )
        ]
    return []


def _supply_flags(
    raw_windows: Sequence[tuple[str, list[PowerSample]]], in_run: Sequence[PowerSample], origin: float
) -> list[ValidityFlag]:
    """An external supply online (the first one seen), whatever `status` says; or its state
    unknown; and `charging` when the battery said so."""
    flags: list[ValidityFlag] = []
    unknown_supply = True
    for name, w in raw_windows:
        for s in w:
            online = external_online(s)
            if online is None:
                continue
            unknown_supply = False
            if online:
                flags.append(
                    ValidityFlag(
                        code="supply_online",
                        message=f"{', '.join(online)} reported online in the {name} at {s.t_s - origin:.1f} s: "
                        "the phone ran (partly) from the cable, not the battery — use --detach and unplug",
                        voids=True,
                        window=name,
                        t_s=s.t_s - origin,
                    )
                )
                break
        if flags:
            break
    if unknown_supply:
        flags.append(
            ValidityFlag(
                code="supply_unknown",
                message="the phone reports no power-supply online state (sysfs or dumpsys): "
                "make sure no cable powers it",
                voids=False,
            )
        )
    if {s.status for s in in_run} & _CHARGING:
        flags.append(
            ValidityFlag(
                code="charging",
                message="the battery reported charging during the run: unplug USB power "
                "(dumpsys battery unplug only fakes it) and run again",
                voids=True,
            )
        )
    return flags


def _sum_integrals(parts: Sequence[Integral]) -> Integral:
    """The workload's segments as one integral (counter delta: the sum of those that have one)."""
    deltas = [p.counter_delta_uah for p in parts if p.counter_delta_uah is not None]
    return Integral(
        duration_s=sum(p.duration_s for p in parts),
        charge_uah=sum(p.charge_uah for p in parts),
        energy_uj=sum(p.energy_uj for p in parts),
        counter_delta_uah=sum(deltas) if deltas else None,
    )


def _workload_flags(
    work_windows: Sequence[Sequence[PowerSample]],
    in_run: Sequence[PowerSample],
    conv: Conventions,
    low_battery_pct: int,
) -> list[ValidityFlag]:
    """`current_near_zero` (the workload ran from a supply) and `low_battery`."""
    flags = []
    near = [s for w in work_windows for s in w if s.current_raw is not None]
    if near:
        zero = sum(1 for s in near if abs(conv.discharge_ua(s.current_raw or 0)) <= NEAR_ZERO_MA * 1000)
        if zero / len(near) > NEAR_ZERO_MAX_FRACTION:
            flags.append(
                ValidityFlag(
                    code="current_near_zero",
                    message=f"the battery current was within ±{NEAR_ZERO_MA:g} mA of zero in {zero / len(near):.0%} "
                    "of the workload: the phone ran from a supply, not the battery — unplug it (--detach)",
                    voids=True,
                    window="workload",
                )
            )
    first_level = next((s.level_pct for s in in_run if s.level_pct is not None), None)
    if first_level is not None and first_level < low_battery_pct:
        flags.append(
            ValidityFlag(
                code="low_battery",
                message=f"battery at {first_level}% (< {low_battery_pct}%): gauges and throttling behave differently",
                voids=False,
            )
        )
    return flags


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


def _counter_mismatch(
    windows: Sequence[Sequence[PowerSample]], all_filled: Sequence[PowerSample], conv: Conventions
) -> list[ValidityFlag]:
    """`counter_mismatch` when Δcharge_counter over every measured window (more steps than the
    workload alone) moved enough and disagrees with ∫current."""
    gross = sum(integrate(w, conv).charge_uah for w in windows)
    counter = _counter_delta(windows)
    step = counter_step_uah(all_filled)
    if not (counter and gross and step and abs(counter) >= COUNTER_MIN_STEPS * step):
        return []
    whole = counter / gross
    lo, hi = COUNTER_RATIO_RANGE
    if lo <= whole <= hi:
        return []
    return [
        ValidityFlag(
            code="counter_mismatch",
            message=f"Δcharge_counter ({counter / 1000:.2f} mAh over {abs(counter) / step:.0f} steps) "
            f"÷ ∫current ({gross / 1000:.2f} mAh) = {whole:.2f}, outside {lo}–{hi}: "
            "the gauge's current and counter disagree",
            voids=True,
        )
    ]
