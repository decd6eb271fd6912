"""The traps a real phone sets, as synthetic sample series of known truth (unit tests of
bench/gauge.py, validity.py and power.py).

Each series is shaped like a Pixel 9 Pro run: 4,700 mAh, ~3.9 V, an idle draw of 60 mA with
the screen on, a 300 s workload drawing 420 mA beyond idle (35 mAh, 0.745% of the design
capacity), and 120 s idle baselines before and after. The truth is computed here, from the
series' own definition, never by the code under test.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Sequence

import pytest

from edgekit.bench.gauge import PowerSample, decide_conventions
from edgekit.bench.power import PowerReport, analyse_segments
from edgekit.bench.validity import DRIFT_WARN_PCT
from tests.typed_results import run_meta

PERIOD_S = 0.25
BASE_S = 120.0
WORK_S = 300.0
IDLE_MA = 60.0
EXCESS_MA = 420.0
TRUTH_MAH = EXCESS_MA * WORK_S / 3600  # 35 mAh
W0, W1 = BASE_S, BASE_S + WORK_S
END = W1 + BASE_S


@dataclasses.dataclass
class Phone:
    """How the synthetic phone behaves; every knob is one trap."""

    seed: int = 0
    noise_ma: float = 8.0
    sign: int = -1  # BatteryManager: negative while discharging
    unit_ma: bool = False
    counter: bool = True
    counter_step_uah: int = 500
    counter_scale: float = 1.0  # a gauge whose counter disagrees with its current
    idle_extra_ma: Callable[[float], float] = lambda t: 0.0
    supply_ma: Callable[[float], float] = lambda t: 0.0  # what a cable supplies (status: Not charging)
    supplies: Callable[[float], str | None] = lambda t: "ac:Mains:0+usb:USB:0"
    screen: Callable[[float], str | None] = lambda t: "Awake"
    thermal: Callable[[float], int | None] = lambda t: 0
    empty_fraction: float = 0.0
    hole: tuple[float, float] | None = None  # no samples at all (suspend)
    idle_ma: float = IDLE_MA


def series(p: Phone) -> list[PowerSample]:
    rng = random.Random(p.seed)
    out = []
    charge_uah = 4_700_000 * 0.8
    n = int(END / PERIOD_S)
    for i in range(n + 1):
        t = i * PERIOD_S
        load = p.idle_ma + p.idle_extra_ma(t) + (EXCESS_MA if W0 <= t < W1 else 0.0)
        battery_ma = max(0.0, load - p.supply_ma(t))
        if i:
            charge_uah -= battery_ma * 1000 * PERIOD_S / 3600 * p.counter_scale
        if p.hole and p.hole[0] <= t < p.hole[1]:
            continue
        noisy = battery_ma + rng.gauss(0, p.noise_ma)
        raw: float | None = round(noisy * (1 if p.unit_ma else 1000) * p.sign)
        if rng.random() < p.empty_fraction:
            raw = None
        out.append(
            PowerSample(
                t_s=t,
                charge_counter_uah=int(charge_uah // p.counter_step_uah * p.counter_step_uah) if p.counter else None,
                current_raw=raw,
                voltage_uv=round((3.9 - battery_ma / 1000 * 0.1) * 1e6),
                level_pct=80,
                temperature_c=30.0,
                status=4 if p.supply_ma(t) > 0 else 3,
                supplies=p.supplies(t),
                screen=p.screen(t),
                thermal=p.thermal(t),
            )
        )
    return out


def analyse(p: Phone, *, after: bool = True) -> PowerReport:
    baselines = [(0.0, BASE_S)] + ([(W1, END)] if after else [])
    return analyse_segments(series(p), baselines=baselines, segments=[(W0, W1)], sample_period_s=PERIOD_S, t0=0.0)


def voids(r: PowerReport) -> set[str]:
    return {f.code for f in r.flags if f.voids}


def test_clean_run_is_within_half_a_percent_and_its_interval_holds_the_truth() -> None:
    r = analyse(Phone())
    assert voids(r) == set()
    assert r.workload_charge_mah == pytest.approx(TRUTH_MAH, rel=0.005)
    assert r.workload_charge_ci95_mah is not None
    lo, hi = r.workload_charge_ci95_mah
    assert lo < TRUTH_MAH < hi and hi - lo > 0
    assert r.baseline_current_ma == pytest.approx(IDLE_MA, rel=0.02)
    assert r.baseline_after_current_ma == pytest.approx(IDLE_MA, rel=0.02)
    assert r.conventions is not None and r.conventions.current_unit == "uA" and r.conventions.discharge_sign == -1


def test_usb_powered_not_charging_with_zero_current_is_void() -> None:
    r = analyse(Phone(supply_ma=lambda t: 1000.0, supplies=lambda t: "ac:Mains:0+usb:USB:1", noise_ma=3.0))
    assert {"supply_online", "current_near_zero"} <= voids(r)
    online = next(f for f in r.flags if f.code == "supply_online")
    assert online.window == "baseline before" and online.t_s == 0.0 and "usb (USB)" in online.message


def test_usb_supplying_450_ma_from_mid_workload_is_void_and_says_when() -> None:
    mid = (W0 + W1) / 2
    r = analyse(
        Phone(
            supply_ma=lambda t: 450.0 if t >= mid else 0.0,
            supplies=lambda t: f"usb:USB:{int(t >= mid)}",
        )
    )
    assert "supply_online" in voids(r)
    flag = next(f for f in r.flags if f.code == "supply_online")
    assert flag.window == "workload" and flag.t_s == pytest.approx(mid)


@pytest.mark.parametrize("seed", range(12))
def test_current_near_zero_without_a_readable_supply_is_void(seed: int) -> None:
    r = analyse(Phone(seed=seed, supply_ma=lambda t: 5000.0, supplies=lambda t: None, noise_ma=3.0, counter=False))
    assert "current_near_zero" in voids(r)
    assert "supply_unknown" in {f.code for f in r.flags}


def test_five_percent_empty_reads_are_interpolated_not_void() -> None:
    r = analyse(Phone(empty_fraction=0.05, seed=3))
    assert voids(r) == set()
    assert r.reads_interpolated > 0
    assert "reads_interpolated" in {f.code for f in r.flags}
    assert r.workload_charge_mah == pytest.approx(TRUTH_MAH, rel=0.02)


def test_twenty_percent_empty_reads_void() -> None:
    r = analyse(Phone(empty_fraction=0.2, seed=3))
    assert "reads_missing" in voids(r)


def test_a_60_s_hole_mid_workload_is_a_suspend_and_voids() -> None:
    r = analyse(Phone(hole=(200.0, 260.0)))
    flag = next(f for f in r.flags if f.code == "suspended")
    assert flag.voids and flag.window == "workload" and flag.t_s == pytest.approx(199.75)


def test_a_gap_shorter_than_ten_periods_is_fine() -> None:
    r = analyse(Phone(hole=(200.0, 200.5)))
    assert voids(r) == set()


def _fill_reference(samples: list[PowerSample]) -> tuple[list[PowerSample], int, float, float | None]:
    """What fill_missing does, spelled out read by read (the neighbours found by scanning):
    (samples, empty reads, longest hole, where it is)."""
    out = list(samples)
    holes: list[tuple[float, float]] = []  # (span, t_s) of every empty read, in fill order
    for field in ("current_raw", "voltage_uv"):
        values = [getattr(s, field) for s in samples]
        if all(v is None for v in values):
            continue  # nothing to fill from: left empty, not counted
        for i, s in enumerate(samples):
            if values[i] is not None:
                continue
            before = next((j for j in range(i - 1, -1, -1) if values[j] is not None), None)
            after = next((j for j in range(i + 1, len(samples)) if values[j] is not None), None)
            if before is not None and after is not None:
                (ta, va), (tb, vb) = (samples[before].t_s, values[before]), (samples[after].t_s, values[after])
                value = va + (vb - va) * (s.t_s - ta) / (tb - ta) if tb > ta else va
                span = tb - ta
            else:
                edge = before if before is not None else after
                assert edge is not None
                value, span = values[edge], abs(samples[edge].t_s - s.t_s)
            holes.append((span, s.t_s))
            out[i] = dataclasses.replace(out[i], **{field: value})
    longest = max((span for span, _ in holes), default=0.0)
    at = next(t for span, t in holes if span == longest) if longest > 0 else None
    return out, len(holes), longest, at


@pytest.mark.parametrize("seed", range(40))
def test_fill_missing_is_the_plain_reference_on_random_gaps(seed: int) -> None:
    from edgekit.bench.gauge import fill_missing

    rng = random.Random(seed)
    n = rng.randint(1, 60)
    t, times = 0.0, []
    for _ in range(n):
        times.append(t)
        t += rng.choice([0.0, 0.25, 0.25, 0.25, 0.5, 3.0])  # repeated stamps, periods, gaps

    def reads(empty: float, edges: bool) -> list[int | None]:
        out: list[int | None] = [None if rng.random() < empty else rng.randint(-500_000, 500_000) for _ in range(n)]
        if edges:  # runs of empty reads at the start and at the end
            for i in range(rng.randint(1, 5)):
                out[min(i, n - 1)] = None
                out[max(n - 1 - i, 0)] = None
        return out

    current = reads(rng.choice([0.0, 0.1, 0.4, 1.0]), edges=rng.random() < 0.7)
    voltage = reads(rng.choice([0.0, 0.1, 0.4]), edges=rng.random() < 0.7)
    samples = [
        PowerSample(
            t_s=t_s,
            charge_counter_uah=None,
            current_raw=c,
            voltage_uv=v,
            level_pct=80,
            temperature_c=30.0,
            status=3,
        )
        for t_s, c, v in zip(times, current, voltage, strict=True)
    ]
    filled = fill_missing(samples)
    want, empty, longest, at = _fill_reference(samples)
    assert filled.samples == want  # the same values, bit for bit, and the other fields untouched
    assert (filled.empty, filled.longest_hole_s, filled.hole_at_s) == (empty, longest, at)
    assert filled.reads == 2 * n


def test_background_rising_10_ma_at_the_workload_is_within_2_percent() -> None:
    # Truth: the workload's own cost, beyond whatever the idle draw was at the time.
    # The bracketing subtracts the idle draw interpolated between the baselines' midpoints: 65 mA
    # on average over the workload, where it was 70 mA, so half the step is counted as work.
    half_step_mah = 10 * WORK_S / 3600 / 2
    r = analyse(Phone(idle_extra_ma=lambda t: 10.0 if t >= W0 else 0.0))
    assert r.workload_charge_mah == pytest.approx(TRUTH_MAH + half_step_mah, rel=0.005)
    assert r.workload_charge_mah == pytest.approx(TRUTH_MAH, rel=0.02)
    assert r.baseline_drift_ma == pytest.approx(10, abs=1.5)
    # How far the drift could move the figure (half of it over the workload) is that half step,
    # 1.2% of the figure: under the 2% at which drift warns, so no flag.
    bound_pct = 100 * half_step_mah / (TRUTH_MAH + half_step_mah)
    assert r.drift_bound_pct == pytest.approx(bound_pct, rel=0.1) and bound_pct < DRIFT_WARN_PCT
    assert "baseline_drift" not in {f.code for f in r.flags}


def test_linear_idle_drift_is_removed_by_bracketing() -> None:
    drift = lambda t: 20.0 * t / END  # noqa: E731 - 20 mA over the run
    r = analyse(Phone(idle_extra_ma=drift))
    assert r.workload_charge_mah == pytest.approx(TRUTH_MAH, rel=0.01)
    one = analyse(Phone(idle_extra_ma=drift), after=False)
    assert abs(one.workload_charge_mah - TRUTH_MAH) > abs(r.workload_charge_mah - TRUTH_MAH)  # type: ignore[operator]
    assert "baseline_not_bracketed" in {f.code for f in one.flags}


def test_large_drift_voids() -> None:
    r = analyse(Phone(idle_extra_ma=lambda t: 150.0 if t >= W0 else 0.0))
    assert "baseline_drift" in voids(r)


def test_screen_off_tail_in_the_first_baseline_is_within_2_percent() -> None:
    r = analyse(Phone(idle_extra_ma=lambda t: 25.0 * math.exp(-t / 20.0)))
    assert r.workload_charge_mah == pytest.approx(TRUTH_MAH, rel=0.02)


@pytest.mark.parametrize("at", [30.0, 200.0])
def test_a_10_s_screen_change_inside_baseline_or_workload_voids(at: float) -> None:
    r = analyse(Phone(screen=lambda t: "Asleep" if at <= t < at + 10 else "Awake"))
    flag = next(f for f in r.flags if f.code == "screen_changed")
    assert flag.voids and flag.t_s == pytest.approx(at)
    assert flag.window == ("baseline before" if at < W0 else "workload")


def test_thermal_change_voids() -> None:
    r = analyse(Phone(thermal=lambda t: 2 if t > 250 else 0))
    assert "thermal_changed" in voids(r)


def test_unknown_screen_and_thermal_warn_and_never_void() -> None:
    r = analyse(Phone(screen=lambda t: None, thermal=lambda t: None, supplies=lambda t: None))
    assert voids(r) == set()
    assert {"screen_unknown", "thermal_unknown", "supply_unknown"} <= {f.code for f in r.flags}
    assert r.workload_charge_mah == pytest.approx(TRUTH_MAH, rel=0.01)


def test_ma_unit_is_decided_by_the_counter() -> None:
    r = analyse(Phone(unit_ma=True, idle_ma=5.0))
    assert voids(r) == set()
    assert r.conventions is not None and r.conventions.current_unit == "mA"
    assert r.workload_charge_mah == pytest.approx(TRUTH_MAH, rel=0.02)


def test_no_counter_and_a_5_ma_idle_in_ua_is_decided_by_the_workload() -> None:
    r = analyse(Phone(counter=False, idle_ma=5.0, noise_ma=1.0))
    assert r.conventions is not None and r.conventions.current_unit == "uA"
    assert r.workload_charge_mah == pytest.approx(TRUTH_MAH, rel=0.02)


def test_unit_that_nothing_can_decide_voids() -> None:
    # 5 mA idle, 8 mA busy, reported in µA: 5000 and 8000 are 5 A and 8 A as mA; no counter.
    samples = [
        PowerSample(
            t_s=i * 0.25,
            charge_counter_uah=None,
            current_raw=-(5000 if i < 400 else 8000),
            voltage_uv=3_900_000,
            level_pct=80,
            temperature_c=30.0,
            status=3,
        )
        for i in range(800)
    ]
    conv = decide_conventions(samples)
    assert conv is not None and not conv.unit_decided
    r = analyse_segments(samples, baselines=[(0, 99.75)], segments=[(100, 199.75)], sample_period_s=0.25)
    assert "unit_undecided" in voids(r)


def test_counter_disagreeing_with_current_voids_only_when_it_moved_enough() -> None:
    r = analyse(Phone(counter_scale=1.5))
    assert "counter_mismatch" in voids(r)
    coarse = analyse(Phone(counter_scale=1.5, counter_step_uah=20_000))  # ~3 steps: no judgement
    assert "counter_mismatch" not in voids(coarse)


def test_net_drain_not_positive_voids() -> None:
    r = analyse(Phone(supply_ma=lambda t: 450.0 if W0 <= t < W1 else 0.0, supplies=lambda t: None))
    assert voids(r) == {"no_net_drain"}  # 30 mA from the battery while busy: less than idle


# Two-sided 95% Student t, from printed tables (e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2).
@pytest.mark.parametrize(
    ("dof", "t"),
    [
        (1, 12.706),
        (2, 4.303),
        (3, 3.182),
        (5, 2.571),
        (10, 2.228),
        (11, 2.201),
        (15, 2.131),
        (20, 2.086),
        (29, 2.045),
        (30, 2.042),
        (60, 2.000),
        (100, 1.984),
    ],
)
def test_student_t_for_every_dof(dof: int, t: float) -> None:
    from edgekit.bench.stats import t_quantile

    assert t_quantile(0.95, dof) == pytest.approx(t, abs=0.0015)


def test_samples_csv_with_supplies_screen_and_thermal() -> None:
    from edgekit.bench.gauge import external_online
    from edgekit.bench.run_folder import parse_samples

    text = (
        "1000,3600000,-250000,3900000,80,300,Discharging,ac:Mains:0+battery:Battery:1+usb:USB:0,Awake,0\n"
        "1250,3600000,,3900000,80,300,Not charging,ac:Mains:0+usb:USB:1,Asleep,2\n"
        "1500,3600000,-250000,3900000,80,300,Discharging,,,\n"
        "1750,3600000,-250000,3900000,80,300,Discharging\n"  # a run from before these fields
        "2000,3600000,-1,3900000,80,300,Discharging,dumpsys-AC::0+dumpsys-USB::1,,\n"
    )
    s = parse_samples(text)
    assert [x.t_s for x in s] == [1.0, 1.25, 1.5, 1.75, 2.0]
    assert (s[0].screen, s[0].thermal, s[1].screen, s[1].thermal) == ("Awake", 0, "Asleep", 2)
    assert s[1].current_raw is None and s[1].status == 4
    assert external_online(s[0]) == []  # the battery's own `online` is not a supply
    assert external_online(s[1]) == ["usb (USB)"]
    assert external_online(s[2]) is None and external_online(s[3]) is None  # unknown, not "none"
    assert external_online(s[4]) == ["dumpsys-USB"]


@pytest.mark.parametrize(
    ("props", "emulator"),
    [
        ({"ro.kernel.qemu": "1"}, "Android Emulator (ro.kernel.qemu=1)"),
        ({"ro.boot.qemu": "1"}, "Android Emulator (ro.boot.qemu=1)"),
        ({"ro.hardware": "ranchu"}, "Android Emulator (ro.hardware=ranchu)"),
        ({"ro.hardware": "goldfish"}, "Android Emulator (ro.hardware=goldfish)"),
        ({"ro.edgekit.emulated": "1"}, "edgekit device emulator"),
        ({"ro.hardware": "tensor", "ro.kernel.qemu": "0"}, None),
    ],
)
def test_android_emulator_is_detected_from_its_props(props: dict[str, str], emulator: str | None) -> None:
    from pathlib import Path

    from edgekit.device.base import Device, ShellResult

    class Fake(Device):
        serial = "s"

        def shell(self, argv: Sequence[str], *, timeout_s: float = 60.0, check: bool = True) -> ShellResult:
            if list(argv) == ["getprop"]:
                return ShellResult(0, "".join(f"[{k}]: [{v}]\n" for k, v in props.items()), "")
            return ShellResult(1, "", "not here")

        def push(self, local: Path, remote: str, *, progress=None) -> None:  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def pull(self, remote: str, local: Path) -> None:
            raise NotImplementedError

    facts = Fake().facts()
    assert facts.emulator == emulator and facts.emulated == (emulator is not None)


def test_resume_after_a_recharge_or_a_reboot_is_said_in_words() -> None:
    from edgekit.bench.assembly import _between_parts, _windows
    from edgekit.bench.run_folder import Event, RunFiles, parse_events

    def sample(t: float, level: int) -> PowerSample:
        return PowerSample(
            t_s=t,
            charge_counter_uah=None,
            current_raw=-300_000,
            voltage_uv=3_900_000,
            level_pct=level,
            temperature_c=30.0,
            status=3,
        )

    # events.csv as driver.sh writes it: t_ms,event,conversation,turn
    events = parse_events(
        "0,driver_start,boot-a,0\n0,baseline_start,0,0\n10000,baseline_end,0,0\n10000,workload_start,0,0\n"
        "20000,turn_end,0001,1\n"  # killed here; recharged; resumed on the same boot
        "100000,driver_start,boot-a,0\n100000,workload_start,0,0\n110000,workload_end,0,0\n"
    )
    samples = [sample(t, 40) for t in range(0, 21)] + [sample(t, 85) for t in range(100, 111)]
    files = RunFiles(
        meta=run_meta(), events=events, samples=samples, outputs={}, errors={}, crash_logs={}, done=set(), status="done"
    )
    baselines, segments = _windows(events)
    assert baselines == [(0.0, 10.0)] and segments == [(10.0, 20.0), (100.0, 110.0)]
    [flag] = _between_parts(files, segments, 0.0)
    assert flag.code == "recharged_between_parts" and not flag.voids
    assert "recharged between the parts" in flag.message and "40% when it stopped, 85%" in flag.message
    # The sign is decided inside the windows: the recharge between them does not flip it.
    report = analyse_segments(samples, baselines=baselines, segments=segments, sample_period_s=1.0)
    assert report.conventions is not None and report.conventions.discharge_sign == -1
    assert "charging" not in {f.code for f in report.flags}

    rebooted = [*events[:5], Event(t_s=100.0, name="driver_start", conversation="boot-b", turn=0), *events[6:]]
    flags = _between_parts(dataclasses.replace(files, events=rebooted), segments, 0.0)
    assert [f.code for f in flags if f.voids] == ["rebooted"]
    assert "rebooted between the parts" in flags[0].message


def test_an_interval_contains_its_headline_when_a_loaded_host_slows_the_sampler() -> None:
    """Issue 17 #11: a concurrent run keeps the host (and the phone) busy part of the time; then
    the current is higher and the sampler reads 4x less often. The headline's idle rate is
    time-weighted (∫I dt ÷ t); an interval from the plain mean of the reads sat wholly above it."""
    rng = random.Random(1)
    idle_ma, busy_ma, work_ma = 150.0, 200.0, 570.0

    def reads(start: float, end: float, busy_every_other_10_s: bool) -> list[PowerSample]:
        out, t = [], start
        while t <= end:
            busy = busy_every_other_10_s and int(t // 10) % 2 == 1
            ma = (busy_ma if busy else idle_ma) if busy_every_other_10_s else work_ma
            out.append(
                PowerSample(
                    t_s=t,
                    charge_counter_uah=None,
                    current_raw=-round((ma + rng.gauss(0, 3)) * 1000),
                    voltage_uv=3_900_000,
                    level_pct=80,
                    temperature_c=30.0,
                    status=3,
                    supplies="usb:USB:0",
                    screen="Awake",
                    thermal=0,
                )
            )
            t += 1.0 if busy else 0.25
        return out

    samples = reads(0, 120, True) + reads(120.25, 420, False) + reads(420.25, 540, True)
    r = analyse_segments(samples, baselines=[(0, 120), (420.25, 540)], segments=[(120, 420)], sample_period_s=0.25)
    # The truth, from the series' definition: the idle draw is busy half the time, 175 mA.
    truth = (work_ma - (idle_ma + busy_ma) / 2) * 300 / 3600
    assert r.workload_charge_mah is not None and r.workload_charge_ci95_mah is not None
    assert r.workload_charge_mah == pytest.approx(truth, rel=0.005)
    lo, hi = r.workload_charge_ci95_mah
    assert lo <= r.workload_charge_mah <= hi
    assert lo < truth < hi
    assert r.interval_basis is not None and "time-weighted" in r.interval_basis and "outside" not in r.interval_basis


def test_a_headline_outside_its_interval_is_said() -> None:
    from edgekit.bench.gauge import Conventions
    from edgekit.bench.power import _bootstrap
    from edgekit.bench.result import Summary, figure
    from tests.typed_results import schema1_result

    conv = Conventions(discharge_sign=1, current_unit="uA", basis="test")
    idle = [
        PowerSample(
            t_s=t * 0.25,
            charge_counter_uah=None,
            current_raw=100_000 + (t % 3) * 1000,
            voltage_uv=3_900_000,
            level_pct=80,
            temperature_c=30.0,
            status=3,
        )
        for t in range(200)
    ]
    (lo, hi), basis = _bootstrap([idle], conv, [25.0], [(50.0, 100.0)], 5000.0, 1.0, 0.25)  # type: ignore[misc]
    assert lo > 1.0 and "lies outside its interval" in basis
    summary = Summary(workload_charge_mah=1.0, workload_charge_mah_ci95=(lo / 1000, hi / 1000))
    result = dataclasses.replace(schema1_result(), summary=summary, aggregate=None)
    assert "lies outside it" in figure(result, "workload_charge_mah").basis
