"""The runner as upstream's binaries behave: probe, both protocols, runner folders, failures.

Every runner here is a stand-in from edgekit.runtimes.litert_lm.runner_standin (each cites the
upstream source it follows) that really runs the tiny model with the host LiteRT-LM engine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from edgekit._typed import from_data
from edgekit.bench import session
from edgekit.bench.result import BenchResult
from edgekit.convert import ConvertResult
from edgekit.deploy import DeployConfig, deploy
from edgekit.device.direct import DirectAdbDevice
from edgekit.errors import InputError
from edgekit.probe import Protocol, RunnerProbe
from edgekit.runtimes.litert_lm import TTFT_RUNNER
from edgekit.runtimes.litert_lm.runner_standin import GPU_ACCELERATOR, write_runner_folder, write_runner_standin
from edgekit.testing.plugin import EmulatedDevice
from tests.conftest import run_cli, small_workload, wait_for

pytestmark = pytest.mark.slow

ROOT = "/data/local/tmp/edgekit"
CONSTRAINT_LIB = "libGemmaModelConstraintProvider.so"


def _cli_env(adb_home: Path) -> dict[str, str]:
    return {"ANDROID_USER_HOME": str(adb_home / ".android")}


def _one_error_line(proc: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert proc.returncode not in (0, None), proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edgekit: error: "), lines[0]
    for text in expected:
        assert text in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    return lines[0]


def _deploy_cli(dev: EmulatedDevice, runner: Path, art: Path, adb_home: Path) -> subprocess.CompletedProcess[str]:
    args = ["deploy", "--transport", "direct", "--device", dev.serial, "--runner", str(runner), str(art)]
    return run_cli(*args, env=_cli_env(adb_home))


def test_advanced_main_probe_and_flags(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult
) -> None:
    result = deploy(device, int4_result.artifact.path, DeployConfig(runner=emulated_device.runner))
    assert result.probe is not None and result.probe.protocol is Protocol.MULTI_TURN
    assert result.probe.benchmark_stream == "stderr" and result.probe.streams_answers is False
    assert {"multi_turns", "async", "benchmark", "num_cpu_threads"} <= set(result.probe.flags)
    assert result.shell == {"mkfifo": True, "setsid": True, "sha256sum": True, "power_supply": True}
    stored = emulated_device.path(f"{result.runner.remote.rsplit('/', 1)[0]}/probe.json")  # type: ignore[union-attr]
    assert from_data(json.loads(stored.read_text()), RunnerProbe, "probe.json") == result.probe
    assert json.loads(stored.read_text())["protocol"] == "multi_turn"  # the enum's value, as before
    assert result.smoke is not None and result.smoke.decode_tokens and result.smoke.answer


def test_simple_main_one_shot_bench_with_load_apart(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    (tmp_path / "simple").mkdir()
    runner = write_runner_standin(tmp_path / "simple" / "litert_lm_main", "simple")
    config = session.BenchConfig(
        workload=small_workload(tmp_path, 2), runner=runner, sample_period_s=0.05, baseline_s=1.0, poll_s=0.2
    )
    run_id = session.start_run(device, int4_result.artifact.path, config)
    session.follow(device, run_id, config)
    result = session.collect(device, run_id)
    assert result.complete and result.exit_code() == 0, result.validity
    assert result.runner.protocol == Protocol.ONE_SHOT and result.runner.ttft_source == TTFT_RUNNER
    assert result.runner.flags == ("--backend=cpu",)  # only flags the binary defines
    assert any("no --max_output_tokens" in c for c in result.runner.conditions or ())
    assert len(result.turns) == 5
    for t in result.turns:
        assert t.prompt_tokens and t.output_tokens and t.decode_tokens_per_s and t.prefill_tokens_per_s
        assert t.ttft_s is not None and t.ttft_s > 0
        assert t.load_s is not None and t.wall_s is not None and 0 < t.load_s < t.wall_s
    # Later turns carry the earlier ones in their prompt: more prompt tokens than turn 1 alone.
    by_conv = [t for t in result.turns if t.conversation_index == 1]
    assert by_conv[1].prompt_tokens > by_conv[0].prompt_tokens  # type: ignore[operator]
    assert result.power.load_charge_mah is not None and result.power.load_charge_mah > 0
    assert result.summary.workload_charge_mah is not None


def test_runner_folder_ships_so_files_and_gpu_needs_its_accelerator(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    folder = write_runner_folder(tmp_path / "android_arm64", "advanced", libs=(CONSTRAINT_LIB,))
    result = deploy(device, int4_result.artifact.path, DeployConfig(runner=folder))
    assert result.runner is not None and result.probe is not None
    remote_dir = result.runner.remote.rsplit("/", 1)[0]
    assert emulated_device.path(f"{remote_dir}/{CONSTRAINT_LIB}").is_file()
    assert result.probe.libraries == (CONSTRAINT_LIB,)
    assert result.smoke is not None and result.smoke.decode_tokens  # ran with LD_LIBRARY_PATH = its folder
    config = session.BenchConfig(workload=small_workload(tmp_path, 1), runner=folder, backend="gpu", baseline_s=0.2)
    with pytest.raises(InputError, match=r"--backend gpu needs LiteRT's accelerator library"):
        session.start_run(device, int4_result.artifact.path, config)
    (folder / GPU_ACCELERATOR).write_bytes(b"\x7fELF stand-in accelerator\n")
    run_id = session.start_run(device, int4_result.artifact.path, config)
    session.follow(device, run_id, config)
    gpu = session.collect(device, run_id)
    assert gpu.complete and "--backend=gpu" in gpu.runner.flags and len(gpu.turns) == 2


def test_older_release_is_refused_at_deploy(
    emulated_device: EmulatedDevice, int4_result: ConvertResult, tmp_path: Path, adb_home: Path
) -> None:
    old = write_runner_standin(tmp_path / "litert_lm_main", "old")
    proc = _deploy_cli(emulated_device, old, int4_result.artifact.path, adb_home)
    _one_error_line(proc, "runner litert_lm_main cannot be driven", "--multi_turns", "--input_prompt_file", "download")
    assert proc.returncode == 2 and proc.stdout == ""


def test_missing_shared_library_is_refused_at_deploy(
    emulated_device: EmulatedDevice, int4_result: ConvertResult, tmp_path: Path, adb_home: Path
) -> None:
    folder = write_runner_folder(tmp_path / "bin", "advanced", missing=(CONSTRAINT_LIB,))
    proc = _deploy_cli(emulated_device, folder, int4_result.artifact.path, adb_home)
    _one_error_line(proc, f"library {CONSTRAINT_LIB} not found", "prebuilt/android_arm64/")


def test_crash_after_first_answer_fails_the_run(
    emulated_device: EmulatedDevice, int4_result: ConvertResult, tmp_path: Path, adb_home: Path
) -> None:
    crash = write_runner_standin(tmp_path / "litert_lm_advanced_main", "crash")
    out = tmp_path / "crash.json"
    args = ["battery-bench", "--transport", "direct", "--device", emulated_device.serial, "--runner", str(crash)]
    args += ["--workload", str(small_workload(tmp_path, 2)), "--baseline-s", "0.5", "--sample-ms", "50", "-o", str(out)]
    proc = run_cli(*args, str(int4_result.artifact.path), env=_cli_env(adb_home))
    assert proc.returncode == 7, proc.stderr
    assert "FAILED (incomplete)" in proc.stdout and "per 25 conversations" not in proc.stdout
    result = BenchResult.load(out)
    assert not result.complete and result.summary.battery_pct_per_25_conversations is None
    # A runner that fails the first conversation fails them all: the driver stops there (issue 17 row 8).
    failed = [f for f in result.validity if f.code == "runner_failed"]
    assert len(failed) == 1 and all(f.voids for f in failed)
    assert "exited 139, SIGSEGV" in failed[0].message
    assert any("stopped at the first conversation" in f.message for f in result.validity if f.code == "incomplete")
    # The first turn was sent and answered before the crash and is kept; the runner died
    # before its BenchmarkInfo, so its figures are unknown (None, not 0).
    assert sorted((t.conversation_index, t.turn_index) for t in result.turns) == [(1, 1)]
    assert all(t.t_start_s is not None and t.output_tokens is None for t in result.turns)


def test_hung_runner_is_killed_by_the_turn_timeout(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    hang = write_runner_standin(tmp_path / "litert_lm_advanced_main", "hang")
    config = session.BenchConfig(
        workload=small_workload(tmp_path, 1), runner=hang, baseline_s=0.2, poll_s=0.2, turn_timeout_s=3
    )
    run_id = session.start_run(device, int4_result.artifact.path, config)
    session.follow(device, run_id, config)
    result = session.collect(device, run_id)
    assert not result.complete and result.exit_code() == 7
    [failed] = [f for f in result.validity if f.code == "runner_failed"]
    assert "turn 2 took longer than the per-turn timeout (3 s): killed" in failed.message
    pids = emulated_device.sandbox.rglob("busy/*")
    assert not list(pids)  # the runner is gone


def test_full_chat25_one_shot_through_the_cli(
    emulated_device: EmulatedDevice, int4_result: ConvertResult, tmp_path: Path, adb_home: Path
) -> None:
    folder = tmp_path / "simple"
    folder.mkdir()
    simple = write_runner_standin(folder / "litert_lm_main", "simple")
    out = tmp_path / "chat25-one-shot.json"
    args = ["battery-bench", "--transport", "direct", "--device", emulated_device.serial, "--runner", str(simple)]
    args += ["--baseline-s", "1", "--sample-ms", "100", "-o", str(out)]
    proc = run_cli(*args, str(int4_result.artifact.path), env=_cli_env(adb_home), timeout=1800)
    # Complete; under load the simulated battery may void a 1 s baseline (exit 6), nothing else.
    assert proc.returncode in (0, 6), proc.stderr
    assert "one-shot protocol; time to first token from the runner" in proc.stdout
    result = BenchResult.load(out)
    assert result.complete and len(result.turns) == 70 and result.summary.conversations == 25
    voids = {f.code for f in result.validity if f.voids}
    assert (proc.returncode == 6) == bool(voids), (proc.returncode, voids)
    assert not voids & {"runner_failed", "runner_figures_missing", "incomplete", "degenerate_output"}, voids
    assert all(t.decode_tokens_per_s and t.prefill_tokens_per_s and t.ttft_s for t in result.turns)
    rep = run_cli("report", str(out), "-o", str(tmp_path / "r.html"))
    assert rep.returncode == 0 and "one-shot protocol · time to first token from the runner" in rep.stdout
    assert "one-shot protocol" in (tmp_path / "r.html").read_text()
    shutil.rmtree(folder)


def test_ctrl_c_stops_the_phone_side_and_says_how_to_collect(
    emulated_device: EmulatedDevice, int4_result: ConvertResult, tmp_path: Path, adb_home: Path
) -> None:
    import os
    import signal
    import sys

    wakefulness = emulated_device.sandbox / ".emulator" / "wakefulness"
    wakefulness.write_text("Asleep\n")
    args = ["battery-bench", "--transport", "direct", "--device", emulated_device.serial]
    args += ["--runner", str(emulated_device.runner), "--workload", str(small_workload(tmp_path, 1))]
    args += ["--baseline-s", "60"]
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, **_cli_env(adb_home), "HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit", *args, str(int4_result.artifact.path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    runs = emulated_device.path(f"{ROOT}/runs")
    [pid_file] = wait_for(lambda: list(runs.glob("*/driver.pid")), what="the run's driver to start")
    run_id = pid_file.parent.name
    assert wakefulness.read_text().strip() == "Awake"  # kept on for the run (docs: no suspend)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"--collect {run_id}" in err and f"--resume {run_id}" in err and "half-written" not in err
    assert wakefulness.read_text().strip() == "Asleep"  # restored
    stat = Path(f"/proc/{int(pid_file.read_text())}/stat")
    assert not stat.exists() or stat.read_text().split()[2] == "Z"  # gone (or a zombie nobody reaped yet)
    collected = run_cli(
        "battery-bench",
        "--transport",
        "direct",
        "--device",
        emulated_device.serial,
        "--collect",
        run_id,
        "-o",
        str(tmp_path / "r.json"),
        env=_cli_env(adb_home),
    )
    assert collected.returncode == 7, collected.stderr  # cut off: not complete
    assert not BenchResult.load(tmp_path / "r.json").complete


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("exit 0", "the runner exited 0 but answered 0 of 2 turns"),
        ("exec sleep 600", "turn 1 took longer than the per-turn timeout (2 s): killed"),
    ],
)
def test_one_shot_runner_that_does_not_answer_fails_the_run(
    emulated_device: EmulatedDevice,
    device: DirectAdbDevice,
    int4_result: ConvertResult,
    tmp_path: Path,
    body: str,
    expected: str,
) -> None:
    # A shell-script runner (as a checker's might be): absl-style --helpfull, then `body`.
    silent = tmp_path / "litert_lm_main"
    silent.write_text(
        "#!/bin/sh\n"
        'case "$*" in *--helpfull*)\n'
        "  printf '  Flags from runtime/engine/litert_lm_main.cc:\\n'\n"
        "  printf '    --input_prompt_file (File path to the input prompt.); default: \"\";\\n'\n"
        "  printf '    --model_path (Model path to use for LLM execution.); default: \"\";\\n'\n"
        "  exit 1 ;;\n"
        "*--version*) exit 0 ;;\n"
        "esac\n"
        f"{body}\n"
    )
    silent.chmod(0o755)
    config = session.BenchConfig(
        workload=small_workload(tmp_path, 1), runner=silent, baseline_s=0.2, poll_s=0.2, turn_timeout_s=2
    )
    run_id = session.start_run(device, int4_result.artifact.path, config)
    session.follow(device, run_id, config)
    result = session.collect(device, run_id)
    assert result.runner.protocol == Protocol.ONE_SHOT
    assert not result.complete and result.exit_code() == 7
    [failed] = [f for f in result.validity if f.code == "runner_failed"]
    assert failed.message.startswith(f"conversation 0001 (extract-cities): {expected}")
