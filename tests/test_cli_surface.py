"""The CLI's shape: pipeline order, help that teaches, one error format, shared --device
semantics (battery-bench runs several devices at the same time), renamed flags that
still accept their old spelling."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import click
import pytest

from edgekit import cli
from edgekit.bench.campaign import RESULTS_DIR, Campaign, result_path, run_path
from edgekit.bench.config import BenchConfig
from edgekit.bench.result import BenchResult
from edgekit.convert import ConvertResult
from edgekit.errors import InputError
from edgekit.testing.emulator import AdbDeviceEmulator
from edgekit.testing.plugin import EmulatedDevice
from tests.conftest import run_cli, small_workload

PIPELINE = [
    "example",
    "convert",
    "eval",
    "devices",
    "deploy",
    "battery-bench",
    "runs",
    "report",
    "compare",
    "clean",
    "demo",
]


def test_commands_are_listed_in_pipeline_order() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    listed = proc.stdout.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    names = [line.split()[0] for line in listed.splitlines() if line[:3].strip()]
    assert names == PIPELINE


@pytest.mark.parametrize("name", PIPELINE)
def test_every_command_has_an_example_and_every_option_help(name: str) -> None:
    command = cli.cli.commands[name]
    assert command.epilog is not None and f"edgekit {name} " in command.epilog, f"{name}: no example"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"{name} {param.opts}: no help text"
    proc = run_cli(name, "--help")
    assert proc.returncode == 0 and "Examples:" in proc.stdout


def test_usage_errors_read_like_every_other_error() -> None:
    proc = run_cli("compare", "only-one.json")
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert lines[0] == "Usage: edgekit compare [OPTIONS] A.json B.json"
    assert lines[-1] == "edgekit: error: Missing argument 'B.json'."


def test_edgekit_alone_shows_the_help() -> None:
    proc = run_cli()
    assert proc.returncode == 2
    assert proc.stderr.startswith("Usage: edgekit [OPTIONS] COMMAND [ARGS]...") and "Start here:" in proc.stderr


def test_compare_of_a_missing_file_is_one_error_line(tmp_path: Path) -> None:
    proc = run_cli("compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("edgekit: error: ")
    assert str(tmp_path / "a.json") in proc.stderr


def test_collect_names_one_devices_run(tmp_path: Path) -> None:
    proc = run_cli(
        "battery-bench", "--transport", "direct", "--device", "10.0.0.1:5555", "--device", "10.0.0.2:5555",
        "--collect", "20261125-143000-a1b2c3",
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "edgekit: error: --collect names one device's run: give one --device, not 10.0.0.1:5555, 10.0.0.2:5555"
    )


def test_sample_period_is_given_once(tmp_path: Path) -> None:
    proc = run_cli("battery-bench", "--device", "local", "--sample-s", "0.1", "--sample-ms", "100", "x.litertlm")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "edgekit: error: give the sampling period once: --sample-s (seconds); --sample-ms is its old spelling"
    )
    assert "--sample-ms" not in run_cli("battery-bench", "--help").stdout  # a hidden alias


def test_result_files_are_named_per_device_and_run() -> None:
    now = datetime.datetime(2026, 11, 25, 14, 30, 0)
    assert result_path(None, "127.0.0.1:5555", several=False, now=now) == (
        RESULTS_DIR / "20261125-143000-127.0.0.1_5555.json"
    )
    assert result_path(Path("out/r.json"), "A1B2", several=False) == Path("out/r.json")
    assert result_path(Path("out/r.json"), "A1B2", several=True) == Path("out/r-A1B2.json")
    assert run_path(Path("out/r-A1B2.json"), 2) == Path("out/r-A1B2-run2.json")
    with pytest.raises(InputError, match="--repeat must be at least 1, got 0"):
        Campaign(artifacts=(), config=BenchConfig(), repeat=0)


def test_several_artifacts_run_interleaved_each_with_its_own_result_file() -> None:
    ab = Campaign(artifacts=(Path("x/a.litertlm"), Path("y/b.litertlm")), config=BenchConfig(), repeat=3)
    assert ab.order() == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]  # A, B, A, B, A, B
    assert ab.labels() == ("a", "b")
    same = Campaign(artifacts=(Path("x/model.litertlm"), Path("y/model.litertlm")), config=BenchConfig())
    assert same.labels() == ("1-model", "2-model")
    assert result_path(Path("out/r.json"), "A1B2", several=True, artifact="b") == Path("out/r-A1B2-b.json")
    assert result_path(Path("out/r.json"), "A1B2", several=False, artifact="1-model") == Path("out/r-1-model.json")
    now = datetime.datetime(2026, 11, 25, 14, 30, 0)
    assert result_path(None, "h:5037/S", several=False, artifact="a", now=now) == (
        RESULTS_DIR / "20261125-143000-h_5037_S-a.json"
    )


def test_several_artifacts_are_checked_before_anything_runs(tmp_path: Path) -> None:
    a, b = tmp_path / "a.litertlm", tmp_path / "b.litertlm"
    a.write_bytes(b"x")
    proc = run_cli("battery-bench", "--device", "local", str(a), str(b))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"edgekit: error: artifact {b} does not exist or is not a file"
    b.write_bytes(b"x")
    proc = run_cli("battery-bench", "--device", "local", "--detach", str(a), str(b))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "edgekit: error: --detach starts one artifact's run per phone: give one artifact (run A/B attached)"
    )


def test_clean_all_still_works_and_says_it_is_deprecated(
    emulated_device: EmulatedDevice, capsys: pytest.CaptureFixture[str]
) -> None:
    (emulated_device.sandbox / "data/local/tmp/edgekit/models/x").mkdir(parents=True)
    code = cli.main(["clean", "--transport", "direct", "--device", emulated_device.serial, "--all", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err.strip() == "note: --all is deprecated: use --everything"
    assert json.loads(captured.out) == {"removed": [f"{emulated_device.serial}:/data/local/tmp/edgekit"]}
    assert not (emulated_device.sandbox / "data/local/tmp/edgekit").exists()
    assert "--all" not in run_cli("clean", "--help").stdout


@pytest.mark.slow
def test_battery_bench_runs_several_devices_and_an_unreachable_one_stops_none(
    emulated_device: EmulatedDevice, int4_result: ConvertResult, tmp_path: Path, adb_home: Path
) -> None:
    public_key = (adb_home / ".android" / "adbkey.pub").read_bytes()
    second = AdbDeviceEmulator(tmp_path / "second", trusted_keys=[public_key]).start()
    unreachable = "127.0.0.1:9"  # the discard port: nothing answers ADB there
    try:
        out = tmp_path / "r.json"
        args = ["battery-bench", "--transport", "direct", "--runner", str(emulated_device.runner)]
        for serial in (emulated_device.serial, unreachable, second.serial):
            args += ["--device", serial]
        args += ["--workload", str(small_workload(tmp_path, 1)), "--baseline-s", "0.3", "--sample-s", "0.05"]
        proc = run_cli(
            *args, "-o", str(out), "--json", str(int4_result.artifact.path),
            env={"ANDROID_USER_HOME": str(adb_home / ".android")},
        )  # fmt: skip
    finally:
        second.stop()
    # The worst of all: the unreachable device's DeviceError (5), or 6 when a device's battery
    # figure came out void (a sampler gap on a loaded host is a real void, not this test's subject).
    ran = (emulated_device.serial, second.serial)
    codes = [BenchResult.load(tmp_path / f"r-{serial.replace(':', '_')}.json").exit_code() for serial in ran]
    assert proc.returncode == max(5, *codes), proc.stderr
    documents = json.loads(proc.stdout)
    assert [d.get("device", {}).get("serial", d.get("serial")) for d in documents] == [
        emulated_device.serial,
        unreachable,
        second.serial,
    ]
    assert documents[1]["error"].startswith(f"{unreachable}")
    assert f"✗ {unreachable}: " in proc.stderr
    for serial in (emulated_device.serial, second.serial):
        written = json.loads((tmp_path / f"r-{serial.replace(':', '_')}.json").read_text())
        assert written["device"]["serial"] == serial and written["complete"] is True
    assert not out.exists()


def test_devices_says_why_a_device_cannot_be_used(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgekit.device import adb

    monkeypatch.setattr(adb, "list_devices", lambda **_: [("R5CT1", "unauthorized"), ("R5CT2", "offline")])
    code = cli.main(["devices", "--json"])
    captured = capsys.readouterr()
    assert code == 0
    rows = {r["serial"]: r for r in json.loads(captured.out)}
    assert rows["R5CT1"]["error"] == "unauthorized: accept the RSA prompt on the phone (tick 'Always allow')"
    assert rows["R5CT2"]["error"] == "offline: reconnect the cable, or `adb reconnect offline`"
    assert rows["local"]["error"] is None
    assert captured.err.splitlines() == [
        "✗ R5CT1: unauthorized: accept the RSA prompt on the phone (tick 'Always allow')",
        "✗ R5CT2: offline: reconnect the cable, or `adb reconnect offline`",
    ]


def test_devices_lists_local_when_the_adb_server_cannot_be_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgekit.device import adb
    from edgekit.errors import DeviceError

    def no_server(**_: object) -> list[tuple[str, str]]:
        raise DeviceError("cannot list devices: [Errno 111] Connection refused")

    monkeypatch.setattr(adb, "list_devices", no_server)
    # The default server as adb finds it: no server variable (a session's private adb server sets one).
    for name in ("ADB_SERVER_SOCKET", "ANDROID_ADB_SERVER_ADDRESS", "ANDROID_ADB_SERVER_PORT"):
        monkeypatch.delenv(name, raising=False)
    code = cli.main(["devices"])
    captured = capsys.readouterr()
    assert code == DeviceError.exit_code
    assert captured.out.splitlines()[1].split()[:2] == ["local", "device"]
    assert captured.err.strip() == (
        "edgekit: error: adb server localhost:5037: cannot list devices: [Errno 111] Connection refused"
    )


def test_repeated_runs_are_kept_and_the_main_file_carries_their_aggregate(tmp_path: Path) -> None:
    import dataclasses

    from edgekit.bench.campaign import write_results
    from edgekit.bench.result import BenchResult
    from tests.typed_results import schema1_result

    base = schema1_result()
    runs = [
        dataclasses.replace(base, run_id=f"r{i}", summary=dataclasses.replace(base.summary, decode_tokens_per_s=tps))
        for i, tps in enumerate((100.0, 110.0, 120.0), 1)
    ]
    path = tmp_path / "r-local.json"
    final = write_results(runs, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "r-local-run1.json",
        "r-local-run2.json",
        "r-local-run3.json",
        "r-local.json",
    ]
    assert [BenchResult.load(run_path(path, i)).run_id for i in (1, 2, 3)] == ["r1", "r2", "r3"]
    written = BenchResult.load(path)
    assert written.run_id == "r3" and written == final
    assert written.aggregate is not None
    decode = written.aggregate["decode_tokens_per_s"]
    assert (decode.mean, decode.n, decode.runs) == (110.0, 3, 3)
