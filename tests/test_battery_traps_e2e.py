"""The emulated battery's real-phone traps, end to end (deploy, driver, sampler, collect).

Each test sets one trap on `edgekit.testing`'s battery and checks that the run is void
(exit code 6, a flag naming the cause) or that its figure is within 2% of the simulated
truth, which the battery integrates from its own load model, independently of edgekit.

No test here depends on how fast this computer is: waits are on events the phone side
writes. The 2% comes with an allowance for a sampler that a busy host makes read late at the
load steps, up to a fixed budget each run is checked against (tests/battery_truth.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.bench import run_folder, session
from edgekit.bench.result import BenchResult
from edgekit.bench.validity import DRIFT_VOID_PCT, MISSING_MAX_FRACTION
from edgekit.convert import ConvertResult
from edgekit.device.direct import DirectAdbDevice
from edgekit.testing.plugin import EmulatedDevice
from tests.battery_truth import assert_near_truth
from tests.conftest import run_cli, small_workload, wait_for

pytestmark = pytest.mark.slow


def _config(emulated: EmulatedDevice, tmp_path: Path, **kw: object) -> session.BenchConfig:
    emulated.emulator.tick_s = 0.02
    # Long busy spans: a host that stalls the sampler at a load step costs less of the figure.
    emulated.emulator.extra_env["EDGEKIT_STANDIN_TURN_S"] = "1.5"
    args: dict[str, object] = {
        "workload": small_workload(tmp_path, 2),
        "runner": emulated.runner,
        "sample_period_s": 0.05,
        "baseline_s": 2.0,
        "poll_s": 0.2,
        "threads": 1,
        "state_s": 0.25,
        "settle_s": 0.5,
    }
    args.update(kw)
    return session.BenchConfig(**args)  # type: ignore[arg-type]


def _run(device: DirectAdbDevice, art: Path, config: session.BenchConfig, detach: bool = False) -> BenchResult:
    run_id = session.start_run(device, art, config, detach=detach)
    session.follow(device, run_id, config)
    return session.collect(device, run_id)


def _voids(result: BenchResult) -> set[str]:
    return {f.code for f in result.validity if f.voids}


def _event_time(emulated: EmulatedDevice, name: str) -> float | None:
    """Device-clock time of the first `name` event of the (only) run, if it was written yet."""
    for events in emulated.sandbox.rglob("events.csv"):
        for line in events.read_text().splitlines():
            parts = line.split(",")
            if len(parts) == 4 and parts[1] == name:
                return int(parts[0]) / 1000
    return None


def _wait_for_event(emulated: EmulatedDevice, name: str) -> float:
    """Device-clock time of the first `name` event of the (only) run, once it is written."""
    return wait_for(lambda: _event_time(emulated, name), what=f"the run's {name} event")


def _measured_windows(emulated: EmulatedDevice) -> list[tuple[float, float]]:
    """Device-clock (start, end) of the (only) run's baseline, workload and baseline after."""
    windows = []
    for name in ("baseline", "workload", "baseline_after"):
        a, b = _event_time(emulated, f"{name}_start"), _event_time(emulated, f"{name}_end")
        assert a is not None and b is not None, f"the run wrote no {name}_start or {name}_end event"
        windows.append((a, b))
    return windows


def _read(emulated: EmulatedDevice, name: str) -> str | None:
    """The (only) run folder's file `name`, if it is there and not empty."""
    for path in emulated.sandbox.rglob(f"runs/*/{name}"):
        text = path.read_text().strip()
        return text or None
    return None


def _sampler_saw_screen(emulated: EmulatedDevice, state: str) -> bool:
    """True once the run's sampler recorded a sample with the screen `state`."""
    samples = _read(emulated, "samples.csv") or ""
    return any(line.split(",")[8:9] == [state] for line in samples.splitlines())


def _children(pid: int, name: str) -> set[int]:
    """This computer's processes named `name` whose parent is `pid` (from /proc/PID/stat)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        comm, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if comm == name and int(rest[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def test_clean_run_is_valid_and_within_2_percent_of_the_truth(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    battery = emulated_device.battery
    battery.reset_truth()
    config = _config(emulated_device, tmp_path)
    result = _run(device, int4_result.artifact.path, config)
    truth = battery.truth()
    assert result.exit_code() == 0, result.validity
    assert_near_truth(result, truth, config, battery, rel=0.02)
    lo, hi = result.summary.battery_pct_ci95
    assert lo < result.summary.battery_pct_per_25_conversations < hi
    # Both capacities: design is the headline; charge_full (90% health here) gives the larger %.
    assert result.summary.battery_pct_of_full_charge_per_25_conversations == pytest.approx(
        result.summary.battery_pct_per_25_conversations / 0.9
    )
    assert result.power.baseline_after_current_ma is not None
    # The sampler recorded supplies, screen and thermal state with every sample.
    last = result.samples[-1]
    assert last.supplies == "ac:Mains:0+usb:USB:0" and last.screen == "Awake" and last.thermal == 0


def test_usb_powered_not_charging_is_void(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    emulated_device.battery.supply_ma = 2000.0  # runs the phone; the gauge says "Not charging"
    emulated_device.battery.noise_ma = 3.0
    result = _run(device, int4_result.artifact.path, _config(emulated_device, tmp_path))
    assert {"supply_online", "current_near_zero"} <= _voids(result)
    assert result.summary.battery_pct_per_25_conversations is None
    assert result.summary.decode_tokens_per_s is not None
    assert result.exit_code() == 6


def test_five_percent_empty_reads_are_not_void_and_within_3_percent(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    battery = emulated_device.battery
    battery.empty_read_fraction = 0.05
    battery.reset_truth()
    config = _config(emulated_device, tmp_path)
    result = _run(device, int4_result.artifact.path, config)
    truth = battery.truth()
    # The emulator drops 5% of what it publishes; a host that stalls its publisher shows one
    # empty value to several reads, so the rule (more than 10% of a field's reads empty in the
    # baselines and the workload together voids) is judged on what the sampler read there.
    in_run = [s for a, b in _measured_windows(emulated_device) for s in result.samples if a <= s.t_s <= b]
    empty = {k: sum(1 for s in in_run if getattr(s, k) is None) for k in ("current_raw", "voltage_uv")}
    assert result.power.reads_interpolated == sum(empty.values()) > 0
    worst = max(empty.values())
    if worst / len(in_run) <= MISSING_MAX_FRACTION:
        assert _voids(result) == set(), result.validity
        assert result.exit_code() == 0
        assert_near_truth(result, truth, config, battery, rel=0.03)
    else:  # void for that and nothing else, and the record says how many
        assert _voids(result) == {"reads_missing"}, result.validity
        assert result.exit_code() == 6
        [flag] = [f for f in result.validity if f.code == "reads_missing"]
        assert f"{worst} of {len(in_run)} " in flag.message, flag.message
        assert result.summary.workload_charge_mah is None


def test_suspend_mid_workload_voids(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    config = _config(emulated_device, tmp_path)
    run_id = session.start_run(device, int4_result.artifact.path, config)
    _wait_for_event(emulated_device, "workload_start")
    assert emulated_device.emulator.suspend(3.0)
    session.follow(device, run_id, config)
    result = session.collect(device, run_id)
    flag = next(f for f in result.validity if f.code == "suspended")
    assert flag.voids and flag.window == "workload"
    assert result.exit_code() == 6


def test_idle_drift_is_bracketed_within_2_percent(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    battery = emulated_device.battery
    battery.idle_drift_ma_per_s = 2.0  # +2 mA every second: background work ramping up
    battery.reset_truth()
    config = _config(emulated_device, tmp_path)
    result = _run(device, int4_result.artifact.path, config)
    truth = battery.truth()
    # The drift is what the battery applied between the baselines' midpoints (give or take their
    # noise: 8 mA on some 40 reads each, 1.8 mA on the difference); the bound on what it could
    # do to the figure is half of it over the workload, over the true net charge.
    (b0, b1), (w0, w1), (a0, a1) = _measured_windows(emulated_device)
    drift_ma = battery.idle_drift_ma_per_s * ((a0 + a1) / 2 - (b0 + b1) / 2)
    assert result.power.baseline_drift_ma == pytest.approx(drift_ma, abs=8.0)
    bound_pct = result.power.baseline_drift_ma / 2 * (w1 - w0) / 3600 / (truth["excess_charge_uah"] / 1000) * 100
    assert result.power.drift_bound_pct == pytest.approx(bound_pct, rel=0.1)
    if result.power.drift_bound_pct <= DRIFT_VOID_PCT:
        assert _voids(result) == set(), result.validity
        assert result.exit_code() == 0
        assert_near_truth(result, truth, config, battery, rel=0.02)
    else:  # a host slow between the conversations stretched the workload: void for that alone
        assert _voids(result) == {"baseline_drift"}, result.validity
        assert result.exit_code() == 6
        [flag] = [f for f in result.validity if f.code == "baseline_drift"]
        assert f"by up to {result.power.drift_bound_pct:.1f}%" in flag.message, flag.message
        assert result.summary.workload_charge_mah is None


def test_screen_going_off_inside_the_baseline_voids(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    emulated_device.battery.screen_ma = 80.0
    config = _config(emulated_device, tmp_path)
    run_id = session.start_run(device, int4_result.artifact.path, config)
    wakefulness = emulated_device.sandbox / ".emulator" / "wakefulness"
    assert wakefulness.read_text().strip() == "Awake"  # kept on for the run
    _wait_for_event(emulated_device, "baseline_start")
    wakefulness.write_text("Asleep\n")  # the user pressed power
    wait_for(lambda: _sampler_saw_screen(emulated_device, "Asleep"), what="the sampler to record the screen off")
    wakefulness.write_text("Awake\n")
    session.follow(device, run_id, config)
    result = session.collect(device, run_id)
    flag = next(f for f in result.validity if f.code == "screen_changed")
    assert flag.voids and flag.window == "baseline before"


def test_current_in_ma_is_decided_and_within_2_percent(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    battery = emulated_device.battery
    battery.report_ma = True
    battery.noise_ma = 1.0
    battery.counter_step_uah = 100
    battery.reset_truth()
    config = _config(emulated_device, tmp_path)
    result = _run(device, int4_result.artifact.path, config)
    truth = battery.truth()
    assert result.power.conventions.current_unit == "mA"
    assert _voids(result) == set(), result.validity
    assert_near_truth(result, truth, config, battery, rel=0.02)


def test_detach_waits_for_the_unplug_then_settles(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    battery = emulated_device.battery
    battery.supply_ma = 2000.0  # plugged in at the start
    config = _config(emulated_device, tmp_path)
    run_id = session.start_run(device, int4_result.artifact.path, config, detach=True)
    _wait_for_event(emulated_device, "unplug_wait")
    # The driver looks at the supplies, then sleeps a second (android_harness/driver.sh): two
    # of its `sleep`s seen = it found the cable in at least twice and kept waiting.
    driver_pid = int(wait_for(lambda: _read(emulated_device, "driver.pid"), what="the driver's pid"))
    naps: set[int] = set()

    def two_naps() -> bool:
        naps.update(_children(driver_pid, "sleep"))
        return len(naps) >= 2

    wait_for(two_naps, what="the driver to check the supplies twice")
    paths = run_folder.run_paths(device, run_id, "")
    assert "baseline_start" not in device.shell(["cat", f"{paths.run_dir}/events.csv"]).stdout  # still waiting
    battery.reset_truth()
    battery.supply_ma = 0.0  # unplugged
    session.follow(device, run_id, config)
    result = session.collect(device, run_id)
    truth = battery.truth()
    assert result.exit_code() == 0, result.validity
    events = run_folder.read_files(device, paths).events
    names = [e.name for e in events]
    assert names.index("unplugged") < names.index("settled") < names.index("baseline_start")
    t = {e.name: e.t_s for e in events}
    assert t["settled"] - t["unplugged"] >= config.settle_s - 0.05
    assert_near_truth(result, truth, config, battery, rel=0.02)


def test_android_emulator_is_simulated_and_cli_exits_6_on_usb(
    emulated_device: EmulatedDevice, int4_result: ConvertResult, tmp_path: Path, adb_home: Path
) -> None:
    emu = emulated_device.emulator
    emu.props.pop("ro.edgekit.emulated")
    emu.props.update({"ro.kernel.qemu": "1", "ro.hardware": "ranchu"})
    emu.write_props()
    emulated_device.battery.supply_ma = 2000.0
    out = tmp_path / "r.json"
    proc = run_cli(
        "battery-bench",
        "--transport",
        "direct",
        "--device",
        emulated_device.serial,
        "--runner",
        str(emulated_device.runner),
        "--workload",
        str(small_workload(tmp_path, 1)),
        "--sample-ms",
        "50",
        "--baseline-s",
        "1",
        "-o",
        str(out),
        str(int4_result.artifact.path),
        env={"ANDROID_USER_HOME": str(adb_home / ".android")},
    )
    assert proc.returncode == 6, proc.stderr
    result = BenchResult.load(out)
    assert result.simulated and result.device.emulator == "Android Emulator (ro.kernel.qemu=1)"
    assert "SIMULATED: Android Emulator (ro.kernel.qemu=1)" in proc.stdout
    assert "battery: VOID — [supply_online]" in proc.stdout
    assert "use --detach" in proc.stderr  # said before the run starts
    assert result.summary.battery_pct_per_25_conversations is None
