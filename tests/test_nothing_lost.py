"""Nothing lost, nothing left changed: every way a host, a cable or a user interrupts a run.

On the emulated phone, with real processes killed by real signals: the CLI in a
subprocess gets SIGTERM, SIGHUP or two SIGINTs; the phone's adbd (the emulator) is
stopped mid-run; a second bench and a clean meet a busy phone; a deploy is cut off in the
middle of a big push; a run is stopped on a shell without setsid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekit.bench import lock, run_folder, runs, session
from edgekit.bench.result import BenchResult
from edgekit.convert import ConvertResult
from edgekit.deploy import DeployConfig, deploy
from edgekit.device.base import Device
from edgekit.device.direct import DirectAdbDevice
from edgekit.errors import EXIT_STILL_RUNNING, DeviceBusy, DeviceError
from edgekit.runtimes.litert_lm.runner_standin import write_runner_standin
from edgekit.testing.emulator import AdbDeviceEmulator
from edgekit.testing.plugin import EmulatedDevice
from tests.conftest import run_cli, small_workload, wait_for

pytestmark = pytest.mark.slow

ROOT = "/data/local/tmp/edgekit"
BEFORE = {"screen_off_timeout": "30000", "screen_brightness_mode": "1", "screen_brightness": "128"}


def _home() -> Path:
    """The HOME run_cli gives every command (so `edgekit runs` sees what battery-bench recorded)."""
    home = Path(os.environ.get("XDG_CACHE_HOME", "/tmp")) / "home"
    home.mkdir(parents=True, exist_ok=True)
    return home


def _env(adb_home: Path) -> dict[str, str]:
    return {"ANDROID_USER_HOME": str(adb_home / ".android")}


def _popen(args: list[str], adb_home: Path) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if k != "EDGEKIT_DEBUG"}
    env = {**base, "HOME": str(_home()), "COLUMNS": "200", **_env(adb_home)}
    return subprocess.Popen(
        [sys.executable, "-m", "edgekit", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _set_phone(dev: EmulatedDevice) -> None:
    """The user's settings before edgekit touches the phone, and its screen off."""
    folder = dev.sandbox / ".emulator" / "settings" / "system"
    folder.mkdir(parents=True, exist_ok=True)
    for key, value in BEFORE.items():
        (folder / key).write_text(value + "\n")
    (dev.sandbox / ".emulator" / "wakefulness").write_text("Asleep\n")


def _phone(dev: EmulatedDevice) -> dict[str, str]:
    folder = dev.sandbox / ".emulator" / "settings" / "system"
    return {key: (folder / key).read_text().strip() if (folder / key).exists() else "" for key in BEFORE}


def _screen(dev: EmulatedDevice) -> str:
    return (dev.sandbox / ".emulator" / "wakefulness").read_text().strip()


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie nobody reaped yet is not running)."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _run_pids(run_dir: Path) -> list[int]:
    """Every pid the run recorded: driver, sampler, runner and its watchdog."""
    files = [run_dir / n for n in ("driver.pid", "sampler.pid", "runner.pid")]
    text = " ".join(f.read_text() for f in files if f.exists())
    return [int(p) for p in text.split() if p.isdigit()]


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def _bench_args(dev: EmulatedDevice, runner: Path, workload: Path, *extra: str) -> list[str]:
    args = ["battery-bench", "--transport", "direct", "--device", dev.serial, "--runner", str(runner)]
    return [*args, "--workload", str(workload), *extra]


def _listed(run_id: str) -> bool:
    proc = run_cli("runs", "--json")
    assert proc.returncode == 0, proc.stderr
    return run_id in {entry["run_id"] for entry in json.loads(proc.stdout)}


@pytest.fixture
def device(emulated_device: EmulatedDevice) -> Iterator[DirectAdbDevice]:
    host, port = emulated_device.serial.rsplit(":", 1)
    d = DirectAdbDevice(host, int(port), connect_timeout_s=5, auth_timeout_s=2)
    yield d
    d.close()


@pytest.mark.parametrize(
    ("signals", "code", "said"),
    [
        ((signal.SIGTERM,), 143, "SIGTERM: run "),
        ((signal.SIGINT, signal.SIGINT), 130, "interrupted: run "),
        ((signal.SIGHUP,), 129, "SIGHUP: run "),
    ],
    ids=["sigterm", "double-ctrl-c", "sighup"],
)
def test_a_stopped_attached_run_is_found_again_and_the_phone_is_restored(
    emulated_device: EmulatedDevice,
    int4_result: ConvertResult,
    tmp_path: Path,
    adb_home: Path,
    signals: tuple[signal.Signals, ...],
    code: int,
    said: str,
) -> None:
    _set_phone(emulated_device)
    workload = small_workload(tmp_path, 2)
    args = _bench_args(emulated_device, emulated_device.runner, workload, "--baseline-s", "60")
    proc = _popen([*args, str(int4_result.artifact.path)], adb_home)
    runs_dir = emulated_device.path(f"{ROOT}/runs")
    [pid_file] = wait_for(lambda: list(runs_dir.glob("*/driver.pid")), what="the run's driver to start")
    run_id = pid_file.parent.name
    wait_for(lambda: pid_file.read_text().strip(), what="the driver's pid")
    # The command has heard of the run (its index entry is written with the "started" line);
    # a signal before that stops the run as one that never started (test_session).
    wait_for(lambda: _listed(run_id), what="the command to report the run")
    assert _phone(emulated_device) != BEFORE and _screen(emulated_device) == "Awake"  # the run changed them
    pids = _run_pids(pid_file.parent)
    for i, sig in enumerate(signals):
        if i:
            time.sleep(0.15)  # a second Ctrl-C while the first one's stop is under way
        proc.send_signal(sig)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    lines = [line for line in err.splitlines() if line.strip()]
    started = f"run {run_id} started on {emulated_device.serial}; if this is cut off: "
    assert any(line.startswith(started) for line in lines), err
    [stop_line] = [line for line in lines if line.startswith(said)]
    assert f"run {run_id} stopped on {emulated_device.serial}" in stop_line
    assert f"--collect {run_id}" in stop_line and f"--resume {run_id}" in stop_line
    assert "Traceback" not in err and "edgekit: error" not in err
    assert _phone(emulated_device) == BEFORE and _screen(emulated_device) == "Asleep"
    assert not any(_alive(p) for p in pids)
    assert not emulated_device.path(f"{ROOT}/bench.lock").exists()
    assert _listed(run_id)
    collected = run_cli(
        *["battery-bench", "--transport", "direct", "--device", emulated_device.serial, "--collect", run_id],
        *["-o", str(tmp_path / "r.json")],
        env=_env(adb_home),
    )
    assert collected.returncode == 7, collected.stderr  # cut off: not complete, but collected
    assert not BenchResult.load(tmp_path / "r.json").complete
    assert not _listed(run_id)


def test_a_killed_adbd_says_how_to_collect_and_the_phone_restores_itself(
    emulated_device: EmulatedDevice, int4_result: ConvertResult, tmp_path: Path, adb_home: Path
) -> None:
    _set_phone(emulated_device)
    workload = small_workload(tmp_path, 1)
    args = _bench_args(emulated_device, emulated_device.runner, workload, "--baseline-s", "2", "--sample-s", "0.1")
    proc = _popen([*args, str(int4_result.artifact.path)], adb_home)
    runs_dir = emulated_device.path(f"{ROOT}/runs")
    [pid_file] = wait_for(lambda: list(runs_dir.glob("*/driver.pid")), what="the run's driver to start")
    run_id = pid_file.parent.name
    port = emulated_device.emulator.port
    emulated_device.emulator.stop()  # adbd killed: the driver (its own session) runs on
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 5, err
    [line] = [x for x in err.splitlines() if x.startswith("edgekit: error: ")]
    assert f"run {run_id} goes on on the phone" in line and f"--collect {run_id}" in line, line
    assert _listed(run_id)
    status = pid_file.parent / "status"
    wait_for(lambda: status.exists() and status.read_text().strip() == "done", what="the run to end on the phone")
    # Nobody on the host restored anything: the driver did, when it ended.
    assert _phone(emulated_device) == BEFORE and _screen(emulated_device) == "Asleep"
    assert (pid_file.parent / "restored").exists() and not emulated_device.path(f"{ROOT}/bench.lock").exists()
    key = (adb_home / ".android" / "adbkey.pub").read_bytes()
    back = AdbDeviceEmulator(emulated_device.sandbox, trusted_keys=[key], port=port).start()  # the phone is back
    try:
        collected = run_cli(
            *["battery-bench", "--transport", "direct", "--device", emulated_device.serial, "--collect", run_id],
            *["-o", str(tmp_path / "r.json")],
            env=_env(adb_home),
        )
        assert collected.returncode in (0, 6), collected.stderr  # complete (battery valid or void: cable)
        assert BenchResult.load(tmp_path / "r.json").complete
        assert not _listed(run_id)
    finally:
        back.stop()


def test_one_run_per_phone_a_second_bench_and_a_clean_are_refused(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path, adb_home: Path
) -> None:
    workload = small_workload(tmp_path, 2)
    config = session.BenchConfig(workload=workload, runner=emulated_device.runner, baseline_s=120, poll_s=0.2)
    run_id = session.start_run(device, int4_result.artifact.path, config)
    lock_file = emulated_device.path(f"{ROOT}/bench.lock")
    fields = dict(line.split("=", 1) for line in lock_file.read_text().splitlines())
    assert fields["run_id"] == run_id and fields["started"] and fields["epoch"].isdigit()
    args = _bench_args(emulated_device, emulated_device.runner, workload)
    second = run_cli(*args, str(int4_result.artifact.path), env=_env(adb_home))
    assert second.returncode == 5, second.stderr
    [line] = second.stderr.splitlines()[-1:]
    assert line.startswith("edgekit: error: ") and f"run {run_id} (started " in line and "one run per phone" in line
    assert [x for x in second.stderr.splitlines() if x.startswith("edgekit: error")] == [line]
    clean = run_cli("clean", "--transport", "direct", "--device", emulated_device.serial, env=_env(adb_home))
    assert clean.returncode == 5 and f"run {run_id}" in clean.stderr and "clean --force" in clean.stderr
    assert len(clean.stderr.splitlines()) == 1 and "removed" not in clean.stdout
    assert emulated_device.path(f"{ROOT}/models").is_dir()
    with pytest.raises(DeviceBusy, match=run_id):
        session.start_run(device, int4_result.artifact.path, config)
    # A stale lock: its driver killed with SIGKILL (no trap runs), the lock left behind.
    run_dir = emulated_device.path(f"{ROOT}/runs/{run_id}")
    driver = int((run_dir / "driver.pid").read_text())
    os.killpg(driver, signal.SIGKILL)
    wait_for(lambda: not _alive(driver), what="the driver to die")
    assert lock_file.exists() and lock.holder(device) is None
    # A stale lock is no refusal: clean goes ahead (here nothing but the newest deploy is there).
    again = run_cli("clean", "--transport", "direct", "--device", emulated_device.serial, "--json", env=_env(adb_home))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"removed": []}
    # And a new run takes the stale lock over.
    config = session.BenchConfig(workload=workload, runner=emulated_device.runner, baseline_s=0.2, poll_s=0.2)
    second_id = session.start_run(device, int4_result.artifact.path, config)
    assert lock_file.read_text().startswith(f"run_id={second_id}\n")
    session.interrupt(device, second_id)
    assert not lock_file.exists()


def test_a_ctrl_c_as_the_driver_starts_stops_it_and_restores_the_phone(
    emulated_device: EmulatedDevice,
    device: DirectAdbDevice,
    int4_result: ConvertResult,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Ctrl-C after the driver started but before start_run returned its id: the caller never
    hears of the run, so start_run must stop it, not leave it running with the lock released."""
    _set_phone(emulated_device)
    started: list[int] = []
    real_start = run_folder.start

    def start_then_ctrl_c(dev: Device, paths: run_folder.RunPaths) -> None:
        real_start(dev, paths)
        pid_file = emulated_device.path(f"{paths.run_dir}/driver.pid")
        started.append(int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the pid")))
        raise KeyboardInterrupt

    monkeypatch.setattr(run_folder, "start", start_then_ctrl_c)
    config = session.BenchConfig(workload=small_workload(tmp_path, 1), runner=emulated_device.runner, baseline_s=120)
    with pytest.raises(KeyboardInterrupt):
        session.start_run(device, int4_result.artifact.path, config)
    [driver] = started
    wait_for(lambda: not _alive(driver), what="the driver to be stopped", timeout_s=30)  # it would run 120 s on
    assert lock.holder(device) is None and not emulated_device.path(f"{ROOT}/bench.lock").exists()
    assert _phone(emulated_device) == BEFORE and _screen(emulated_device) == "Asleep"


def test_clean_force_removes_the_files_of_a_live_run(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path, adb_home: Path
) -> None:
    config = session.BenchConfig(workload=small_workload(tmp_path, 1), runner=emulated_device.runner, baseline_s=120)
    run_id = session.start_run(device, int4_result.artifact.path, config)
    assert lock.holder(device) == lock.LockHolder(run_id=run_id, started=lock.holder(device).started)  # type: ignore[union-attr]
    everything = ["clean", "--transport", "direct", "--device", emulated_device.serial, "--everything"]
    assert run_cli(*everything, env=_env(adb_home)).returncode == 5
    pid_file = emulated_device.path(f"{ROOT}/runs/{run_id}/driver.pid")
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "", what="the driver's pid")
    driver = int(pid_file.read_text())
    assert _alive(driver)
    # --force stops the run first: a driver still writing into its folder would make rm fail.
    forced = run_cli(*everything, "--force", env=_env(adb_home))
    assert forced.returncode == 0, forced.stderr
    assert not emulated_device.path(ROOT).exists()
    wait_for(lambda: not _alive(driver), what="the driver to end")


def test_collect_of_a_live_run_says_how_far_it_is(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path, adb_home: Path
) -> None:
    config = session.BenchConfig(workload=small_workload(tmp_path, 2), runner=emulated_device.runner, baseline_s=120)
    run_id = session.start_run(device, int4_result.artifact.path, config)
    args = ["battery-bench", "--transport", "direct", "--device", emulated_device.serial, "--collect", run_id]
    out = tmp_path / "r.json"
    proc = run_cli(*args, "-o", str(out), env=_env(adb_home))
    assert proc.returncode == EXIT_STILL_RUNNING == 75, proc.stderr
    assert proc.stderr.strip() == (
        f"{emulated_device.serial}: run {run_id} is still running, 0 of 2 conversations done: "
        "collect it again when it ends (nothing is lost)"
    )
    assert "FAILED" not in proc.stdout + proc.stderr and "--resume" not in proc.stderr and not out.exists()
    as_json = run_cli(*args, "--json", env=_env(adb_home))
    assert as_json.returncode == 75
    assert json.loads(as_json.stdout) == {
        "run_id": run_id,
        "device": emulated_device.serial,
        "state": "running",
        "done": 0,
        "total": 2,
    }
    session.interrupt(device, run_id)


def _without_setsid(tmp_path: Path, emu_bin: Path) -> str:
    """A PATH with every tool of this one but setsid (a phone shell without it)."""
    hidden = tmp_path / "no-setsid-bin"
    hidden.mkdir()
    for folder in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for entry in os.scandir(folder):
            target = hidden / entry.name
            if entry.name != "setsid" and not target.exists() and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    return f"{emu_bin}:{hidden}"


def test_a_stopped_run_leaves_nothing_running_without_setsid(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, int4_result: ConvertResult, tmp_path: Path
) -> None:
    emulator = emulated_device.emulator
    emulator.extra_env["PATH"] = _without_setsid(tmp_path, emulated_device.sandbox / ".emulator" / "bin")
    emulator.reap_background_jobs = False  # as adbd: what the start command left running goes on
    assert device.script("command -v setsid || echo none").stdout.strip() == "none"
    _set_phone(emulated_device)
    hang = write_runner_standin(tmp_path / "litert_lm_advanced_main", "hang")  # never answers turn 2
    deploy(device, int4_result.artifact.path, DeployConfig(runner=hang, smoke=False))
    config = session.BenchConfig(workload=small_workload(tmp_path, 1), runner=hang, baseline_s=0.2, poll_s=0.2)
    run_id = session.start_run(device, int4_result.artifact.path, config)
    run_dir = emulated_device.path(f"{ROOT}/runs/{run_id}")
    wait_for(lambda: (run_dir / "runner.pid").exists() and len(_run_pids(run_dir)) == 4, what="the runner to start")
    pids = _run_pids(run_dir)
    driver = pids[0]
    assert os.getpgid(driver) != driver  # no setsid: the driver leads no process group
    assert all(_alive(p) for p in pids)
    session.interrupt(device, run_id)
    assert not [p for p in pids if _alive(p)]
    assert _phone(emulated_device) == BEFORE and _screen(emulated_device) == "Asleep"
    shutil.rmtree(tmp_path / "no-setsid-bin")


@pytest.mark.parametrize("transport", ["direct", "adb"])
def test_ctrl_c_stops_a_push_at_once_and_trusts_nothing(
    emulated_device: EmulatedDevice,
    int4_result: ConvertResult,
    tmp_path: Path,
    adb_home: Path,
    adb_server: int,
    transport: str,
) -> None:
    # A big artifact: the tiny model, then 600 MB more (a file of another content address).
    big = tmp_path / "big.litertlm"
    shutil.copy(int4_result.artifact.path, big)
    with big.open("ab") as f:
        f.truncate(big.stat().st_size + 600 * 1024 * 1024)
    env = {"ANDROID_ADB_SERVER_PORT": str(adb_server)}
    if transport == "adb":
        from edgekit.device.adb import ensure_server

        ensure_server().connect(emulated_device.serial, timeout=10)
    args = ["deploy", "--transport", transport, "--device", emulated_device.serial, "--runner"]
    base = {k: v for k, v in os.environ.items() if k != "EDGEKIT_DEBUG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit", *args, str(emulated_device.runner), str(big)],
        env={**base, "HOME": str(_home()), **_env(adb_home), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    models = emulated_device.path(f"{ROOT}/models")

    def part_growing() -> Path | None:
        parts = list(models.glob("*/model.litertlm.part")) if models.is_dir() else []
        return parts[0] if parts and parts[0].stat().st_size > 8 * 1024 * 1024 else None

    part = wait_for(part_growing, what="the push to be under way")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "edgekit: error: interrupted" and "Traceback" not in err
    assert out == ""
    # No adb client is left pushing (an adb server may still hand the device what it had
    # taken in; it never ends the file, so the .part name stays). Direct: nothing at all.
    left = [p for p in Path("/proc").glob("[0-9]*") if str(big).encode() in _cmdline(p)]
    assert not left, [(_cmdline(p), (p / "status").read_text()[:300]) for p in left]
    if transport == "direct":
        time.sleep(1)
        size = part.stat().st_size
        time.sleep(1)
        assert part.stat().st_size == size < big.stat().st_size
    assert not (part.parent / "model.litertlm").exists()  # never renamed into a trusted name
    log = emulated_device.path(f"{ROOT}/deploys.log")
    assert not log.exists() or part.parent.name not in log.read_text()
    assert not list(emulated_device.sandbox.rglob("busy/*"))  # no smoke run
    if transport == "adb":
        from edgekit.device.adb import ensure_server

        ensure_server().disconnect(emulated_device.serial)


def test_a_direct_device_closed_under_a_push_raises_its_own_error(
    emulated_device: EmulatedDevice, device: DirectAdbDevice, tmp_path: Path
) -> None:
    # What Ctrl-C does to a deploy: another thread closes the device mid-push. adb-shell's
    # socket is then None or closed under select(); the caller must see a DeviceError (before
    # the fix: TypeError from select, a thread traceback on the terminal).
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.truncate(64 * 1024 * 1024)
    for delay in (0.0, 0.05, 0.2):
        device.shell(["true"])
        caught: list[BaseException] = []

        def push(caught: list[BaseException] = caught) -> None:
            try:
                device.push(big, f"{ROOT}/close-test.part")
            except BaseException as exc:  # the test records whatever escapes
                caught.append(exc)

        thread = threading.Thread(target=push)
        thread.start()
        time.sleep(delay)
        device.close()
        thread.join(30)
        assert not thread.is_alive()
        if caught:  # (a push that finished before the close raises nothing)
            assert isinstance(caught[0], DeviceError), repr(caught[0])


def test_a_pid_that_is_no_longer_the_driver_is_not_a_live_run(
    emulated_device: EmulatedDevice, device: DirectAdbDevice
) -> None:
    run_dir = emulated_device.path(f"{ROOT}/runs/r-pid")
    run_dir.mkdir(parents=True)
    paths = run_folder.RunPaths(run_id="r-pid", run_dir=f"{ROOT}/runs/r-pid", harness_dir="")
    # The pid a dead driver left, now another process's (or a zombie's: no cmdline).
    other = subprocess.Popen(["sleep", "30"])
    zombie = subprocess.Popen(["true"])
    wait_for(lambda: _zombie(zombie.pid), what="a zombie")
    try:
        for pid in (other.pid, zombie.pid):
            (run_dir / "driver.pid").write_text(f"{pid}\n")
            assert not run_folder.driver_alive(device, paths)
        driver = subprocess.Popen(["sh", "-c", "sleep 30; exit 0", "driver.sh"])
        (run_dir / "driver.pid").write_text(f"{driver.pid}\n")
        assert run_folder.driver_alive(device, paths)
        driver.kill()
        driver.wait()
        assert not run_folder.driver_alive(device, paths)
    finally:
        other.kill()
        other.wait()
        zombie.wait()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_the_runs_index_round_trips(tmp_path: Path) -> None:
    entry = runs.RunEntry(
        run_id="20261125-143000-a1b2c3", device="127.0.0.1:5555", transport="direct", started="2026", detached=True
    )
    runs.add(entry, tmp_path)
    (tmp_path / "junk.json").write_text("{not json")
    assert runs.entries(tmp_path) == [entry]
    assert entry.collect_command == (
        "edgekit battery-bench --device 127.0.0.1:5555 --transport direct --collect 20261125-143000-a1b2c3"
    )
    assert runs.remove(entry.run_id, tmp_path) and not runs.remove(entry.run_id, tmp_path)
    assert runs.entries(tmp_path) == []
