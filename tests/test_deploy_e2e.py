"""Deploy end to end against the ADB device emulator, through every transport."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekit.artifact import manifest_path, sha256_file
from edgekit.convert import ConvertResult
from edgekit.deploy import DeployConfig, deploy
from edgekit.device.adb import AdbDevice, adb_binary
from edgekit.device.base import Device
from edgekit.device.direct import DirectAdbDevice
from edgekit.device.local import LocalDevice
from edgekit.errors import DeviceError, InputError
from edgekit.placement import clean
from edgekit.runners import elf_abi
from edgekit.testing.plugin import EmulatedDevice
from tests.conftest import run_cli, wait_for
from tests.elf import EM_X86_64, write_elf

pytestmark = pytest.mark.slow

ROOT = "/data/local/tmp/edgekit"


@pytest.fixture
def artifact(int4_result: ConvertResult, tmp_path: Path) -> Path:
    """A private copy of the tiny INT4 artifact and its manifest."""
    out = tmp_path / "art" / "tiny.litertlm"
    out.parent.mkdir()
    shutil.copy(int4_result.artifact.path, out)
    shutil.copy(manifest_path(int4_result.artifact.path), manifest_path(out))
    return out


_opened: list[DirectAdbDevice] = []


def _direct(dev: EmulatedDevice) -> DirectAdbDevice:
    host, port = dev.serial.rsplit(":", 1)
    device = DirectAdbDevice(host, int(port), connect_timeout_s=5, auth_timeout_s=2)
    _opened.append(device)
    return device


@pytest.fixture(autouse=True)
def _close_devices() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def _check_layout(dev: EmulatedDevice, artifact: Path) -> None:
    sha = sha256_file(artifact)
    model = dev.path(f"{ROOT}/models/{sha}/model.litertlm")
    assert sha256_file(model) == sha
    runner_sha = sha256_file(dev.runner)
    runner = dev.path(f"{ROOT}/runners/{runner_sha}/litert_lm_main")
    assert sha256_file(runner) == runner_sha and os.access(runner, os.X_OK)
    harness = list(dev.path(f"{ROOT}/harness").iterdir())
    assert len(harness) == 1 and not harness[0].name.endswith(".part")
    assert not list(dev.path(ROOT).rglob("*.part"))


def _deploy_twice(device: Device, dev: EmulatedDevice, artifact: Path) -> None:
    config = DeployConfig(runner=dev.runner)
    first = deploy(device, artifact, config)
    assert first.model.pushed and first.runner is not None and first.runner.pushed and first.harness.pushed
    assert first.provenance == "manifest"
    assert first.facts.emulated and first.facts.abis == ("arm64-v8a",)
    assert first.smoke is not None and first.smoke.decode_tokens is not None and first.smoke.decode_tokens >= 1
    assert first.smoke.decode_tokens_per_s is not None and first.smoke.decode_tokens_per_s > 0
    _check_layout(dev, artifact)
    second = deploy(device, artifact, config)
    assert second.bytes_pushed == 0
    assert not second.model.pushed and second.runner is not None and not second.runner.pushed
    assert not second.harness.pushed


def test_deploy_direct_transport(emulated_device: EmulatedDevice, artifact: Path) -> None:
    device = _direct(emulated_device)
    try:
        _deploy_twice(device, emulated_device, artifact)
    finally:
        device.close()


def test_deploy_adb_server_transport(emulated_device: EmulatedDevice, artifact: Path, adb_server: int) -> None:
    device = AdbDevice(emulated_device.serial)
    _deploy_twice(device, emulated_device, artifact)


def test_real_adb_client_speaks_to_the_emulator(
    emulated_device: EmulatedDevice, adb_server: int, tmp_path: Path
) -> None:
    env = {**os.environ, "ANDROID_ADB_SERVER_PORT": str(adb_server)}

    def adb(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([adb_binary(), *args], env=env, capture_output=True, timeout=60, input=stdin)

    assert b"connected" in adb("connect", emulated_device.serial).stdout
    s = emulated_device.serial
    shell = adb("-s", s, "shell", "echo out; echo err >&2; exit 7")
    assert (shell.returncode, shell.stdout, shell.stderr) == (7, b"out\n", b"err\n")
    assert adb("-s", s, "shell", "cat", stdin=b"piped stdin").stdout == b"piped stdin"
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(3_000_000))
    assert adb("-s", s, "push", str(blob), "/data/local/tmp/blob.bin").returncode == 0
    assert emulated_device.path("/data/local/tmp/blob.bin").read_bytes() == blob.read_bytes()
    assert adb("-s", s, "pull", "/data/local/tmp/blob.bin", str(tmp_path / "back.bin")).returncode == 0
    assert (tmp_path / "back.bin").read_bytes() == blob.read_bytes()
    assert adb("-s", s, "shell", "getprop", "ro.product.model").stdout.strip() == b"Emulated Phone"


def test_cli_deploy_json_then_nothing_sent(
    emulated_device: EmulatedDevice, artifact: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**cli_env, "XDG_CACHE_HOME": str(tmp_path / "cache")}  # no runner remembered by another test
    args = ("deploy", "--device", emulated_device.serial, str(artifact))
    proc = run_cli(*args, "--runner", str(emulated_device.runner), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    [entry] = json.loads(proc.stdout)
    assert entry["serial"] == emulated_device.serial and entry["model"]["pushed"] is True
    assert entry["smoke"]["decode_tokens"] >= 1
    again = run_cli(*args, env=env)  # without --runner: the one the CLI remembered
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"✓ {emulated_device.serial} (Emulated Phone, Android 16): model already there")
    assert "runner already there (verified), not sent; harness already there (verified), not sent" in again.stdout


def test_connection_dropped_mid_push_leaves_nothing_valid_and_rerun_succeeds(
    emulated_device: EmulatedDevice, artifact: Path
) -> None:
    device = _direct(emulated_device)
    emulated_device.faults.drop_after_bytes = 200_000  # the artifact is ~390 kB
    with pytest.raises(DeviceError, match="connection to the device lost"):
        deploy(device, artifact, DeployConfig(runner=emulated_device.runner))
    sha = sha256_file(artifact)
    assert not emulated_device.path(f"{ROOT}/models/{sha}/model.litertlm").exists()
    device = _direct(emulated_device)
    result = deploy(device, artifact, DeployConfig(runner=emulated_device.runner))
    assert result.model.pushed
    _check_layout(emulated_device, artifact)


HOSTILE = "a b'c\";$(touch PWNED1)`touch PWNED2`|x&"


def test_hostile_names_and_prompt_execute_nothing(
    emulated_device: EmulatedDevice, artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where a command injected on this computer would write
    hostile_dir = tmp_path / HOSTILE
    hostile_dir.mkdir()
    art = hostile_dir / f"{HOSTILE}.litertlm"
    shutil.copy(artifact, art)
    shutil.copy(manifest_path(artifact), manifest_path(art))
    runner = hostile_dir / f"run {HOSTILE}"
    shutil.copy(emulated_device.runner, runner)
    prompt = '\'; touch /data/local/tmp/PWNED3; echo "$(touch PWNED4)" `touch PWNED5` && touch PWNED6\\'
    device = _direct(emulated_device)
    result = deploy(device, art, DeployConfig(runner=runner, smoke_prompt=prompt))
    assert result.smoke is not None and result.smoke.decode_tokens
    for where in (emulated_device.sandbox, tmp_path):
        assert not [p for p in where.rglob("PWNED*")], where


def test_artifact_without_manifest_deploys_with_unknown_provenance(
    emulated_device: EmulatedDevice, artifact: Path
) -> None:
    manifest_path(artifact).unlink()
    result = deploy(_direct(emulated_device), artifact, DeployConfig(runner=emulated_device.runner))
    assert result.provenance == "unknown"
    assert any("provenance unknown" in n for n in result.notes)
    assert result.model.sha256 == sha256_file(artifact)


def test_tampered_artifact_is_refused(emulated_device: EmulatedDevice, artifact: Path) -> None:
    data = bytearray(artifact.read_bytes())
    data[100] ^= 1
    artifact.write_bytes(bytes(data))
    with pytest.raises(InputError, match="does not match its manifest"):
        deploy(_direct(emulated_device), artifact, DeployConfig(runner=emulated_device.runner))
    assert not emulated_device.path(f"{ROOT}/models").exists()


def test_clean_keeps_the_newest_deploy_or_removes_all(
    emulated_device: EmulatedDevice, artifact: Path, tmp_path: Path
) -> None:
    device = _direct(emulated_device)
    config = DeployConfig(runner=emulated_device.runner, smoke=False)
    deploy(device, artifact, config)
    other = tmp_path / "other.litertlm"
    other.write_bytes(artifact.read_bytes() + b"\0")  # a different file: another content address
    deploy(device, other, config)
    removed = clean(device, everything=False)
    assert removed == [f"{ROOT}/models/{sha256_file(artifact)}"]
    assert emulated_device.path(f"{ROOT}/models/{sha256_file(other)}/model.litertlm").is_file()
    assert clean(device, everything=True) == [ROOT]
    assert not emulated_device.path(ROOT).exists()


def test_local_device_deploy(artifact: Path, tmp_path: Path) -> None:
    device = LocalDevice(tmp_path / "local-root")
    result = deploy(device, artifact)
    assert result.runner is None
    assert Path(result.model.remote).is_file() and sha256_file(Path(result.model.remote)) == sha256_file(artifact)
    assert result.smoke is not None and result.smoke.decode_tokens
    assert deploy(device, artifact).bytes_pushed == 0


def _one_error_line(proc: subprocess.CompletedProcess[str], expected: str) -> None:
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edgekit: error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in proc.stderr


@pytest.fixture
def cli_env(adb_server: int, adb_home: Path) -> dict[str, str]:
    return {"ANDROID_ADB_SERVER_PORT": str(adb_server), "ANDROID_USER_HOME": str(adb_home / ".android")}


def test_error_no_device(artifact: Path, cli_env: dict[str, str], emulated_device: EmulatedDevice) -> None:
    # The emulator runs but nobody connected it to the adb server: no device there.
    _one_error_line(run_cli("deploy", str(artifact), env=cli_env), "no device: connect a phone")


def test_error_several_devices(artifact: Path, cli_env: dict[str, str], tmp_path: Path, adb_home: Path) -> None:
    from edgekit.device.adb import ensure_server
    from edgekit.testing.emulator import AdbDeviceEmulator

    key = (adb_home / ".android" / "adbkey.pub").read_bytes()
    emus = [AdbDeviceEmulator(tmp_path / f"d{i}", trusted_keys=[key]).start() for i in range(2)]
    client = ensure_server()
    try:
        for emu in emus:
            client.connect(emu.serial, timeout=10)
        proc = run_cli("deploy", str(artifact), env=cli_env)
        _one_error_line(proc, "several devices")
        assert all(emu.serial in proc.stderr for emu in emus)
    finally:
        for emu in emus:
            client.disconnect(emu.serial)
            emu.stop()


def test_error_unauthorized_direct(emulated_device: EmulatedDevice, artifact: Path) -> None:
    emulated_device.faults.refuse_auth = True
    device = _direct(emulated_device)  # connects on first use
    with pytest.raises(DeviceError, match="device unauthorized: accept the RSA prompt on the phone"):
        deploy(device, artifact, DeployConfig(runner=emulated_device.runner))


def test_error_unauthorized_adb(emulated_device: EmulatedDevice, artifact: Path, cli_env: dict[str, str]) -> None:
    emulated_device.faults.refuse_auth = True
    proc = run_cli("deploy", "--device", emulated_device.serial, str(artifact), env=cli_env)
    _one_error_line(proc, "unauthorized")


def test_error_offline(emulated_device: EmulatedDevice, artifact: Path, cli_env: dict[str, str]) -> None:
    from edgekit.device.adb import ensure_server, list_devices

    client = ensure_server()
    client.connect(emulated_device.serial, timeout=10)
    emulated_device.emulator.stop()  # the phone goes away; the adb server keeps it, "offline"
    wait_for(
        lambda: dict(list_devices(client)).get(emulated_device.serial) == "offline",
        what="the adb server to see the stopped emulator as offline",
    )
    proc = run_cli("deploy", "--device", emulated_device.serial, str(artifact), env=cli_env)
    _one_error_line(proc, "device offline: reconnect the cable or run `adb reconnect`")


def test_error_no_space(emulated_device: EmulatedDevice, artifact: Path) -> None:
    emulated_device.faults.low_space = True
    emulated_device.emulator.refresh_battery(busy=False)  # publishes the fault at once
    with pytest.raises(DeviceError, match="not enough space"):
        deploy(_direct(emulated_device), artifact, DeployConfig(runner=emulated_device.runner))


def test_error_wrong_abi_runner(
    emulated_device: EmulatedDevice, artifact: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    host_binary = write_elf(tmp_path / "litert_lm_main", machine=EM_X86_64)  # the emulated phone is arm64-v8a
    assert elf_abi(host_binary) == "x86_64"
    args = ["deploy", "--transport", "direct", "--device", emulated_device.serial, "--runner", str(host_binary)]
    proc = run_cli(*args, str(artifact), env=cli_env)
    _one_error_line(proc, "the runner is built for x86_64 but")
    assert "arm64-v8a" in proc.stderr


def test_error_runner_missing(emulated_device: EmulatedDevice, artifact: Path, cli_env: dict[str, str]) -> None:
    args = ["deploy", "--transport", "direct", "--device", emulated_device.serial, "--runner", "/no/such/runner"]
    _one_error_line(run_cli(*args, str(artifact), env=cli_env), "runner /no/such/runner does not exist")


def _direct_deploy_args(dev: EmulatedDevice) -> list[str]:
    return ["deploy", "--transport", "direct", "--device", dev.serial, "--runner", str(dev.runner)]


def test_error_manifest_mismatch_cli(emulated_device: EmulatedDevice, artifact: Path, cli_env: dict[str, str]) -> None:
    artifact.write_bytes(artifact.read_bytes()[:-1])
    args = _direct_deploy_args(emulated_device)
    _one_error_line(run_cli(*args, str(artifact), env=cli_env), "does not match its manifest")


def test_error_disconnected_mid_push_cli(
    emulated_device: EmulatedDevice, artifact: Path, cli_env: dict[str, str]
) -> None:
    emulated_device.faults.drop_after_bytes = 150_000
    args = _direct_deploy_args(emulated_device)
    _one_error_line(run_cli(*args, str(artifact), env=cli_env), "connection to the device lost")
    proc = run_cli(*args, str(artifact), env=cli_env)
    assert proc.returncode == 0, proc.stderr


def test_devices_lists_emulator_and_local(emulated_device: EmulatedDevice, cli_env: dict[str, str]) -> None:
    from edgekit.device.adb import ensure_server

    ensure_server().connect(emulated_device.serial, timeout=10)
    proc = run_cli("devices", "--json", env=cli_env)
    assert proc.returncode == 0, proc.stderr
    rows = {r["serial"]: r for r in json.loads(proc.stdout)}
    emu = rows[emulated_device.serial]
    assert (emu["state"], emu["model"], emu["android"], emu["battery_pct"], emu["charging"]) == (
        "device",
        "Emulated Phone",
        "16",
        80,
        False,
    )
    assert rows["local"]["state"] == "device"


def test_deploy_to_all_in_parallel(artifact: Path, cli_env: dict[str, str], tmp_path: Path, adb_home: Path) -> None:
    from edgekit.device.adb import ensure_server
    from edgekit.runtimes.litert_lm.runner_standin import write_runner_standin
    from edgekit.testing.emulator import AdbDeviceEmulator

    key = (adb_home / ".android" / "adbkey.pub").read_bytes()
    emus = [AdbDeviceEmulator(tmp_path / f"d{i}", trusted_keys=[key]).start() for i in range(2)]
    # Each phone holds its first push until the other one's first push has arrived too: a
    # deploy that pushed one phone after the other would break the barrier (after a deadline
    # that only turns a hang into a failure), so passing proves both pushes were in flight at once.
    both_pushing = threading.Barrier(len(emus), timeout=300)
    overlapped: list[bool] = []

    def hold_first_push(held: list[str], remote: str) -> None:
        if held:
            return
        held.append(remote)
        try:
            both_pushing.wait()
            overlapped.append(True)
        except threading.BrokenBarrierError:
            overlapped.append(False)

    for emu in emus:
        held: list[str] = []
        emu.faults.before_send = lambda remote, held=held: hold_first_push(held, remote)  # type: ignore[misc]
    client = ensure_server()
    runner = write_runner_standin(tmp_path / "litert_lm_main")
    try:
        for emu in emus:
            client.connect(emu.serial, timeout=10)
        proc = run_cli("deploy", "--device", "all", "--runner", str(runner), str(artifact), env=cli_env)
        assert proc.returncode == 0, proc.stderr
        assert overlapped == [True, True]
        lines = proc.stdout.splitlines()
        assert sorted(line.split()[1] for line in lines) == sorted(e.serial for e in emus)
    finally:
        for emu in emus:
            client.disconnect(emu.serial)
            emu.stop()


def test_sync_list_and_stat_through_adb_shell(emulated_device: EmulatedDevice) -> None:
    device = _direct(emulated_device)
    device.shell(["sh", "-c", "mkdir -p /data/local/tmp/d && echo hi > /data/local/tmp/d/a.txt"])
    names = {entry.filename.decode() for entry in device._dev.list("/data/local/tmp/d")}
    assert {"a.txt"} <= names
    mode, size, _mtime = device._dev.stat("/data/local/tmp/d/a.txt")
    assert size == 3 and mode & 0o170000 == 0o100000
    assert device._dev.stat("/data/local/tmp/nope") == (0, 0, 0)  # a missing file stats as zeros
    # A sync path that escapes the sandbox, by `..` or by a symlink, is refused.
    outside = emulated_device.sandbox.parent / "host-secret"
    outside.write_text("not the phone's\n")
    assert (emulated_device.sandbox / "data/../../host-secret").resolve() == outside  # where a naive join lands
    assert device._dev.stat("/data/../../host-secret") == (0, 0, 0)
    (emulated_device.path("/data/local/tmp") / "out").symlink_to(outside.parent)
    assert (emulated_device.path("/data/local/tmp") / "out" / "host-secret").is_file()
    assert device._dev.stat("/data/local/tmp/out/host-secret") == (0, 0, 0)


def test_clean_cache_removes_local_caches(tmp_path: Path) -> None:
    cache = tmp_path / "xdg"
    (cache / "edgekit" / "logs").mkdir(parents=True)
    (cache / "edgekit" / "runners" / "x").mkdir(parents=True)
    proc = run_cli("clean", "--cache", env={"XDG_CACHE_HOME": str(cache)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"removed {cache / 'edgekit'}"
    assert not (cache / "edgekit").exists()
