"""Issue 17 ("Nothing lost"): an unwritable -o is refused before the work and a result that
cannot be written where asked still lands somewhere named (#2); messages that name the real
cause (#9); convert's leftovers from a killed run (#10); a bad run setting is an input error
(#15). On the emulated phone and real processes where the row concerns one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgekit.convert import ConvertResult
from edgekit.testing.plugin import EmulatedDevice
from tests.conftest import REPO, run_cli, small_workload
from tests.typed_results import run_meta

RESULT = REPO / "tests" / "fixtures" / "schema1" / "result-local.json"
# sysfs takes no new file, from root or anyone else (a chmod'ed folder does, for root).
READ_ONLY = Path("/sys")


def _one_line_error(proc: object, code: int, *needles: str) -> str:
    import subprocess

    assert isinstance(proc, subprocess.CompletedProcess)
    assert proc.returncode == code, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "internal error" not in lines[0] and "Traceback" not in proc.stderr
    return str(lines[0])


@pytest.mark.parametrize("where", ["read-only", "not-a-folder"])
def test_bench_refuses_an_unwritable_output_before_the_run(
    emulated_device: EmulatedDevice, tmp_path: Path, adb_home: Path, where: str
) -> None:
    out = READ_ONLY / "edgekit-test" / "r.json" if where == "read-only" else tmp_path / "file" / "r.json"
    if where == "not-a-folder":
        (tmp_path / "file").write_text("a file where the folder should be\n")
    artifact = tmp_path / "model.litertlm"
    artifact.write_bytes(b"never deployed: the run is refused first")
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
        "-o",
        str(out),
        str(artifact),
        env={"ANDROID_USER_HOME": str(adb_home / ".android")},
        timeout=120,
    )
    expected = "cannot write in output folder /sys (" if where == "read-only" else "is not a folder: choose another -o"
    _one_line_error(proc, 2, expected)
    # Refused before anything reached the phone: no deploy, no run folder.
    assert not list(emulated_device.sandbox.rglob("runs")) and not list(emulated_device.sandbox.rglob("models"))


@pytest.mark.parametrize("where", ["read-only", "not-a-folder"])
def test_report_refuses_an_unwritable_output(tmp_path: Path, where: str) -> None:
    out = READ_ONLY / "edgekit-report.html" if where == "read-only" else tmp_path / "no" / "such" / "r.html"
    proc = run_cli("report", str(RESULT), "-o", str(out))
    expected = (
        "cannot write in output folder /sys (" if where == "read-only" else f"output folder {out.parent} does not exist"
    )
    _one_line_error(proc, 2, expected, "-o")
    assert proc.stdout == "" and not out.exists()


@pytest.mark.slow
def test_a_result_whose_folder_went_away_during_the_run_is_written_where_the_message_says(
    emulated_device: EmulatedDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    from edgekit.bench.campaign import Campaign, Observer, fallback_dirs, run_devices
    from edgekit.bench.config import BenchConfig
    from edgekit.bench.result import BenchResult
    from edgekit.device import Transport

    folder = tmp_path / "results"
    folder.mkdir()
    config = BenchConfig(
        workload=small_workload(tmp_path, 1),
        runner=emulated_device.runner,
        sample_period_s=0.05,
        baseline_s=1.0,
        poll_s=0.2,
    )
    campaign = Campaign(artifacts=(int4_result.artifact.path,), config=config, output=folder / "r.json")

    def progress(_serial: str, _index: int, _done: int, _total: int) -> None:
        # While the phone runs (the output was checked before it started), the folder
        # becomes a file: no folder can be made there any more.
        if folder.is_dir():
            shutil.rmtree(folder)
            folder.write_text("not a folder now\n")

    [outcome] = run_devices([emulated_device.serial], Transport.DIRECT, campaign, Observer(progress=progress))
    assert outcome.write_error is not None and outcome.path is not None
    assert outcome.write_error.startswith(f"cannot write the result to {folder / 'r.json'} (")
    assert outcome.write_error.endswith(f": it is in {outcome.path}")
    assert outcome.path.parent == fallback_dirs()[0] and outcome.path.name.startswith("r-")
    kept = BenchResult.load(outcome.path)
    assert outcome.result is not None and kept.run_id == outcome.result.run_id and kept.complete
    assert outcome.exit_code == 2  # a complete run, but not where it was asked for: never 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--baseline-s", "nan"), "--baseline-s must be a finite number, got nan"),
        (("--capacity-mah", "inf"), "--capacity-mah must be a finite number, got inf"),
        (("--settle-s", "-inf"), "--settle-s must be a finite number, got -inf"),
        (("--threads", "0"), "--threads must be at least 1, got 0"),
        (("--max-num-tokens", "-5"), "--max-num-tokens must be at least 1, got -5"),
    ],
)
def test_a_bad_bench_number_is_an_input_error_before_any_device(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    artifact = tmp_path / "model.litertlm"
    artifact.write_bytes(b"x")
    # A device nobody listens on: the config is refused before any connection is tried.
    proc = run_cli("battery-bench", "--transport", "direct", "--device", "127.0.0.1:9", *args, str(artifact))
    _one_line_error(proc, 2, message)


def test_run_folder_prepare_refuses_what_driver_sh_cannot_take_as_input_errors(tmp_path: Path) -> None:
    from edgekit.bench import run_folder
    from edgekit.bench.workload import load_workload
    from edgekit.device.local import LocalDevice
    from edgekit.errors import InputError

    device = LocalDevice(root=tmp_path / "root")
    paths = run_folder.run_paths(device, "bad", device.path("harness"))
    good = {
        "runner": device.path("runners", "r", "runner"),
        "model": device.path("models", "m", "model.litertlm"),
        "workload": load_workload(small_workload(tmp_path, 1)),
        "flags": ["--backend=cpu"],
        "protocol": "multi_turn",
        "turn_timeout_s": 60,
        "answer_cap_words": 10,
        "answer_cap_bytes": 100,
        "sample_period_s": 0.25,
        "baseline_s": 1.0,
        "meta": run_meta(),
    }
    bad: list[tuple[dict[str, object], str]] = [
        ({"flags": ["--backend=cpu", "--x=a b"]}, "runner flag '--x=a b' contains whitespace"),
        ({"turn_timeout_s": 0}, "each must be at least 1"),
        ({"answer_cap_bytes": 0}, "each must be at least 1"),
        ({"baseline_s": float("nan")}, "must be finite"),
        ({"sample_period_s": 0.0}, "the period > 0"),
        ({"model": "/elsewhere/model.litertlm"}, "is not under the device's work root"),
    ]
    for change, message in bad:
        with pytest.raises(InputError, match=message) as caught:
            run_folder.prepare(device, paths, **{**good, **change})  # type: ignore[arg-type]
        assert "\n" not in str(caught.value)
        assert not Path(paths.run_dir).exists()  # refused before anything was written
    run_folder.prepare(device, paths, **good)  # type: ignore[arg-type]
    assert (Path(paths.run_dir) / "run.env").is_file()


@pytest.mark.slow
def test_convert_removes_its_own_stale_work_folders_of_a_killed_run(
    tiny_gemma3_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal
    import subprocess
    import sys

    from edgekit._files import STALE_AFTER_S, remove_stale_temp
    from tests.conftest import wait_for

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "x.litertlm"
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    # A real convert, killed with SIGKILL once it works: nothing of it can clean up.
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "convert", str(tiny_gemma3_dir), "-o", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        [killed] = wait_for(lambda: list(out_dir.glob(".x.litertlm.edgekit-*")), what="the work folder", timeout_s=120)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert killed.is_dir() and not out.exists()  # left behind: the defect of issue 17 #10

    # Its age set back two days (everything in it); another one, fresh, as a live convert's.
    old = killed.stat().st_mtime - 2 * STALE_AFTER_S
    for root, dirs, files in os.walk(killed):
        for name in (*dirs, *files):
            os.utime(os.path.join(root, name), (old, old), follow_symlinks=False)
    os.utime(killed, (old, old))
    live = out_dir / ".x.litertlm.edgekit-live0001"
    (live / "export").mkdir(parents=True)
    other = out_dir / ".y.litertlm.edgekit-old00001"  # another output's: not this convert's to judge
    other.mkdir()
    os.utime(other, (old, old))

    # Someone else's stale folder is never removed (ownership), nor a young one (age).
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 1)
    assert remove_stale_temp(out_dir, ".x.litertlm.edgekit-") == [] and killed.is_dir()
    monkeypatch.undo()

    done = subprocess.run(
        [sys.executable, "-m", "edgekit", "convert", str(tiny_gemma3_dir), "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr
    assert out.is_file() and not killed.exists()
    assert live.is_dir() and other.is_dir()
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        [".x.litertlm.edgekit-live0001", ".y.litertlm.edgekit-old00001", "x.litertlm", "x.litertlm.json"]
    )


def test_a_manifest_whose_size_alone_is_wrong_names_the_size(tmp_path: Path) -> None:
    import dataclasses

    from edgekit.artifact import Artifact, manifest_path
    from edgekit.errors import InputError
    from tests.test_artifact import _manifest

    f = tmp_path / "m.litertlm"
    f.write_bytes(b"model bytes")
    right = _manifest(f)
    dataclasses.replace(right, size_bytes=right.size_bytes + 1).write(f)
    with pytest.raises(InputError) as caught:
        Artifact.load(f).verify()
    message = str(caught.value)
    assert "(size 11 bytes, manifest says 12; its sha256 matches, so the manifest was edited)" in message
    assert "sha256 " not in message.replace("its sha256 matches", "")

    right.write(f)
    f.write_bytes(b"model bytez")  # same size, other bytes: the sha256 is what differs
    with pytest.raises(InputError, match=r"\(sha256 [0-9a-f]{12}…, manifest says [0-9a-f]{12}…\)") as caught:
        Artifact.load(f).verify()
    assert "(size" not in str(caught.value) and manifest_path(f).is_file()


@pytest.mark.slow
def test_a_full_phone_says_the_margin(
    emulated_device: EmulatedDevice, int4_result: ConvertResult, adb_home: Path, tmp_path: Path
) -> None:
    args = ["deploy", "--transport", "direct", "--device", emulated_device.serial, "--runner"]
    args += [str(emulated_device.runner), "--no-smoke", str(int4_result.artifact.path)]
    env = {"ANDROID_USER_HOME": str(adb_home / ".android")}
    first = run_cli(*args, env=env)
    assert first.returncode == 0, first.stderr
    emulated_device.faults.low_space = True
    emulated_device.emulator.refresh_battery(busy=False)  # publishes the fault at once
    # Everything is there already (nothing to send), yet 1 MB free is under the margin.
    line = _one_line_error(run_cli(*args, env=env), 5, "not enough space")
    assert line.endswith(
        f"need 0 MB + 16 MiB margin, 1 MB free; run `edgekit clean --device {emulated_device.serial}` or free space"
    )
