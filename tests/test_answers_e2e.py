"""Is the phone's answer right? End to end on the emulated phone: a runner that answers only
`<pad>` (LiteRT-LM issue #3280) fails its run; deploy compares the smoke answer with this
computer's CPU engine; files no runner loads are refused before anything is pushed; a
broken bundle is not left trusted on the phone and its bench stops at the first failure."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from edgekit.answers import Degenerate
from edgekit.artifact import sha256_file
from edgekit.bench import session
from edgekit.bench.result import BenchResult
from edgekit.convert import ConvertResult
from edgekit.deploy import DeployConfig, deploy
from edgekit.device.direct import DirectAdbDevice
from edgekit.errors import DeviceError, EdgekitError
from edgekit.runtimes.litert_lm.bundle import TFLITE_MODEL, read_header
from edgekit.runtimes.litert_lm.runner_standin import write_runner_standin
from edgekit.smoke import HostCheck
from edgekit.testing.plugin import EmulatedDevice
from tests.conftest import run_cli, small_workload

pytestmark = pytest.mark.slow

ROOT = "/data/local/tmp/edgekit"


def _cli_env(adb_home: Path) -> dict[str, str]:
    return {"ANDROID_USER_HOME": str(adb_home / ".android")}


def test_a_runner_that_answers_only_pad_fails_its_run_with_exit_7(
    emulated_device: EmulatedDevice, int4_result: ConvertResult, tmp_path: Path, adb_home: Path
) -> None:
    pad = write_runner_standin(tmp_path / "litert_lm_advanced_main", "pad")
    workload = small_workload(tmp_path, 2)
    turns = sum(len(json.loads(line)["turns"]) for line in workload.read_text().splitlines()[1:])
    out = tmp_path / "pad.json"
    args = ["battery-bench", "--transport", "direct", "--device", emulated_device.serial, "--runner", str(pad)]
    args += ["--workload", str(workload), "--baseline-s", "0.5", "--sample-s", "0.05", "-o", str(out)]
    proc = run_cli(*args, str(int4_result.artifact.path), env=_cli_env(adb_home))
    assert proc.returncode == 7, proc.stderr
    assert "— FAILED (degenerate answers: no speed figure)" in proc.stdout.splitlines()[0]
    [reason] = [line for line in proc.stdout.splitlines() if line.startswith("  VOID [degenerate_output]")]
    assert reason.startswith(
        f"  VOID [degenerate_output]: {turns} of {turns} answers are degenerate (special tokens such as <pad>: {turns})"
    )
    assert "LiteRT-LM issue #3280" in reason
    assert "  decode — tok/s · prefill — tok/s · time to first token median — ·" in proc.stdout  # no figure
    result = BenchResult.load(out)
    assert result.complete and result.exit_code() == 7
    assert [t.degenerate for t in result.turns] == [Degenerate.SPECIAL_TOKENS] * turns
    # The runner reported fast, plausible speeds for its garbage; the summary keeps none of them.
    assert all(t.decode_tokens_per_s for t in result.turns)
    assert result.summary.decode_tokens_per_s is None and result.summary.workload_charge_mah is None
    # The flags survive the file: a result written now loads with them.
    assert json.loads(out.read_text())["turns"][0]["degenerate"] == "special_tokens"


def test_a_healthy_run_records_each_answer_as_read(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    config = session.BenchConfig(
        workload=small_workload(tmp_path, 1), runner=emulated_device.runner, baseline_s=0.2, poll_s=0.2
    )
    run_id = session.start_run(device, int4_result.artifact.path, config)
    session.follow(device, run_id, config)
    result = session.collect(device, run_id)
    # Complete; under load the simulated battery may void a 0.2 s baseline (6), nothing else.
    assert result.exit_code() in (0, 6) and result.complete and not result.degenerate
    # Every answered turn was read and judged (None: an answer; the tiny model's random weights
    # may also give a degenerate one, but never most of them here).
    assert result.turns and all(t.degenerate is None or isinstance(t.degenerate, Degenerate) for t in result.turns)
    assert result.summary.decode_tokens_per_s is not None


def test_smoke_answer_is_compared_with_this_computers_engine(
    emulated_device: EmulatedDevice,
    device: DirectAdbDevice,
    int4_result: ConvertResult,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    art = int4_result.artifact.path
    same = deploy(device, art, DeployConfig(runner=emulated_device.runner))
    assert same.smoke is not None and same.smoke.host_check is HostCheck.SAME
    assert same.smoke.host_answer == same.smoke.answer.strip("\n")
    assert not [n for n in same.notes if n.startswith("warning:")]

    pad = write_runner_standin(tmp_path / "litert_lm_advanced_main", "pad")
    differs = deploy(device, art, DeployConfig(runner=pad))
    assert differs.smoke is not None and differs.smoke.host_check is HostCheck.DIFFERS
    host_first = same.smoke.answer.strip("\n")
    [warning, degenerate] = [n for n in differs.notes if n.startswith("warning:")]
    assert warning.startswith(
        "warning: the smoke answer differs from this computer's CPU engine at token 1: the device says '<pad>', "
        "this computer "
    )
    assert host_first and not host_first.startswith("<pad>")
    assert degenerate.startswith("warning: the smoke answer is degenerate (special_tokens)")

    def no_engine(*_a: object, **_k: object) -> None:
        raise EdgekitError("the LiteRT-LM engine cannot load it: not on this platform")

    monkeypatch.setattr("edgekit.engine.open_engine", no_engine)
    unavailable = deploy(device, art, DeployConfig(runner=emulated_device.runner))
    assert unavailable.smoke is not None and unavailable.smoke.host_check is HostCheck.UNAVAILABLE
    [note] = [n for n in unavailable.notes if "CPU engine" in n]
    assert note == (
        "this computer's LiteRT-LM CPU engine could not run the artifact (the LiteRT-LM engine cannot load it: "
        "not on this platform): the smoke answer was not compared with it"
    )


def test_deploy_refuses_files_no_runner_loads_before_pushing(
    emulated_device: EmulatedDevice, tmp_path: Path, adb_home: Path
) -> None:
    files = {
        "random.litertlm": os.urandom(200_000),
        "notes.litertlm": b"these are my notes, not a model\n" * 10,
        "empty.litertlm": b"",
    }
    for name, content in files.items():
        f = tmp_path / name
        f.write_bytes(content)
        args = ["deploy", "--transport", "direct", "--device", emulated_device.serial]
        proc = run_cli(*args, "--runner", str(emulated_device.runner), "--no-smoke", str(f), env=_cli_env(adb_home))
        assert proc.returncode == 2, (name, proc.stderr)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(
            f"edgekit: error: {f} is not a LiteRT-LM bundle the runner can load: "
        ), proc.stderr
        assert proc.stdout == ""
    # Nothing sent, nothing recorded as the newest deploy.
    assert not emulated_device.path(f"{ROOT}/models").exists()
    assert not emulated_device.path(f"{ROOT}/deploys.log").exists()


def _broken_bundle(int4_result: ConvertResult, tmp_path: Path) -> Path:
    """The tiny artifact with its TFLite model's bytes zeroed: a header any reader accepts, a model none loads."""
    out = tmp_path / "broken" / "broken.litertlm"
    out.parent.mkdir()
    shutil.copy(int4_result.artifact.path, out)  # no manifest: its sha256 is no longer the artifact's
    [model] = [s for s in read_header(out).sections if s.data_type == TFLITE_MODEL]
    data = bytearray(out.read_bytes())
    data[model.begin : model.end] = bytes(model.end - model.begin)
    out.write_bytes(bytes(data))
    read_header(out)
    return out


def test_a_broken_bundle_is_not_left_trusted_and_its_bench_stops_at_the_first_failure(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    broken = _broken_bundle(int4_result, tmp_path)
    sha = sha256_file(broken)
    with pytest.raises(DeviceError, match=r"the model does not load or run with the runner .*\(the model was removed"):
        deploy(device, broken, DeployConfig(runner=emulated_device.runner))
    assert not emulated_device.path(f"{ROOT}/models/{sha}").exists()
    log = emulated_device.path(f"{ROOT}/deploys.log")
    assert not log.exists() or sha not in log.read_text()

    workload = small_workload(tmp_path, 3)
    config = session.BenchConfig(workload=workload, runner=emulated_device.runner, baseline_s=0.2, poll_s=0.2)
    run_id = session.start_run(device, broken, config)
    session.follow(device, run_id, config)
    result = session.collect(device, run_id)
    assert not result.complete and result.exit_code() == 7
    [failed] = [f for f in result.validity if f.code == "runner_failed"]
    assert failed.message.startswith("conversation 0001 (extract-cities): the runner exited 1")
    [incomplete] = [f for f in result.validity if f.code == "incomplete"]
    assert incomplete.message == (
        "3 of 3 conversations did not finish (the driver stopped at the first conversation, which failed: "
        "the rest would too)"
    )
    events = emulated_device.path(f"{ROOT}/runs/{run_id}/events.csv").read_text()
    assert ",conv_start,0001," in events and ",conv_start,0002," not in events


def test_a_phone_answering_pad_fails_and_the_other_phones_run_stands(
    int4_result: ConvertResult, tmp_path: Path, adb_server: int, adb_home: Path
) -> None:
    from edgekit.device.adb import ensure_server
    from edgekit.testing.emulator import AdbDeviceEmulator

    key = (adb_home / ".android" / "adbkey.pub").read_bytes()
    good, bad = (AdbDeviceEmulator(tmp_path / name, trusted_keys=[key]).start() for name in ("good", "bad"))
    bad.extra_env["EDGEKIT_STANDIN_PAD"] = "1"  # its backend computes garbage (LiteRT-LM issue #3280)
    client = ensure_server()
    runner = write_runner_standin(tmp_path / "litert_lm_advanced_main")
    out = tmp_path / "lab.json"
    try:
        for emu in (good, bad):
            client.connect(emu.serial, timeout=10)
        args = [
            "battery-bench",
            "--device",
            "all",
            "--runner",
            str(runner),
            "--workload",
            str(small_workload(tmp_path, 1)),
        ]
        args += ["--baseline-s", "2", "--sample-s", "0.05", "-o", str(out), str(int4_result.artifact.path)]
        env = {**_cli_env(adb_home), "ANDROID_ADB_SERVER_PORT": str(adb_server)}
        proc = run_cli(*args, env=env)
    finally:
        for emu in (good, bad):
            client.disconnect(emu.serial)
            emu.stop()
    assert proc.returncode == 7, proc.stderr  # the worst of the phones' codes
    results = {r.device.serial: r for r in (BenchResult.load(p) for p in tmp_path.glob("lab-*.json"))}
    assert set(results) == {good.serial, bad.serial}
    failed, stands = results[bad.serial], results[good.serial]
    assert failed.exit_code() == 7 and failed.degenerate and failed.summary.decode_tokens_per_s is None
    assert stands.exit_code() == 0 and not stands.degenerate and stands.summary.decode_tokens_per_s is not None
    headers = [line for line in proc.stdout.splitlines() if line.startswith("battery-bench ")]
    assert [h.endswith("— FAILED (degenerate answers: no speed figure)") for h in headers].count(True) == 1


def test_the_local_run_reads_every_answer_too(int4_result: ConvertResult, tmp_path: Path) -> None:
    from msgspec import UNSET

    from edgekit.device.local import LocalDevice

    config = session.BenchConfig(workload=small_workload(tmp_path, 2), baseline_s=0.2)
    result = session.battery_bench(LocalDevice(tmp_path / "root"), int4_result.artifact.path, config)
    assert len(result.turns) == 5 and all(t.degenerate is not UNSET for t in result.turns)
    assert result.degenerate is (sum(t.degenerate is not None for t in result.turns) * 2 > len(result.turns))
