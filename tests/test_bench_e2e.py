"""battery-bench end to end on the ADB device emulator (simulated battery) and on `local`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from edgekit.bench import run_folder, session
from edgekit.bench.result import BenchResult
from edgekit.convert import ConvertResult
from edgekit.device.direct import DirectAdbDevice
from edgekit.errors import EXIT_REGRESSION
from edgekit.testing.plugin import EmulatedDevice
from tests.battery_truth import assert_near_truth
from tests.conftest import CHAT25, require_tool, run_cli, small_workload, wait_for

pytestmark = pytest.mark.slow


def _config(emulated_device: EmulatedDevice, workload: Path, **kw: object) -> session.BenchConfig:
    args: dict[str, object] = {
        "workload": workload,
        "runner": emulated_device.runner,
        "sample_period_s": 0.05,
        "baseline_s": 2.0,
        "poll_s": 0.2,
    }
    args.update(kw)
    return session.BenchConfig(**args)  # type: ignore[arg-type]


def _run(device: DirectAdbDevice, art: Path, config: session.BenchConfig) -> BenchResult:
    run_id = session.start_run(device, art, config)
    session.follow(device, run_id, config)
    return session.collect(device, run_id)


@pytest.mark.parametrize("discharge_sign", [-1, 1])
def test_energy_and_charge_match_the_truth_within_2_percent(
    emulated_device: EmulatedDevice,
    device: DirectAdbDevice,
    int4_result: ConvertResult,
    tmp_path: Path,
    discharge_sign: int,
) -> None:
    battery = emulated_device.battery
    battery.discharge_sign = discharge_sign
    battery.counter_step_uah = 1000  # coarse, like real fuel gauges
    battery.internal_resistance_ohm = 0.15  # voltage sag under load
    battery.noise_ma = 10.0
    # Fine time steps, so the simulated truth and the sampled step function agree at the
    # busy/idle edges; a slower "phone" (turns padded to 0.6 s); one runner thread, so the
    # emulator's own clock keeps time on 2 cores.
    emulated_device.emulator.tick_s = 0.02
    emulated_device.emulator.extra_env["EDGEKIT_STANDIN_TURN_S"] = "0.6"
    battery.reset_truth()
    config = _config(emulated_device, small_workload(tmp_path), sample_period_s=0.02, threads=1)
    result = _run(device, int4_result.artifact.path, config)
    truth = battery.truth()
    assert result.simulated and result.complete
    assert result.validity == []
    assert result.summary.conversations == 3
    # Within 2% of the truth, plus what reads a busy host made late at the load steps can cost.
    assert_near_truth(result, truth, config, battery, rel=0.02, energy=True)
    conv = result.power.conventions
    assert conv is not None and conv.discharge_sign == discharge_sign and conv.current_unit == "uA"
    assert result.power.baseline_current_ma == pytest.approx(battery.idle_ma, rel=0.05)
    assert result.summary.battery_pct_per_25_conversations == pytest.approx(
        result.summary.workload_charge_mah / battery.design_capacity_mah * 100 * 25 / 3
    )
    turns = result.turns
    assert len(turns) == sum(len(json.loads(x)["turns"]) for x in CHAT25.read_text().splitlines()[1:4])
    assert all(t.ttft_s is not None and 0 <= t.ttft_s <= t.wall_s for t in turns)  # type: ignore[operator]
    assert all(t.output_tokens and t.prompt_tokens and t.decode_tokens_per_s for t in turns)


def test_charging_is_flagged_and_has_no_headline(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    emulated_device.battery.charging = True
    result = _run(device, int4_result.artifact.path, _config(emulated_device, small_workload(tmp_path, 1)))
    assert {f.code for f in result.validity if f.voids} >= {"charging", "supply_online"}
    assert result.summary.battery_pct_per_25_conversations is None
    assert result.summary.workload_charge_mah is None
    assert result.summary.decode_tokens_per_s is not None  # speed is still reported


def test_detach_drop_the_connection_then_collect(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    config = _config(emulated_device, small_workload(tmp_path))
    run_id = session.start_run(device, int4_result.artifact.path, config)
    device.close()  # the cable goes away
    host, port = emulated_device.serial.rsplit(":", 1)
    later = DirectAdbDevice(host, int(port))
    try:
        session.follow(later, run_id, config)
        result = session.collect(later, run_id)
    finally:
        later.close()
    assert result.complete and result.summary.conversations == 3
    assert result.summary.workload_charge_mah is not None
    assert len(result.turns) == 7


def test_killed_run_keeps_finished_turns_and_resume_completes_it(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    emulated_device.emulator.extra_env["EDGEKIT_STANDIN_TURN_S"] = "0.3"
    config = _config(emulated_device, small_workload(tmp_path), baseline_s=0.5)
    run_id = session.start_run(device, int4_result.artifact.path, config)
    paths = run_folder.run_paths(device, run_id, "")
    wait_for(lambda: run_folder.status(device, paths)[1] >= 1, what="the first conversation to finish")
    run_folder.stop(device, paths)
    wait_for(lambda: not run_folder.driver_alive(device, paths), what="the stopped driver to exit")
    partial = session.collect(device, run_id)
    assert not partial.complete
    assert any(f.code == "incomplete" for f in partial.validity)
    assert {t.conversation for t in partial.turns} >= {"extract-cities"}
    session.resume(device, run_id)
    session.follow(device, run_id, config)
    final = session.collect(device, run_id)
    assert final.complete and len(final.turns) == 7
    assert final.summary.conversations == 3


def test_hostile_prompts_execute_nothing(
    emulated_device: EmulatedDevice,
    device: DirectAdbDevice,
    int4_result: ConvertResult,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # where a command injected on this computer would write
    hostile = [
        ["$(touch PWNED1)", "`touch PWNED2`; touch PWNED3"],
        ["'; touch /data/local/tmp/PWNED4; echo '", '" && touch PWNED5 && "', "%s %n %x \\ \\\\ $HOME"],
    ]
    result = _run(device, int4_result.artifact.path, _config(emulated_device, small_workload(tmp_path, turns=hostile)))
    assert result.complete and len(result.turns) == 5
    for where in (emulated_device.sandbox, tmp_path):
        assert not list(where.rglob("PWNED*")), where


def test_device_without_battery_counters(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    emulated_device.emulator.battery_counters = False
    result = _run(device, int4_result.artifact.path, _config(emulated_device, small_workload(tmp_path, 1)))
    assert [f.code for f in result.validity] == ["counters_missing", "capacity_missing"]
    assert result.summary.workload_energy_mwh is None
    assert len(result.turns) == 2 and result.complete


def test_full_chat25_through_the_cli_then_report_and_compare(
    emulated_device: EmulatedDevice, int4_result: ConvertResult, tmp_path: Path, adb_home: Path
) -> None:
    out = tmp_path / "chat25.json"
    env = {"ANDROID_USER_HOME": str(adb_home / ".android")}
    args = [
        "battery-bench",
        "--transport",
        "direct",
        "--device",
        emulated_device.serial,
        "--runner",
        str(emulated_device.runner),
        "--sample-s",
        "0.1",
        "--baseline-s",
        "3",  # 30 idle samples per baseline: enough blocks for the bootstrap interval asserted below
        "-o",
        str(out),
    ]
    proc = run_cli(*args, str(int4_result.artifact.path), env=env)
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("battery-bench ") and "chat-25 v1 (25 conversations, 70 turns)" in first
    assert first.endswith("on Emulated Phone (simulated)")
    assert "of design capacity per 25 conversations (95% interval" in proc.stdout
    assert "SIMULATED: edgekit device emulator has no real battery" in proc.stdout
    result = BenchResult.load(out)
    assert result.complete and result.summary.conversations == 25 and len(result.turns) == 70
    assert result.workload.sha256 == __import__("hashlib").sha256(CHAT25.read_bytes()).hexdigest()

    html_path = tmp_path / "report.html"
    rep = run_cli("report", str(out), "-o", str(html_path))
    assert rep.returncode == 0, rep.stderr
    assert rep.stdout.startswith(f"# battery-bench {result.run_id} (SIMULATED device)")
    page = html_path.read_text()
    for external in ("http://", "https://", "src=", "@import", "url("):
        assert external not in page
    assert page.count("<svg") == 4 and "simulated" in page  # power, temperature, decode, latency

    same = run_cli("compare", str(out), str(out), "--fail-on-regression", "5")
    assert same.returncode == 0, same.stderr
    slower = tmp_path / "slower.json"
    data = json.loads(out.read_text())
    data["summary"]["decode_tokens_per_s"] /= 2
    slower.write_text(json.dumps(data))
    reg = run_cli("compare", str(out), str(slower), "--fail-on-regression", "5")
    assert reg.returncode == EXIT_REGRESSION
    assert "decode_tokens_per_s" in reg.stdout and "REGRESSION" in reg.stdout
    assert reg.stderr.strip() == "edgekit: error: regression beyond 5.0%: decode_tokens_per_s"

    # Rendered in headless Chromium, the page shows the plots (their colours are on screen).
    chromium = require_tool("chromium")
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'c'}",
            f"--screenshot={shot}",
            "--window-size=1000,1600",
            html_path.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    from PIL import Image

    with Image.open(shot) as img:
        colours = {c for _, c in img.convert("RGB").getcolors(maxcolors=1 << 20) or []}
    assert (0x09, 0x69, 0xDA) in colours  # the power series
    assert (0x2D, 0xA4, 0x4E) in colours  # the bars


def test_local_device_bench(int4_result: ConvertResult, tmp_path: Path) -> None:
    out = tmp_path / "local.json"
    proc = run_cli(
        "battery-bench",
        "--device",
        "local",
        "--workload",
        str(small_workload(tmp_path, 2)),
        "--baseline-s",
        "0.2",
        "-o",
        str(out),
        str(int4_result.artifact.path),
    )
    assert proc.returncode == 0, proc.stderr
    result = BenchResult.load(out)
    assert not result.simulated and len(result.turns) == 5
    assert all(t.ttft_s is not None and t.ttft_s > 0 for t in result.turns)
    assert "battery: not measured" in proc.stdout
    assert result.summary.decode_tokens_per_s and result.summary.decode_tokens_per_s > 0


def test_screen_is_kept_on_and_restored_and_a_thermal_change_voids(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    wakefulness = emulated_device.sandbox / ".emulator" / "wakefulness"
    wakefulness.write_text("Asleep\n")
    config = _config(emulated_device, small_workload(tmp_path, 1), state_s=0.2)
    run_id = session.start_run(device, int4_result.artifact.path, config)
    assert wakefulness.read_text().strip() == "Awake"  # kept on for the run (no suspend)
    settings = emulated_device.sandbox / ".emulator" / "settings" / "system"
    assert (settings / "screen_brightness").read_text().strip() == "1"
    paths = run_folder.run_paths(device, run_id, "")
    wait_for(
        lambda: "workload_start" in device.shell(["cat", f"{paths.run_dir}/events.csv"], check=False).stdout,
        what="the workload to start",
    )
    emulated_device.battery.thermal_status = 2  # the phone heats up meanwhile
    session.follow(device, run_id, config)
    result = session.collect(device, run_id)
    assert wakefulness.read_text().strip() == "Asleep"  # restored
    flag = next(f for f in result.validity if f.code == "thermal_changed")
    assert flag.voids and flag.window in ("workload", "baseline after")
    assert result.summary.workload_charge_mah is None
    assert result.summary.decode_tokens_per_s is not None
