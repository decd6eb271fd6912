"""The validity rules of a battery run: each reads the samples of the measured windows and
returns the flags it raises (a flag that voids: no headline figure). Pure functions.

The rules are judged from every sample in the baseline and workload windows; a state the
phone cannot report is "unknown": it warns, never voids. edgekit.bench.power applies them
(`analyse_segments`); docs/battery-bench.md lists them and their thresholds, here.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

from edgekit.bench.gauge import (
    CHARGING_STATUSES,
    Conventions,
    PowerSample,
    counter_delta,
    counter_step_uah,
    external_online,
    fill_missing,
    integrate,
)

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


def state_flags(named: list[tuple[str, list[PowerSample]]], t0: float) -> list[ValidityFlag]:
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


UNIT_UNDECIDED = ValidityFlag(
    code="unit_undecided",
    message="current_now's unit cannot be decided (µA or mA): its values fit both and the "
    "charge counter did not move enough; run longer or on a phone with a charge counter",
    voids=True,
)


def missing_counters(in_run: Sequence[PowerSample]) -> ValidityFlag | None:
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


def gap_flags(
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


def missing_read_flags(in_run: Sequence[PowerSample], interpolated: int) -> list[ValidityFlag]:
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


def supply_flags(
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
    if {s.status for s in in_run} & CHARGING_STATUSES:
        flags.append(
            ValidityFlag(
                code="charging",
                message="the battery reported charging during the run: unplug USB power "
                "(dumpsys battery unplug only fakes it) and run again",
                voids=True,
            )
        )
    return flags


def workload_flags(
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


def counter_mismatch(
    windows: Sequence[Sequence[PowerSample]], all_filled: Sequence[PowerSample], conv: Conventions
) -> list[ValidityFlag]:
    """`counter_mismatch` when Δcharge_counter over every measured window (more steps than the
    workload alone) moved enough and disagrees with ∫current."""
    gross = sum(integrate(w, conv).charge_uah for w in windows)
    counter = counter_delta(windows)
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
