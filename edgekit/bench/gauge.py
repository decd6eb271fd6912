"""What a phone's fuel gauge reports, read: samples, their conventions, integrals. Pure functions.

Fuel gauges disagree on conventions, so they are decided from the data and recorded:

* sign: BatteryManager documents `current_now` positive = into the battery; several vendors
  report the opposite. We decide which way is "discharge" from the direction
  `charge_counter` moves inside the measured windows, else from `status`, never from the
  sign alone;
* unit: `current_now` is µA by the sysfs ABI (include/linux/power_supply.h: "All voltages,
  currents, charges ... in uV, µA, µAh"), but some vendors report mA. A running phone draws
  between 1 mA and 10 A, so raw values below 1000 can only be mA and above 10000 only µA;
  in between, only a charge counter that moved can tell, and without one the run is void.

Charge is integrated from I (trapezoid), energy from V·I; Δ`charge_counter` (which real
gauges update in coarse steps) is a check, not the figure (edgekit.bench.validity).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
from collections.abc import Callable, Sequence

from edgekit.device.parsers import STATUS_CHARGING, STATUS_FULL

CHARGING_STATUSES = {STATUS_CHARGING, STATUS_FULL}
_MA_BELOW_RAW = 1000  # |raw| below this: mA (µA would be under 1 mA: no running phone)
_UA_ABOVE_RAW = 10000  # |raw| above this: µA (mA would be over 10 A: no phone)
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


def counter_delta(windows: Sequence[Sequence[PowerSample]]) -> float | None:
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
    delta = counter_delta(parts)
    step = counter_step_uah(samples)
    counter_moved = delta is not None and delta != 0
    if counter_moved:
        assert delta is not None
        draining = delta > 0
        basis = f"charge_counter {'fell' if draining else 'rose'} by {abs(delta):.0f} µAh"
    else:
        statuses = [s.status for s in samples if s.status is not None]
        charging_votes = sum(1 for st in statuses if st in CHARGING_STATUSES)
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
