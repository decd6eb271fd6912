"""deploy, clean, resolve_devices and the turn-record assembly on edgekit.testing.FakeDevice:
in this process, without sockets or subprocesses."""

from __future__ import annotations

import _thread
import threading
from pathlib import Path

import pytest

from edgekit.artifact import sha256_file
from edgekit.bench import run_folder
from edgekit.bench.assembly import read_run
from edgekit.deploy import DeployConfig, DeployResult, deploy, deploy_many
from edgekit.device import Execution, Transport, resolve_devices
from edgekit.device.local import LocalDevice
from edgekit.errors import DeviceError, InputError
from edgekit.placement import clean
from edgekit.runners import remember_runner, resolve_runner, runner_cache_dir
from edgekit.runtimes.litert_lm import NAME as LITERT_LM
from edgekit.runtimes.litert_lm.bundle_writer import TFLITE_MODEL, write_bundle
from edgekit.runtimes.litert_lm.runner_standin import write_runner_standin
from edgekit.testing import FakeDevice

ROOT = "/data/local/tmp/edgekit"
CAPTURES = Path(__file__).parent / "captures"
_ELF_ARM64, _ELF_X86_64 = 183, 62


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # remember_runner (the CLI's) writes the user cache: one per test.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("EDGEKIT_RUNNER", raising=False)


def _artifact(tmp_path: Path, content: bytes = b"model bytes " * 1000) -> Path:
    """A bundle whose TFLite model section is `content` (deploy refuses a file no runner loads)."""
    return write_bundle(tmp_path / f"m-{len(content)}-{content[:1].hex()}.litertlm", [(TFLITE_MODEL, content)])


def _elf(path: Path, machine: int) -> Path:
    """The 64-byte header of a little-endian ELF64 executable for `machine` (e_machine at 18)."""
    header = b"\x7fELF\x02\x01\x01" + bytes(9) + (2).to_bytes(2, "little") + machine.to_bytes(2, "little")
    path.write_bytes(header.ljust(64, b"\0"))
    path.chmod(0o755)
    return path


def _runner(tmp_path: Path) -> Path:
    (tmp_path / "runner").mkdir(exist_ok=True)
    return write_runner_standin(tmp_path / "runner" / "litert_lm_advanced_main", "advanced")


def _config(runner: Path) -> DeployConfig:
    return DeployConfig(runner=runner, smoke=False)


def test_deploy_places_everything_content_addressed_and_a_second_deploy_sends_nothing(tmp_path: Path) -> None:
    fake = FakeDevice()
    artifact, runner = _artifact(tmp_path), _runner(tmp_path)
    sha, runner_sha = sha256_file(artifact), sha256_file(runner)
    first = deploy(fake, artifact, _config(runner))
    assert first.model.remote == f"{ROOT}/models/{sha}/model.litertlm" and first.model.pushed
    assert fake.files[first.model.remote] == artifact.read_bytes()
    assert first.runner is not None and first.runner.remote == f"{ROOT}/runners/{runner_sha}/litert_lm_advanced_main"
    assert fake.modes[first.runner.remote] == 0o755
    assert first.probe is not None and first.probe.protocol == "multi_turn"  # from the stand-in's --helpfull
    assert fake.modes[f"{first.harness.remote}/driver.sh"] == 0o755
    assert first.shell == {"mkfifo": True, "setsid": True, "sha256sum": True, "power_supply": True}
    assert "not an ELF binary" in " ".join(first.notes)  # the stand-in is a script
    assert not [p for p in fake.files if p.endswith(".part")]
    assert first.bytes_pushed == first.model.size_bytes + first.runner.size_bytes + first.harness.size_bytes
    pushes = len(fake.pushes)
    second = deploy(fake, artifact, _config(runner))
    assert second.bytes_pushed == 0
    assert not (second.model.pushed or second.runner is None or second.runner.pushed or second.harness.pushed)
    # The probe runs again and rewrites its probe.json; nothing else travels.
    assert fake.pushes[pushes:] == [f"{ROOT}/runners/{runner_sha}/probe.json"]
    log = fake.files[f"{ROOT}/deploys.log"].decode().splitlines()
    assert len(log) == 2 and log[-1].split()[1:] == [sha, runner_sha, first.harness.sha256]


def test_deploy_sends_only_what_is_missing_or_wrong(tmp_path: Path) -> None:
    fake = FakeDevice()
    artifact, runner = _artifact(tmp_path), _runner(tmp_path)
    first = deploy(fake, artifact, _config(runner))
    fake.files[first.model.remote] = b"truncated"  # a final name with the wrong content
    again = deploy(fake, artifact, _config(runner))
    assert again.model.pushed and fake.files[first.model.remote] == artifact.read_bytes()
    assert again.runner is not None and not again.runner.pushed and not again.harness.pushed
    assert again.bytes_pushed == artifact.stat().st_size


def test_space_counts_only_the_files_that_must_travel(tmp_path: Path) -> None:
    artifact, runner = _artifact(tmp_path, b"m" * 200_000), _runner(tmp_path)
    margin = 16 * 1024 * 1024
    fake = FakeDevice(free_bytes=margin + 100_000)  # the model does not fit
    with pytest.raises(DeviceError, match=r"fake-1: not enough space for /data/local/tmp/edgekit"):
        deploy(fake, artifact, _config(runner))
    assert fake.pushes == [] and not [p for p in fake.files if p.startswith(ROOT)]
    fake.free_bytes = 10**9
    first = deploy(fake, artifact, _config(runner))
    assert first.runner is not None
    fake.shell(["rm", "-rf", f"{ROOT}/runners"])
    # Room for the runner only (df counts 1K blocks): the model is there already.
    fake.free_bytes = margin + runner.stat().st_size + 2048
    again = deploy(fake, artifact, _config(runner))
    assert again.runner is not None and again.runner.pushed and not again.model.pushed


def test_resolving_and_deploying_write_no_cache_and_a_remembered_runner_is_found(tmp_path: Path) -> None:
    fake = FakeDevice()
    artifact, runner = _artifact(tmp_path), _runner(tmp_path)
    given = resolve_runner(runner, LITERT_LM)
    assert given is not None and given.binary == runner  # used where it is, not copied
    deploy(fake, artifact, _config(runner))
    assert not runner_cache_dir().exists()
    assert resolve_runner(None, LITERT_LM) is None
    remember_runner(given, LITERT_LM)  # what the CLI does after the deploy
    found = resolve_runner(None, LITERT_LM)
    assert found is not None and found.sha256 == given.sha256
    assert found.binary.parent == runner_cache_dir() / given.sha256
    assert (runner_cache_dir() / given.sha256 / ".runtime").read_text() == f"{LITERT_LM}\n"
    again = deploy(fake, artifact, DeployConfig(smoke=False))
    assert again.runner is not None and not again.runner.pushed


def test_deploy_many_deploys_every_device_and_an_error_stops_only_its_own(tmp_path: Path) -> None:
    good, full = FakeDevice("good"), FakeDevice("full", free_bytes=1024)
    devices = {d.serial: d for d in (good, full)}
    heard: list[tuple[str, str]] = []
    outcomes = deploy_many(
        ["good", "full"],
        _artifact(tmp_path),
        _config(_runner(tmp_path)),
        opener=devices.__getitem__,
        progress=lambda serial, label, _done, _total: heard.append((serial, label)),
    )
    assert list(outcomes) == ["good", "full"]
    done, error = outcomes["good"], outcomes["full"]
    assert isinstance(done, DeployResult) and done.model.pushed and done.serial == "good"
    assert isinstance(error, DeviceError) and "full: not enough space" in str(error)
    assert ("good", "model") in heard and all(serial == "good" for serial, _ in heard)
    assert full.pushes == []


class _ClosingFake(FakeDevice):
    def __init__(self) -> None:
        super().__init__()
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()


def test_deploy_many_on_ctrl_c_closes_the_devices_and_stops_at_the_next_push(tmp_path: Path) -> None:
    fake = _ClosingFake()

    def progress(_serial: str, _label: str, _done: int, _total: int) -> None:
        _thread.interrupt_main()  # Ctrl-C, while the model is pushed
        assert fake.closed.wait(10)

    with pytest.raises(KeyboardInterrupt):
        deploy_many(
            ["fake-1"], _artifact(tmp_path), _config(_runner(tmp_path)), opener={"fake-1": fake}.get, progress=progress
        )
    # The fake stores a push's bytes before its one progress report, which stops it: what it
    # pushed after the Ctrl-C stays under its .part name, never renamed.
    after = fake.pushes[1:]
    assert all(path.endswith(".part") for path in after)
    assert not any(path.removesuffix(".part") in fake.files for path in after)
    assert f"{ROOT}/deploys.log" not in fake.files


def test_a_runner_for_another_abi_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    fake = FakeDevice(abis=("arm64-v8a",))
    artifact = _artifact(tmp_path)
    (tmp_path / "x86").mkdir()
    with pytest.raises(InputError, match="the runner is built for x86_64 but fake-1 runs arm64-v8a"):
        deploy(fake, artifact, _config(_elf(tmp_path / "x86" / "litert_lm_main", _ELF_X86_64)))
    assert fake.pushes == []
    (tmp_path / "arm").mkdir()
    ok = deploy(fake, artifact, _config(_elf(tmp_path / "arm" / "litert_lm_main", _ELF_ARM64)))
    assert ok.runner is not None and ok.runner.pushed
    assert not any("ELF" in note for note in ok.notes)


def test_no_runner_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no on-device runner: pass --runner PATH"):
        deploy(FakeDevice(), _artifact(tmp_path), DeployConfig(smoke=False))


def test_a_corrupted_push_leaves_no_file_under_a_final_name(tmp_path: Path) -> None:
    fake = FakeDevice()
    fake.corrupt_pushes = True
    artifact = _artifact(tmp_path)
    with pytest.raises(DeviceError, match="model arrived corrupted"):
        deploy(fake, artifact, _config(_runner(tmp_path)))
    assert not [p for p in fake.files if "/models/" in p]  # neither the final name nor the .part


def test_the_shell_check_refuses_without_mkfifo_and_notes_a_missing_setsid(tmp_path: Path) -> None:
    artifact, runner = _artifact(tmp_path), _runner(tmp_path)
    with pytest.raises(DeviceError, match="cannot run mkfifo"):
        deploy(FakeDevice(shell_tools=frozenset({"setsid", "sha256sum", "power_supply"})), artifact, _config(runner))
    result = deploy(FakeDevice(shell_tools=frozenset({"mkfifo", "sha256sum"})), artifact, _config(runner))
    assert any("no setsid" in n for n in result.notes) and any("power_supply" in n for n in result.notes)


def test_the_local_device_runs_in_process_and_needs_no_runner(tmp_path: Path) -> None:
    device = LocalDevice(tmp_path / "local")
    assert device.execution is Execution.ENGINE and FakeDevice().execution is Execution.RUNNER
    artifact = _artifact(tmp_path)
    result = deploy(device, artifact, DeployConfig(runner=tmp_path / "no-such-runner", smoke=False))
    assert result.runner is None and result.shell is None
    assert Path(result.model.remote).read_bytes() == artifact.read_bytes()
    assert result.model.remote == str(tmp_path / "local" / "models" / sha256_file(artifact) / "model.litertlm")


def test_clean_keeps_the_newest_deploy_or_removes_everything(tmp_path: Path) -> None:
    fake = FakeDevice()
    runner = _runner(tmp_path)
    old = deploy(fake, _artifact(tmp_path, b"old " * 100), _config(runner))
    new = deploy(fake, _artifact(tmp_path, b"new " * 100), _config(runner))
    fake.write(f"{ROOT}/tmp/smoke-leftover.txt", b"x")
    removed = clean(fake, everything=False)
    assert sorted(removed) == [f"{ROOT}/models/{old.model.sha256}", f"{ROOT}/tmp/smoke-leftover.txt"]
    assert new.model.remote in fake.files and old.model.remote not in fake.files
    assert new.runner is not None and new.runner.remote in fake.files
    assert fake.files[f"{ROOT}/deploys.log"].decode().count("\n") == 1
    assert clean(fake, everything=True) == [ROOT]
    assert not [p for p in fake.files if p.startswith(ROOT)]
    assert clean(fake, everything=True) == []


def test_resolve_devices_from_a_listing() -> None:
    def listed(*pairs: tuple[str, str]):  # type: ignore[no-untyped-def]
        return lambda _server: list(pairs)

    two = listed(("A", "device"), ("B", "unauthorized"), ("C", "device"))
    with pytest.raises(InputError, match=r"several devices \(A, C\): choose with --device SERIAL"):
        resolve_devices((), list_devices=two)
    assert resolve_devices(("all",), list_devices=two) == ["A", "C"]
    assert resolve_devices(("X", "all", "A"), list_devices=two) == ["X", "A", "C"]
    assert resolve_devices((), list_devices=listed(("A", "device"), ("B", "offline"))) == ["A"]
    with pytest.raises(DeviceError, match=r"seen but not ready: B \(unauthorized\)"):
        resolve_devices((), list_devices=listed(("B", "unauthorized")))
    with pytest.raises(DeviceError, match="--device all: no adb device is ready"):
        resolve_devices(("all",), list_devices=listed())

    def no_server(_server: object) -> list[tuple[str, str]]:
        raise AssertionError("named devices need no listing")

    assert resolve_devices(("10.0.0.2:5555", "local"), list_devices=no_server) == ["10.0.0.2:5555", "local"]
    with pytest.raises(InputError, match="--transport direct needs --device HOST:PORT"):
        resolve_devices((), Transport.DIRECT, list_devices=no_server)


def _finish_run(fake: FakeDevice, run_dir: str) -> None:
    """What driver.sh leaves after one two-turn conversation through a sync multi-turn runner."""
    events = [
        (1000, "driver_start", "boot1", 0),
        (1000, "workload_start", "", 0),
        (1000, "conv_start", "0001", 0),
        (1100, "turn_send", "0001", 1),
        (1400, "turn_first", "0001", 1),
        (1900, "turn_end", "0001", 1),
        (2000, "turn_send", "0001", 2),
        (2300, "turn_end", "0001", 2),
        (2400, "conv_end", "0001", 0),
        (2500, "workload_end", "", 0),
    ]
    fake.write(f"{run_dir}/events.csv", "".join(f"{t},{n},{k},{i}\n" for t, n, k, i in events).encode())
    fake.write(f"{run_dir}/samples.csv", b"")
    fake.write(f"{run_dir}/out/0001.txt", b"Hello!\nBye.\n")
    stderr = (CAPTURES / "litert_lm_advanced_main-multiturn-sync.stderr.txt").read_bytes()
    fake.write(f"{run_dir}/err/0001.txt", stderr)
    fake.write(f"{run_dir}/done/0001", b"")
    fake.write(f"{run_dir}/status", b"done\n")


def test_a_run_on_the_fake_from_start_to_turn_records(tmp_path: Path) -> None:
    from edgekit.bench import session
    from edgekit.bench.config import BenchConfig
    from edgekit.device.base import ShellResult
    from tests.conftest import small_workload

    fake = FakeDevice()
    started: list[str] = []
    fake.on_script(r"driver\.sh", lambda script: started.append(script) or ShellResult(0, "", ""))
    workload = small_workload(tmp_path, turns=[["Say hi.", "Now say bye."]])
    config = BenchConfig(workload=workload, runner=_runner(tmp_path), baseline_s=0.0)
    run_id = session.start_run(fake, _artifact(tmp_path), config)
    paths = run_folder.run_paths(fake, run_id, "")
    env = fake.files[f"{paths.run_dir}/run.env"].decode()
    runner_sha = sha256_file(tmp_path / "runner" / "litert_lm_advanced_main")
    # Files are named relative to the work root; the driver was started detached, once.
    assert f"RUNNER=runners/{runner_sha}/litert_lm_advanced_main\n" in env
    assert f"RUNNER_DIR=runners/{runner_sha}\n" in env and "PROTOCOL=multi_turn\n" in env
    assert fake.files[f"{paths.run_dir}/conv/0001.txt"] == b"Say hi.\nNow say bye.\n"
    assert len(started) == 1 and "setsid" in started[0]
    _finish_run(fake, paths.run_dir)

    files = run_folder.read_files(fake, paths)
    assert files.status == "done" and files.done == {"0001"}
    measured = read_run(files)
    first, second = measured.turns
    # Tokens and speeds from the runner's BenchmarkInfo (the capture's turns 1 and 2) ...
    assert (first.prompt_tokens, first.output_tokens, first.decode_tokens_per_s) == (41, 12, 27.83)
    assert (second.prompt_tokens, second.output_tokens, second.prefill_tokens_per_s) == (19, 3, 207.65)
    # ... times from the driver's events (device clock, seconds since the first event) ...
    assert (first.t_start_s, first.t_end_s, first.wall_s) == pytest.approx((0.1, 0.9, 0.8))
    # ... and a sync runner's time to first token by io_types.cc's formula: prefill + one decode step.
    assert first.ttft_s == pytest.approx(0.182114 + 0.431207 / 12)
    assert measured.complete and measured.conversations_finished == 1 and measured.flags == []
    result = session.collect(fake, run_id)
    assert result.complete and result.simulated and result.summary.output_tokens == 15
    assert [f.code for f in result.validity] == ["counters_missing"]  # no samples: no battery figure
    assert result.device.emulator == "edgekit FakeDevice (in-process)"


def test_a_run_started_before_its_meta_was_typed_still_collects(tmp_path: Path) -> None:
    import json

    from edgekit._typed import to_json
    from edgekit.bench import session
    from edgekit.probe import Protocol

    text = (Path(__file__).parent / "fixtures" / "meta_untyped" / "meta.json").read_text()
    old = json.loads(text)
    meta = run_folder.read_meta(text, "meta.json")
    assert json.loads(to_json(meta)) == old  # this edgekit writes the same keys and values
    assert meta.runner.probe and meta.runner.probe.protocol is Protocol.MULTI_TURN
    assert (
        meta.phone.settings_before
        == {"screen_brightness": None, "screen_brightness_mode": None, "screen_off_timeout": None}
        and meta.phone.changed == ()
    )
    fake = FakeDevice()
    paths = run_folder.run_paths(fake, old["run_id"], "")
    fake.write(f"{paths.run_dir}/meta.json", text.encode())
    _finish_run(fake, paths.run_dir)
    result = session.collect(fake, old["run_id"])
    assert result.complete and result.run_id == old["run_id"] and len(result.turns) == 2
    assert result.artifact.manifest is not None and result.artifact.manifest.settings.cache_length.value == 1024
    assert result.settings.capacity_mah == 4000.0 and result.runner.flags[0] == "--backend=cpu"
    assert result.start and result.start.battery_level_pct == 80


def test_a_run_folder_whose_meta_is_not_a_run_meta_is_one_input_error() -> None:
    fake = FakeDevice()
    paths = run_folder.run_paths(fake, "r1", "")
    fake.write(f"{paths.run_dir}/meta.json", b'{"run_id": "r1", "created": 5}')
    with pytest.raises(InputError, match=r"run r1: meta.json: Expected `str`, got `int` - at `\$.created`"):
        run_folder.read_files(fake, paths)


def test_a_run_folder_without_meta_is_one_error_line() -> None:
    fake = FakeDevice()
    with pytest.raises(DeviceError, match="fake-1: no run nope on the device"):
        run_folder.read_files(fake, run_folder.run_paths(fake, "nope", ""))


def test_the_fake_says_what_it_does_not_know() -> None:
    fake = FakeDevice()
    result = fake.shell(["pm", "list", "packages"], check=False)
    assert result.returncode == 127 and "not a command the fake knows" in result.stderr
    with pytest.raises(DeviceError, match="exited 127"):
        fake.script("for x in 1 2; do :; done")


def test_transports_do_no_io_until_first_use_and_leave_an_existing_key_alone(tmp_path: Path) -> None:
    import socket

    from edgekit.device.direct import DirectAdbDevice, ensure_adb_key

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = tmp_path / "android" / "adbkey"
    device = DirectAdbDevice("127.0.0.1", port, key_path=key, connect_timeout_s=2)
    assert not key.exists()  # the constructor neither connects nor creates a key
    with pytest.raises(DeviceError, match=rf"127.0.0.1:{port}: cannot connect"):
        device.shell(["true"])
    assert key.stat().st_mode & 0o777 == 0o600  # created by edgekit on first use: private
    key.chmod(0o640)
    before = key.read_bytes()
    assert ensure_adb_key(key) == key
    assert key.stat().st_mode & 0o777 == 0o640 and key.read_bytes() == before  # the user's key: untouched


def test_an_adb_device_runs_nothing_when_constructed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from edgekit.device.adb import AdbDevice, AdbServer, _server_listening

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    marker = tmp_path / "adb-ran"
    adb = tmp_path / "bin" / "adb"  # an adb that says when it runs
    adb.parent.mkdir()
    adb.write_text(f'#!/bin/sh\necho "$@" >> {marker}\n')
    adb.chmod(0o755)
    monkeypatch.setenv("PATH", str(adb.parent))
    monkeypatch.delenv("ADBUTILS_ADB_PATH", raising=False)
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(port))
    device = AdbDevice("0123456789ABCDEF")
    assert device.serial == "0123456789ABCDEF"
    # no adb run, no server started
    assert not marker.exists() and not _server_listening(AdbServer(host="127.0.0.1", port=port))
    assert device._adb == str(adb) and marker.read_text() == "version\n"  # found on first use


class _ClosingDevice(FakeDevice):
    """Counts its `close` calls."""

    def __init__(self) -> None:
        super().__init__()
        self.closes = 0

    def close(self) -> None:
        self.closes += 1


def test_with_closes_the_device_once_on_a_normal_exit() -> None:
    device = _ClosingDevice()
    with device as entered:
        assert entered is device and device.closes == 0
    assert device.closes == 1


def test_with_closes_the_device_once_when_the_block_raises_and_lets_the_error_through() -> None:
    device = _ClosingDevice()
    with pytest.raises(DeviceError, match="cable pulled"), device:
        raise DeviceError("cable pulled", serial=device.serial)
    assert device.closes == 1
